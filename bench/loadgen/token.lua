-- wrk script for bench/token-endpoint.sh: posts each pre-signed token request body exactly once.
--
-- BODIES (env) is a file with one form body per line (from m2m-loadgen). Thread i of n (WRK_THREADS, env) takes
-- lines i, i+n, i+2n, ... so no body is sent twice. A thread that runs out stops itself; its last
-- request goes to /healthz (not a token request) and is counted apart as `spare`.
-- At the end it prints machine-readable lines:
--   RESULT requests=.. duration_s=.. rps=.. p50_ms=.. p99_ms=.. non200=.. spare=.. socket_errors=..
--   STATUS <code> <count>     (one line per status seen)

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  bodies = {}
  local path = os.getenv("BODIES")
  local i = 0
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if i % nthreads == id then
      bodies[#bodies + 1] = line
    end
    i = i + 1
  end
  f:close()
  next_body = 1
  statuses = {}
  spare = 0
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function request()
  local body = bodies[next_body]
  if body == nil then
    spare = spare + 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  bodies[next_body] = nil
  next_body = next_body + 1
  return wrk.format("POST", "/oauth2/token", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged, spares = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      merged[code] = (merged[code] or 0) + n
    end
    spares = spares + t:get("spare")
  end
  local non200 = 0
  for code, n in pairs(merged) do
    io.write(string.format("STATUS %d %d\n", code, n))
    if code ~= 200 then non200 = non200 + n end
  end
  -- /healthz answers 200 too: take the spare requests out of the 200s and the totals.
  local requests_n = summary.requests - spares
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non200=%d spare=%d socket_errors=%d\n",
    requests_n, secs, requests_n / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    non200, spares, e.connect + e.read + e.write + e.timeout))
end
