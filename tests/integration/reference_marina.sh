#!/usr/bin/env bash
# MARINA, PP-MARINA, VR-MARINA, DIANA and VR-DIANA against an independent Python
# implementation (tools/reference_marina.py) that draws the same coins, clients, minibatches,
# RandK subsets and PermK permutations: loss and ||grad f||^2 of every row to 1e-10 relative (the runs agree
# to 1e-11 or better; values sent as doubles instead of floats already differ by 1.5e-10), the
# full_sync column exactly.
# Usage: reference_marina.sh BUILD_DIR sim|net DATA WORKERS GAMMA P SEED METHOD COMPRESSOR
#                            ROUNDS LOSS [OPTION...]
#   sim: marina-sim; net: marina-coordinator --spawn-local (worker processes over loopback TCP)
#   P: - for diana (no --p); OPTION...: passed to both (--clients R, --batch B',
#   --online-batch B, --shuffle-seed S, and with sim --dropout Q)
set -euo pipefail
[[ $# -ge 11 ]] || { sed -n '2,10p' "$0" >&2; exit 2; }
build="$1"; mode="$2"; data="$3"; workers="$4"; gamma="$5"; p="$6"; seed="$7"; method="$8"
q="$9"; rounds="${10}"; loss="${11}"; shift 11
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -s "$data" ]] || { echo "reference_marina: missing $data (run scripts/fetch-data.sh)" >&2; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
common=(--data "$data" --workers "$workers" --method "$method" --compressor "$q" --gamma "$gamma"
        --seed "$seed" --loss "$loss" "$@")
[[ "$p" == - ]] || common+=(--p "$p")
case "$mode" in
  sim) "$build/simulator/marina-sim" "${common[@]}" --rounds "$rounds" --log "$log" >/dev/null ;;
  net) "$build/coordinator/marina-coordinator" --spawn-local --quiet "${common[@]}" \
         --rounds "$rounds" --log "$log" --worker-binary "$build/edge-worker/marina-worker" \
         >/dev/null 2>&1 ;;
  *) echo "reference_marina: mode must be sim or net, got '$mode'" >&2; exit 2 ;;
esac
/usr/bin/python3 "$repo/tools/reference_marina.py" "${common[@]}" --log "$log" --rtol 1e-10
