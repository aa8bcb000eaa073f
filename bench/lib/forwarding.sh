# Shared by bench/proxy.sh and bench/gateway.sh (sourced from the repository root, after
# `set -euo pipefail`): the settings, the tools, a work dir cleaned up on exit, free ports, and
# nginx as the trivial upstream (`return 200 "ok"`) and as the proxy_pass yardstick, two
# processes of one worker each pinned to core 0 (one shared worker under SHARED_WORKER=1); m2m's
# processes are started on core 0 in sessions of their own (`on_core0`). Sets:
# DURATION CONNECTIONS SOAK1 SOAK2 NGINX M2M_BIN SHARED_WORKER SCRIPT_SESSION work pids up_port
# nginx_port as_port m2m_port; functions free_port, wait_port, on_core0, is_m2m, cpu_us, switches,
# nginx_worker, upstream_worker, nginx_cpu_us, cpu_report, switch_report.
# NGINX_EXTRA: lines added to the yardstick's `location /` (the proxy bench adds the Authorization
# header m2m proxy adds).

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
SOAK1="${SOAK1:-60}"
SOAK2="${SOAK2:-600}"
NGINX="${NGINX:-/usr/sbin/nginx}"

if [[ -z "${M2M_BIN:-}" ]]; then
  # The deployment build (Cargo.toml's release-lto profile), as what runs in front of an API.
  cargo build --profile release-lto -p m2m-cli >&2
  M2M_BIN="${CARGO_TARGET_DIR:-$repo/target}/release-lto/m2m"
fi
for tool in wrk taskset curl python3 "$NGINX"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in nginx.pid upstream.pid; do
    [[ -f "$work/$f" ]] && kill "$(cat "$work/$f")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }

up_port=$(free_port); nginx_port=$(free_port); m2m_port=$(free_port); as_port=$(free_port)

# nginx twice, each one worker pinned to core 0: the trivial upstream, and the proxy_pass
# yardstick in a process of its own. A proxy is a process apart from the API it fronts, so it
# hands every request to another process and waits for the answer (wake-ups and context switches
# on the shared core); one nginx worker serving both would answer its own upstream requests in
# the same event loop and never pay that. SHARED_WORKER=1 runs both in one worker instead (the
# layout of the figures before 2026-12-07 22:30 UTC, kept to compare).
SHARED_WORKER="${SHARED_WORKER:-0}"
mkdir -p "$work/nginx" "$work/upstream"
nginx_conf() { # nginx_conf DIR PIDFILE SERVERS...
  local dir=$1 pidfile=$2; shift 2
  cat <<CONF
worker_processes 1;
worker_cpu_affinity 01;
pid $pidfile;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  $*
}
CONF
}
upstream_server="server { listen 127.0.0.1:$up_port; location / { client_body_buffer_size 16k; return 200 \"ok\\n\"; } }"
proxy_server="upstream trivial { server 127.0.0.1:$up_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://trivial;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      ${NGINX_EXTRA:-}
    }
  }"
if [[ "$SHARED_WORKER" == 1 ]]; then
  nginx_conf "$work/nginx" "$work/nginx.pid" "$upstream_server" "$proxy_server" > "$work/nginx.conf"
else
  nginx_conf "$work/upstream" "$work/upstream.pid" "$upstream_server" > "$work/upstream.conf"
  nginx_conf "$work/nginx" "$work/nginx.pid" "$proxy_server" > "$work/nginx.conf"
  "$NGINX" -c "$work/upstream.conf" -p "$work/upstream" 2>/dev/null
fi
"$NGINX" -c "$work/nginx.conf" -p "$work/nginx" 2>/dev/null
wait_port "$up_port"; wait_port "$nginx_port"

# on_core0 CMD...: replaces the calling subshell with CMD pinned to core 0, in a session of its own
# (the pid stays the subshell's: setsid does not fork there). nginx is in sessions of its own
# because it daemonizes, and so is a deployed proxy (a service manager starts it). It matters on a
# kernel with autogroup scheduling (CONFIG_SCHED_AUTOGROUP, /proc/sys/kernel/sched_autogroup_enabled):
# each session is a scheduling group whose weight is split over the cores its tasks use, so an m2m
# proxy left in this script's session shares its group with wrk on core 1 and gets about half
# nginx's weight on core 0, against the upstream it hands every request to (docs/benchmarks.md).
# SCRIPT_SESSION=1 leaves m2m in the script's session (the figures before 2026-12-08 00:30 UTC).
SCRIPT_SESSION="${SCRIPT_SESSION:-0}"
on_core0() {
  if [[ "$SCRIPT_SESSION" == 1 ]]; then exec taskset -c 0 "$@"; fi
  exec setsid taskset -c 0 "$@"
}
# is_m2m PID: fails unless PID runs M2M_BIN (the CPU and switch figures are read from its /proc).
is_m2m() {
  [[ "$(readlink -f "/proc/$1/exe")" == "$(readlink -f "$M2M_BIN")" ]] ||
    { echo "pid $1 is not $M2M_BIN" >&2; exit 1; }
}
echo "autogroup scheduling: $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo absent); m2m in $([[ "$SCRIPT_SESSION" == 1 ]] && echo "the script's session" || echo "sessions of its own")" >&2

# CPU time (µs, user + system) process $1 has used so far.
cpu_us() { awk -v t="$(getconf CLK_TCK)" '{printf "%d\n", ($14 + $15) * 1e6 / t}' "/proc/$1/stat"; }
# The pids of the one worker of the proxy_pass yardstick and of the upstream (the same process
# under SHARED_WORKER=1).
nginx_worker() { pgrep -P "$(cat "$work/nginx.pid")" | head -1; }
upstream_worker() {
  if [[ "$SHARED_WORKER" == 1 ]]; then nginx_worker; else pgrep -P "$(cat "$work/upstream.pid")" | head -1; fi
}
# Involuntary context switches of process $1 so far: each is the process preempted on its core
# (here mostly by the upstream it has just woken).
switches() { awk '/^nonvoluntary_ctxt_switches/ {print $2}' "/proc/$1/status"; }
# CPU time (µs) the yardstick and the upstream have used so far, together (each process once).
nginx_cpu_us() {
  local nw uw; nw=$(nginx_worker); uw=$(upstream_worker)
  if [[ "$nw" == "$uw" ]]; then cpu_us "$nw"; else echo $(( $(cpu_us "$nw") + $(cpu_us "$uw") )); fi
}

# cpu_report NAME UP_CPU D_RPS NGINX_CPU N_RPS M2M_CPU M_RPS: CPU per request on core 0 — the
# upstream's (direct run), nginx proxy_pass's (its run minus the upstream's share), m2m's — and
# the m2m/nginx rate core 0 would give if nothing else ran on it. A figure that the other load on
# a shared machine moves much less than the rates.
cpu_report() {
  python3 - "$DURATION" "$@" <<'PY'
import sys
d = float(sys.argv[1]); name = sys.argv[2]
up, dr, ng, nr, m, mr = map(float, sys.argv[3:])
up_us, ng_us, m_us = up / (dr * d), ng / (nr * d), m / (mr * d)
print(f"CPU per request on core 0: upstream {up_us:.1f} us, nginx proxy_pass {ng_us - up_us:.1f} us "
      f"(+ upstream), {name} {m_us:.1f} us (+ upstream); core-bound {name}/nginx rate "
      f"{ng_us / (m_us + up_us) * 100:.1f} %")
PY
}

# switch_report NAME N_SWITCHES N_RPS M_SWITCHES M_RPS: involuntary context switches per request
# of the nginx yardstick's worker and of m2m during their runs.
switch_report() {
  python3 - "$DURATION" "$@" <<'PY'
import sys
d = float(sys.argv[1]); name = sys.argv[2]
ns, nr, ms, mr = map(float, sys.argv[3:])
print(f"preempted per request: nginx proxy_pass {ns / (nr * d):.2f}, {name} {ms / (mr * d):.2f}")
PY
}
