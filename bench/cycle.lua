-- wrk script: cycle through pre-built signed pushes (bench/pushes.py writes the file).
-- Records are "path \1 content-type \1 body \2"; each thread starts at its own offset.
local requests = {}
local index = 0
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local pos = 1
  while true do
    local stop = string.find(data, "\2", pos, true)
    if not stop then break end
    local record = string.sub(data, pos, stop - 1)
    local a = string.find(record, "\1", 1, true)
    local b = string.find(record, "\1", a + 1, true)
    local path = string.sub(record, 1, a - 1)
    local ctype = string.sub(record, a + 1, b - 1)
    local body = string.sub(record, b + 1)
    requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = ctype}, body)
    pos = stop + 1
  end
  local threads = tonumber(args[2] or "1")
  index = math.floor(#requests / threads) * (id or 0)
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"duration_us\": %d, \"non2xx\": %d,"
    .. " \"errors\": %d, \"p50_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
