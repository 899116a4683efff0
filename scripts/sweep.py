#!/usr/bin/env python3
"""Stepsize sweep: the fair second comparison beside the theory-stepsize runs of
scripts/reproduce-fig1.sh. For every method, gamma = theory x 2^j, j = 0, 1, 2, ..., until the
run diverges (marina-sim exits with "diverged at round"), or a step brings no improvement in the
bits per worker needed to reach 1e-2 of the initial ||grad f||^2 (or, while 1e-2 is not
reached, in the final ||grad f||^2). A run that reaches 1e-2 with a loss above f(x^0) has
collapsed (a huge step into the flat part of the sigmoid, where the gradient vanishes) and
counts as a divergence. Reports, per method, the theory gamma with its bits to 1e-2
and the best gamma with its bits to 1e-2. The theory gamma is read from marina-sim's start-up
line "... gamma = X".

  scripts/sweep.py [--datasets heart_scale krvskp] [--methods NAME...] [--rounds 20000]
                   [--out DIR] [--max-j 16]

A --datasets entry with a "/" is a LibSVM file of your own (--datasets ./mine.libsvm).

Settings: n = 5, RandK K = 1 for every compressed method (PermK for "marina-permk"), seed 1,
p theoretical (for the MARINA family p does not depend on gamma), b' = max(1, round(m/100)) for
the VR methods, r = 3 clients for PP-MARINA. Each run stops at 1e-2 or after --rounds rounds."""

import argparse
import csv
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 5
# The numeric line ("omega = 12, ..., gamma = 0.356987"), not the formula line before it
# ("gamma = 1/(L(1+sqrt(...)))").
GAMMA_RE = re.compile(r"\bgamma = ([0-9.eE+-]+)(?:,|[ \t]*$)", re.MULTILINE)


def data_file(ds):
    """A --datasets entry with a "/" is a LibSVM file of the user's own; else a fetched one."""
    if "/" in ds:
        return ds
    return os.path.join(REPO, "data", "heart_scale" if ds == "heart_scale" else ds + ".libsvm")


def data_name(ds):
    """How an entry is named in the logs and the table: a file by its name, less .libsvm/.txt."""
    base = os.path.basename(ds)
    for ext in (".libsvm", ".txt"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base


def rows_per_worker(path):
    with open(path) as fh:
        rows = sum(1 for line in fh if line.strip() and not line.lstrip().startswith("#"))
    return rows // N


def methods_for(m):
    b = max(1, (m + 50) // 100)
    return [
        ("gd", ["--method", "gd"]),
        ("marina", ["--method", "marina", "--compressor", "randk:1"]),
        ("marina-permk", ["--method", "marina", "--compressor", "permk"]),
        ("vr-marina", ["--method", "vr-marina", "--compressor", "randk:1", "--batch", str(b)]),
        ("pp-marina", ["--method", "pp-marina", "--compressor", "randk:1"]),
        ("diana", ["--method", "diana", "--compressor", "randk:1"]),
        ("vr-diana", ["--method", "vr-diana", "--compressor", "randk:1", "--batch", str(b)]),
    ]


def run(sim, ds, args, gamma, rounds, log):
    cmd = [sim, "--data", data_file(ds), "--workers", str(N), "--rounds", str(rounds),
           "--seed", "1", "--stop-at", "1e-2", "--gamma", gamma, "--log", log] + args
    p = subprocess.run(cmd, capture_output=True, text=True)
    text = p.stdout + p.stderr
    if "diverged at round" in text:
        return {"diverged": True, "text": text}
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text}")
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    g0, f0 = float(rows[0]["grad_norm_sq"]), float(rows[0]["loss"])
    bits = rounds_hit = loss_hit = None
    for row in rows:
        if float(row["grad_norm_sq"]) <= 1e-2 * g0:
            bits = float(row["bits_per_worker"])
            rounds_hit = int(row["round"])
            loss_hit = float(row["loss"])
            break
    final = float(rows[-1]["grad_norm_sq"]) / g0
    # A stepsize so large that the iterate lands where the sigmoid is flat also makes
    # ||grad f|| small, with a loss worse than at x^0: that is a collapse, not convergence, and
    # ends the sweep like a divergence.
    if loss_hit is not None and loss_hit > f0:
        return {"diverged": True, "collapsed": True, "loss": loss_hit, "text": text}
    return {"diverged": False, "bits": bits, "final": final, "text": text,
            "rounds": rounds_hit, "loss": loss_hit}


def better(a, b):
    """Whether result a improves on result b (None: b is absent)."""
    if b is None or b["diverged"]:
        return not a["diverged"]
    if a["diverged"]:
        return False
    if a["bits"] is not None and b["bits"] is not None:
        return a["bits"] < b["bits"]
    if a["bits"] is not None:
        return True
    if b["bits"] is not None:
        return False
    return a["final"] < b["final"]


def fmt_bits(r):
    if r is None or r.get("collapsed"):
        return f"collapsed (loss {r['loss']:.3g} > f(x0))" if r else "-"
    if r["diverged"]:
        return "diverged"
    if r["bits"] is None:
        return f"not reached ({r['final']:.3g} of initial)"
    return f"{r['bits']:,.0f}".replace(",", " ")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["heart_scale", "krvskp"])
    ap.add_argument("--methods", nargs="+", metavar="NAME",
                    help="only these (gd marina marina-permk vr-marina pp-marina diana vr-diana)")
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--out", default=os.path.join(REPO, "build", "sweep"))
    ap.add_argument("--max-j", type=int, default=16)
    ap.add_argument("--sim", default=os.path.join(REPO, "build", "simulator", "marina-sim"))
    args = ap.parse_args()
    known = [name for name, _ in methods_for(100)]
    for name in args.methods or []:
        if name not in known:
            ap.error(f"--methods: unknown method '{name}' (one of {' '.join(known)})")
    # Logs are named after the data: two entries with one name would overwrite each other's.
    seen = {}
    for entry in args.datasets:
        name = data_name(entry)
        if name in seen:
            ap.error(f"--datasets: '{seen[name]}' and '{entry}' are both named '{name}' "
                     "(their logs would overwrite each other's; rename one)")
        seen[name] = entry
    for ds in args.datasets:
        if not os.path.isfile(data_file(ds)):
            ap.error(f"--datasets: no file {data_file(ds)}"
                     + ("" if "/" in ds else " (scripts/fetch-data.sh fetches the named ones)"))
    os.makedirs(args.out, exist_ok=True)
    table = []
    for entry in args.datasets:
        ds = data_name(entry)
        m = rows_per_worker(data_file(entry))
        for name, margs in methods_for(m):
            if args.methods and name not in args.methods:
                continue
            # j = 0 with --gamma auto: the run prints the theory gamma, which sets the scale.
            log0 = os.path.join(args.out, f"{ds}-{name}-j0.csv")
            theory = run(args.sim, entry, margs, "auto", args.rounds, log0)
            found = GAMMA_RE.findall(theory["text"])
            if not found:
                raise RuntimeError(f"{ds} {name}: no 'gamma = ' in marina-sim's output")
            g_theory = float(found[0])
            best, best_j, prev = theory, 0, theory
            tried = [(0, theory)]
            for j in range(1, args.max_j + 1):
                log = os.path.join(args.out, f"{ds}-{name}-j{j}.csv")
                res = run(args.sim, entry, margs, repr(g_theory * 2 ** j), args.rounds, log)
                tried.append((j, res))
                print(f"{ds:12} {name:13} j={j:2} gamma={g_theory * 2 ** j:.4g} "
                      f"bits@1e-2={fmt_bits(res)}", file=sys.stderr, flush=True)
                if better(res, best):
                    best, best_j = res, j
                if res["diverged"] or not better(res, prev):
                    break
                prev = res
            table.append((ds, name, g_theory, theory, best_j, best, tried))

    print("| data | method | γ theory | bits/worker to 1e-2 (theory γ) | best γ (× theory) "
          "| bits/worker to 1e-2 (best γ) | loss there | gain | stopped because |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ds, name, g, theory, j, best, tried in table:
        gain = ""
        if theory["bits"] and best["bits"]:
            gain = f"{theory['bits'] / best['bits']:.1f}×"
        last_j, last = tried[-1]
        why = (f"collapsed at 2^{last_j}" if last.get("collapsed")
               else f"diverged at 2^{last_j}" if last["diverged"]
               else f"no gain at 2^{last_j}" if last_j < args.max_j or len(tried) == 1
               else f"cap 2^{args.max_j}")
        loss = f"{best['loss']:.3g}" if best.get("loss") is not None else "–"
        print(f"| {ds} | {name} | {g:.3g} | {fmt_bits(theory)} | {g * 2 ** j:.3g} (2^{j}) "
              f"| {fmt_bits(best)} | {loss} | {gain} | {why} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
