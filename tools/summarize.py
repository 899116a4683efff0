#!/usr/bin/env python3
"""Summarises marina-sim / marina-coordinator CSV logs: for each log, the first round and the
bits per worker at which ||grad f(x^k)||^2 (or, with --y local_grad_norm_sq, the mean of the
workers' local norms that --log-local-norms logs) falls to each threshold (relative to round 0)."""

import argparse
import csv
import sys


def first_below(path, thresholds, column="grad_norm_sq"):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    if column not in rows[0]:
        raise ValueError(f"{path}: no {column} column"
                         + (" (run with --log-local-norms)" if column == "local_grad_norm_sq" else ""))
    if not rows[0][column]:
        raise ValueError(f"{path}: {column} is empty (run the coordinator with --data)")
    g0 = float(rows[0][column])
    hits = {}
    for row in rows:
        g = float(row[column])
        for t in thresholds:
            if t not in hits and g <= t * g0:
                hits[t] = (int(row["round"]), float(row["bits_per_worker"]))
    last = rows[-1]
    return g0, hits, int(last["round"]), float(last[column]) / g0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("logs", nargs="+", help="CSV logs")
    ap.add_argument("--thresholds", default="1e-2,1e-3",
                    help="comma-separated fractions of the initial ||grad f||^2")
    ap.add_argument("--y", choices=("grad_norm_sq", "local_grad_norm_sq"), default="grad_norm_sq",
                    help="the column the thresholds apply to")
    args = ap.parse_args()
    try:
        thresholds = [float(t) for t in args.thresholds.split(",")]
    except ValueError:
        ap.error(f"--thresholds: not a list of numbers: {args.thresholds!r}")
    header = f"{'log':40} " + " ".join(f"{'rounds@'+format(t,'g'):>12} {'bits@'+format(t,'g'):>12}"
                                        for t in thresholds) + f" {'rounds':>8} {'final':>10}"
    print(header)
    for path in args.logs:
        try:
            _, hits, rounds, final = first_below(path, thresholds, args.y)
        except (OSError, ValueError, KeyError) as e:
            print(f"summarize: error: {e}", file=sys.stderr)
            return 1
        cells = []
        for t in thresholds:
            if t in hits:
                cells.append(f"{hits[t][0]:>12} {hits[t][1]:>12.0f}")
            else:
                cells.append(f"{'-':>12} {'-':>12}")
        print(f"{path[-40:]:40} " + " ".join(cells) + f" {rounds:>8} {final:>10.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
