#!/usr/bin/env bash
# The paper's §5.1 experiment (Fig. 1) with marina-sim on the datasets scripts/fetch-data.sh
# writes: n = 5 workers, RandK with K ∈ {1, 5, 10}, theoretical stepsizes (--gamma auto --p auto),
#   MARINA vs DIANA,
#   VR-MARINA vs VR-DIANA with b′ = max(1, round(m/100)) (m = rows per worker),
#   plus MARINA with PermK and PP-MARINA (RandK K = 1, r = ⌈n/2⌉ = 3 clients),
# seed 1. Writes one CSV log per run into OUT_DIR, two figures per dataset drawn by
# tools/marina-plot (fig1-DATASET.png: MARINA/DIANA/PermK/PP-MARINA; fig1-vr-DATASET.png: the VR
# methods) and OUT_DIR/summary.txt (tools/summarize.py: rounds and bits to 1e-2 and 1e-3).
# The figures use log-scaled x axes (--logx): at theoretical stepsizes DIANA's costs are 10-1000x
# MARINA's, and on linear axes the MARINA curves collapse onto the y axis.
#
# Caps (so that the default run takes about 15 minutes on 2 cores): every run stops at
# ROUNDS = 20000 rounds or once ||grad f||^2 <= 1e-3 of its initial value, whichever is first.
# The paper runs longer; DIANA and VR-DIANA with their theoretical stepsizes do not reach 1e-3
# within the cap on most of these datasets, which the summary shows as "-".
#
# Usage: scripts/reproduce-fig1.sh [OUT_DIR]     (default build/fig1)
# Environment: ROUNDS (20000), STOP_AT (1e-3), JOBS (2 parallel runs), DATASETS
#   ("heart_scale krvskp breast_cancer supermarket"), FIGDIR (also copy the PNGs there),
#   BUILD (build directory, default build), PLOT_ONLY (non-empty: skip the runs, draw the logs
#   already in OUT_DIR).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="${1:-$repo/build/fig1}"
rounds="${ROUNDS:-20000}"
stop_at="${STOP_AT:-1e-3}"
jobs="${JOBS:-2}"
build="${BUILD:-$repo/build}"
datasets="${DATASETS:-heart_scale krvskp breast_cancer supermarket}"
sim="$build/simulator/marina-sim"
n=5

[[ -x "$sim" ]] || scripts/build.sh
[[ -s data/heart_scale ]] || scripts/fetch-data.sh
mkdir -p "$out"

data_file() {
  case "$1" in
    heart_scale) echo data/heart_scale ;;
    *) echo "data/$1.libsvm" ;;
  esac
}

# Rows per worker: contiguous equal shards, the remainder dropped (as marina-sim splits).
rows_per_worker() {
  local rows
  rows=$(grep -cvE '^[[:space:]]*(#|$)' "$1")
  echo $((rows / n))
}

# One line per run: NAME ARGS... ; run by xargs, JOBS at a time.
plan="$out/plan.txt"
: > "$plan"
for ds in $datasets; do
  f="$(data_file "$ds")"
  [[ -s "$f" ]] || { echo "reproduce-fig1: missing $f (scripts/fetch-data.sh)" >&2; exit 1; }
  m=$(rows_per_worker "$f")
  b=$(( (m + 50) / 100 )); (( b >= 1 )) || b=1
  common="--data $f --workers $n --rounds $rounds --seed 1 --stop-at $stop_at"
  for k in 1 5 10; do
    echo "$ds-marina-k$k $common --method marina --compressor randk:$k" >> "$plan"
    echo "$ds-diana-k$k $common --method diana --compressor randk:$k" >> "$plan"
    echo "$ds-vr-marina-k$k $common --method vr-marina --compressor randk:$k --batch $b" >> "$plan"
    echo "$ds-vr-diana-k$k $common --method vr-diana --compressor randk:$k --batch $b" >> "$plan"
  done
  echo "$ds-marina-permk $common --method marina --compressor permk" >> "$plan"
  echo "$ds-pp-marina-k1 $common --method pp-marina --compressor randk:1" >> "$plan"
  echo "reproduce-fig1: $ds: m = $m rows per worker, b' = $b" >&2
done

if [[ -n "${PLOT_ONLY:-}" ]]; then
  echo "reproduce-fig1: PLOT_ONLY: drawing the logs already in $out" >&2
else
  echo "reproduce-fig1: $(wc -l < "$plan") runs, $jobs at a time, logs in $out" >&2
  start=$SECONDS
  export sim out
  # Each run's start-up lines (the theoretical p and gamma) and summary go to NAME.txt.
  xargs -P "$jobs" -L 1 sh -c 'name="$1"; shift; "$sim" "$@" --log "$out/$name.csv" \
    > "$out/$name.txt" 2>&1 || { echo "run $name failed: $(tail -1 "$out/$name.txt")" >&2; }' sh \
    < "$plan"
  echo "reproduce-fig1: runs took $((SECONDS - start)) s" >&2
fi

for ds in $datasets; do
  logs=() labels=()
  for k in 1 5 10; do
    logs+=("$out/$ds-marina-k$k.csv" "$out/$ds-diana-k$k.csv")
    labels+=(--label "MARINA K=$k" --label "DIANA K=$k")
  done
  logs+=("$out/$ds-marina-permk.csv" "$out/$ds-pp-marina-k1.csv")
  labels+=(--label "MARINA PermK" --label "PP-MARINA K=1 r=3")
  tools/marina-plot "${logs[@]}" "${labels[@]}" --title "$ds: n = 5, RandK, theoretical stepsizes" \
    --logx --out "$out/fig1-$ds.png"
  logs=() labels=()
  for k in 1 5 10; do
    logs+=("$out/$ds-vr-marina-k$k.csv" "$out/$ds-vr-diana-k$k.csv")
    labels+=(--label "VR-MARINA K=$k" --label "VR-DIANA K=$k")
  done
  tools/marina-plot "${logs[@]}" "${labels[@]}" \
    --title "$ds: n = 5, RandK, b' = m/100, theoretical stepsizes" --logx \
    --out "$out/fig1-vr-$ds.png"
done

/usr/bin/python3 tools/summarize.py "$out"/*.csv | tee "$out/summary.txt"
if [[ -n "${FIGDIR:-}" ]]; then
  mkdir -p "$FIGDIR"
  cp "$out"/fig1-*.png "$FIGDIR"/
fi
