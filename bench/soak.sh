#!/usr/bin/env bash
# Soak test of `m2m serve`: for each replay store (SQLite, then Redis) measure the peak accepted
# token requests per second with a short closed-loop run, then hold 80% of it for SOAK_MINUTES
# (default 10) with assertions signed on the fly (ES256, fresh jti, short lifetime so expired
# replay entries are purged during the run) and a deliberate replay of every 100th accepted
# assertion. Samples the server's RSS and the store's size once a minute, prints one table per
# store, and exits non-zero unless: zero 5xx, zero transport errors, zero replays accepted, RSS
# flat (every sample from minute 3 on within ±10% of minute 2's), SQLite file bounded (last
# sample ≤ 2× minute 2's). Requests shed because the machine could not hold the rate are
# reported as a warning.
#
#   bench/soak.sh                       # 10 + 10 minutes
#   SOAK_MINUTES=1 bench/soak.sh        # quick check of the script itself
#   SOAK_STORES=sqlite SOAK_RATE=500 bench/soak.sh   # one store, fixed rate (no peak run)
#
# Other knobs: SOAK_PEAK_SECONDS (20), SOAK_PEAK_CONCURRENCY (32), SOAK_LIFETIME (5 s assertion
# lifetime), SOAK_LOCK (/work/notes/cpu.lock if that directory exists: the timed part runs under
# `flock` so it does not overlap other measurements on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

minutes=${SOAK_MINUTES:-10}
stores=${SOAK_STORES:-"sqlite redis"}
peak_seconds=${SOAK_PEAK_SECONDS:-20}
peak_concurrency=${SOAK_PEAK_CONCURRENCY:-32}
lifetime=${SOAK_LIFETIME:-5}
lock=${SOAK_LOCK:-}
if [ -z "$lock" ] && [ -d /work/notes ]; then lock=/work/notes/cpu.lock; fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

echo "== building (release): m2m and the soak load generator"
cargo build --release -q -p m2m-cli
(cd bench/soak && cargo build --release -q)
m2m=$CARGO_TARGET_DIR/release/m2m
gen=$CARGO_TARGET_DIR/release/m2m-soak

work=$(mktemp -d /tmp/m2m-soak.XXXXXX)
server_pid=""
redis_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$m2m" keygen --alg ES256 --kid soak --out "$work/keys" >/dev/null 2>&1
"$m2m" clients add --clients "$work/clients.toml" --id soak --jwks "$work/keys/soak.jwks.json" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # url
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1/readyz" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "server did not become ready at $1" >&2
  return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

failures=()
warnings=()
results=""

soak_store() { # store
  local store=$1 spec data port base redis_port=""
  data="$work/data-$store"
  if [ "$store" = redis ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$work" --logfile "$work/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    spec="redis://127.0.0.1:$redis_port/"
  else
    spec=sqlite
  fi
  port=$(free_port)
  base="http://127.0.0.1:$port"
  "$m2m" serve --clients "$work/clients.toml" --listen "127.0.0.1:$port" --replay-store "$spec" \
    --data-dir "$data" --rate-limit 0 2>"$work/serve-$store.log" &
  server_pid=$!
  wait_ready "$base"

  local gen_args=(--base "$base" --client-id soak --key "$work/keys/soak.pem" --kid soak --alg ES256 --lifetime "$lifetime")
  local rate
  if [ -n "${SOAK_RATE:-}" ]; then
    rate=$SOAK_RATE
    echo "== $store: fixed rate $rate/s (SOAK_RATE)"
  else
    echo "== $store: peak run, ${peak_seconds}s closed loop, $peak_concurrency connections"
    local peak_line peak
    peak_line=$("$gen" "${gen_args[@]}" --peak --seconds "$peak_seconds" --concurrency "$peak_concurrency")
    echo "   $peak_line"
    peak=$(echo "$peak_line" | awk '{print $2}')
    rate=$(( peak * 80 / 100 ))
    echo "== $store: soak at $rate/s (80% of $peak/s) for $minutes min"
  fi

  "$gen" "${gen_args[@]}" --rate "$rate" --seconds $(( minutes * 60 )) >"$work/gen-$store.tsv" &
  local gen_pid=$! samples="$work/samples-$store.tsv" m
  : >"$samples"
  for m in $(seq 1 "$minutes"); do
    sleep 60
    local size
    if [ "$store" = sqlite ]; then
      size=$(( $(stat -c %s "$data/replay.sqlite3" 2>/dev/null || echo 0) + $(stat -c %s "$data/replay.sqlite3-wal" 2>/dev/null || echo 0) ))
      size="$(( size / 1024 )) KiB file+wal"
    else
      size="$(redis-cli -p "$redis_port" dbsize) keys, $(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {printf "%d KiB", $2/1024}')"
    fi
    printf '%s\t%s\t%s\n' "$m" "$(rss_kib "$server_pid")" "$size" >>"$samples"
  done
  wait "$gen_pid"

  # Join the generator's per-minute rows with the samples; check the verdicts.
  local table
  table=$(awk -F'\t' -v OFS=' | ' '
    NR==FNR { rss[$1]=$2; size[$1]=$3; next }
    $1=="minute" { print "| minute", "sent", "200", "4xx", "5xx", "net err", "shed", "p50 ms", "p99 ms", "max ms", "replays sent", "replays accepted", "server RSS MiB", "store size |"; print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"; next }
    { r = ($1 in rss) ? sprintf("%.1f", rss[$1]/1024) : "-"; s = ($1 in size) ? size[$1] : "-";
      print "| " $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, r, s " |" }
  ' "$samples" "$work/gen-$store.tsv")
  local heading="### $store store — $rate req/s for $minutes min (ES256 assertions, ${lifetime} s lifetime)"
  results+=$'\n'"$heading"$'\n\n'"$table"$'\n'
  echo "$heading"; echo; echo "$table"; echo

  local total
  total=$(grep '^total' "$work/gen-$store.tsv")
  local c5xx neterr shed replays accepted ok
  ok=$(echo "$total" | cut -f3); c5xx=$(echo "$total" | cut -f5); neterr=$(echo "$total" | cut -f6)
  shed=$(echo "$total" | cut -f7); replays=$(echo "$total" | cut -f11); accepted=$(echo "$total" | cut -f12)
  [ "$c5xx" = 0 ] || failures+=("$store: $c5xx responses were 5xx")
  [ "$neterr" = 0 ] || failures+=("$store: $neterr transport errors")
  # Shed requests (the generator found 512 already in flight) mean the machine could not hold
  # the rate; reported, not a failure of the server (which answered every request it got).
  [ "$shed" = 0 ] || warnings+=("$store: $shed requests shed (the server fell behind the rate on this machine)")
  [ "$accepted" = 0 ] || failures+=("$store: $accepted of $replays deliberate replays were ACCEPTED")
  [ "$replays" -gt 0 ] || failures+=("$store: no replays were sent")
  [ "$ok" -gt 0 ] || failures+=("$store: no request was accepted")
  if [ "$minutes" -ge 3 ]; then
    local flat
    flat=$(awk -F'\t' '$1==2 {base=$2} $1>=3 && base>0 { d=($2-base)/base; if (d>0.10 || d<-0.10) bad=bad " min" $1 "(" sprintf("%+.0f%%", d*100) ")" } END {print bad}' "$samples")
    [ -z "$flat" ] || failures+=("$store: RSS not flat vs minute 2:$flat")
    if [ "$store" = sqlite ]; then
      local grew
      grew=$(awk -F'\t' '{split($3,a," ")} $1==2 {base=a[1]} {last=a[1]} END { if (base>0 && last>2*base) print last " KiB vs " base " KiB" }' "$samples")
      [ -z "$grew" ] || failures+=("sqlite: store file grew: $grew")
    fi
  fi

  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
  if [ -n "$redis_pid" ]; then kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""; fi
}

measure() {
  echo "== $(date -u +%FT%TZ) $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for store in $stores; do soak_store "$store"; done
  echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

if [ -n "$lock" ]; then
  echo "== waiting for $lock"
  exec 9>"$lock"
  flock 9
fi
measure

echo "== summary"
echo "$results"
[ ${#warnings[@]} -eq 0 ] || printf 'WARN: %s\n' "${warnings[@]}"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${failures[@]}"
  exit 1
fi
echo "PASS: zero 5xx, zero transport errors, zero replays accepted$( [ "$minutes" -ge 3 ] && echo ', RSS flat, SQLite file bounded')"
