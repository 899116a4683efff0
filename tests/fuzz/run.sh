#!/usr/bin/env bash
# Builds the libFuzzer harnesses (CMake preset fuzz: clang, ASan + UBSan, into build-fuzz/) and
# runs each for a bounded time on a copy of its seed corpus (tests/fuzz/corpus/HARNESS), so that
# the committed corpus does not grow. Prints the executions and coverage of each harness (also
# written to build-fuzz/fuzz-summary.txt) and exits 1 when a harness found a crash, undefined
# behaviour, a leak, a timeout or an out-of-memory input, naming the file that reproduces it:
#   build-fuzz/tests/fuzz/HARNESS FILE
#
# Usage: tests/fuzz/run.sh [HARNESS...]            (default: all four)
# Environment:
#   MARINA_FUZZ_SECONDS  seconds per harness (default 60)
#   MARINA_FUZZ_JOBS     harnesses run at once (default: the number of cores, at most 4)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args run.sh any "$@"
cd "$repo"

seconds="${MARINA_FUZZ_SECONDS:-60}"
parallel="${MARINA_FUZZ_JOBS:-$(nproc)}"
for v in "$seconds" "$parallel"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || {
    echo "fuzz: MARINA_FUZZ_SECONDS and MARINA_FUZZ_JOBS must be positive integers" >&2
    exit 2
  }
done
(( parallel > 4 )) && parallel=4
all=(fuzz_decode fuzz_libsvm fuzz_checkpoint fuzz_allowlist)
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] || harnesses=("${all[@]}")
for h in "${harnesses[@]}"; do  # named before a minute of configuring and building
  [[ " ${all[*]} " == *" $h "* ]] || {
    echo "fuzz: unknown harness '$h' (the harnesses: ${all[*]})" >&2
    exit 2
  }
done

build="$repo/build-fuzz"
mkdir -p "$build"
echo "fuzz: building ${harnesses[*]} (preset fuzz, clang) in $build"
if ! { CC=clang CXX=clang++ cmake --preset fuzz && cmake --build --preset fuzz --target "${harnesses[@]}"; } \
    >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "fuzz: build failed (full log: $build/build.log)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
artifacts="$build/artifacts"
logs="$build/logs"
mkdir -p "$artifacts" "$logs"

run_one() {
  local h="$1"
  local seeds="$repo/tests/fuzz/corpus/$h"
  [[ -d "$seeds" ]] || { echo "fuzz: no seed corpus $seeds" >"$logs/$h.log"; return 1; }
  mkdir -p "$work/$h" "$artifacts/$h"
  cp -r "$seeds/." "$work/$h/"
  local extra=()
  # Longer inputs are refused by the Decoder's size check before any parsing (d = 13, n = 5).
  [[ "$h" == fuzz_decode ]] && extra+=(-max_len=2048)
  "$build/tests/fuzz/$h" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$h/" "${extra[@]}" "$work/$h" \
    >"$logs/$h.log" 2>&1
}

start=$(date +%s)
declare -A pid_of
for h in "${harnesses[@]}"; do
  while (( $(jobs -rp | wc -l) >= parallel )); do wait -n || true; done
  echo "fuzz: running $h for ${seconds}s"
  run_one "$h" &
  pid_of[$h]=$!
done

failed=()
declare -A status_of
for h in "${harnesses[@]}"; do
  if wait "${pid_of[$h]}"; then status_of[$h]=ok; else status_of[$h]=FAILED; failed+=("$h"); fi
done

summary="$build/fuzz-summary.txt"
{
  printf 'fuzz: %s s per harness, %s at once, %s s in all\n' "$seconds" \
    "$(( parallel < ${#harnesses[@]} ? parallel : ${#harnesses[@]} ))" "$(( $(date +%s) - start ))"
  printf '%-16s %12s %8s %7s %7s %6s  %s\n' harness execs exec/s cov ft corpus result
  for h in "${harnesses[@]}"; do
    log="$logs/$h.log"
    # The final "#N DONE cov: X ft: Y" line, or the last progress line of a run that crashed.
    done_line="$(grep -E '^#[0-9]+[[:space:]].* cov: ' "$log" | tail -n 1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")"
    corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")"
    printf '%-16s %12s %8s %7s %7s %6s  %s\n' "$h" "${execs:--}" "${rate:--}" "${cov:--}" \
      "${ft:--}" "${corp:--}" "${status_of[$h]}"
  done
} | tee "$summary"

for h in "${failed[@]}"; do
  log="$logs/$h.log"
  echo
  echo "fuzz: $h FAILED; its report (full log: $log):"
  # The sanitizer's or libFuzzer's report, without the progress lines before it.
  awk '/^==[0-9]+==|BUG:|runtime error:|Assertion|terminate called|deadly signal|^SUMMARY:|ERROR: libFuzzer/ {p=1} p' "$log" \
    | head -n 80
  unit="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
  if [[ -n "$unit" ]]; then
    echo "fuzz: $h: crash input saved as $unit; reproduce with: $build/tests/fuzz/$h $unit"
  else
    tail -n 20 "$log"
  fi
done
[[ ${#failed[@]} -eq 0 ]] || { echo "fuzz: FAILED: ${failed[*]}" >&2; exit 1; }
echo "fuzz: all ${#harnesses[@]} harnesses ran ${seconds}s without a finding"
