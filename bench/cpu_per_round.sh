#!/bin/bash
# CPU per round of a whole run on one core: marina-coordinator + one marina-worker (MARINA,
# RandK K = 1, a 4-row d = 16 problem, no --data) against marina_zmq_baseline with the same
# message sizes, everything pinned to one CPU, so the round trip is serial and the total CPU
# time of all threads (perf stat task-clock, start-up included) is what a round costs.
#
#   bench/cpu_per_round.sh BUILD_DIR [BUILD_DIR ...]    (environment: ROUNDS=20000, CPU=1, REPS=4)
#
# Prints one line per build per repetition, alternating builds, then the raw exchange:
#   NAME task_clock_ms per_round_us
# Needs perf and taskset; run it as root under `chrt -f 20` to keep other jobs off that CPU.
set -euo pipefail
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 ]] && exit 0
  exit 2
fi
rounds=${ROUNDS:-20000} cpu=${CPU:-1} reps=${REPS:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/t.svm" <<'PY'
import random, sys
rng = random.Random(1)
with open(sys.argv[1], "w") as fh:
    for i in range(4):
        cols = sorted(rng.sample(range(1, 17), 6))
        if i == 3 and cols[-1] != 16:
            cols[-1] = 16
            cols = sorted(set(cols))
        fh.write(("1" if rng.random() < 0.5 else "-1") + " " +
                 " ".join(f"{c}:{rng.uniform(-1, 1):.4f}" for c in cols) + "\n")
PY
task_clock() {  # prints the task-clock in ms of the command
  taskset -c "$cpu" perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ {print $1}'
}
cluster() {
  local b=$1 port=$((20000 + RANDOM % 30000))
  "$b/coordinator/marina-coordinator" --listen "tcp://127.0.0.1:$port" --workers 1 \
    --rounds "$rounds" --seed 1 --log "$tmp/c.csv" --quiet --method marina \
    --compressor randk:1 --join-timeout-ms 60000 2>/dev/null &
  "$b/edge-worker/marina-worker" --connect "tcp://127.0.0.1:$port" --data "$tmp/t.svm" \
    --shard 0/1 --quiet 2>/dev/null
  wait
}
export -f cluster
export rounds tmp
for ((r = 0; r < reps; ++r)); do
  for b in "$@"; do
    ms=$(task_clock bash -c "cluster '$b'")
    awk -v n="$(basename "$b")" -v ms="$ms" -v k="$rounds" 'BEGIN {printf "%s %.0f %.1f\n", n, ms, ms * 1000 / k}'
  done
  ms=$(task_clock "$1/bench/marina_zmq_baseline" --workers 1 --rounds "$rounds" --warmup 0 \
    --down 113 --up 112 --times "$tmp/raw.times")
  awk -v ms="$ms" -v k="$rounds" 'BEGIN {printf "raw %.0f %.1f\n", ms, ms * 1000 / k}'
done
