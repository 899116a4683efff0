#!/usr/bin/env bash
# The benchmarks that have targets (docs/PERFORMANCE.md): installs dependencies and builds as
# scripts/test.sh does, runs the codec and aggregation micro-benchmarks and round latency on
# loopback, keeps their results in OUT and prints where each target stands (bench/targets.py).
# Every figure is a ratio against a baseline measured in the same run, so a busy machine moves
# both sides; a quiet one gives steadier figures.
#
# Usage: scripts/bench.sh [--quick | --full] [--out DIR] [--no-build]
#   (default)  codec: every message; aggregation: n = 10, 100, 1 000 and d = 1e4 ... 1e6;
#              latency: n = 1, 8, 64 at d = 16 and n = 1, 8 at d = 1e5 (3 000 rounds, 3
#              trials of each side). About 6 minutes on 2 cores.
#   --quick    a few cells of each and short latency runs: checks that everything runs
#   --full     as the default, with latency at n = 1, 2, 4, 8, 16, 32, 64, 128 (d = 16) and
#              n = 1, 8, 64 (d = 1e5)
#   --out DIR  where the results go (default build/bench-results): codec.json,
#              aggregate.json (Google Benchmark's JSON), latency.json,
#              latency-large-d.json, version.txt (the build's --version), summary.md; a run
#              replaces these six files there
#   --no-build use build/ as it is (or the build tree in $BUILD): no apt-get, no cmake
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

mode=default build=1 out="$repo/build/bench-results"
while (($#)); do
  case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --no-build) build=0 ;;
    --out)
      [[ $# -ge 2 ]] || { echo "bench.sh: --out needs a directory" >&2; exit 2; }
      out="$2"
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench.sh: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done
out="$(realpath -m -- "$out")"  # relative to where it was called from, not to the repository
[[ -z "${BUILD:-}" ]] || BUILD="$(realpath -m -- "$BUILD")"
cd "$repo"

if ((build)); then
  scripts/deps.sh
  scripts/build.sh
fi
bin="${BUILD:-$repo/build}"
for b in bench/marina_bench_codec bench/marina_bench_aggregate bench/marina_zmq_baseline \
  coordinator/marina-coordinator edge-worker/marina-worker; do
  [[ -x "$bin/$b" ]] || { echo "bench.sh: $bin/$b is not built (run without --no-build)" >&2; exit 1; }
done
mkdir -p "$out"
rm -f "$out"/{codec,aggregate,latency,latency-large-d}.json "$out"/{summary.md,version.txt}
# Which build is measured: release and commit (the summary's second line).
"$bin/coordinator/marina-coordinator" --version > "$out/version.txt"

# Real-time priority keeps compiler jobs and the like from preempting a measurement; it needs
# root (or CAP_SYS_NICE), and without it the figures are only noisier.
# MARINA_BENCH_RT=0 turns it off (the test of this script does, to leave other tests their CPU).
prio=()
if [[ "${MARINA_BENCH_RT:-1}" != 0 ]] && chrt -f 20 true 2>/dev/null; then
  prio=(chrt -f 20)
  echo "bench.sh: running at real-time priority (chrt -f 20)"
else
  echo "bench.sh: not at real-time priority; figures will be noisier on a busy machine"
fi
echo "bench.sh: load average before: $(cut -d' ' -f1-3 /proc/loadavg); results in $out"

case "$mode" in
  quick)
    codec='BM_(reply|broadcast)/(dense|sparse_k1pct)/10000/'
    agg='BM_(server|coordinator)_round/n:10/d:10000/q:[35]/'
    lat=(--workers 1 8 --rounds 500 --repeat 1)
    lat_d=(--workers 1 --rounds 300 --repeat 1 --dim 10000 --compressor randk:100)
    ;;
  default)
    codec='.'
    agg='BM_(server|coordinator)_round/'
    lat=(--workers 1 8 64 --rounds 3000 --repeat 3)
    lat_d=(--workers 1 8 --rounds 3000 --repeat 3 --dim 100000 --compressor randk:1000)
    ;;
  full)
    codec='.'
    agg='BM_(server|coordinator)_round/'
    lat=(--workers 1 2 4 8 16 32 64 128 --rounds 3000 --repeat 3)
    lat_d=(--workers 1 8 64 --rounds 1500 --repeat 3 --dim 100000 --compressor randk:1000)
    ;;
esac

run_json() {  # NAME BINARY FILTER: Google Benchmark's console output here, its JSON in OUT
  echo "== $1"
  "${prio[@]}" "$bin/bench/$2" --benchmark_filter="$3" --benchmark_out="$out/$1.json" \
    --benchmark_out_format=json
}
run_json codec marina_bench_codec "$codec"
run_json aggregate marina_bench_aggregate "$agg"
echo "== latency"
BUILD="$bin" "${prio[@]}" /usr/bin/python3 bench/loopback.py latency "${lat[@]}" \
  --json "$out/latency.json"
# The same at a larger d, K = 1 % of it; p tiny so that no dense round lands in the p99.
BUILD="$bin" "${prio[@]}" /usr/bin/python3 bench/loopback.py latency "${lat_d[@]}" --p 1e-6 \
  --json "$out/latency-large-d.json"

echo
/usr/bin/python3 bench/targets.py "$out" | tee "$out/summary.md"
