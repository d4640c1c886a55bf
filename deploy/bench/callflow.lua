-- wrk script: one callflow endpoint (ENDPOINT) for random customers of CUSTOMERS (default 1000),
-- ids c0 .. c(CUSTOMERS-1) as run.sh and soak.sh seed them. code-authentication sends a random
-- six-digit code, which is wrong (no code is pending), so each request runs the whole judging
-- path: lock check, failure count, code lookup.
--
-- Each wrk thread builds its requests before the run, every customer once in its own random
-- order, each with its own random code, and then cycles through them, so the load generator does
-- no string building while it is measured.
local endpoint = os.getenv("ENDPOINT")
local customers = tonumber(os.getenv("CUSTOMERS") or "1000")

-- Each wrk thread has its own Lua state; seed each differently so threads do not walk in step.
function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

local requests, next_request = {}, 0

function init(args)
  math.randomseed(os.time() + (seed or 0))
  local order = {}
  for c = 0, customers - 1 do
    order[c + 1] = c
  end
  for k = #order, 2, -1 do
    local j = math.random(1, k)
    order[k], order[j] = order[j], order[k]
  end
  for n, c in ipairs(order) do
    local query = "CustomerId=c" .. c
    if endpoint == "send-authentication-code" then
      query = query .. "&TwoFactorAuthSelectedMethod=Email"
    elseif endpoint == "code-authentication" then
      query = query .. "&authCode_nbest1=" .. string.format("%06d", math.random(0, 999999))
    end
    requests[n] = wrk.format("GET", "/v1/" .. endpoint .. "?" .. query)
  end
end

request = function()
  next_request = next_request % #requests + 1
  return requests[next_request]
end
