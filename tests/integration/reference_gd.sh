#!/usr/bin/env bash
# GD with a fixed stepsize: marina-sim's loss and ||grad f||^2 must match an independent
# Python implementation (tools/reference_gd.py) to 1e-9 relative in every round.
# Usage: reference_gd.sh BUILD_DIR DATA_FILE WORKERS GAMMA ROUNDS [LOSS]
set -euo pipefail
build="$1"; data="$2"; workers="$3"; gamma="$4"; rounds="$5"; loss="${6:-nonconvex}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -s "$data" ]] || { echo "reference_gd: missing $data (run scripts/fetch-data.sh)" >&2; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$build/simulator/marina-sim" --data "$data" --workers "$workers" --method gd --gamma "$gamma" \
  --loss "$loss" --rounds "$rounds" --log "$log"
/usr/bin/python3 "$repo/tools/reference_gd.py" --data "$data" --workers "$workers" \
  --gamma "$gamma" --loss "$loss" --log "$log" --rtol 1e-9
