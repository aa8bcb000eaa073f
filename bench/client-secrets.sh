#!/usr/bin/env bash
# Load benchmark of `m2m serve`'s token endpoint with client secrets (issue 14).
#
# Modes (MODES, default "basic jwt-memory jwt-sqlite"):
#   basic        client_secret_basic: the same Basic header on every request (SHA-256 verifier
#                compare + ES256 access token). Judged against `openssl speed ecdsap256` signing on
#                the server's core, measured right after the run: target >= 40 % of it.
#   jwt-memory   client_secret_jwt with pre-computed HS256 assertions (each posted once), memory
#   jwt-sqlite   replay store / SQLite replay store: target SQLite >= 60 % of memory.
#
# The server runs pinned to core 0 with the rate limit off; wrk drives it from core 1. Prints per
# run: req/s, p50, p99, non-200 count (must be 0), server CPU time per request, the core's busy and
# steal shares; with PERF=1 and `perf` installed, the share of server samples outside crypto
# (aws-lc symbols) from `perf record` during the run.
#
# Usage: bench/client-secrets.sh
#   DURATION=10  CONNECTIONS=32  REPEAT=1  MODES="basic jwt-memory jwt-sqlite"  PERF=0
#   M2M=PATH     use this m2m binary instead of building the release one
#   CPU_LOCK=FILE as in token-endpoint.sh (default /work/notes/cpu.lock when /work/notes exists)
# Needs: cargo, taskset, wrk, openssl, curl, python3; flock with CPU_LOCK. Linux only (/proc).
# Exit status: 0 when every run had only 200s; 1 on a setup failure; 2 when a run is invalid.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
REPEAT="${REPEAT:-1}"
MODES="${MODES:-basic jwt-memory jwt-sqlite}"
PERF="${PERF:-0}"
if [ -z "${CPU_LOCK+set}" ]; then
  if [ -d /work/notes ]; then CPU_LOCK=/work/notes/cpu.lock; else CPU_LOCK=""; fi
fi
SERVER_CPU=0
LOAD_CPU=1
ISSUER="https://auth.bench.invalid"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
# M2M=path/to/m2m skips the release build (e.g. a debug binary, to check the script itself).
M2M_GIVEN="${M2M:-}"
M2M="${M2M:-$CARGO_TARGET_DIR/release/m2m}"

die() { echo "client-secrets.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required${2:+ ($2)}"; }
need cargo; need taskset; need wrk "apt-get install -y wrk"; need openssl; need curl; need python3
[ -z "$CPU_LOCK" ] || need flock
[ "$(nproc)" -ge 2 ] || die "needs 2 cores"

work="$(mktemp -d)"
server_pid=""
perf_pid=""
stop_pid() {
  local pid="$1" i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() { stop_pid "$perf_pid"; stop_pid "$server_pid"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -n "$M2M_GIVEN" ] || echo "== building (release)"
[ -n "$M2M_GIVEN" ] || cargo build --release -p m2m-cli >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "build failed"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== registry: a client_secret_basic and a client_secret_jwt client"
basic_secret="$("$M2M" clients add --clients "$work/clients.toml" --id basic --auth-method client_secret_basic)"
jwt_secret="$("$M2M" clients add --clients "$work/clients.toml" --id jwt --auth-method client_secret_jwt)"
# Basic: base64(urlencode(id) ":" urlencode(secret)); generated secrets are base64url, nothing to encode.
auth="Basic $(printf '%s:%s' basic "$basic_secret" | base64 -w0)"

# HS256 assertions, one per request (python3's hmac: an independent implementation).
presign() { # count → $work/bodies.txt
  JWT_SECRET="$jwt_secret" python3 - "$1" "$ISSUER" >"$work/bodies.txt" <<'PY'
import base64, hashlib, hmac, json, os, sys, time, uuid
count, aud = int(sys.argv[1]), sys.argv[2]
key = os.environ["JWT_SECRET"].encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
now = int(time.time())
t = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
out = sys.stdout
for _ in range(count):
    claims = {"iss": "jwt", "sub": "jwt", "aud": aud, "jti": str(uuid.uuid4()), "iat": now, "exp": now + 300}
    si = head + "." + b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, si.encode(), hashlib.sha256).digest())
    out.write(f"grant_type=client_credentials&client_assertion_type={t}&client_assertion={si}.{sig}\n")
PY
}

if [ -n "$CPU_LOCK" ]; then
  exec 9>>"$CPU_LOCK"
  echo "== waiting for the CPU lock $CPU_LOCK"
  flock 9
fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

sign_rate() {
  taskset -c "$SERVER_CPU" openssl speed -elapsed -seconds "$(( DURATION < 3 ? DURATION : 3 ))" ecdsap256 2>/dev/null |
    awk '/ecdsa \(nistp256\)/ { print $(NF-1) }'
}

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
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$server_url/readyz")" = 200 ] && return
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/server.log" >&2
  die "m2m serve ($spec) did not become ready"
}
core_jiffies() {
  awk -v c="cpu$SERVER_CPU" '$1 == c { print $2 + $3 + $4 + $7 + $8, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
proc_jiffies() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A rps p50 p99 errors cpu_us busy steal bounds outside
runs=()
status=0
for rep in $(seq "$REPEAT"); do
for mode in $MODES; do
  run="$mode#$rep"; runs+=("$run")
  case "$mode" in
    basic) spec=memory; script=bench/loadgen/basic.lua ;;
    jwt-memory) spec=memory; script=bench/loadgen/token.lua ;;
    jwt-sqlite) spec="sqlite:$work/replay.sqlite3"; rm -f "$work"/replay.sqlite3*; script=bench/loadgen/token.lua ;;
    *) die "unknown mode $mode (basic, jwt-memory, jwt-sqlite)" ;;
  esac
  # HMAC requests are cheap: size the set generously (30k/s), signed fresh for each run.
  [ "$mode" = basic ] || presign "$(( DURATION * 30000 + 2000 ))"
  start_server "$spec"
  echo "== $mode (run $rep of $REPEAT): $DURATION s, $CONNECTIONS connections"
  if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
    perf record -q -F 999 -g -p "$server_pid" -o "$work/perf.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  read -r b0 s0 t0 < <(core_jiffies)
  c0="$(proc_jiffies "$server_pid")"
  AUTH="$auth" BODIES="$work/bodies.txt" WRK_THREADS=1 taskset -c "$LOAD_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$script" "$server_url" \
    >"$work/wrk-$run.txt" 2>&1 || { cat "$work/wrk-$run.txt" >&2; die "wrk failed"; }
  c1="$(proc_jiffies "$server_pid")"
  read -r b1 s1 t1 < <(core_jiffies)
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; perf_pid=""
    outside[$run]="$(perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
      awk '/^ +[0-9.]+%/ { p = $1 + 0; t += p; if ($0 ~ /aws_lc|sha256|ecdsa|p256|hmac|bn_|ec_GFp|aes/) c += p }
           END { if (t > 0) printf "%.0f%%", 100 * (t - c) / t; else print "n/a" }')"
  else
    outside[$run]="n/a"
  fi
  stop_pid "$server_pid"; server_pid=""
  result="$(grep '^RESULT' "$work/wrk-$run.txt" || true)"
  [ -n "$result" ] || { cat "$work/wrk-$run.txt" >&2; die "no result from wrk"; }
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
  rps[$run]="$(field rps)"; p50[$run]="$(field p50_ms)"; p99[$run]="$(field p99_ms)"
  errors[$run]="$(field non200)"
  cpu_us[$run]="$(awk -v j=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$(field requests)" 'BEGIN { printf "%.0f", (n > 0) ? j / hz / n * 1e6 : 0 }')"
  busy[$run]="$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", (t > 0) ? 100 * b / t : 0 }')"
  steal[$run]="$(awk -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f", (t > 0) ? 100 * s / t : 0 }')"
  bounds[$run]="$(sign_rate)"
  [ -n "${bounds[$run]}" ] || die "cannot parse openssl speed output"
  grep '^STATUS' "$work/wrk-$run.txt" | sed 's/^/   /'
  if [ "$(field non200)" != 0 ] || [ "$(field socket_errors)" != 0 ] || [ "$(field spare)" != 0 ]; then
    echo "   INVALID: $(field non200) non-200, $(field socket_errors) socket errors, $(field spare) spare" >&2
    status=2
  fi
done
done

echo
echo "machine: $(nproc) CPUs; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "access tokens ES256; wrk -t1 -c$CONNECTIONS -d${DURATION}s; ecdsap256 = openssl speed -elapsed sign/s on core $SERVER_CPU after each run"
echo
printf '| %-10s | %9s | %8s | %8s | %6s | %11s | %-12s | %10s | %9s | %14s |\n' mode 'req/s' p50 p99 errors 'CPU/request' 'busy / steal' 'ecdsap256' '/ sign' 'outside crypto'
printf '| %-10s | %9s | %8s | %8s | %6s | %11s | %-12s | %10s | %9s | %14s |\n' --- ---: ---: ---: ---: ---: --- ---: ---: ---:
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
for run in "${runs[@]}"; do
  printf '| %-10s | %9.0f | %5.2f ms | %5.2f ms | %6s | %8s µs | %-12s | %10s | %9s | %14s |\n' "${run%#*}" \
    "${rps[$run]}" "${p50[$run]}" "${p99[$run]}" "${errors[$run]}" "${cpu_us[$run]}" \
    "${busy[$run]}% / ${steal[$run]}%" "${bounds[$run]}" "$(ratio "${rps[$run]}" "${bounds[$run]}")" "${outside[$run]}"
done
echo
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
has() { case " $MODES " in *" $1 "*) return 0 ;; esac; return 1; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "MISSED" }'; }
label="$([ "$REPEAT" -gt 1 ] && echo "median of $REPEAT runs" || echo "one run")"
if has basic; then
  m="$(for rep in $(seq "$REPEAT"); do awk -v a="${rps[basic#$rep]}" -v b="${bounds[basic#$rep]}" 'BEGIN { print 100 * a / b }'; done | median)"
  printf 'client_secret_basic / ecdsap256 sign: %.1f%% (%s; target >= 40%%: %s)\n' "$m" "$label" "$(verdict "$m" 40)"
fi
if has jwt-memory && has jwt-sqlite; then
  r="$(for rep in $(seq "$REPEAT"); do awk -v a="${rps[jwt-sqlite#$rep]}" -v b="${rps[jwt-memory#$rep]}" 'BEGIN { print 100 * a / b }'; done | median)"
  printf 'client_secret_jwt SQLite / memory: %.1f%% (%s; target >= 60%%: %s)\n' "$r" "$label" "$(verdict "$r" 60)"
fi
exit "$status"
