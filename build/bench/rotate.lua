-- wrk script for ./build/bench.sh: rotates through the requests in $BENCH_TARGETS (one a line:
-- method TAB path TAB Authorization TAB body), each thread from its own offset, and prints a JSON summary.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  for line in io.lines(os.getenv("BENCH_TARGETS")) do
    local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    local headers = { ["Authorization"] = auth }
    if body ~= nil and body ~= "" then
      headers["Content-Type"] = "application/json"
    else
      body = nil
    end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  -- Threads take interleaved requests (thread t: t+1, t+1+n, ...) so no two threads send the same one.
  step = tonumber(os.getenv("BENCH_THREADS") or "1")
  index = tid + 1 - step
end

function request()
  index = index + step
  if index > #requests then index = ((index - 1) % step) + 1 end
  return requests[index]
end

function done(summary, latency, requests)
  local f = io.open("/proc/loadavg")
  local load = f and f:read("*l"):match("^(%S+)") or "?"
  if f then f:close() end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50":%.3f,"p90":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f,"mean":%.3f,"non2xx":%d,"socketErrors":%d,"load":"%s"}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, load))
end
