#!/usr/bin/env bash
# The cost of CurveZMQ on a round and on a worker's handshake, measured in one session:
# interleaved runs of the same loopback job (coordinator + 4 workers, heart_scale, MARINA
# RandK-1, 5000 rounds) with and without keys; rounds/s from the coordinator's summary, and the
# time from a worker's start to its Welcome (its "welcomed" line) for the handshake.
# Usage: bench/curve_cost.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/lib/cli.sh"
cli_args curve_cost.sh 2 "$@"
build="${1:-build}"; repeats="${2:-5}"
for b in coordinator/marina-coordinator edge-worker/marina-worker edge-worker/marina-keygen; do
  [[ -x "$build/$b" ]] || { echo "curve_cost.sh: $build/$b is not built" >&2; exit 1; }
done
[[ $repeats =~ ^[1-9][0-9]*$ ]] || { echo "curve_cost.sh: REPEATS must be a positive integer, got '$repeats'" >&2; exit 2; }
data="$repo/data/heart_scale"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
for n in coord w0 w1 w2 w3; do "$build/edge-worker/marina-keygen" "$work/$n" >/dev/null; done
for i in 0 1 2 3; do echo "$i $(grep -v '^#' "$work/w$i.pub")"; done >"$work/allow.txt"
run() {  # run MODE PORT → prints "rounds_per_s handshake_ms"
  local mode="$1" port="$2" ck=() wk=()
  [[ "$mode" == curve ]] && ck=(--curve-secret "$work/coord.key" --allow-keys "$work/allow.txt")
  "$build/coordinator/marina-coordinator" --listen "tcp://127.0.0.1:$port" --workers 4 --data "$data" \
    --method marina --compressor randk:1 --rounds 5000 --seed 1 "${ck[@]}" \
    >"$work/c.out" 2>"$work/c.err" &
  local c=$!
  for i in 0 1 2 3; do
    [[ "$mode" == curve ]] && wk=(--curve-secret "$work/w$i.key" --server-key "$work/coord.pub")
    /usr/bin/python3 - "$build/edge-worker/marina-worker" "$port" "$data" "$i" "${wk[@]}" \
      >"$work/w$i.ms" <<'PY' &
import subprocess, sys, time
exe, port, data, i, *keys = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen([exe, "--connect", f"tcp://127.0.0.1:{port}", "--data", data,
                      "--shard", f"{i}/4", *keys], stderr=subprocess.PIPE, text=True)
for line in p.stderr:
    if "welcomed" in line:
        print((time.monotonic() - t0) * 1000)
        break
p.wait()
PY
  done
  wait "$c"; wait
  local rps; rps=$(sed -n 's/.*(\([0-9.]*\) rounds\/s).*/\1/p' "$work/c.out")
  local hs; hs=$(cat "$work"/w*.ms | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$rps $hs"
}
port=$((40000 + RANDOM % 20000))
for r in $(seq 1 "$repeats"); do
  for mode in plain curve; do
    echo "$mode $(run "$mode" "$port")"
    port=$((port + 2))
  done
done | tee "$work/all.txt"
/usr/bin/python3 - "$work/all.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda m, k: statistics.median(float(r[k]) for r in rows if r[0] == m)
p, c = med("plain", 1), med("curve", 1)
print(f"rounds/s median: plaintext {p:.0f}, CurveZMQ {c:.0f}: ratio curve/plain {c / p:.2f}")
hp, hc = med("plain", 2), med("curve", 2)
print(f"worker start to Welcome, median of workers: plaintext {hp:.0f} ms, CurveZMQ {hc:.0f} ms")
PY
