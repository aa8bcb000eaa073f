# Shared by bench/proxy.sh and bench/gateway.sh (sourced from the repository root, after
# `set -euo pipefail`): the settings, the tools, a work dir cleaned up on exit, free ports, and
# nginx as the trivial upstream (`return 200 "ok"`) and as the proxy_pass yardstick, two
# processes of one worker each pinned to core 0 (one shared worker under SHARED_WORKER=1). Sets:
# DURATION CONNECTIONS SOAK1 SOAK2 NGINX M2M_BIN SHARED_WORKER work pids up_port nginx_port
# as_port m2m_port; functions free_port, wait_port, cpu_us, nginx_worker, upstream_worker,
# nginx_cpu_us, cpu_report.
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

# CPU time (µs, user + system) process $1 has used so far.
cpu_us() { awk -v t="$(getconf CLK_TCK)" '{printf "%d\n", ($14 + $15) * 1e6 / t}' "/proc/$1/stat"; }
# The pids of the one worker of the proxy_pass yardstick and of the upstream (the same process
# under SHARED_WORKER=1).
nginx_worker() { pgrep -P "$(cat "$work/nginx.pid")" | head -1; }
upstream_worker() {
  if [[ "$SHARED_WORKER" == 1 ]]; then nginx_worker; else pgrep -P "$(cat "$work/upstream.pid")" | head -1; fi
}
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
