#!/usr/bin/env bash
# Package test of the example device program examples/mlp-device, as its users build it: the
# worker library's component dev is installed into an empty prefix (tests/package/consumer.sh's
# checks), the example is configured and built against that prefix alone, and trained with the
# native marina-coordinator on loopback with 4 example workers.
#
#   native: MARINA (RandK) and GD for the same rounds; the loss must fall by 10x and MARINA's
#           test accuracy must reach 0.90; both accuracies and bits per worker are printed
#           ("measured:" lines).
#   arm64:  the example cross-built with the rpi toolchain against the arm64 package; one arm64
#           worker (qemu-user) beside three native ones must log exactly what four native
#           workers log (tools/compare_logs.py) and end on the same test accuracy.
#
# Usage: mlp_example.sh NATIVE_BUILD_DIR native|arm64 DIGITS_CSV
#   (arm64 installs from build-rpi-arm64/ at the repository root)
set -euo pipefail
[[ $# -eq 3 ]] || { echo "mlp_example: usage: mlp_example.sh NATIVE_BUILD_DIR native|arm64 DIGITS_CSV" >&2; exit 2; }
native_build="$(cd "$1" && pwd)"; target="$2"; digits="$3"
[[ -s "$digits" ]] || { echo "mlp_example: missing $digits (run scripts/fetch-data.sh)" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/consumer.sh"
fail() { echo "mlp_example: $*" >&2; exit 1; }
coordinator="$native_build/coordinator/marina-coordinator"
[[ -x "$coordinator" ]] || fail "$coordinator missing"

# The native example (always: the coordinator's other workers).
build="$native_build"; arch=native
marina_setup
keep_work="$work"
marina_install >/dev/null
marina_project "$marina_repo/examples/mlp-device" mlp-native >/dev/null
native_bin="$work/mlp-native/mlp-device"

declare -a pids=()
cross_work=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$keep_work" ${cross_work:+"$cross_work"}
}
trap cleanup EXIT

# run TAG ROUNDS "W0 CMD" "W1 CMD" "W2 CMD" "W3 CMD" -- COORDINATOR FLAGS...
run() {
  local tag="$1" rounds="$2"; shift 2
  local -a cmds=("$1" "$2" "$3" "$4"); shift 5
  local dir="$keep_work/run-$tag"; mkdir -p "$dir"
  # Created first: the loop below may read it before the coordinator has opened it.
  : >"$dir/coordinator.err"
  "$coordinator" --listen tcp://127.0.0.1:0 --workers 4 --rounds "$rounds" --seed 1 \
    --init-scale 0.1 --round-timeout-ms 60000 --join-timeout-ms 60000 --quiet \
    --log "$dir/run.csv" "$@" >"$dir/coordinator.out" 2>"$dir/coordinator.err" &
  local coord=$! port=""
  pids+=("$coord")
  for _ in $(seq 200); do
    port="$(sed -n 's|^listening: PUB tcp://127.0.0.1:\([0-9]*\),.*|\1|p' "$dir/coordinator.err")"
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  [[ -n "$port" ]] || { cat "$dir/coordinator.err" >&2; fail "$tag: the coordinator did not start"; }
  local -a wp=()
  local i
  for i in 0 1 2 3; do
    read -r -a cmd <<<"${cmds[i]}"
    "${cmd[@]}" --connect "tcp://127.0.0.1:$port" --shard "$i/4" --data "$digits" --quiet \
      >"$dir/w$i.out" 2>"$dir/w$i.err" &
    wp+=($!); pids+=($!)
  done
  for i in 0 1 2 3; do
    wait "${wp[i]}" || { cat "$dir/w$i.err" >&2; fail "$tag: worker $i failed"; }
  done
  wait "$coord" || { cat "$dir/coordinator.err" >&2; fail "$tag: the coordinator failed"; }
  echo "$dir"
}

field() { sed -n "s/.* $2 \([^ ]*\).*/\1/p" "$1"; }

if [[ "$target" == native ]]; then
  n4=("$native_bin" "$native_bin" "$native_bin" "$native_bin")
  rounds=1500
  marina="$(run marina "$rounds" "${n4[@]}" -- --method marina --compressor randk:100 --gamma 0.2)"
  gd="$(run gd "$rounds" "${n4[@]}" -- --method gd --compressor identity --gamma 0.2)"
  for tag in marina gd; do
    dir="${!tag}"
    acc="$(field "$dir/w0.out" test_accuracy)"
    for i in 1 2 3; do
      [[ "$(field "$dir/w$i.out" test_accuracy)" == "$acc" ]] ||
        fail "$tag: the workers end on different points: $(cat "$dir"/w*.out)"
    done
    read -r first last bits < <(/usr/bin/python3 - "$dir/run.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
losses = [float(r["loss"]) for r in rows if r["loss"]]
print(losses[0], losses[-1], rows[-1]["bits_per_worker"])
EOF
)
    echo "measured: mlp-device $tag, $rounds rounds, 4 workers: loss $first -> $last," \
         "test accuracy $acc, bits per worker $bits"
    /usr/bin/python3 -c "import sys; sys.exit(0 if $last * 10 < $first else 1)" ||
      fail "$tag: the loss did not fall tenfold ($first -> $last)"
    eval "${tag}_acc=$acc ${tag}_bits=$bits"
  done
  /usr/bin/python3 -c "import sys; sys.exit(0 if $marina_acc >= 0.90 else 1)" ||
    fail "MARINA's test accuracy $marina_acc is below 0.90"
  /usr/bin/python3 -c "import sys; sys.exit(0 if $marina_bits < $gd_bits else 1)" ||
    fail "MARINA sent $marina_bits bits per worker, GD $gd_bits"
  echo "mlp_example: native: MARINA test accuracy $marina_acc (GD $gd_acc) with" \
       "$marina_bits bits per worker (GD $gd_bits)"
  exit 0
fi

[[ "$target" == arm64 ]] || fail "unknown target '$target' (native or arm64)"
build="$marina_repo/build-rpi-arm64"; arch=arm64
marina_setup
cross_work="$work"
trap cleanup EXIT  # marina_setup replaced it
marina_install >/dev/null
marina_project "$marina_repo/examples/mlp-device" mlp-arm64 >/dev/null
arm_bin="$work/mlp-arm64/mlp-device"
echo "mlp_example: $(file -b "$arm_bin")"
rounds=300
flags=(--method marina --compressor randk:100 --gamma 0.2)
native="$(run native "$rounds" "$native_bin" "$native_bin" "$native_bin" "$native_bin" -- "${flags[@]}")"
mixed="$(run mixed "$rounds" "$native_bin" "${emulator[*]} $arm_bin" "$native_bin" "$native_bin" -- "${flags[@]}")"
/usr/bin/python3 "$marina_repo/tools/compare_logs.py" "$native/run.csv" "$mixed/run.csv" ||
  fail "the run with an arm64 worker logs differently from the all-native run"
a="$(field "$native/w1.out" test_accuracy)"; b="$(field "$mixed/w1.out" test_accuracy)"
[[ "$a" == "$b" ]] || fail "worker 1 ends with test accuracy $b on arm64, $a natively"
echo "measured: mlp-device, $rounds rounds, worker 1 on arm64 (qemu): log identical to the" \
     "all-native run, test accuracy $b"
