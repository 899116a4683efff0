#!/usr/bin/env python3
"""Checks that two CSV logs (marina-sim, marina-coordinator) are identical in every column
except the ones named with --ignore (default: wall_s). Exit 0 when equal, 1 otherwise, with the
first differing row and column."""

import argparse
import csv
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore", default="wall_s", help="comma-separated columns to skip")
    args = ap.parse_args()
    ignore = set(filter(None, args.ignore.split(",")))
    try:
        with open(args.a, newline="") as fa, open(args.b, newline="") as fb:
            ra, rb = list(csv.reader(fa)), list(csv.reader(fb))
    except OSError as e:
        print(f"compare_logs: error: {e}", file=sys.stderr)
        return 2
    if not ra or not rb or ra[0] != rb[0]:
        print(f"compare_logs: headers differ: {ra[:1]} vs {rb[:1]}", file=sys.stderr)
        return 1
    header = ra[0]
    if len(ra) != len(rb):
        print(f"compare_logs: {len(ra) - 1} rows vs {len(rb) - 1} rows", file=sys.stderr)
        return 1
    for line, (x, y) in enumerate(zip(ra[1:], rb[1:]), start=2):
        for col, u, v in zip(header, x, y):
            if col not in ignore and u != v:
                print(f"compare_logs: line {line}, column {col}: {u} vs {v}", file=sys.stderr)
                return 1
    print(f"compare_logs: {len(ra) - 1} rows identical (ignoring {', '.join(sorted(ignore))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
