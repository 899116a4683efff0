#!/usr/bin/env bash
# Every binary and tool answers --help (exit 0) and every binary --version, and command lines
# that cannot work are refused before anything runs (a resume included: before any local worker
# is started), with a non-zero exit and a message naming the flag or file at fault.
# Usage: cli_test.sh BUILD_DIR
set -euo pipefail
build="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
heart="$repo/data/heart_scale"
sim="$build/simulator/marina-sim"
coord="$build/coordinator/marina-coordinator"
worker="$build/edge-worker/marina-worker"
fails=0

for bin in "$sim" "$coord" "$worker" "$build/edge-worker/marina-keygen"; do
  if ! "$bin" --help > "$tmp/out" 2>&1 || ! grep -q "^Usage: " "$tmp/out"; then
    echo "cli_test: $(basename "$bin") --help failed or printed no usage:" >&2
    head -5 "$tmp/out" >&2
    fails=$((fails + 1))
  fi
done
# --version: the release and the wire protocol, the two things a refused handshake is about.
protocol="$(sed -n 's/^inline constexpr uint16_t kProtocolVersion = \([0-9]*\);$/\1/p' \
  "$repo/runtime/include/marina/wire/codec.h")"
release="$(sed -n 's/^project(marina-edge VERSION \([0-9.]*\) .*/\1/p' "$repo/CMakeLists.txt")"
for bin in "$sim" "$coord" "$worker" "$build/edge-worker/marina-keygen"; do
  # The build's commit may be an earlier one than the checkout's (built, then committed).
  want="^$(basename "$bin") ${release//./\\.} \\([0-9A-Za-z._-]+, wire protocol $protocol, $(uname -m)\\)\$"
  if ! "$bin" --version > "$tmp/out" 2>&1 || ! [[ "$(cat "$tmp/out")" =~ $want ]]; then
    echo "cli_test: $(basename "$bin") --version did not match /$want/:" >&2
    head -5 "$tmp/out" >&2
    fails=$((fails + 1))
  fi
done
for tool in marina-plot reference_marina.py reference_gd.py summarize.py compare_logs.py \
            to_libsvm.py; do
  if ! /usr/bin/python3 "$repo/tools/$tool" --help > "$tmp/out" 2>&1 ||
     ! grep -q "^usage: " "$tmp/out"; then
    echo "cli_test: tools/$tool --help failed or printed no usage:" >&2
    head -5 "$tmp/out" >&2
    fails=$((fails + 1))
  fi
done

for cmd in "$repo/scripts/bench.sh" "/usr/bin/python3 $repo/bench/targets.py" \
           "/usr/bin/python3 $repo/bench/loopback.py"; do
  if ! $cmd --help > "$tmp/out" 2>&1 || ! grep -qi "^usage: " "$tmp/out"; then
    echo "cli_test: $cmd --help failed or printed no usage:" >&2
    head -5 "$tmp/out" >&2
    fails=$((fails + 1))
  fi
done

# The shell scripts answer --help with their header before they install, build or create
# anything (run from an empty folder, which must stay empty).
mkdir "$tmp/cwd"
for s in scripts/build.sh scripts/demo.sh scripts/deps.sh scripts/fetch-data.sh \
         scripts/reproduce-fig1.sh scripts/test.sh scripts/sysroot.sh bench/curve_cost.sh \
         tests/fuzz/run.sh; do
  if ! (cd "$tmp/cwd" && timeout 10 "$repo/$s" --help) > "$tmp/out" 2>&1 ||
     ! grep -q "^Usage: $s" "$tmp/out" || [[ -n "$(ls -A "$tmp/cwd")" ]]; then
    echo "cli_test: $s --help failed, printed no usage or left files behind:" >&2
    head -5 "$tmp/out" >&2
    ls -A "$tmp/cwd" >&2
    fails=$((fails + 1))
  fi
done

# refused MESSAGE COMMAND...: COMMAND must exit non-zero within 30 s, print MESSAGE on stderr,
# and leave no log behind.
refused() {
  local want="$1"
  shift
  local rc=0
  timeout 30 "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  if [[ $rc -eq 0 || $rc -eq 124 ]] || ! grep -qF -- "$want" "$tmp/err"; then
    echo "cli_test: expected a refusal with '$want' (exit $rc) from: $*" >&2
    head -5 "$tmp/err" >&2
    fails=$((fails + 1))
  fi
  if [[ -e "$tmp/log.csv" ]]; then
    echo "cli_test: a refused command wrote a log: $*" >&2
    fails=$((fails + 1))
    rm -f "$tmp/log.csv"
  fi
}

refused "--log-local-norms requires --log" "$sim" --data "$heart" --log-local-norms
refused "--log-local-norms needs --data" "$coord" --log "$tmp/log.csv" --log-local-norms
refused "--spawn-local needs --data" "$coord" --spawn-local --log "$tmp/log.csv"
refused "nope.libsvm: cannot open" "$sim" --data "$tmp/nope.libsvm" --log "$tmp/log.csv"
refused "randk:0: K must be a positive integer" "$sim" --data "$heart" --compressor randk:0 \
  --log "$tmp/log.csv"
refused "--smoothness: expected spectral or row-max" "$sim" --data "$heart" \
  --smoothness maximal --log "$tmp/log.csv"
refused "--connect is required" "$worker" --data "$heart"
# The scripts refuse what they do not take before they install or build anything, and
# fetch-data.sh does not take an option for its output folder.
pushd "$tmp/cwd" > /dev/null
for s in fetch-data.sh reproduce-fig1.sh demo.sh deps.sh build.sh sysroot.sh; do
  refused "$s: unknown option '--out'" "$repo/scripts/$s" --out x
done
popd > /dev/null
[[ -z "$(ls -A "$tmp/cwd")" ]] || { echo "cli_test: a refused script created files" >&2; fails=$((fails + 1)); }
refused "build.sh: takes no arguments, got: now" "$repo/scripts/build.sh" now
refused "fuzz: unknown harness 'fuzz_nope'" "$repo/tests/fuzz/run.sh" fuzz_decode fuzz_nope
refused "fetch-data.sh: at most 1 arguments, got 2" "$repo/scripts/fetch-data.sh" "$tmp/a" "$tmp/b"
refused "demo.sh: $tmp/nope.libsvm: no such file, or empty" "$repo/scripts/demo.sh" \
  "$tmp/nope.libsvm"
refused "reproduce-fig1: DATASETS: missing or empty $tmp/nope.libsvm" \
  env DATASETS="$tmp/nope.libsvm" "$repo/scripts/reproduce-fig1.sh" "$tmp/fig"
[[ ! -e "$tmp/fig" ]] || { echo "cli_test: a refused reproduce-fig1.sh created its folder" >&2; fails=$((fails + 1)); }

# After a refused resume: nothing matching PATTERN (started workers, a listening hub) in its
# output, and LOG as it was (BEFORE).
untouched() {
  local pattern="$1" log="$2" before="$3"
  if grep -q "$pattern" "$tmp/err"; then
    echo "cli_test: the coordinator started before the resume was refused:" >&2
    cat "$tmp/err" >&2
    fails=$((fails + 1))
  fi
  cmp -s "$log" "$before" || {
    echo "cli_test: the refused resume changed the log" >&2; fails=$((fails + 1)); }
}

# A resume whose CSV was started with other columns: refused before any worker is started, the
# log as it was.
"$coord" --spawn-local --quiet --workers 2 --data "$heart" --rounds 20 --log "$tmp/run.csv" \
  --log-local-norms --checkpoint "$tmp/cp" > /dev/null 2>&1
cp "$tmp/run.csv" "$tmp/before.csv"
refused "cannot resume log: it has the local_grad_norm_sq column" "$coord" --spawn-local \
  --workers 2 --data "$heart" --rounds 40 --log "$tmp/run.csv" --resume "$tmp/cp"
untouched "marina-worker" "$tmp/run.csv" "$tmp/before.csv"

# A resume with other flags (and rows after the checkpoint in the log, as a killed run leaves
# them): refused, naming the flag, before any worker is started and before the log is cut.
"$coord" --spawn-local --quiet --workers 2 --data "$heart" --method vr-marina --batch 4 \
  --batch-sampling without-replacement --rounds 20 --log "$tmp/vr.csv" --checkpoint "$tmp/vrcp" \
  --checkpoint-every 10 > /dev/null 2>&1
echo "20,0.5,0.5,0,2,0,0,0,0,0" >> "$tmp/vr.csv"  # a row the checkpoint does not cover
cp "$tmp/vr.csv" "$tmp/vr-before.csv"
refused "the flags differ from the checkpointed run's: batch_sampling=(default) (checkpoint: batch_sampling=without-replacement)" \
  "$coord" --spawn-local --workers 2 --data "$heart" --method vr-marina --batch 4 --rounds 40 \
  --log "$tmp/vr.csv" --resume "$tmp/vrcp"
untouched "marina-worker\|listening" "$tmp/vr.csv" "$tmp/vr-before.csv"

# A port already taken: refused naming the address (libzmq's "Address already in use" alone
# does not say which), with CurveZMQ too (its handler thread once outlived the failed start:
# an abort instead of the message).
/usr/bin/python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(120)' > "$tmp/port" &
holder=$!
for _ in $(seq 50); do [[ -s "$tmp/port" ]] && break; sleep 0.1; done
taken="$(cat "$tmp/port")"
refused "cannot listen on tcp://127.0.0.1:$taken (the PUB, for broadcasts): Address already in use" \
  "$coord" --listen "tcp://127.0.0.1:$taken" --workers 1 --rounds 3 --log "$tmp/log.csv"
"$build/edge-worker/marina-keygen" "$tmp/coord" > /dev/null
echo "0 $(grep -v '^#' "$tmp/coord.pub")" > "$tmp/allow.txt"
refused "cannot listen on tcp://127.0.0.1:$taken (the PUB, for broadcasts)" "$coord" \
  --listen "tcp://127.0.0.1:$taken" --workers 1 --rounds 3 --log "$tmp/log.csv" \
  --curve-secret "$tmp/coord.key" --allow-keys "$tmp/allow.txt"
kill "$holder" 2> /dev/null || true
wait "$holder" 2> /dev/null || true

# A coordinator whose workers never come says who it waits for (after 5 s; no terminal, so no
# progress line), then gives up at the join timeout naming them.
refused "0 of 2 workers joined; waiting for 0, 1 until the join timeout" "$coord" \
  --listen tcp://127.0.0.1:0 --workers 2 --rounds 3 --join-timeout-ms 6000
refused "only 0 of 2 workers joined within 1000 ms" "$coord" --listen tcp://127.0.0.1:0 \
  --workers 2 --rounds 3 --join-timeout-ms 1000

[[ $fails -eq 0 ]] || { echo "cli_test: $fails failure(s)" >&2; exit 1; }
echo "cli_test: --help everywhere; bad command lines refused with their reason"
