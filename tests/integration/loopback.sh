#!/usr/bin/env bash
# Loopback integration test: marina-coordinator with N separate marina-worker processes on
# 127.0.0.1 must log exactly what marina-sim logs with the same flags (except wall_s).
#
# Usage: loopback.sh BUILD_DIR DATA_FILE [marina flags...]
set -euo pipefail
build="$1"; data="$2"; shift 2
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -s "$data" ]] || { echo "loopback: missing $data (run scripts/fetch-data.sh)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$build/simulator/marina-sim" --data "$data" "$@" --log "$work/sim.csv" >"$work/sim.out"
"$build/coordinator/marina-coordinator" --listen tcp://127.0.0.1:0 --spawn-local --quiet \
  --round-timeout-ms 20000 --data "$data" "$@" --log "$work/net.csv" >"$work/net.out"
cat "$work/sim.out" "$work/net.out"
/usr/bin/python3 "$repo/tools/compare_logs.py" "$work/sim.csv" "$work/net.csv"
