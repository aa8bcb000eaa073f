-- wrk script for bench/client-secrets.sh: the same client_secret_basic token request every time
-- (AUTH (env) is the whole Authorization header value). Prints the same RESULT/STATUS lines as
-- token.lua.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = os.getenv("AUTH"),
  }
  body = "grant_type=client_credentials"
end

function request()
  return wrk.format("POST", "/oauth2/token", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      merged[code] = (merged[code] or 0) + n
    end
  end
  local non200 = 0
  for code, n in pairs(merged) do
    if code ~= 200 then non200 = non200 + n end
    io.write(string.format("STATUS %d %d\n", code, n))
  end
  local secs = summary.duration / 1e6
  local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non200=%d spare=0 socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, non200, errs))
end
