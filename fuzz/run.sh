#!/usr/bin/env bash
# Runs m2m's fuzz targets one after another and prints what each did.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS (default 600) is each target's time budget; RUNS (env, default 10000000) caps its
# executions, whichever comes first. Targets default to all of them. One libFuzzer job each
# (the machine is shared). The committed seeds (fuzz/corpus/<target>) are read-only input; new
# inputs go to fuzz/target/corpus/<target>, crashes to fuzz/artifacts/<target>. Exits non-zero
# if any target crashed, leaked, timed out or ran out of memory.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on the stable toolchain through
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only sanitizer flags).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
secs="${1:-600}"
[[ $# -gt 0 ]] && shift
runs="${RUNS:-10000000}"
all=(jws_parse jwk_parse key_load token_form token_response validator)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
# -a: debug assertions and overflow checks on, so arithmetic overflow is a crash too.
cargo fuzz build -a

mkdir -p "$CARGO_TARGET_DIR/logs"
rows=()
failed=0
for t in "${targets[@]}"; do
    work="$CARGO_TARGET_DIR/corpus/$t"
    artifacts="$here/artifacts/$t"
    log="$CARGO_TARGET_DIR/logs/$t.log"
    mkdir -p "$work" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $t: up to ${secs}s / $runs runs (log: $log)" >&2
    start=$(date +%s)
    rc=0
    cargo fuzz run -a "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    if [[ $rc -ne 0 && $crashes -eq 0 ]]; then crashes=1; fi
    [[ $crashes -ne 0 ]] && failed=1 && tail -40 "$log" >&2
    corpus=$(find "$work" -type f | wc -l)
    rows+=("$(printf '| %-14s | %10s | %7s | %6s | %7s |' "$t" "${execs:-?}" "$elapsed" "$corpus" "$crashes")")
done

printf '| %-14s | %10s | %7s | %6s | %7s |\n' target execs seconds corpus crashes
printf '|%s|%s|%s|%s|%s|\n' "----------------" "------------" "---------" "--------" "---------"
printf '%s\n' "${rows[@]}"
exit "$failed"
