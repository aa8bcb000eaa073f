#!/usr/bin/env bash
# Load benchmark of `m2m serve`'s token endpoint, one run per replay store (memory, SQLite, Redis).
#
# The server runs pinned to core 0 with the rate limit off; wrk drives it from core 1 (so does
# redis-server) over loopback. Every request carries its own pre-signed RS512 / RSA-4096 client
# assertion, used exactly once per server, so each request costs the server a real RSA-4096
# verification, a real replay-store insert and an ES256 access-token signature. The assertions
# are signed before the timed runs (on both cores: ~1.5 ms each) by bench/loadgen.
#
# Prints, per store: req/s, p50, p99, non-200 count (must be 0), the server's RSS, its CPU time per
# request and what its core did during the run (busy / steal); then the crypto bound
# 1 / (t_verify_rsa4096 + t_sign_es256) from `openssl speed -elapsed` pinned to the server's core,
# measured right after each store's run (on a shared VM the host's load moves within minutes, so a
# bound taken minutes away from the run it judges is not comparable), each store's ratio to its
# own bound, and SQLite/memory, Redis/memory.
#
# Usage: bench/token-endpoint.sh
#   DURATION=10      seconds of load per store (default 10; use 2-3 while developing)
#   CONNECTIONS=32   wrk connections (closed loop: latency ~ CONNECTIONS / throughput; 32 keeps
#                    the one server core saturated, 8 gives ~5% less throughput at ~1 ms p50)
#   STORES="memory sqlite redis"
#   REPEAT=1         run the whole store list this many times and report every run and the
#                    median ratios (on a shared VM single runs spread by +-10% or more)
#   COUNT=N          assertions to pre-sign (default: bound x DURATION x 0.85 + 2000; a run that
#                    runs out is reported INVALID: raise COUNT). They are reused by every store's run
#                    (each run starts an empty store) and signed again when they would expire.
#   CPU_LOCK=FILE    flock file held during the measurements, so benchmarks of people sharing the
#                    machine do not overlap (default /work/notes/cpu.lock when /work/notes exists;
#                    CPU_LOCK= to disable)
# Needs: cargo, taskset, flock, wrk (apt-get install -y wrk), openssl, curl, python3 (free ports),
#        redis-server for the redis store (apt-get install -y redis-server). Linux only (/proc).
# Exit status: 0 when every run completed with only 200s; 1 on a setup failure; 2 when a run had
# non-200 responses, socket errors or ran out of assertions (its figures are not valid).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
STORES="${STORES:-memory sqlite redis}"
REPEAT="${REPEAT:-1}"
COUNT="${COUNT:-}"
if [ -z "${CPU_LOCK+set}" ]; then
  if [ -d /work/notes ]; then CPU_LOCK=/work/notes/cpu.lock; else CPU_LOCK=""; fi
fi
SERVER_CPU=0
LOAD_CPU=1
ISSUER="https://auth.bench.invalid"   # never contacted: only the assertions' `aud`
CLIENT_ID="bench"
KID="bench-1"
ASSERTION_LIFETIME=300                # the longest the server accepts
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
M2M="$CARGO_TARGET_DIR/release/m2m"
LOADGEN="$repo/bench/loadgen/target/release/m2m-loadgen"

die() { echo "token-endpoint.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required${2:+ ($2)}"; }
need cargo; need taskset; need wrk "apt-get install -y wrk"; need openssl; need curl; need python3
[ -z "$CPU_LOCK" ] || need flock
case " $STORES " in *" redis "*) need redis-server "apt-get install -y redis-server" ;; esac
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server on core $SERVER_CPU, load on core $LOAD_CPU)"

work="$(mktemp -d)"

server_pid=""
redis_pid=""
stop_pid() { # pid: SIGTERM, wait up to 5 s, then SIGKILL
  local pid="$1" i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$server_pid"
  stop_pid "$redis_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building (release)"
# Build output only when a build fails (warnings of crates under development are not ours to show).
build() { "$@" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "build failed: $*"; }; }
build cargo build --release -p m2m-cli
(cd bench/loadgen && CARGO_TARGET_DIR="$repo/bench/loadgen/target" build cargo build --release)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== client key (RSA-4096, RS512) and registry"
"$M2M" keygen --kid "$KID" --out "$work/keys" >/dev/null 2>&1
"$M2M" clients add --clients "$work/clients.toml" --id "$CLIENT_ID" \
  --jwks "$work/keys/$KID.jwks.json" --alg RS512 >/dev/null

# From here on the CPUs are what is measured: hold the shared lock until the script exits.
if [ -n "$CPU_LOCK" ]; then
  exec 9>>"$CPU_LOCK"
  echo "== waiting for the CPU lock $CPU_LOCK"
  flock 9
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== load average before: $load_before; busiest processes:"
ps -eo pcpu=,comm= --sort=-pcpu | head -3 | sed 's/^/   /'

# openssl speed -elapsed: wall-clock rates, as wrk's req/s are (without it openssl divides by its
# user CPU time, which leaves out the time a shared VM's host takes away). Sets verify_per_s,
# sign_per_s and bound.
measure_bound() {
  verify_per_s="$(taskset -c "$SERVER_CPU" openssl speed -elapsed -seconds 3 rsa4096 2>/dev/null |
    awk '/^rsa 4096 bits/ { print $NF }')"
  sign_per_s="$(taskset -c "$SERVER_CPU" openssl speed -elapsed -seconds 3 ecdsap256 2>/dev/null |
    awk '/ecdsa \(nistp256\)/ { print $(NF-1) }')"
  [ -n "$verify_per_s" ] && [ -n "$sign_per_s" ] || die "cannot parse openssl speed output"
  bound="$(awk -v v="$verify_per_s" -v s="$sign_per_s" 'BEGIN { printf "%.0f", 1 / (1 / v + 1 / s) }')"
  echo "   rsa4096 verify/s: $verify_per_s   ecdsap256 sign/s: $sign_per_s   bound: $bound req/s"
}
echo "== crypto bound (openssl speed, pinned to core $SERVER_CPU), to size the assertion set"
measure_bound

if [ -z "$COUNT" ]; then
  COUNT="$(awk -v b="$bound" -v d="$DURATION" 'BEGIN { printf "%d", b * d * 0.85 + 2000 }')"
fi
sign_assertions() {
  echo "== pre-signing $COUNT assertions (both cores)"
  signed_at="$(date +%s)"
  "$LOADGEN" --key "$work/keys/$KID.pem" --kid "$KID" --client-id "$CLIENT_ID" --aud "$ISSUER" \
    --count "$COUNT" --threads 2 --lifetime "$ASSERTION_LIFETIME" --out "$work/bodies.txt"
}
sign_assertions

# Starts redis-server on core $LOAD_CPU; sets redis_pid and redis_url.
start_redis() {
  local port
  port="$(free_port)"
  taskset -c "$LOAD_CPU" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --protected-mode yes --loglevel warning >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      redis_url="redis://127.0.0.1:$port"
      return
    fi
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/redis.log" >&2
  die "redis-server did not start"
}

# Starts `m2m serve` with the given store spec; sets server_pid and server_url.
start_server() {
  local spec="$1" port i
  port="$(free_port)"
  rm -rf "$work/data"
  taskset -c "$SERVER_CPU" "$M2M" serve --listen "127.0.0.1:$port" --issuer "$ISSUER" \
    --clients "$work/clients.toml" --replay-store "$spec" --data-dir "$work/data" --rate-limit 0 \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  server_url="http://127.0.0.1:$port"
  for i in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz")" = 200 ]; then
      return
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/server.log" >&2
  die "m2m serve ($spec) did not become ready"
}

# The server core's jiffies: "busy steal total" (busy = user+nice+system+irq+softirq).
core_jiffies() {
  awk -v c="cpu$SERVER_CPU" '$1 == c { print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
# A process's user + system CPU time in jiffies.
proc_jiffies() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A rps p50 p99 errors hwm rss cpu_us busy steal bounds
runs=()
status=0
for rep in $(seq "$REPEAT"); do
for store in $STORES; do
  run="$store#$rep"; runs+=("$run")
  # Every assertion must still be valid (exp) when it is posted; sign a new set if not.
  if [ $(( $(date +%s) + DURATION + 15 )) -ge $(( signed_at + ASSERTION_LIFETIME )) ]; then
    sign_assertions
  fi
  case "$store" in
    memory) spec=memory ;;
    sqlite) spec="sqlite:$work/replay.sqlite3"; rm -f "$work"/replay.sqlite3* ;;
    redis) start_redis; spec="$redis_url" ;;
    *) die "unknown store $store (memory, sqlite, redis)" ;;
  esac
  start_server "$spec"
  echo "== $store (run $rep of $REPEAT): $DURATION s, $CONNECTIONS connections, server pid $server_pid on core $SERVER_CPU"
  read -r core_busy0 core_steal0 core_total0 < <(core_jiffies)
  server_cpu0="$(proc_jiffies "$server_pid")"
  BODIES="$work/bodies.txt" WRK_THREADS=1 taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s bench/loadgen/token.lua \
    "$server_url" >"$work/wrk-$run.txt" 2>&1 || { cat "$work/wrk-$run.txt" >&2; die "wrk failed"; }
  server_cpu1="$(proc_jiffies "$server_pid")"
  read -r core_busy1 core_steal1 core_total1 < <(core_jiffies)
  hwm[$run]="$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")"
  rss[$run]="$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status")"
  issued="$(curl -s "$server_url/metrics" |
    awk '/^m2m_token_requests_total\{outcome="issued"/ { n += $2 } END { print n + 0 }')"
  stop_pid "$server_pid"; server_pid=""
  [ "$store" = redis ] && { stop_pid "$redis_pid"; redis_pid=""; }

  result="$(grep '^RESULT' "$work/wrk-$run.txt" || true)"
  [ -n "$result" ] || { cat "$work/wrk-$run.txt" >&2; die "no result from wrk"; }
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
  rps[$run]="$(field rps)"; p50[$run]="$(field p50_ms)"; p99[$run]="$(field p99_ms)"
  errors[$run]="$(field non200)"
  cpu_us[$run]="$(awk -v j=$((server_cpu1 - server_cpu0)) -v hz="$(getconf CLK_TCK)" -v n="$(field requests)" \
    'BEGIN { printf "%.0f", j / hz / n * 1e6 }')"
  busy[$run]="$(awk -v b=$((core_busy1 - core_busy0)) -v t=$((core_total1 - core_total0)) 'BEGIN { printf "%.0f", 100 * b / t }')"
  steal[$run]="$(awk -v s=$((core_steal1 - core_steal0)) -v t=$((core_total1 - core_total0)) 'BEGIN { printf "%.0f", 100 * s / t }')"
  echo "== crypto bound right after the $store run"
  measure_bound
  bounds[$run]="$bound"
  grep '^STATUS' "$work/wrk-$run.txt" | sed 's/^/   /'
  echo "   tokens issued (server /metrics): $issued; requests (wrk): $(field requests)"
  if [ "$(field non200)" != 0 ] || [ "$(field socket_errors)" != 0 ]; then
    echo "   INVALID: $(field non200) non-200 responses, $(field socket_errors) socket errors" >&2
    status=2
  fi
  if [ "$(field spare)" != 0 ]; then
    echo "   INVALID: ran out of assertions before $DURATION s: raise COUNT" >&2
    status=2
  fi
done
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average before: $load_before, after: $load_after"
echo "client assertions RS512 / RSA-4096, access tokens ES256; $COUNT pre-signed; wrk -t1 -c$CONNECTIONS -d${DURATION}s"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
printf '| %-6s | %9s | %8s | %8s | %6s | %-22s | %11s | %-18s | %9s | %7s |\n' store 'req/s' p50 p99 errors \
  'server RSS (HWM / now)' 'CPU/request' 'core busy / steal' 'bound' '/ bound'
printf '| %-6s | %9s | %8s | %8s | %6s | %-22s | %11s | %-18s | %9s | %7s |\n' --- ---: ---: ---: ---: --- ---: --- ---: ---:
for run in "${runs[@]}"; do
  printf '| %-6s | %9.0f | %5.2f ms | %5.2f ms | %6s | %-22s | %8s µs | %-18s | %9s | %7s |\n' "${run%#*}" \
    "${rps[$run]}" "${p50[$run]}" "${p99[$run]}" "${errors[$run]}" \
    "${hwm[$run]} / ${rss[$run]} MiB" "${cpu_us[$run]}" "${busy[$run]}% / ${steal[$run]}%" \
    "${bounds[$run]}" "$(ratio "${rps[$run]}" "${bounds[$run]}")"
done
echo
echo "crypto bound 1 / (1/rsa4096_verify + 1/ecdsap256_sign), openssl speed -elapsed on core $SERVER_CPU right"
echo "after each run (the last: 1 / (1/$verify_per_s + 1/$sign_per_s) = $bound req/s)"
echo "core busy / steal: the server core's user+system+irq time and the time the VM's host took"
echo "from it, as shares of the run's wall-clock time (from /proc/stat)"
# median of the numbers on stdin, one per line
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
have() { case " $STORES " in *" $1 "*) return 0 ;; esac; return 1; }
of_bound() { for rep in $(seq "$REPEAT"); do awk -v a="${rps[$1#$rep]}" -v b="${bounds[$1#$rep]}" 'BEGIN { print 100 * a / b }'; done; }
of_memory() { for rep in $(seq "$REPEAT"); do awk -v a="${rps[$1#$rep]}" -v b="${rps[memory#$rep]}" 'BEGIN { print 100 * a / b }'; done; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "MISSED" }'; }
label="$([ "$REPEAT" -gt 1 ] && echo "median of $REPEAT runs" || echo "one run")"
if have memory; then
  m="$(of_bound memory | median)"
  printf 'memory / bound: %.1f%% (%s; target >= 70%%: %s)\n' "$m" "$label" "$(verdict "$m" 70)"
  for store in sqlite redis; do
    have "$store" || continue
    target=$([ "$store" = sqlite ] && echo 60 || echo 50)
    r="$(of_memory "$store" | median)"
    printf '%s / memory: %.1f%% (%s; target >= %s%%: %s)\n' "$store" "$r" "$label" "$target" "$(verdict "$r" "$target")"
  done
fi
exit "$status"
