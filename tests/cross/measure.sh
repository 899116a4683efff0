#!/usr/bin/env bash
# Measures the figures in docs/RASPBERRY_PI.md (not a test): for workers of one architecture
# (native, arm64 under qemu-aarch64, armhf under qemu-arm) against a native coordinator on
# loopback, each worker's peak RSS (as it reports at exit) and its CPU time per round
# (user + sys of the worker process / rounds). Under qemu both include the emulator (RSS: the
# qemu process with its translation cache), so they say little about a real Raspberry Pi.
#
# Usage: measure.sh NATIVE_BUILD_DIR ARCH DATA_FILE --workers N [marina flags...]
set -euo pipefail
build="$(cd "$1" && pwd)"; arch="$2"; data="$3"; shift 3
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -x /usr/bin/time ]] || { echo "measure: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
workers=""
rounds=""
args=("$@")
for ((i = 0; i < ${#args[@]}; ++i)); do
  [[ "${args[i]}" == "--workers" ]] && workers="${args[i + 1]}"
  [[ "${args[i]}" == "--rounds" ]] && rounds="${args[i + 1]}"
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$arch" in
  native) run=("$build/edge-worker/marina-worker") ;;
  arm64) s="$repo/build-sysroot/arm64"; run=(qemu-aarch64 -L /usr/aarch64-linux-gnu
           -E "LD_LIBRARY_PATH=$s/usr/lib/aarch64-linux-gnu:$s/lib/aarch64-linux-gnu"
           "$repo/build-rpi-arm64/edge-worker/marina-worker") ;;
  armhf) s="$repo/build-sysroot/armhf"; run=(qemu-arm -L /usr/arm-linux-gnueabihf
           -E "LD_LIBRARY_PATH=$s/usr/lib/arm-linux-gnueabihf:$s/lib/arm-linux-gnueabihf"
           "$repo/build-rpi-armhf/edge-worker/marina-worker") ;;
  *) echo "measure: ARCH is native, arm64 or armhf" >&2; exit 2 ;;
esac
# Created first: the loop below may read it before the coordinator has opened it.
: >"$work/coordinator.err"
"$build/coordinator/marina-coordinator" --listen tcp://127.0.0.1:0 --quiet \
  --round-timeout-ms 60000 --data "$data" "$@" >"$work/net.out" 2>"$work/coordinator.err" &
coordinator=$!
port=""
for _ in $(seq 400); do
  port="$(sed -n 's|^listening: PUB tcp://127.0.0.1:\([0-9]*\),.*|\1|p' "$work/coordinator.err")"
  [[ -n "$port" ]] && break
  sleep 0.05
done
[[ -n "$port" ]] || { cat "$work/coordinator.err" >&2; exit 1; }
pids=()
for ((i = 0; i < workers; ++i)); do
  /usr/bin/time -f "%U %S" -o "$work/time-$i" "${run[@]}" --connect "tcp://127.0.0.1:$port" \
    --data "$data" --shard "$i/$workers" --quiet 2>"$work/worker-$i.err" &
  pids+=($!)
done
wait "$coordinator"
for p in "${pids[@]}"; do wait "$p"; done
cat "$work/net.out"
for ((i = 0; i < workers; ++i)); do
  rss="$(sed -n 's/.*peak RSS \([0-9]*\) KiB.*/\1/p' "$work/worker-$i.err")"
  read -r user sys <"$work/time-$i"
  awk -v a="$arch" -v i="$i" -v rss="$rss" -v u="$user" -v s="$sys" -v r="$rounds" 'BEGIN {
    printf "%s worker %d: peak RSS %d KiB, CPU %.2f s, %.3f ms per round\n", a, i, rss, u + s, 1000 * (u + s) / (r + 1) }'
done
