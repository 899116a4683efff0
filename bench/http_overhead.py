#!/usr/bin/python3
"""What --http costs the round loop: rounds/s with the HTTP view on and a client scraping
/metrics 10 times a second, against rounds/s without --http, in one invocation.

Runs are interleaved (off, on, on, off, off, on, ...) so drift in the machine's load hits both
modes alike. The rate of a run is taken from its CSV log between round 200 and the last round
(wall_s column), so the workers' start-up and joining are not part of it. The workers are
started by this script (not --spawn-local), so the coordinator's CPU time (user + system, from
wait4) is its own: CPU per round is the second figure, less sensitive to other load on the
machine than rounds/s.

Usage: bench/http_overhead.py [--build build] [--data data/heart_scale] [--reps 5]
                              [--rounds 20000] [--workers 4]
"""

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def rate(log, skip=200):
    with open(log) as f:
        rows = list(csv.DictReader(f))
    a, b = rows[min(skip, len(rows) // 10)], rows[-1]
    return (int(b["round"]) - int(a["round"])) / (float(b["wall_s"]) - float(a["wall_s"]))


def stderr_match(path, pattern):
    end = time.monotonic() + 60
    while time.monotonic() < end:
        with open(path) as f:
            m = re.search(pattern, f.read())
        if m:
            return m.group(1)
        time.sleep(0.01)
    sys.exit(f"http_overhead: no {pattern!r} in {path} within 60 s")


def poll_metrics(url, done, stats):
    """Scrapes /metrics every 100 ms until the run's last row is logged."""
    next_at = time.monotonic()
    while not done.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            stats["scrapes"] += 1
        except OSError as e:
            if not done.is_set():  # a scrape crossing the end of the run is not a failure
                stats["errors"].append(str(e))
        next_at += 0.1
        done.wait(max(0.0, next_at - time.monotonic()))


def last_round(log):
    with open(log, "rb") as f:
        lines = f.read().splitlines()
    return int(lines[-1].split(b",")[0]) if len(lines) > 1 else -1


def run(args, http, tmp, i):
    log = os.path.join(tmp, f"run{i}.csv")
    err = os.path.join(tmp, f"run{i}.err")
    cmd = [os.path.join(args.build, "coordinator", "marina-coordinator"), "--listen",
           "tcp://127.0.0.1:0", "--workers", str(args.workers), "--data", args.data, "--method",
           "marina", "--compressor", "randk:1", "--rounds", str(args.rounds), "--seed", "3",
           "--quiet", "--log", log]
    if http:
        # Lingering keeps the server up past the last row, where the scraper stops.
        cmd += ["--http", "127.0.0.1:0", "--http-linger-s", "0.5"]
    stats = {"scrapes": 0, "errors": []}
    workers, poller, done = [], None, threading.Event()
    with open(err, "w") as e:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=e)
        port = stderr_match(err, r"PUB tcp://127\.0\.0\.1:(\d+)")
        for w in range(args.workers):
            workers.append(subprocess.Popen(
                [os.path.join(args.build, "edge-worker", "marina-worker"), "--connect",
                 f"tcp://127.0.0.1:{port}", "--data", args.data, "--shard",
                 f"{w}/{args.workers}", "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if http:
            url = stderr_match(err, r"http: dashboard (http://127\.0\.0\.1:\d+/)")
            poller = threading.Thread(target=poll_metrics, args=(url + "metrics", done, stats))
            poller.start()
            # The scraper stops at the last row: scrapes refused while the process exits are
            # not part of the measurement.
            while last_round(log) < args.rounds:
                time.sleep(0.05)
            done.set()
            poller.join()
        _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): the rusage is wanted
        proc.returncode = os.waitstatus_to_exitcode(status)
        for w in workers:
            w.wait()
    if proc.returncode != 0:
        sys.exit(f"http_overhead: run {i} failed (exit {proc.returncode}); see {err}")
    cpu_us_per_round = (usage.ru_utime + usage.ru_stime) / args.rounds * 1e6
    return rate(log), cpu_us_per_round, stats


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default="build")
    p.add_argument("--data", default="data/heart_scale")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=20000)
    p.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    rates, cpus = {False: [], True: []}, {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="marina_http_bench_") as tmp:
        i = 0
        for rep in range(args.reps):
            order = (False, True) if rep % 2 == 0 else (True, False)
            for http in order:
                r, cpu, stats = run(args, http, tmp, i)
                i += 1
                rates[http].append(r)
                cpus[http].append(cpu)
                extra = ""
                if http:
                    extra = f", {stats['scrapes']} scrapes, {len(stats['errors'])} failed"
                    if stats["errors"]:
                        extra += f" (first: {stats['errors'][0]})"
                print(f"rep {rep} {'--http ' if http else 'no http'}: {r:6.0f} rounds/s, "
                      f"coordinator CPU {cpu:5.1f} us/round{extra}", flush=True)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    coff, con = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"median rounds/s: without --http {off:.0f}, with --http and /metrics at 10 Hz {on:.0f}"
          f"; ratio (with / without) {on / off:.3f}")
    print(f"median coordinator CPU per round: without {coff:.1f} us, with {con:.1f} us"
          f"; ratio (with / without) {con / coff:.3f}")


if __name__ == "__main__":
    main()
