#!/usr/bin/env bash
# Throughput and added latency of `m2m proxy` against nginx's own proxy_pass, to the same trivial
# upstream (nginx answering 200 "ok"), with 1 KiB POST bodies; and the proxy's RSS after a short
# and a long soak (flat memory under load).
#
# Three runs of wrk (on core 1) against servers pinned to core 0: direct to the upstream, through
# nginx proxy_pass (keepalive to the upstream), through m2m proxy (token from a local m2m serve,
# injected per request). Prints req/s, p50 and p99 for each, the proxy's rate as a share of
# nginx's, the CPU per request of each on core 0 (see cpu_report in bench/lib), how often each
# proxy was preempted per request (switch_report), the added p50 over direct for both proxies,
# the token requests m2m serve answered during the load (one per token lifetime is expected), and
# the proxy's RSS after SOAK1 and SOAK2 seconds of load with their ratio.
#
# Usage: bench/proxy.sh
#   DURATION=10     seconds of load per run (use 1-2 for a smoke run)
#   CONNECTIONS=32  wrk connections
#   SOAK1=60 SOAK2=600   RSS sample points in seconds of continuous load through the proxy
#                        (the SPEC asks 1 and 10 minutes; use 2 and 4 for a smoke run)
#   SCRIPT_SESSION=1  m2m in this script's session instead of its own (see on_core0 in bench/lib)
#   M2M_BIN=PATH    the m2m binary (default: cargo build --profile release-lto, target/release-lto/m2m)
#   NGINX=/usr/sbin/nginx
# Needs: wrk, nginx, taskset, curl, python3 (free ports). Linux only (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

NGINX_EXTRA='proxy_set_header Authorization "Bearer static-token";'
# shellcheck source=bench/lib/forwarding.sh
source bench/lib/forwarding.sh
proxy_port=$m2m_port

# m2m serve (tokens) and m2m proxy, both on core 0, each in a session of its own.
( cd "$work"
  "$M2M_BIN" keygen --kid bench --alg ES256 --out keys >/dev/null 2>&1
  "$M2M_BIN" clients add --clients clients.toml --id bench --jwks keys/bench.jwks.json >/dev/null 2>&1 )
( cd "$work" && on_core0 "$M2M_BIN" serve --clients clients.toml --listen "127.0.0.1:$as_port" \
    --replay-store memory --data-dir data --rate-limit 0 >/dev/null 2>&1 ) &
pids+=($!)
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$as_port/healthz" && break; sleep 0.05; done
( cd "$work" && on_core0 "$M2M_BIN" proxy --listen "127.0.0.1:$proxy_port" \
    --upstream "http://127.0.0.1:$up_port" --issuer "http://127.0.0.1:$as_port" \
    --client-id bench --key keys/bench.pem --kid bench >/dev/null 2>&1 ) &
pids+=($!)
wait_port "$proxy_port"   # this first request through the proxy also fetches its token
proxy_pid="${pids[1]}"  # the subshell execs setsid, then taskset, then m2m: the same pid
is_m2m "$proxy_pid"

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

token_requests() {
  curl -s "http://127.0.0.1:$as_port/metrics" | awk '/^m2m_token_requests_total/ {s += $NF} END {print s + 0}'
}

# run NAME PORT SECONDS -> "req/s p50_us p99_us non2xx"
run() {
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$3"s --latency -s "$work/post.lua" "http://127.0.0.1:$2/" 2>&1)
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  echo "$rps $(to_us "$p50") $(to_us "$p99") $non2xx"
}
to_us() { python3 -c "import sys,re; v=sys.argv[1]; n,u=re.match(r'([0-9.]+)(us|ms|s)',v).groups(); print(round(float(n)*{'us':1,'ms':1e3,'s':1e6}[u]))" "$1"; }

before=$(token_requests)
uw=$(upstream_worker)
c0=$(cpu_us "$uw")
read -r d_rps d_p50 d_p99 d_bad <<<"$(run direct "$up_port" "$DURATION")"
c1=$(cpu_us "$uw"); n1=$(nginx_cpu_us); ns1=$(switches "$(nginx_worker)")
read -r n_rps n_p50 n_p99 n_bad <<<"$(run nginx "$nginx_port" "$DURATION")"
n2=$(nginx_cpu_us); ns2=$(switches "$(nginx_worker)"); m0=$(cpu_us "$proxy_pid"); ms0=$(switches "$proxy_pid")
read -r m_rps m_p50 m_p99 m_bad <<<"$(run m2m "$proxy_port" "$DURATION")"
m1=$(cpu_us "$proxy_pid"); ms1=$(switches "$proxy_pid")
after=$(token_requests)

printf '%-14s %10s %9s %9s %8s\n' run req/s p50_us p99_us non2xx
printf '%-14s %10s %9s %9s %8s\n' direct "$d_rps" "$d_p50" "$d_p99" "$d_bad"
printf '%-14s %10s %9s %9s %8s\n' nginx-proxy "$n_rps" "$n_p50" "$n_p99" "$n_bad"
printf '%-14s %10s %9s %9s %8s\n' m2m-proxy "$m_rps" "$m_p50" "$m_p99" "$m_bad"
python3 - "$m_rps" "$n_rps" "$m_p50" "$n_p50" "$d_p50" <<'PY'
import sys
m, n, mp, np_, dp = map(float, sys.argv[1:])
print(f"m2m/nginx rate: {m / n * 100:.1f} %   added p50: m2m {mp - dp:.0f} us, nginx {np_ - dp:.0f} us")
PY
cpu_report m2m-proxy $((c1 - c0)) "$d_rps" $((n2 - n1)) "$n_rps" $((m1 - m0)) "$m_rps"
switch_report m2m-proxy $((ns2 - ns1)) "$n_rps" $((ms1 - ms0)) "$m_rps"
echo "token requests during the runs: $((after - before))"

# Soak: continuous load through the proxy; RSS sampled at SOAK1 and SOAK2 seconds.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$proxy_pid/status"; }
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$SOAK2"s -s "$work/post.lua" "http://127.0.0.1:$proxy_port/" >/dev/null 2>&1 &
soak=$!
sleep "$SOAK1"; rss1=$(rss)
wait "$soak"; rss2=$(rss)
python3 - "$rss1" "$rss2" "$SOAK1" "$SOAK2" <<'PY'
import sys
a, b, s1, s2 = map(int, sys.argv[1:])
print(f"proxy RSS: {a} KiB after {s1} s, {b} KiB after {s2} s ({(b - a) / a * 100:+.1f} %)")
PY
