#!/usr/bin/env python3
"""Writes a synthetic sparse LibSVM problem (for the memory figures in docs/RASPBERRY_PI.md):
ROWS rows with NNZ nonzeros each at distinct random indices in 1..DIM, values in [-1, 1]; the
first row also holds feature DIM, so the file's d is exactly DIM. Labels are ±1 from a planted
linear model (sign of a·w with w ~ N(0, 1), flipped with probability 0.05). Deterministic for a
seed. Python standard library only.

Usage: make_sparse.py OUT [--rows 2000] [--dim 100000] [--nnz 20] [--seed 1]"""

import argparse
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=100000)
    ap.add_argument("--nnz", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not (1 <= a.nnz <= a.dim) or a.rows < 1:
        ap.error("need rows >= 1 and 1 <= nnz <= dim")
    rng = random.Random(a.seed)
    w = {}
    with open(a.out, "w") as f:
        for r in range(a.rows):
            idx = set(rng.sample(range(1, a.dim + 1), a.nnz))
            if r == 0 and a.dim not in idx:
                idx.pop()
                idx.add(a.dim)
            row = sorted((j, round(rng.uniform(-1.0, 1.0), 6)) for j in idx)
            margin = sum(v * w.setdefault(j, rng.gauss(0.0, 1.0)) for j, v in row)
            label = 1 if margin >= 0 else -1
            if rng.random() < 0.05:
                label = -label
            f.write(("+1" if label > 0 else "-1") + " " +
                    " ".join(f"{j}:{v:g}" for j, v in row) + "\n")


if __name__ == "__main__":
    main()
