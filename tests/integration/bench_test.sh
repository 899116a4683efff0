#!/usr/bin/env bash
# scripts/bench.sh and bench/targets.py: a --quick run must measure every benchmark and report
# each of its cells against its target; targets.py must judge ratios at and past each limit
# correctly, and refuse (naming the file) results it cannot read rather than summarize fewer
# cells. No assertion here depends on how fast anything ran.
# Usage: bench_test.sh BUILD_DIR
set -euo pipefail
build="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "bench_test: $*" >&2; exit 1; }

# 1. The whole chain on the real binaries.
BUILD="$build" MARINA_BENCH_RT=0 "$repo/scripts/bench.sh" --quick --no-build --out "$tmp/run" \
  > "$tmp/run.log" 2>&1 || { cat "$tmp/run.log" >&2; fail "bench.sh --quick failed"; }
for f in codec.json aggregate.json latency.json latency-large-d.json version.txt summary.md; do
  [[ -s "$tmp/run/$f" ]] || fail "bench.sh wrote no $f"
done
grep -q "^Measured .* CPUs at .* MHz, load average" "$tmp/run/summary.md" ||
  fail "the summary does not say where it was measured"
grep -qE "^Built as marina-coordinator [0-9.]+ \([0-9A-Za-z._-]+, wire protocol [0-9]+, .*\)\.$" \
  "$tmp/run/summary.md" || fail "the summary does not say which build was measured"
# Every measured cell is in the summary with its ratio and the verdict its ratio calls for.
/usr/bin/python3 - "$tmp/run" <<'PY' || fail "the summary does not report every cell as measured"
import json, sys
out = sys.argv[1]
summary = open(f"{out}/summary.md").read()
rows = [[c.strip() for c in line.strip().strip("|").split("|")]
        for line in summary.splitlines() if line.startswith("|")]
def row_with(*cells):  # a row holding these cells, in this order
    def has(row):
        it = iter(row)
        return all(any(c == r for r in it) for c in cells)
    return any(has(r) for r in rows)
n = 0
for b in json.load(open(f"{out}/codec.json"))["benchmarks"]:
    d = int(b["name"].split("/")[2])
    ok = "-" if d < 10000 else ("yes" if b["ratio"] <= 2 else "no")
    assert row_with(str(d), f"{b['ratio']:.2f}", ok), b["name"]
    n += 1
for b in json.load(open(f"{out}/aggregate.json"))["benchmarks"]:
    ok = "yes" if b["ratio"] <= 2 else "no"
    assert row_with(b["label"], f"{b['ratio']:.2f}", ok), b["name"]
    n += 1
cells = json.load(open(f"{out}/latency.json"))
assert [(c["n"], c["dim"]) for c in cells] == [(1, 16), (8, 16)], cells
large = json.load(open(f"{out}/latency-large-d.json"))
assert [(c["n"], c["dim"], c["compressor"]) for c in large] == [(1, 10000, "randk:100")], large
for c in cells + large:
    v = lambda r: "yes" if r <= 1.15 else "no"
    assert row_with(str(c["n"]), str(c["dim"]), c["compressor"], f"{c['ratio_p50']:.2f}",
                    v(c["ratio_p50"]),
                    f"{c['ratio_p99']:.2f}", v(c["ratio_p99"])), c
    n += 1
assert n >= 9, n
PY

# 2. Verdicts at and just past each limit, and the counts.
mkdir -p "$tmp/fix"
cat > "$tmp/fix/codec.json" <<'JSON'
{"benchmarks": [
 {"name": "BM_reply/dense/1000/min_time:0.200", "run_type": "iteration", "ratio": 9.0, "msg_bytes": 8112},
 {"name": "BM_reply/dense/10000/min_time:0.200", "run_type": "iteration", "ratio": 2.0, "msg_bytes": 80112},
 {"name": "BM_reply/sparse_k1pct/10000/min_time:0.200", "run_type": "iteration", "ratio": 2.006, "msg_bytes": 920},
 {"name": "BM_reply/dense/10000/min_time:0.200_mean", "run_type": "aggregate", "ratio": 2.0, "msg_bytes": 80112}
]}
JSON
cat > "$tmp/fix/latency.json" <<'JSON'
[{"n": 1, "p50_us": 115, "p99_us": 200, "raw_p50_us": 100, "raw_p99_us": 100, "ratio_p50": 1.15, "ratio_p99": 2.0}]
JSON
cat > "$tmp/fix/latency-large-d.json" <<'JSON'
[{"n": 8, "dim": 100000, "compressor": "randk:1000", "p50_us": 880, "p99_us": 1160, "raw_p50_us": 800, "raw_p99_us": 1000, "ratio_p50": 1.10, "ratio_p99": 1.16}]
JSON
cat > "$tmp/fix/aggregate.json" <<'JSON'
{"benchmarks": [
 {"name": "BM_server_round/n:10/d:10000/q:1/min_time:0.300", "label": "randk:100", "ratio": 4.0, "ratio_after_replies": 1.9},
 {"name": "BM_server_round/n:10/d:10000/q:5/min_time:0.300", "label": "randk:100:indexed", "ratio": 2.0},
 {"name": "BM_coordinator_round/n:10/d:10000/q:5/min_time:0.300", "label": "randk:100:indexed", "ratio": 2.1},
 {"name": "BM_worker_indices/d:10000/q:1/min_time:0.300", "label": "randk:100", "ratio": 9.0}
]}
JSON
/usr/bin/python3 "$repo/bench/targets.py" "$tmp/fix" > "$tmp/fix.md" || fail "targets.py failed on the fixture"
grep -q '^| 10 | 10000 | randk:100 | 4.00 | 1.90 | no |$' "$tmp/fix.md" || fail "seeded server cell"
grep -q '^| 10 | 10000 | randk:100:indexed | 2.00 | - | yes |$' "$tmp/fix.md" || fail "indexed server cell"
grep -q '^| 10 | 10000 | randk:100:indexed | 2.10 | no |$' "$tmp/fix.md" || fail "coordinator cell"
grep -q '^- aggregation: 1 of 3 cells$' "$tmp/fix.md" || fail "aggregation count (worker indices have no target)"
grep -q '^- aggregation, seeded replies once they are in .*: 1 of 1 cells$' "$tmp/fix.md" ||
  fail "seeded count"
grep -q '^| reply dense | 1000 | 8112 | 9.00 | (none: d < 1e4) | - |$' "$tmp/fix.md" || fail "d < 1e4 judged"
grep -q '^| reply dense | 10000 | 80112 | 2.00 | <= 2 | yes |$' "$tmp/fix.md" || fail "2.00 not met"
grep -q '^| reply sparse_k1pct | 10000 | 920 | 2.01 | <= 2 | no |$' "$tmp/fix.md" || fail "2.006 met"
grep -q '^| 1 | 16 | randk:1 | 115 / 200 | 100 / 100 | 1.15 | yes | 2.00 | no |$' "$tmp/fix.md" ||
  fail "latency verdicts"
grep -q '^- codec: 1 of 2 cells$' "$tmp/fix.md" || fail "codec count (the mean row is not a cell)"
grep -q '^| 8 | 100000 | randk:1000 | 880 / 1160 | 800 / 1000 | 1.10 | yes | 1.16 | no |$' \
  "$tmp/fix.md" || fail "the large-d latency file"
grep -q '^- latency (p50 and p99): 2 of 4 cells$' "$tmp/fix.md" || fail "latency count"

# 3. Results it cannot read: refused, naming the file.
printf '{"benchmarks": [' > "$tmp/fix/aggregate.json"
if /usr/bin/python3 "$repo/bench/targets.py" "$tmp/fix" > /dev/null 2> "$tmp/err.txt"; then
  fail "targets.py summarized a truncated aggregate.json"
fi
grep -q "targets: .*aggregate.json" "$tmp/err.txt" || { cat "$tmp/err.txt" >&2; fail "no file named"; }
echo '[{"n": 1, "ratio_p50": 1.0}]' > "$tmp/fix/latency.json"
rm "$tmp/fix/aggregate.json"
if /usr/bin/python3 "$repo/bench/targets.py" "$tmp/fix" > /dev/null 2> "$tmp/err.txt"; then
  fail "targets.py summarized a latency cell without its figures"
fi
grep -q "targets: .*latency.json: cell" "$tmp/err.txt" || { cat "$tmp/err.txt" >&2; fail "no cell named"; }
if /usr/bin/python3 "$repo/bench/targets.py" "$tmp/empty-dir-that-is-not-there" 2> "$tmp/err.txt"; then
  fail "targets.py found results in a directory that does not exist"
fi
echo "bench_test: ok"
