#!/usr/bin/env bash
# Compares one end-to-end `m2m assertion` run (process start, RSA-4096 key load, build, RS512
# signature, print) with `openssl dgst -sha512 -sign` over a similar ~300-byte input, using
# hyperfine. Prints both means and their ratio. Both sides pay process start and key parsing, so
# the ratio says how close the whole CLI gets to bare openssl signing.
#
# Usage: bench/assertion-vs-openssl.sh            (uses target/release/m2m)
#        M2M=/path/to/m2m RUNS=50 bench/assertion-vs-openssl.sh
# Needs: the m2m binary (cargo build --release -p m2m-cli), openssl, hyperfine
#        (apt-get install -y hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."

M2M="${M2M:-target/release/m2m}"
RUNS="${RUNS:-30}"
WARMUP="${WARMUP:-3}"
TOKEN_URL="https://int.api.service.nhs.uk/oauth2/token"

if [ ! -x "$M2M" ]; then
  echo "m2m binary not found at $M2M: build it with 'cargo build --release -p m2m-cli' or set M2M=/path/to/m2m" >&2
  exit 1
fi
for tool in openssl hyperfine; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is required (apt-get install -y $tool)" >&2
    exit 1
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
key="$work/key.pem"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$key" 2>/dev/null
chmod 600 "$key"

m2m_cmd=("$M2M" assertion --token-url "$TOKEN_URL" --client-id x --key "$key" --kid k)
# One real run: proves the command works and gives openssl the same kind of input to sign.
if ! token="$("${m2m_cmd[@]}")"; then
  echo "'${m2m_cmd[*]}' failed" >&2
  exit 1
fi
printf '%s' "${token%.*}" >"$work/input"
echo "signing input: $(wc -c <"$work/input") bytes; token: ${#token} bytes; key: RSA-4096"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"

quote() { printf '%q ' "$@"; }
hyperfine --warmup "$WARMUP" --runs "$RUNS" -N --export-csv "$work/results.csv" \
  --command-name "m2m assertion" "$(quote "${m2m_cmd[@]}")" \
  --command-name "openssl dgst -sha512 -sign" "$(quote openssl dgst -sha512 -sign "$key" -out "$work/sig" "$work/input")"

# CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
awk -F, 'NR == 2 { m2m = $2 } NR == 3 { ossl = $2 }
  END {
    printf "\nmean  m2m assertion:              %8.2f ms\n", m2m * 1000
    printf "mean  openssl dgst -sha512 -sign: %8.2f ms\n", ossl * 1000
    printf "ratio m2m / openssl:            %8.2f\n", m2m / ossl
  }' "$work/results.csv"
