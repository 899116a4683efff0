#!/usr/bin/env python3
"""Drives the real binaries on loopback (127.0.0.1 only) and measures what a round costs.

  bench/loopback.py latency [--workers 1 8 64] [--rounds 2000] [--repeat 3] [--dim 16]
                            [--compressor randk:1] [--p P]
      marina-coordinator + n marina-worker processes (MARINA, RandK K = 1, a tiny synthetic
      problem: 4 rows per worker, d = 16; or --dim, --compressor, --p) against
      marina_zmq_baseline (raw cppzmq PUB -> SUB + DEALER -> ROUTER, same n, the same mean
      message sizes, and one pass of the step x = x_prev - gamma g over d doubles on each side
      per round: --step-dim), run alternately (--repeat trials each) in this invocation.
      Per-round times of the runtime come from the coordinator's CSV (wall_s, the time since
      the start at which each row was written); the first 10% of the rounds are warm-up and
      dropped. Prints p50 and p99 of both and their ratio (--json FILE: as JSON too).
  bench/loopback.py scale [--workers 256] [--rounds 500]
      the same tiny problem with many worker processes: rounds/s and the coordinator's peak
      RSS (/usr/bin/time -v).
  bench/loopback.py dense [--workers 16] [--dim 1000000] [--rounds 20]
      GD (every round a dense sync: d doubles up from each worker and down to each) on a
      synthetic sparse LibSVM file with d features: rounds/s and coordinator peak RSS.
  bench/loopback.py cpu [--workers 8 64] [--rounds 3000]
      where the CPU of a latency round goes: the coordinator's and the workers' user + system
      time per round (/usr/bin/time -v; a run minus a run of a tenth of the rounds, so start-up
      and joins cancel out) against the raw exchange's, measured the same way (the publishing
      process alone: marina_zmq_baseline's hub_cpu_us; hub and workers: two runs of it).
  bench/loopback.py threads [--workers 64] [--window 4]
      where the CPU of a latency round goes, thread by thread, in the steady state: after a
      warm-up, the run time of every thread of the coordinator and the workers (and of the raw
      exchange's processes) over a --window of seconds, from /proc/PID/task/TID/schedstat,
      split into the main threads and ZeroMQ's I/O threads, per round. Runtime rounds are
      counted from the CSV log; the raw exchange's as the window over its mean round time.
  bench/loopback.py worker [--dim 100000] [--rows 2000] [--workers 2] [--rounds 300]
      MARINA RandK K = 1 on a sparse problem with d features: per-round time, the workers' CPU
      per round (user + system time of a run minus that of a run of a tenth of the rounds) and
      each worker's peak RSS (/usr/bin/time -v), to check the worker-memory formula of
      docs/PERFORMANCE.md.

The coordinator runs without --data, so it evaluates nothing for the log: its rounds are the
protocol's alone. Every process is started and stopped here; nothing listens beyond 127.0.0.1.

--same-layout (any command) starts every process, the runtime's and the raw exchange's alike,
without address-space randomization (personality ADDR_NO_RANDOMIZE, as `setarch -R`), so that
all of them map a binary or a library at the same addresses. Many processes taking turns on
two cores otherwise each find the CPU's branch predictors and decoded-instruction cache
trained on another process's addresses; the more distinct code a round runs, the more that
costs. A worker alone on its device does not pay it (docs/PERFORMANCE.md, round latency,
"One address layout or many").
"""

import argparse
import ctypes
import csv
import glob
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_dir():
    return os.environ.get("BUILD", os.path.join(REPO, "build"))


def binary(*parts):
    path = os.path.join(build_dir(), *parts)
    if not os.access(path, os.X_OK):
        sys.exit(f"loopback: {path} missing: build first (cmake --build --preset default)")
    return path


def free_port_pair():
    """A port P with P and P+1 free on 127.0.0.1 (the coordinator binds both). Below the
    kernel's ephemeral range (Linux: from 32768), so that no outgoing connection of the many
    processes started meanwhile takes it before the coordinator binds it."""
    low = 32767
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low = int(fh.read().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        p = random.randint(min(20000, low - 2000), low - 1)
        ok = True
        for q in (p, p + 1):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    sys.exit("loopback: no free port pair")


def write_libsvm(path, rows, dim, nnz_per_row, seed):
    """A reproducible sparse classification problem; the last row names feature `dim` so that
    the file has exactly d features."""
    rng = random.Random(seed)
    lines, labels = [], []
    for i in range(rows):
        k = min(nnz_per_row, dim)
        cols = sorted(rng.sample(range(1, dim + 1), k))
        if i == rows - 1 and cols[-1] != dim:
            cols[-1] = dim
            cols = sorted(set(cols))
        labels.append(1 if rng.random() < 0.5 else -1)
        lines.append(" ".join(f"{c}:{rng.uniform(-1, 1):.4f}" for c in cols))
    if rows > 1 and len(set(labels)) == 1:
        labels[-1] = -labels[-1]  # a worker refuses a shard of one class
    with open(path, "w") as fh:
        for label, line in zip(labels, lines):
            fh.write(f"{label} {line}\n")


def peak_rss_kib(time_file):
    with open(time_file) as fh:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", fh.read())
    return int(m.group(1)) if m else None


def run_cluster(data, n, rounds, algo, tmp, timed_coordinator=False, timed_workers=False,
                timeout=3600):
    """Coordinator + n workers on loopback; returns (rows of the CSV log, coordinator peak RSS
    KiB or None, list of worker peak RSS KiB or None, wall seconds)."""
    port = free_port_pair()
    log = os.path.join(tmp, f"coord-{n}.csv")
    ctime = os.path.join(tmp, "coord.time")
    coord = [binary("coordinator", "marina-coordinator"), "--listen", f"tcp://127.0.0.1:{port}",
             "--workers", str(n), "--rounds", str(rounds), "--seed", "1", "--log", log,
             "--quiet", "--join-timeout-ms", "300000", "--round-timeout-ms", "20000"] + algo
    if timed_coordinator:
        coord = ["/usr/bin/time", "-v", "-o", ctime] + coord
    t0 = time.monotonic()
    cp = subprocess.Popen(coord, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = []
    for i in range(n):
        cmd = [binary("edge-worker", "marina-worker"), "--connect", f"tcp://127.0.0.1:{port}",
               "--data", data, "--shard", f"{i}/{n}", "--quiet"]
        if timed_workers:
            cmd = ["/usr/bin/time", "-v", "-o", os.path.join(tmp, f"worker-{i}.time")] + cmd
        workers.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True))
    # A worker that fails (a data file it refuses, say) would leave the coordinator waiting
    # for its join until the join timeout: stop at once and say what the worker said.
    # communicate() in short slices keeps reading the coordinator's stderr meanwhile (a full
    # pipe would stall it) and loses nothing between them.
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, err = cp.communicate(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        failed = next((w for w in workers if w.poll() not in (None, 0)), None)
        if failed is not None or time.monotonic() > deadline:
            cp.kill()
            for w in workers:
                w.kill()
            cp.communicate()
            if failed is None:
                raise subprocess.TimeoutExpired(coord, timeout)
            sys.exit(f"loopback: a worker failed ({failed.returncode}):\n"
                     f"{failed.communicate()[1]}")
    wall = time.monotonic() - t0
    worker_err = []
    for w in workers:
        try:
            worker_err.append(w.communicate(timeout=60)[1])
        except subprocess.TimeoutExpired:
            w.kill()
            worker_err.append("")
    if cp.returncode != 0:
        sys.exit(f"loopback: coordinator failed ({cp.returncode}):\n{err}")
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    crss = peak_rss_kib(ctime) if timed_coordinator else None
    wrss = ([peak_rss_kib(os.path.join(tmp, f"worker-{i}.time")) for i in range(n)]
            if timed_workers else None)
    return rows, crss, wrss, wall, worker_err


def cpu_seconds(time_file):
    """User + system seconds from a /usr/bin/time -v report."""
    with open(time_file) as fh:
        text = fh.read()
    return sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", text))


def round_times(rows, warmup_fraction=0.1):
    """Per-round seconds from wall_s (row k is written when round k−1 closed)."""
    t = [float(r["wall_s"]) for r in rows]
    d = [b - a for a, b in zip(t, t[1:])]
    return d[int(len(d) * warmup_fraction):]


def pct(v, q):
    s = sorted(v)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def tiny_problem(tmp, n, dim=16):
    path = os.path.join(tmp, f"tiny-{n}-{dim}.libsvm")
    write_libsvm(path, rows=4 * n, dim=dim, nnz_per_row=6, seed=n)
    return path


def cmd_latency(args):
    print("| n | runtime p50 (µs) | runtime p99 (µs) | raw ZeroMQ p50 (µs) | raw ZeroMQ p99 (µs) "
          "| ratio p50 | ratio p99 | bytes down / up per worker and round |")
    print("|---|---|---|---|---|---|---|---|")
    cells = []
    algo = ["--method", "marina", "--compressor", args.compressor]
    if args.p is not None:
        algo += ["--p", str(args.p)]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            data = tiny_problem(tmp, n, args.dim)
            # The machine is shared: trials alternate runtime / baseline so that a burst of
            # someone else's load lands on both, and the percentiles pool every trial's rounds.
            rt, bt, downs, ups = [], [], [], []
            for _ in range(args.repeat):
                rows, _, _, _, _ = run_cluster(data, n, args.rounds, algo, tmp)
                rt += round_times(rows)
                r0, r1 = rows[len(rows) // 10], rows[-1]
                k = int(r1["round"]) - int(r0["round"])
                down = (float(r1["wire_bytes_down"]) - float(r0["wire_bytes_down"])) / (k * n)
                up = (float(r1["wire_bytes_up"]) - float(r0["wire_bytes_up"])) / (k * n)
                downs.append(down)
                ups.append(up)
                times = os.path.join(tmp, "baseline.times")
                out = subprocess.run(
                    [binary("bench", "marina_zmq_baseline"), "--workers", str(n), "--rounds",
                     str(int(args.rounds * 0.9)), "--warmup", str(args.rounds // 10), "--down",
                     str(round(down)), "--up", str(round(up)), "--times", times,
                     "--step-dim", str(args.dim)],
                    capture_output=True, text=True, timeout=3600)
                if out.returncode != 0:
                    sys.exit(f"loopback: baseline failed: {out.stdout}{out.stderr}")
                with open(times) as fh:
                    bt += [float(line) for line in fh if line.strip()]
            p50, p99 = pct(rt, 0.5) * 1e6, pct(rt, 0.99) * 1e6
            bp50, bp99 = pct(bt, 0.5) * 1e6, pct(bt, 0.99) * 1e6
            down, up = sum(downs) / len(downs), sum(ups) / len(ups)
            print(f"| {n} | {p50:.0f} | {p99:.0f} | {bp50:.0f} | {bp99:.0f} | {p50 / bp50:.2f} "
                  f"| {p99 / bp99:.2f} | {down:.0f} / {up:.0f} |", flush=True)
            cells.append({"n": n, "p50_us": p50, "p99_us": p99, "raw_p50_us": bp50,
                          "raw_p99_us": bp99, "ratio_p50": p50 / bp50, "ratio_p99": p99 / bp99,
                          "bytes_down": down, "bytes_up": up, "rounds": args.rounds,
                          "repeat": args.repeat, "dim": args.dim,
                          "compressor": args.compressor, "p": args.p})
            if args.json:  # after every n, so that an interrupted run keeps what it measured
                with open(args.json + ".tmp", "w") as fh:
                    json.dump(cells, fh, indent=1)
                os.replace(args.json + ".tmp", args.json)


def cmd_cpu(args):
    print("| n | coordinator µs/round | raw hub µs/round | workers µs/round (each) "
          "| raw workers µs/round (each) | all, ratio to raw |")
    print("|---|---|---|---|---|---|")
    algo = ["--method", "marina", "--compressor", "randk:1"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            data = tiny_problem(tmp, n)
            long, short = args.rounds, max(1, args.rounds // 10)
            coord, fleet, sizes = {}, {}, None
            for rounds in (long, short):
                rows, _, _, _, _ = run_cluster(data, n, rounds, algo, tmp,
                                               timed_coordinator=True, timed_workers=True)
                coord[rounds] = cpu_seconds(os.path.join(tmp, "coord.time"))
                fleet[rounds] = sum(cpu_seconds(os.path.join(tmp, f"worker-{i}.time"))
                                    for i in range(n))
                if sizes is None:
                    r0, r1 = rows[len(rows) // 10], rows[-1]
                    k = int(r1["round"]) - int(r0["round"])
                    sizes = [round((float(r1[c]) - float(r0[c])) / (k * n))
                             for c in ("wire_bytes_down", "wire_bytes_up")]
            raw, hub = {}, None
            for rounds in (long, short):
                tf = os.path.join(tmp, "baseline.time")
                out = subprocess.run(
                    ["/usr/bin/time", "-v", "-o", tf, binary("bench", "marina_zmq_baseline"),
                     "--workers", str(n), "--rounds", str(rounds), "--warmup", "0", "--down",
                     str(sizes[0]), "--up", str(sizes[1])],
                    capture_output=True, text=True, timeout=3600)
                if out.returncode != 0:
                    sys.exit(f"loopback: baseline failed: {out.stdout}{out.stderr}")
                raw[rounds] = cpu_seconds(tf)
                if hub is None:
                    hub = float(re.search(r"hub_cpu_us=([0-9.]+)", out.stdout).group(1))
            k = long - short
            c = (coord[long] - coord[short]) / k * 1e6
            w = (fleet[long] - fleet[short]) / k * 1e6
            r = (raw[long] - raw[short]) / k * 1e6
            print(f"| {n} | {c:.0f} | {hub:.0f} | {w:.0f} ({w / n:.1f}) | {r - hub:.0f} "
                  f"({(r - hub) / n:.1f}) | {(c + w) / r:.2f} |", flush=True)


def thread_times(pids):
    """{tid path: (pid, "main" | "I/O" | "other", ns on CPU)} for every thread of `pids`."""
    out = {}
    for pid in pids:
        for task in glob.glob(f"/proc/{pid}/task/*"):
            try:
                with open(task + "/comm") as fh:
                    comm = fh.read().strip()
                with open(task + "/schedstat") as fh:
                    ns = int(fh.read().split()[0])
            except OSError:  # the thread ended
                continue
            role = ("main" if task.endswith(f"/{pid}") else
                    "I/O" if comm.startswith("ZMQbg/IO") else "other")
            out[task] = (pid, role, ns)
    return out


def thread_split(before, after, coordinator):
    """ns on CPU over the window by kind: coordinator/workers x main/I/O (ZeroMQ's reaper and
    the like, which hardly run, are left out)."""
    kinds = {}
    for task, (pid, role, ns) in after.items():
        if task not in before or role == "other":
            continue
        kind = ("coordinator " if pid == coordinator else "workers ") + role
        total, count = kinds.get(kind, (0, 0))
        kinds[kind] = (total + ns - before[task][2], count + 1)
    return kinds


def cmd_threads(args):
    print("| n | thread kind | runtime µs/round (per thread) | raw µs/round (per thread) | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            data = tiny_problem(tmp, n)
            port = free_port_pair()
            log = os.path.join(tmp, "threads.csv")
            coord = subprocess.Popen(
                [binary("coordinator", "marina-coordinator"), "--listen",
                 f"tcp://127.0.0.1:{port}", "--workers", str(n), "--rounds", "100000000",
                 "--seed", "1", "--log", log, "--quiet", "--join-timeout-ms", "300000",
                 "--method", "marina", "--compressor", "randk:1"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "coord.err"), "w"))
            workers = [subprocess.Popen(
                [binary("edge-worker", "marina-worker"), "--connect", f"tcp://127.0.0.1:{port}",
                 "--data", data, "--shard", f"{i}/{n}", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n)]
            pids = [coord.pid] + [w.pid for w in workers]

            def rows():
                try:
                    with open(log) as fh:
                        return sum(1 for _ in fh)
                except FileNotFoundError:  # the coordinator has not started its log
                    return 0
            try:
                time.sleep(args.warmup)
                r0, before = rows(), thread_times(pids)
                time.sleep(args.window)
                r1, after = rows(), thread_times(pids)
            finally:
                for p in [coord] + workers:
                    p.kill()
                    p.wait()
            ours = thread_split(before, after, coord.pid)
            ours_rounds = r1 - r0
            if ours_rounds <= 0:
                with open(os.path.join(tmp, "coord.err")) as fh:
                    err = fh.read().strip()
                # e.g. a port taken between free_port_pair() and the coordinator's bind
                sys.exit("loopback: no round closed in the window"
                         + (f"; the coordinator said: {err}" if err else ""))
            with open(log, newline="") as fh:
                logged = list(csv.DictReader(fh))
            first, last = logged[len(logged) // 2], logged[-1]
            k = (int(last["round"]) - int(first["round"])) * n
            down, up = (round((float(last[c]) - float(first[c])) / k)
                        for c in ("wire_bytes_down", "wire_bytes_up"))
            # The raw exchange, sized to outlast warm-up and window even at twice the runtime's
            # rate (it is killed after the window).
            mean = args.window / ours_rounds
            raw_rounds = int(2 * (args.warmup + args.window + 2) / mean)
            base = subprocess.Popen(
                [binary("bench", "marina_zmq_baseline"), "--workers", str(n), "--rounds",
                 str(raw_rounds), "--warmup", "0", "--down", str(down), "--up", str(up)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(args.warmup)
            pids = [base.pid] + [int(p) for p in subprocess.run(
                ["pgrep", "-P", str(base.pid)], capture_output=True, text=True).stdout.split()]
            before = thread_times(pids)
            t0 = time.monotonic()
            time.sleep(args.window)
            after = thread_times(pids)
            window = time.monotonic() - t0
            if base.poll() is not None:
                sys.exit("loopback: the raw exchange ended before the window did")
            out, err = base.communicate(timeout=3600)
            if base.returncode != 0:
                sys.exit(f"loopback: baseline failed: {out}{err}")
            raw = thread_split(before, after, base.pid)
            # Its mean round over all its rounds, the window's among them.
            raw_mean_us = float(re.search(r"mean_us=([0-9.]+)", out).group(1))
            raw_in_window = window * 1e6 / raw_mean_us
            total_ours = total_raw = 0.0
            for kind in ("coordinator main", "coordinator I/O", "workers main", "workers I/O"):
                (a, ca), (b, cb) = ours.get(kind, (0, 1)), raw.get(kind, (0, 1))
                a_us, b_us = a / 1e3 / ours_rounds, b / 1e3 / raw_in_window
                total_ours += a_us
                total_raw += b_us
                print(f"| {n} | {kind} | {a_us:.1f} ({a_us / ca:.2f}) | {b_us:.1f} ({b_us / cb:.2f}) "
                      f"| {a_us / b_us if b_us else float('nan'):.2f} |", flush=True)
            print(f"| {n} | all | {total_ours:.0f} | {total_raw:.0f} | {total_ours / total_raw:.2f} |"
                  f" (rounds: {ours_rounds / args.window:.0f}/s and {1e6 / raw_mean_us:.0f}/s)",
                  flush=True)


def cmd_scale(args):
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            data = tiny_problem(tmp, n)
            rows, crss, _, wall, _ = run_cluster(
                data, n, args.rounds, ["--method", "marina", "--compressor", "randk:1"], tmp,
                timed_coordinator=True)
            rt = round_times(rows)
            print(f"scale: n = {n}: {len(rt) / sum(rt):.1f} rounds/s (p50 {pct(rt, 0.5) * 1e3:.2f} ms,"
                  f" p99 {pct(rt, 0.99) * 1e3:.2f} ms per round), coordinator peak RSS "
                  f"{crss / 1024:.1f} MiB, whole run incl. start-up {wall:.1f} s", flush=True)


def cmd_dense(args):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "wide.libsvm")
        write_libsvm(data, rows=4 * args.workers, dim=args.dim, nnz_per_row=50, seed=7)
        rows, crss, wrss, wall, _ = run_cluster(
            data, args.workers, args.rounds, ["--method", "gd", "--gamma", "1"], tmp,
            timed_coordinator=True, timed_workers=True)
        rt = round_times(rows, warmup_fraction=0.2)
        r0, r1 = rows[1], rows[-1]
        k = int(r1["round"]) - int(r0["round"])
        mb = (float(r1["wire_bytes_down"]) + float(r1["wire_bytes_up"]) -
              float(r0["wire_bytes_down"]) - float(r0["wire_bytes_up"])) / k / 2**20
        print(f"dense: n = {args.workers}, d = {args.dim}: {len(rt) / sum(rt):.2f} rounds/s "
              f"(p50 {pct(rt, 0.5) * 1e3:.0f} ms per round, {mb:.0f} MiB on the wire per round), "
              f"coordinator peak RSS {crss / 1024:.0f} MiB, worker peak RSS "
              f"{max(wrss) / 1024:.0f} MiB (max of {len(wrss)})", flush=True)


def cmd_worker(args):
    with tempfile.TemporaryDirectory() as tmp:
        for dim in args.dim:
            data = os.path.join(tmp, f"sparse-{dim}.libsvm")
            write_libsvm(data, rows=args.rows * args.workers, dim=dim, nnz_per_row=args.nnz,
                         seed=11)
            rows, crss, wrss, wall, errs = run_cluster(
                data, args.workers, args.rounds,
                ["--method", "marina", "--compressor", "randk:1"], tmp, timed_workers=True)
            cpu_long = [cpu_seconds(os.path.join(tmp, f"worker-{i}.time"))
                        for i in range(args.workers)]
            # A run of a tenth of the rounds: the difference is the rounds' CPU without the
            # start-up (reading the shard, its statistics, joining).
            short = max(1, args.rounds // 10)
            run_cluster(data, args.workers, short,
                        ["--method", "marina", "--compressor", "randk:1"], tmp, timed_workers=True)
            cpu_short = [cpu_seconds(os.path.join(tmp, f"worker-{i}.time"))
                         for i in range(args.workers)]
            per_round = sorted((a - b) / (args.rounds - short) for a, b in zip(cpu_long, cpu_short))
            rt = round_times(rows)
            full = [float(b["wall_s"]) - float(a["wall_s"]) for a, b in zip(rows, rows[1:])
                    if b.get("full_sync") == "1"]
            self_rss = [int(m) for e in errs for m in re.findall(r"peak RSS (\d+) KiB", e)]
            print(f"worker: d = {dim}, {args.rows} rows x {args.nnz} nnz per worker, "
                  f"n = {args.workers}: p50 {pct(rt, 0.5) * 1e3:.3f} ms per round "
                  f"(p99 {pct(rt, 0.99) * 1e3:.3f} ms; {len(full)} full-sync rounds), worker CPU "
                  f"{per_round[len(per_round) // 2] * 1e3:.3f} ms per round (median of "
                  f"{len(per_round)}; start-up {min(cpu_short) * 1e3:.0f} ms CPU with {short} "
                  f"rounds), worker peak RSS {max(wrss) / 1024:.1f} MiB (/usr/bin/time), "
                  f"{max(self_rss) / 1024 if self_rss else float('nan'):.1f} MiB (its own "
                  f"report)", flush=True)


ADDR_NO_RANDOMIZE = 0x0040000  # <linux/personality.h>


def use_same_layout():
    """Every process exec'd from here on (children inherit the personality) is laid out without
    randomization."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.personality.argtypes = [ctypes.c_ulong]
    current = libc.personality(0xFFFFFFFF)  # query
    if current == -1 or libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
        err = ctypes.get_errno()
        sys.exit(f"loopback: --same-layout: personality(ADDR_NO_RANDOMIZE) failed: "
                 f"{os.strerror(err)} (a container's seccomp profile may forbid it)")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--same-layout", action="store_true",
                        help="start every process without address-space randomization")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("latency", parents=[common])
    a.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64])
    a.add_argument("--rounds", type=int, default=2000)
    a.add_argument("--repeat", type=int, default=3, help="alternating trials of each")
    a.add_argument("--dim", type=int, default=16,
                   help="features of the synthetic problem (4 rows of 6 nonzeros per worker)")
    a.add_argument("--compressor", default="randk:1")
    a.add_argument("--p", type=float,
                   help="MARINA's full-sync probability (default: the theory's, K/d for "
                        "RandK); at large d a tiny p keeps the dense rounds out of the p99")
    a.add_argument("--json", metavar="FILE",
                   help="also write the cells as JSON (what bench/targets.py reads)")
    a = sub.add_parser("cpu", parents=[common])
    a.add_argument("--workers", type=int, nargs="+", default=[8, 64])
    a.add_argument("--rounds", type=int, default=3000)
    a = sub.add_parser("threads", parents=[common])
    a.add_argument("--workers", type=int, nargs="+", default=[64])
    a.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    a.add_argument("--window", type=float, default=4.0, help="seconds measured")
    a = sub.add_parser("scale", parents=[common])
    a.add_argument("--workers", type=int, nargs="+", default=[256])
    a.add_argument("--rounds", type=int, default=500)
    a = sub.add_parser("dense", parents=[common])
    a.add_argument("--workers", type=int, default=16)
    a.add_argument("--dim", type=int, default=1_000_000)
    a.add_argument("--rounds", type=int, default=20)
    a = sub.add_parser("worker", parents=[common])
    a.add_argument("--dim", type=int, nargs="+", default=[100_000])
    a.add_argument("--rows", type=int, default=2000)
    a.add_argument("--nnz", type=int, default=20)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    if args.same_layout:
        use_same_layout()
    layout = "one for every process" if args.same_layout else "randomized per process"
    print(f"address layout: {layout}", flush=True)
    {"latency": cmd_latency, "cpu": cmd_cpu, "threads": cmd_threads, "scale": cmd_scale,
     "dense": cmd_dense, "worker": cmd_worker}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
