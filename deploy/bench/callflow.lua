-- wrk script: one callflow endpoint (ENDPOINT), a random customer of 1000 per request.
local endpoint = os.getenv("ENDPOINT")
math.randomseed(os.time())

request = function()
  local id = "c" .. math.random(0, 999)
  local query = "CustomerId=" .. id
  if endpoint == "send-authentication-code" then
    query = query .. "&TwoFactorAuthSelectedMethod=Email"
  elseif endpoint == "code-authentication" then
    query = query .. "&authCode_nbest1=" .. string.format("%06d", math.random(0, 999999))
  end
  return wrk.format("GET", "/v1/" .. endpoint .. "?" .. query)
end
