-- wrk script: POST AdmissionReviews (one JSON document per line of a file), round robin.
-- Usage: wrk ... -s bench/post.lua URL -- PATH BODIES_FILE
-- done() prints one JSON line that bench/load.py reads.
local bodies = {}
local idx = 0
local path = "/validate"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  path = args[1]
  for line in io.lines(args[2]) do
    bodies[#bodies + 1] = line
  end
  idx = math.random(#bodies)
end

function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", path, headers, bodies[idx])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
