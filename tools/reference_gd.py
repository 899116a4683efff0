#!/usr/bin/env python3
"""An independent implementation (Python standard library only) of distributed gradient
descent on the paper's problem, to check marina-sim's numbers: reads a LibSVM file, keeps the
first n*floor(N/n) rows (equal contiguous shards), runs x^{k+1} = x^k - gamma grad f(x^k) from
x^0 = 0 and compares loss and ||grad f||^2 of every row of a marina-sim/coordinator log.

  f(x) = (1/N') sum_t phi(y_t a_t^T x),  phi(m) = (1 - sigmoid(m))^2 or log(1 + e^-m)
"""

import argparse
import csv
import math
import sys


def read_libsvm(path):
    rows, labels, dim = [], [], 0
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            labels.append(float(parts[0]))
            feats = []
            for tok in parts[1:]:
                i, v = tok.split(":")
                i = int(i)
                dim = max(dim, i)
                if float(v) != 0.0:
                    feats.append((i - 1, float(v)))
            rows.append(feats)
    classes = sorted(set(labels))
    if classes == [0.0, 1.0]:
        labels = [1.0 if y == 1.0 else -1.0 for y in labels]
    elif classes == [1.0, 2.0]:
        labels = [1.0 if y == 2.0 else -1.0 for y in labels]
    return rows, labels, dim


def phi(loss, m):
    if loss == "nonconvex":
        t = 1.0 / (1.0 + math.exp(m))
        return t * t
    return math.log1p(math.exp(-m)) if m > 0 else -m + math.log1p(math.exp(m))


def dphi(loss, m):
    if loss == "nonconvex":
        s = 1.0 / (1.0 + math.exp(-m))
        t = 1.0 / (1.0 + math.exp(m))
        return -2.0 * s * t * t
    return -1.0 / (1.0 + math.exp(m))


def loss_and_grad(rows, labels, dim, x, loss):
    g = [0.0] * dim
    total = 0.0
    for feats, y in zip(rows, labels):
        m = y * sum(v * x[i] for i, v in feats)
        total += phi(loss, m)
        c = dphi(loss, m) * y
        for i, v in feats:
            g[i] += c * v
    n = len(rows)
    return total / n, [gi / n for gi in g]


def check_row(tool, log_name, k, row, refs, rtol):
    """The worst relative difference between the log row's columns and `refs` ({column:
    reference value}); None, after a message naming the first one, if it exceeds rtol."""
    worst = 0.0
    for name, ref in refs.items():
        try:
            got = float(row[name])
        except (KeyError, TypeError, ValueError):
            sys.exit(f"{tool}: {log_name}: row {k} has no {name} (a coordinator logs it only "
                     "when run with --data)")
        rel = abs(got - ref) / max(abs(ref), 1e-300)
        worst = max(worst, rel)
        if rel > rtol:
            print(f"{tool}: row {k}: {name} {got!r} vs reference {ref!r} "
                  f"(relative difference {rel:.3g} > {rtol:g})", file=sys.stderr)
            return None
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--gamma", type=float, required=True)
    ap.add_argument("--loss", default="nonconvex", choices=["nonconvex", "logistic"])
    ap.add_argument("--log", required=True, help="CSV log of a GD run to check")
    ap.add_argument("--rtol", type=float, default=1e-9)
    args = ap.parse_args()

    rows, labels, dim = read_libsvm(args.data)
    keep = len(rows) // args.workers * args.workers
    rows, labels = rows[:keep], labels[:keep]
    with open(args.log, newline="") as fh:
        log = list(csv.DictReader(fh))
    x = [0.0] * dim
    worst = 0.0
    for k, row in enumerate(log):
        f, g = loss_and_grad(rows, labels, dim, x, args.loss)
        gn = sum(v * v for v in g)
        rel = check_row("reference_gd", args.log, k, row, {"loss": f, "grad_norm_sq": gn},
                        args.rtol)
        if rel is None:
            return 1
        worst = max(worst, rel)
        x = [xi - args.gamma * gi for xi, gi in zip(x, g)]
    print(f"reference_gd: {len(log)} rows agree, worst relative difference {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
