-- wrk script for bench/scale_out.py: SCIM load with wrk's own threads (C and LuaJIT),
-- so the load generator costs little of the cores the servers are measured on.
--   wrk -t2 -c16 -d10s -s scale_out.lua http://127.0.0.1:PORT/scim2/Users -- MODE TOKEN ARG
-- MODE "get":  GET /Users?filter=userName eq "bench000123", a user drawn at random
--              from the ARG users seeded (bench000000 ..), each answer checked for one hit.
-- MODE "post": POST /Users with a userName unique per request: ARG (a prefix unique per
--              phase), the thread's number and a counter of that thread; 201 expected.
-- done() prints one line "SCALE_OUT {...}" that the Python side reads.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode, token, arg = args[1], args[2], args[3]
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/scim+json"
  math.randomseed(7 + id)
  bad, bad_example = 0, ""
  if mode == "post" then
    wrk.method = "POST"
    expected = 201
  else
    users = tonumber(arg)
    expected = 200
  end
end

function request()
  if mode == "post" then
    local name = string.format("%s-%d-%d", arg, id, counter)
    counter = counter + 1
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],'
      .. '"userName":"' .. name .. '","name":{"givenName":"Given","familyName":"Family"},'
      .. '"emails":[{"value":"' .. name .. '@example.com","type":"work"}],"active":true}'
    return wrk.format(nil, nil, nil, body)
  end
  local name = string.format("bench%06d", math.random(0, users - 1))
  return wrk.format(nil, wrk.path .. "?filter=userName%20eq%20%22" .. name .. "%22")
end

function response(status, headers, body)
  if status ~= expected or (mode == "get" and not string.find(body, '"totalResults":%s*1[,}%s]')) then
    bad = bad + 1
    if bad_example == "" then bad_example = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local bad_total, example = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    if example == "" then example = thread:get("bad_example") end
  end
  local e = summary.errors
  io.write(string.format(
    'SCALE_OUT {"requests": %d, "micros": %d, "bad": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "example": "%s"}\n',
    summary.requests, summary.duration, bad_total,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99), (example:gsub('[%c"\\]', ' '))))
end
