#!/usr/bin/env bash
# tools/marina-plot on two tiny marina-sim logs: a PNG must be written; a malformed log must
# fail with a message naming the file, and write nothing.
# Usage: plot_test.sh BUILD_DIR
set -euo pipefail
build="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
data="$repo/tests/data/small.libsvm"
"$build/simulator/marina-sim" --data "$data" --workers 2 --method marina --compressor randk:1 \
  --rounds 40 --seed 1 --log "$tmp/marina.csv" >/dev/null
"$build/simulator/marina-sim" --data "$data" --workers 2 --method diana --compressor randk:1 \
  --rounds 40 --seed 1 --log "$tmp/diana.csv" --log-local-norms >/dev/null
"$repo/tools/marina-plot" "$tmp/marina.csv" "$tmp/diana.csv" --out "$tmp/fig.png" --title small
[[ "$(head -c 8 "$tmp/fig.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || {
  echo "plot_test: $tmp/fig.png is not a PNG" >&2; exit 1; }

# Malformed: a grad_norm_sq that is not a number, and a file that is not a run log at all.
sed '3s/^\([^,]*,[^,]*\),[^,]*,/\1,oops,/' "$tmp/marina.csv" > "$tmp/bad.csv"
printf 'a,b\n1,2\n' > "$tmp/foreign.csv"
for bad in bad foreign; do
  if "$repo/tools/marina-plot" "$tmp/marina.csv" "$tmp/$bad.csv" --out "$tmp/$bad.png" \
       2> "$tmp/err.txt"; then
    echo "plot_test: marina-plot accepted $bad.csv" >&2; exit 1
  fi
  grep -q "marina-plot: error: .*$bad.csv: line" "$tmp/err.txt" || {
    echo "plot_test: no useful message for $bad.csv:" >&2; cat "$tmp/err.txt" >&2; exit 1; }
  [[ ! -e "$tmp/$bad.png" ]] || { echo "plot_test: wrote $bad.png anyway" >&2; exit 1; }
done

# The paper code's metric: drawn from a log that has it, refused (naming the flag) for one that
# does not.
"$repo/tools/marina-plot" "$tmp/diana.csv" --y local_grad_norm_sq --relative --out "$tmp/local.png"
[[ "$(head -c 8 "$tmp/local.png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || {
  echo "plot_test: $tmp/local.png is not a PNG" >&2; exit 1; }
if "$repo/tools/marina-plot" "$tmp/marina.csv" --y local_grad_norm_sq --out "$tmp/nolocal.png" \
     2> "$tmp/err.txt"; then
  echo "plot_test: marina-plot drew local_grad_norm_sq from a log without it" >&2; exit 1
fi
grep -q "marina.csv: line 1: no column local_grad_norm_sq (write the log with --log-local-norms)" \
  "$tmp/err.txt" || { echo "plot_test: no useful message:" >&2; cat "$tmp/err.txt" >&2; exit 1; }
[[ ! -e "$tmp/nolocal.png" ]] || { echo "plot_test: wrote nolocal.png anyway" >&2; exit 1; }

# summarize.py on the same column, and refusing a log without it.
/usr/bin/python3 "$repo/tools/summarize.py" --y local_grad_norm_sq --thresholds 0.9 "$tmp/diana.csv" \
  > "$tmp/sum.txt"
grep -q "diana.csv" "$tmp/sum.txt" || { echo "plot_test: no summary row:" >&2; cat "$tmp/sum.txt" >&2; exit 1; }
if /usr/bin/python3 "$repo/tools/summarize.py" --y local_grad_norm_sq "$tmp/marina.csv" \
     > /dev/null 2> "$tmp/err.txt"; then
  echo "plot_test: summarize.py read local_grad_norm_sq from a log without it" >&2; exit 1
fi
grep -q "marina.csv: no local_grad_norm_sq column (run with --log-local-norms)" "$tmp/err.txt" || {
  echo "plot_test: no useful message:" >&2; cat "$tmp/err.txt" >&2; exit 1; }

# scripts/sweep.py, briefly: a log per stepsize tried and a table row; two files that share a
# name refused before anything runs (their logs would overwrite each other's), by both scripts.
/usr/bin/python3 "$repo/scripts/sweep.py" --datasets "$data" --methods marina --rounds 30 --max-j 1 \
  --sim "$build/simulator/marina-sim" --out "$tmp/sweep" > "$tmp/sweep.md" 2> "$tmp/sweep.err" || {
  echo "plot_test: sweep.py failed:" >&2; cat "$tmp/sweep.err" >&2; exit 1; }
[[ -s "$tmp/sweep/small-marina-j0.csv" && -s "$tmp/sweep/small-marina-j1.csv" ]] &&
  grep -q '^| small | marina | ' "$tmp/sweep.md" || {
  echo "plot_test: sweep.py wrote no logs or no row:" >&2; cat "$tmp/sweep.md" >&2; exit 1; }
mkdir "$tmp/a" "$tmp/b"
cp "$data" "$tmp/a/twin.libsvm"
cp "$data" "$tmp/b/twin.txt"
if /usr/bin/python3 "$repo/scripts/sweep.py" --datasets "$tmp/a/twin.libsvm" "$tmp/b/twin.txt" \
     --sim "$build/simulator/marina-sim" --out "$tmp/twins" > /dev/null 2> "$tmp/err.txt" ||
   ! grep -q "both named 'twin'" "$tmp/err.txt" || [[ -e "$tmp/twins" ]]; then
  echo "plot_test: sweep.py did not refuse two files named twin:" >&2; cat "$tmp/err.txt" >&2; exit 1
fi
if DATASETS="$tmp/a/twin.libsvm $tmp/b/twin.txt" BUILD="$build" "$repo/scripts/reproduce-fig1.sh" \
     "$tmp/fig-twins" > /dev/null 2> "$tmp/err.txt" || ! grep -q "names 'twin' twice" "$tmp/err.txt"; then
  echo "plot_test: reproduce-fig1.sh did not refuse two files named twin:" >&2; cat "$tmp/err.txt" >&2; exit 1
fi

# scripts/reproduce-fig1.sh end to end on heart_scale, briefly, in both setups: its 14 runs, two
# figures and a summary; the paper-code setup with the λ = 10⁻⁶ L_max that code computes.
if [[ -s "$repo/data/heart_scale" ]]; then
  for setup in default paper-code; do
    SETUP=$setup DATASETS=heart_scale ROUNDS=30 BUILD="$build" "$repo/scripts/reproduce-fig1.sh" \
      "$tmp/fig-$setup" > "$tmp/fig-$setup.log" 2>&1 || {
      echo "plot_test: reproduce-fig1.sh ($setup) failed:" >&2; cat "$tmp/fig-$setup.log" >&2; exit 1; }
    prefix=fig1; [[ $setup == paper-code ]] && prefix=fig1-paper
    for png in "$prefix-heart_scale.png" "$prefix-vr-heart_scale.png"; do
      [[ -s "$tmp/fig-$setup/$png" ]] || { echo "plot_test: no $png ($setup)" >&2; exit 1; }
    done
    [[ $(grep -c '\.csv ' "$tmp/fig-$setup/summary.txt") == 14 ]] || {
      echo "plot_test: summary of $setup has not 14 runs:" >&2; cat "$tmp/fig-$setup/summary.txt" >&2; exit 1; }
  done
  grep -q "b' = 1, lambda = 1.8190039501114765e-06" "$tmp/fig-paper-code.log" || {
    echo "plot_test: paper-code setup without the paper's lambda:" >&2; cat "$tmp/fig-paper-code.log" >&2; exit 1; }
  grep -q -- "--batch-sampling without-replacement" "$tmp/fig-paper-code/plan.txt" || {
    echo "plot_test: paper-code setup draws minibatches with replacement" >&2; exit 1; }
  # A file of one's own (an entry with a "/"), named after the file; a missing one named.
  cp "$repo/data/heart_scale" "$tmp/mine.txt"
  DATASETS="$tmp/mine.txt" ROUNDS=30 BUILD="$build" "$repo/scripts/reproduce-fig1.sh" \
    "$tmp/fig-mine" > "$tmp/fig-mine.log" 2>&1 || {
    echo "plot_test: reproduce-fig1.sh on a file failed:" >&2; cat "$tmp/fig-mine.log" >&2; exit 1; }
  for png in fig1-mine.png fig1-vr-mine.png; do
    [[ -s "$tmp/fig-mine/$png" ]] || { echo "plot_test: no $png (own file)" >&2; exit 1; }
  done
  grep -q -- "--data $tmp/mine.txt " "$tmp/fig-mine/plan.txt" || {
    echo "plot_test: the own file's runs do not read it" >&2; exit 1; }
  if DATASETS="$tmp/none.libsvm" BUILD="$build" "$repo/scripts/reproduce-fig1.sh" "$tmp/fig-none" \
    > /dev/null 2> "$tmp/none.err" || ! grep -q "missing or empty $tmp/none.libsvm$" "$tmp/none.err"; then
    echo "plot_test: a missing own file was not refused by name:" >&2; cat "$tmp/none.err" >&2; exit 1
  fi
fi
echo "plot_test: PNGs written; malformed logs and a missing column refused with a message; reproduce-fig1.sh ran"
