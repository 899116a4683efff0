#!/usr/bin/env bash
# Mixed-architecture run: a native marina-coordinator on 127.0.0.1 with workers that are native
# x86-64, arm64 (qemu-aarch64) and armhf (qemu-arm) processes, then its log is compared with the
# all-native marina-sim log of the same flags (tools/compare_logs.py: identical but wall_s).
#
# Usage: mixed.sh NATIVE_BUILD_DIR DATA_FILE --workers N [marina flags...]
#   MARINA_CROSS_WORKERS  architectures of workers 0..N-1, space-separated (native, arm64,
#                         armhf); default "native native arm64 armhf" (repeated to N)
#   MARINA_CROSS_KEEP=DIR keep the logs and outputs in DIR
# The ARM workers are build-rpi-arm64/ and build-rpi-armhf/ at the repository root (the rpi-*
# presets); their libraries come from build-sysroot/ARCH (scripts/sysroot.sh).
set -euo pipefail
build="$(cd "$1" && pwd)"; data="$2"; shift 2
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -s "$data" ]] || { echo "mixed: missing $data (run scripts/fetch-data.sh)" >&2; exit 1; }

workers=""
args=("$@")
model=()  # the workers' own model flags, the same as the coordinator's
for ((i = 0; i < ${#args[@]}; ++i)); do
  case "${args[i]}" in
    --workers) workers="${args[i + 1]}" ;;
    --loss | --l2 | --shuffle-seed) model+=("${args[i]}" "${args[i + 1]}") ;;
    --bias) model+=(--bias) ;;
  esac
done
[[ -n "$workers" ]] || { echo "mixed: --workers N is required" >&2; exit 2; }

read -r -a archs <<<"${MARINA_CROSS_WORKERS:-native native arm64 armhf}"
work="${MARINA_CROSS_KEEP:-$(mktemp -d)}"
mkdir -p "$work"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "${MARINA_CROSS_KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

# The command that runs a worker of architecture $1.
worker_cmd() {
  local arch="$1" triplet qemu sysroot bin
  case "$arch" in
    native) echo "$build/edge-worker/marina-worker"; return ;;
    arm64) triplet=aarch64-linux-gnu qemu=qemu-aarch64 ;;
    armhf) triplet=arm-linux-gnueabihf qemu=qemu-arm ;;
    *) echo "mixed: unknown architecture '$arch'" >&2; return 1 ;;
  esac
  bin="$repo/build-rpi-$arch/edge-worker/marina-worker"
  sysroot="$repo/build-sysroot/$arch"
  [[ -x "$bin" ]] || { echo "mixed: $bin missing (cmake --preset rpi-$arch && cmake --build --preset rpi-$arch)" >&2; return 1; }
  [[ -f "$sysroot/.marina-sysroot" ]] || { echo "mixed: $sysroot missing (scripts/sysroot.sh $arch)" >&2; return 1; }
  command -v "$qemu" >/dev/null || { echo "mixed: $qemu missing (scripts/deps.sh installs qemu-user)" >&2; return 1; }
  echo "$qemu -L /usr/$triplet -E LD_LIBRARY_PATH=$sysroot/usr/lib/$triplet:$sysroot/lib/$triplet $bin"
}

"$build/simulator/marina-sim" --data "$data" "$@" --log "$work/sim.csv" >"$work/sim.out"

# Port 0: the coordinator picks free ports and prints them; the workers are started after.
# Created first: the loop below may read it before the coordinator has opened it.
: >"$work/coordinator.err"
"$build/coordinator/marina-coordinator" --listen tcp://127.0.0.1:0 --quiet \
  --round-timeout-ms 20000 --data "$data" "$@" --log "$work/net.csv" \
  >"$work/net.out" 2>"$work/coordinator.err" &
coordinator=$!
pids+=("$coordinator")
port=""
for _ in $(seq 200); do
  port="$(sed -n 's|^listening: PUB tcp://127.0.0.1:\([0-9]*\),.*|\1|p' "$work/coordinator.err")"
  [[ -n "$port" ]] && break
  kill -0 "$coordinator" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$port" ]] || { cat "$work/coordinator.err" >&2; echo "mixed: the coordinator did not start" >&2; exit 1; }

declare -a wpids=() cmds=()
for ((i = 0; i < workers; ++i)); do
  cmds+=("$(worker_cmd "${archs[i % ${#archs[@]}]}")") || exit 1
done
# Every worker binary names the coordinator's release and wire protocol, and the instruction set
# it was built for (the commit may differ where the builds were made at different times).
coordinator_version="$("$build/coordinator/marina-coordinator" --version)"
release="$(cut -d' ' -f2 <<<"$coordinator_version")"
protocol="$(sed -n 's/.*, wire protocol \([0-9]*\), .*/\1/p' <<<"$coordinator_version")"
[[ -n "$protocol" ]] || { echo "mixed: no wire protocol in '$coordinator_version'" >&2; exit 1; }
for ((i = 0; i < ${#archs[@]} && i < workers; ++i)); do
  case "${archs[i]}" in
    arm64) isa=aarch64 ;;
    armhf) isa=armv7 ;;
    *) isa="$(uname -m)" ;;
  esac
  read -r -a cmd <<<"${cmds[i]}"
  want="^marina-worker ${release//./\\.} \\([^,]+, wire protocol $protocol, $isa\\)\$"
  got="$("${cmd[@]}" --version)" || { echo "mixed: ${archs[i]} worker --version failed" >&2; exit 1; }
  [[ "$got" =~ $want ]] || { echo "mixed: ${archs[i]} worker --version: '$got', expected /$want/" >&2; exit 1; }
done
for ((i = 0; i < workers; ++i)); do
  arch="${archs[i % ${#archs[@]}]}"
  read -r -a cmd <<<"${cmds[i]}"
  "${cmd[@]}" --connect "tcp://127.0.0.1:$port" --data "$data" --shard "$i/$workers" \
    "${model[@]}" 2>"$work/worker-$i-$arch.err" &
  wpids+=($!)
  pids+=($!)
done

# A worker that fails (e.g. cannot load its libraries) ends the run at once instead of leaving
# the coordinator waiting for it to join.
status=0
declare -A reaped=()
while kill -0 "$coordinator" 2>/dev/null; do
  for ((i = 0; i < workers; ++i)); do
    [[ -n "${reaped[$i]:-}" ]] && continue
    kill -0 "${wpids[i]}" 2>/dev/null && continue
    reaped[$i]=1
    if ! wait "${wpids[i]}"; then
      echo "mixed: worker $i failed:" >&2
      cat "$work"/worker-"$i"-*.err >&2
      kill "$coordinator" "${wpids[@]}" 2>/dev/null || true
      status=1
      break 2
    fi
  done
  sleep 0.1
done
wait "$coordinator" || status=1
((status == 0)) || { cat "$work/coordinator.err" >&2; echo "mixed: the run failed" >&2; exit 1; }
for ((i = 0; i < workers; ++i)); do
  [[ -n "${reaped[$i]:-}" ]] && continue
  wait "${wpids[i]}" || { echo "mixed: worker $i failed" >&2; cat "$work"/worker-"$i"-*.err >&2; status=1; }
done
pids=()
cat "$work/sim.out" "$work/net.out" "$work/coordinator.err"
for f in "$work"/worker-*.err; do tail -n 1 "$f"; done
((status == 0)) || { echo "mixed: the coordinator or a worker failed" >&2; exit 1; }

# Exact: every column but wall_s identical, on every architecture (docs/RASPBERRY_PI.md).
/usr/bin/python3 "$repo/tools/compare_logs.py" "$work/sim.csv" "$work/net.csv"
