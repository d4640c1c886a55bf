-- wrk script: one callflow endpoint (ENDPOINT), a random customer of CUSTOMERS (default 1000) per
-- request, ids c0 .. c(CUSTOMERS-1) as run.sh and soak.sh seed them. code-authentication sends a
-- random six-digit code, which is wrong (no code is pending), so each request runs the whole
-- judging path: lock check, failure count, code lookup.
local endpoint = os.getenv("ENDPOINT")
local customers = tonumber(os.getenv("CUSTOMERS") or "1000")

-- Each wrk thread has its own Lua state; seed each differently so threads do not walk in step.
function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(os.time() + (seed or 0))
end

request = function()
  local id = "c" .. math.random(0, customers - 1)
  local query = "CustomerId=" .. id
  if endpoint == "send-authentication-code" then
    query = query .. "&TwoFactorAuthSelectedMethod=Email"
  elseif endpoint == "code-authentication" then
    query = query .. "&authCode_nbest1=" .. string.format("%06d", math.random(0, 999999))
  end
  return wrk.format("GET", "/v1/" .. endpoint .. "?" .. query)
end
