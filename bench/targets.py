#!/usr/bin/env python3
"""Where each benchmark stands against its target, from the files scripts/bench.sh writes.

  bench/targets.py DIR

reads DIR/codec.json and DIR/aggregate.json (Google Benchmark's JSON output of
marina_bench_codec and marina_bench_aggregate) and DIR/latency*.json (bench/loopback.py
latency --json), whichever exist, and prints one Markdown table per benchmark: every cell with
its same-run ratio, the target and whether it is met, then a line per benchmark with the count.

The targets (docs/PERFORMANCE.md, "Where the targets stand"):
  codec        encode + verify + decode <= 2 memcpys of the same bytes, for d >= 1e4
  aggregation  a server round (BM_server_round, total CPU) and the coordinator's round from
               the received bytes (BM_coordinator_round) <= 2x their baselines
  latency      p50 and p99 of a loopback round <= 1.15x a raw cppzmq exchange's

A file that exists but does not parse, or a cell without its ratio, is an error naming the
file: a summary that silently left cells out would overstate what is met.
"""

import argparse
import glob
import json
import os
import re
import sys

CODEC_MAX = 2.0
AGGREGATE_MAX = 2.0
LATENCY_MAX = 1.15


class Bad(Exception):
    pass


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise Bad(f"{path}: {e}") from None


def benchmarks(path):
    doc = load(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise Bad(f"{path}: no 'benchmarks' list (not Google Benchmark JSON output)")
    out = []
    for b in doc["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue  # --benchmark_repetitions' mean/median rows: the runs are listed already
        if "error_occurred" in b and b["error_occurred"]:
            raise Bad(f"{path}: {b.get('name')}: {b.get('error_message', 'failed')}")
        if not isinstance(b.get("ratio"), (int, float)):
            continue  # no target (BM_worker_indices)
        out.append(b)
    return out


def cell_name(b):
    return re.sub(r"/min_time:[0-9.]+$", "", b["name"])


def verdict(value, limit):
    return "yes" if value <= limit else "no"


def table(title, header, rows):
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def codec(path):
    rows, met, total = [], 0, 0
    for b in benchmarks(path):
        m = re.match(r"BM_(\w+)/(\w+)/(\d+)", b["name"])
        if not m:
            raise Bad(f"{path}: unexpected benchmark name {b['name']!r}")
        d = int(m.group(3))
        if d < 10_000:
            target, ok = "(none: d < 1e4)", "-"
        else:
            target, ok = f"<= {CODEC_MAX:g}", verdict(b["ratio"], CODEC_MAX)
            total += 1
            met += ok == "yes"
        rows.append([f"{m.group(1)} {m.group(2)}", str(d), f"{b['msg_bytes']:.0f}",
                     f"{b['ratio']:.2f}", target, ok])
    head = ["message", "d", "bytes", "memcpys", "target", "met"]
    return table("Codec: encode + verify + decode, in memcpys of the same bytes", head,
                 rows), [("codec", met, total)]


def aggregate(path):
    server, coord = [], []
    met, total = 0, 0
    after_met, after_total = 0, 0  # seeded cells, once their replies are in
    for b in benchmarks(path):
        name = cell_name(b)
        if name.startswith("BM_worker_indices"):
            continue  # a worker's derivation against its draws alone: no target
        ok = verdict(b["ratio"], AGGREGATE_MAX)
        total += 1
        met += ok == "yes"
        m = re.match(r"BM_(server|coordinator)_round/n:(\d+)/d:(\d+)/q:\d+", name)
        if not m:
            raise Bad(f"{path}: unexpected benchmark name {b['name']!r}")
        q = b.get("label") or "?"  # the compressor, as the bench labels the cell
        row = [m.group(2), m.group(3), q, f"{b['ratio']:.2f}"]
        if m.group(1) == "server":
            after = b.get("ratio_after_replies")
            if isinstance(after, (int, float)):
                row.append(f"{after:.2f}")
                after_total += 1
                after_met += after <= AGGREGATE_MAX
            else:
                row.append("-")
            server.append(row + [ok])
        else:
            coord.append(row + [ok])
    lines = table("Aggregation: a server round against a streaming pass over what arrived "
                  f"(target <= {AGGREGATE_MAX:g})",
                  ["n", "d", "compressor", "ratio (total CPU)", "ratio once replies are in",
                   "met"], server)
    lines += table("Aggregation: the coordinator's round from the received bytes "
                   f"(target <= {AGGREGATE_MAX:g})",
                   ["n", "d", "compressor", "ratio", "met"], coord)
    counts = [("aggregation", met, total)]
    if after_total:
        counts.append(("aggregation, seeded replies once they are in (their indices derived "
                       "while the workers compute; not the target's measure)", after_met,
                       after_total))
    return lines, counts


def latency(paths):
    rows, met, total = [], 0, 0
    cells = []
    for path in paths:
        doc = load(path)
        if not isinstance(doc, list):
            raise Bad(f"{path}: not a list of cells (bench/loopback.py latency --json)")
        cells += [(path, c) for c in doc]
    for path, c in cells:
        try:
            n, r50, r99 = int(c["n"]), float(c["ratio_p50"]), float(c["ratio_p99"])
            d, q = int(c.get("dim", 16)), str(c.get("compressor", "randk:1"))
            p50, p99 = float(c["p50_us"]), float(c["p99_us"])
            raw50, raw99 = float(c["raw_p50_us"]), float(c["raw_p99_us"])
        except (KeyError, TypeError, ValueError) as e:
            raise Bad(f"{path}: cell {c!r}: {e}") from None
        for ratio in (r50, r99):
            total += 1
            met += ratio <= LATENCY_MAX
        rows.append([str(n), str(d), q, f"{p50:.0f} / {p99:.0f}", f"{raw50:.0f} / {raw99:.0f}",
                     f"{r50:.2f}", verdict(r50, LATENCY_MAX), f"{r99:.2f}",
                     verdict(r99, LATENCY_MAX)])
    head = ["n", "d", "compressor", "runtime p50 / p99 (µs)", "raw p50 / p99 (µs)",
            "ratio p50", "met", "ratio p99", "met"]
    return table("Round latency on loopback against raw cppzmq, with one pass of the step over "
                 f"d on each side (target <= {LATENCY_MAX:g})", head,
                 rows), [("latency (p50 and p99)", met, total)]


def machine(out):
    """The summary's head: where and when the micro-benchmarks ran (ratios from different
    machines are not comparable cell by cell), and which build ran (version.txt, written by
    scripts/bench.sh from the coordinator's --version: release and commit)."""
    lines = where(out)
    try:
        with open(os.path.join(out, "version.txt")) as fh:
            version = fh.read().strip()
        if version:
            lines.append(f"Built as {version}.")
    except OSError:
        pass
    return lines + [""] if lines else []


def where(out):
    """Where and when, from Google Benchmark's context in the micro-benchmarks' JSON."""
    for name in ("codec.json", "aggregate.json"):
        try:
            with open(os.path.join(out, name)) as fh:
                ctx = json.load(fh).get("context", {})
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(ctx, dict) or not ctx:
            continue
        load = ctx.get("load_avg") or []
        return [f"Measured {ctx.get('date', '?')} on {ctx.get('host_name', '?')}: "
                f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, load "
                f"average {' '.join(f'{x:.2f}' for x in load) or '?'} at the start."]
    return []


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="the results of scripts/bench.sh (its --out)")
    out = ap.parse_args(argv[1:]).dir
    parts = [("codec.json", codec), ("aggregate.json", aggregate)]
    lines, counts = machine(out), []
    try:
        for name, fn in parts:
            path = os.path.join(out, name)
            if os.path.exists(path):
                more, count = fn(path)
                lines += more
                counts += count
        paths = sorted(glob.glob(os.path.join(glob.escape(out), "latency*.json")),
                       key=lambda p: (os.path.basename(p) != "latency.json", p))
        if paths:
            more, count = latency(paths)
            lines += more
            counts += count
    except Bad as e:
        print(f"targets: {e}", file=sys.stderr)
        return 1
    if not counts:
        print(f"targets: none of codec.json, aggregate.json, latency*.json in {out}",
              file=sys.stderr)
        return 1
    lines.append("### Met")
    lines.append("")
    lines += [f"- {what}: {met} of {total} cells" for what, met, total in counts]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
