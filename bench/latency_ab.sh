#!/bin/bash
# Round latency of two builds against the raw ZeroMQ exchange, alternating invocations of
# `bench/loopback.py latency` so that other tenants' load lands on both builds alike.
#
#   bench/latency_ab.sh BUILD_A BUILD_B [PAIRS]     (environment: WORKERS="1 8", ROUNDS=3000,
#                                                    SAME_LAYOUT=1 for loopback.py --same-layout)
#
# BUILD_A and BUILD_B are build directories (each with coordinator/marina-coordinator,
# edge-worker/marina-worker and bench/marina_zmq_baseline). Prints one table row per
# invocation, prefixed with the build's name; compare the medians of the `ratio p50` column.
# Run it as root under `chrt -f 20` to keep compiler jobs from preempting the rounds.
set -euo pipefail
if [[ $# -lt 2 || $1 == -h || $1 == --help ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 && ( $1 == -h || $1 == --help ) ]] && exit 0
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2 pairs=${3:-6}
for d in "$a" "$b"; do
  [[ -x $d/coordinator/marina-coordinator ]] || { echo "latency_ab: $d: no coordinator/marina-coordinator (build it first)" >&2; exit 2; }
done
for ((i = 0; i < pairs; ++i)); do
  for d in "$a" "$b"; do
    # shellcheck disable=SC2086
    BUILD=$d python3 "$here/loopback.py" latency ${SAME_LAYOUT:+--same-layout} --workers ${WORKERS:-1 8} \
      --rounds "${ROUNDS:-3000}" --repeat 1 | grep '^| [0-9]' | sed "s|^|$(basename "$d") |"
  done
done
