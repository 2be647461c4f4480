-- wrk reporter: one JSON line with latency percentiles (ms), request rate and errors.
-- Every response that is not 200 counts as an error (wrk itself only counts status >= 400,
-- so a redirect to the login page would otherwise pass as a fast success).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  not_ok = 0
end

function response(status, headers, body)
  if status ~= 200 then
    not_ok = not_ok + 1
  end
end

done = function(summary, latency, requests)
  local not_200 = 0
  for _, thread in ipairs(threads) do
    not_200 = not_200 + (thread:get("not_ok") or 0)
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + not_200
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.2f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, ' ..
    '"max_ms": %.2f, "errors": %d, "non_200": %d, "timeouts": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, errors, not_200, summary.errors.timeout))
end
