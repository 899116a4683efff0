#!/usr/bin/env bash
# The demo: installs dependencies, builds, fetches real data, then runs the paper's setting
# (n = 5 workers, RandK with K = 1, theoretical stepsizes) for MARINA and DIANA as a
# coordinator with 5 local marina-worker processes on loopback (ZeroMQ over TCP), and prints
# the rounds and bits per worker each needed to reach 1e-2 and 1e-3 of the initial ||grad f||^2.
#
# Usage: scripts/demo.sh [DATA_FILE]      (default: data/heart_scale)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args demo.sh 1 "$@"
# A file of the user's own is checked before minutes of installing and building.
if [[ $# -ge 1 ]]; then
  [[ -f $1 && -s $1 ]] || { echo "demo.sh: $1: no such file, or empty" >&2; exit 1; }
  set -- "$(realpath -- "$1")"  # relative to where it was called from
fi
cd "$repo"
scripts/deps.sh
scripts/fetch-data.sh
scripts/build.sh
data="${1:-data/heart_scale}"
out="${DEMO_OUT:-$repo/build/demo}"
mkdir -p "$out"
for method in marina diana; do
  echo "== $method: coordinator + 5 local workers on 127.0.0.1 =="
  build/coordinator/marina-coordinator --listen tcp://127.0.0.1:0 --spawn-local --workers 5 \
    --data "$data" --method "$method" --compressor randk:1 --rounds 50000 --seed 1 \
    --stop-at 1e-3 --log "$out/$method.csv" --quiet
done
echo "== bits per worker to reach a fraction of the initial ||grad f||^2 (logs in $out) =="
/usr/bin/python3 tools/summarize.py "$out/marina.csv" "$out/diana.csv"
