#!/usr/bin/env bash
# MARINA (Algorithm 1) against an independent Python implementation (tools/reference_marina.py)
# that draws the same coins, RandK subsets and PermK permutations: loss and ||grad f||^2 of
# every row to 1e-10 relative (the runs agree to 1e-11 or better; values sent as doubles instead
# of floats already differ by 1.5e-10), the full_sync column exactly.
# Usage: reference_marina.sh BUILD_DIR sim|net DATA WORKERS GAMMA P SEED COMPRESSOR ROUNDS [LOSS]
#   sim: marina-sim; net: marina-coordinator --spawn-local (worker processes over loopback TCP)
set -euo pipefail
build="$1"; mode="$2"; data="$3"; workers="$4"; gamma="$5"; p="$6"; seed="$7"; q="$8"
rounds="$9"; loss="${10:-nonconvex}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -s "$data" ]] || { echo "reference_marina: missing $data (run scripts/fetch-data.sh)" >&2; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
args=(--data "$data" --workers "$workers" --method marina --compressor "$q" --gamma "$gamma"
      --p "$p" --seed "$seed" --loss "$loss" --rounds "$rounds" --log "$log")
case "$mode" in
  sim) "$build/simulator/marina-sim" "${args[@]}" >/dev/null ;;
  net) "$build/coordinator/marina-coordinator" --spawn-local --quiet "${args[@]}" \
         --worker-binary "$build/edge-worker/marina-worker" >/dev/null 2>&1 ;;
  *) echo "reference_marina: mode must be sim or net, got '$mode'" >&2; exit 2 ;;
esac
/usr/bin/python3 "$repo/tools/reference_marina.py" --data "$data" --workers "$workers" \
  --gamma "$gamma" --p "$p" --seed "$seed" --compressor "$q" --loss "$loss" --log "$log" \
  --rtol 1e-10
