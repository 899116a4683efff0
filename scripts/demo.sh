#!/usr/bin/env bash
# The demo: installs dependencies, builds, fetches kr-vs-kp, and reproduces the paper's
# setting (n = 5, RandK with K = 1, theoretical stepsizes) for MARINA and DIANA, then prints
# how many bits per worker each needed to reach 1e-2 of the initial ||grad f||^2.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/deps.sh
scripts/fetch-data.sh
scripts/build.sh
out="${DEMO_OUT:-$repo/build/demo}"
mkdir -p "$out"
for method in marina diana; do
  build/simulator/marina-sim --data data/krvskp.libsvm --workers 5 --method "$method" \
    --compressor randk:1 --rounds 20000 --seed 1 --stop-at 1e-3 --log "$out/$method.csv"
done
/usr/bin/python3 tools/summarize.py "$out/marina.csv" "$out/diana.csv"
