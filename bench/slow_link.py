#!/usr/bin/env python3
"""Time to accuracy on a slow link: the coordinator and n = 5 workers each in a network
namespace of their own, every worker joined to the coordinator's namespace by a veth pair whose
worker end (the worker's uplink) is shaped with

    tc qdisc add dev VETH root tbf rate RATE burst 32kbit latency 400ms

for RATE in 1mbit and 100kbit (the downlink is not shaped). Reports the wall-clock time from
round 0 until ||grad f(x^k)||^2 <= 1e-2 of its initial value (marina-coordinator --stop-at 1e-2
--data, which evaluates the exact ||grad f||^2 for the log) for MARINA, DIANA (RandK K = 1) and
GD, theoretical stepsizes, on kr-vs-kp and supermarket.

  bench/slow_link.py [--rates 1mbit 100kbit] [--datasets krvskp supermarket]
                     [--methods marina diana gd] [--rounds 20000] [--time-cap 240]

A method is NAME (RandK K = 1 unless it is gd) or NAME:COMPRESSOR, e.g. marina:randk:10.

Runs are capped at --rounds rounds and --time-cap seconds (the coordinator then gets SIGTERM,
closes its log and exits); a run that did not reach 1e-2 reports how far it got. Needs root,
`ip netns` and `tc` (iproute2); without them it says so and exits 0 (skipped). The addresses
(10.231.I.0/30) exist only inside the namespaces this script creates and deletes.
"""

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 5
PORT = 5555
PREFIX = f"mrn{os.getpid() % 10000}"  # namespace names unique to this run


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def coord_ns():
    return f"{PREFIX}c"


def worker_ns(i):
    return f"{PREFIX}w{i}"


def available():
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip") or not shutil.which("tc"):
        return "ip or tc (iproute2) not installed"
    probe = f"{PREFIX}probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


def setup(rate):
    sh("ip", "netns", "add", coord_ns())
    sh("ip", "netns", "exec", coord_ns(), "ip", "link", "set", "lo", "up")
    for i in range(N):
        ns = worker_ns(i)
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", f"mc{i}", "netns", coord_ns(), "type", "veth", "peer", "name",
           f"mw{i}", "netns", ns)
        sh("ip", "netns", "exec", coord_ns(), "ip", "addr", "add", f"10.231.{i}.1/30", "dev",
           f"mc{i}")
        sh("ip", "netns", "exec", coord_ns(), "ip", "link", "set", f"mc{i}", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.231.{i}.2/30", "dev", f"mw{i}")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", f"mw{i}", "up")
        shape(i, rate)


def shape(i, rate):
    sh("ip", "netns", "exec", worker_ns(i), "tc", "qdisc", "replace", "dev", f"mw{i}", "root",
       "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")


def teardown():
    # Deleting a namespace deletes the veth ends inside it (and so their peers).
    for ns in [coord_ns()] + [worker_ns(i) for i in range(N)]:
        sh("ip", "netns", "del", ns, check=False)


def data_file(ds):
    return os.path.join(REPO, "data", "heart_scale" if ds == "heart_scale" else ds + ".libsvm")


def one_run(build, ds, method, rounds, time_cap, tmp):
    # "marina" (RandK K = 1), "gd", or METHOD:COMPRESSOR such as marina:randk:10.
    name, _, compressor = method.partition(":")
    log = os.path.join(tmp, f"{ds}-{method.replace(':', '_')}.csv")
    algo = ["--method", name]
    if name != "gd":
        algo += ["--compressor", compressor or "randk:1"]
    coord = ["ip", "netns", "exec", coord_ns(),
             os.path.join(build, "coordinator", "marina-coordinator"),
             "--listen", f"tcp://0.0.0.0:{PORT}", "--workers", str(N), "--data", data_file(ds),
             "--rounds", str(rounds), "--seed", "1", "--stop-at", "1e-2", "--log", log,
             "--quiet"] + algo
    cp = subprocess.Popen(coord, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen(
        ["ip", "netns", "exec", worker_ns(i), os.path.join(build, "edge-worker", "marina-worker"),
         "--connect", f"tcp://10.231.{i}.1:{PORT}", "--data", data_file(ds), "--shard",
         f"{i}/{N}", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(N)]
    capped = False
    try:
        try:
            _, err = cp.communicate(timeout=time_cap)
        except subprocess.TimeoutExpired:
            capped = True
            cp.send_signal(signal.SIGTERM)  # the coordinator closes the log and says bye
            _, err = cp.communicate(timeout=60)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
    finally:
        # Whatever went wrong, leave no process behind: a process keeps its namespace alive
        # after `ip netns del`.
        for p in [cp] + workers:
            if p.poll() is None:
                p.kill()
                p.wait()
    if cp.returncode != 0:
        raise RuntimeError(f"{ds} {method}: coordinator exited {cp.returncode}: {err}")
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    g0, t0 = float(rows[0]["grad_norm_sq"]), float(rows[0]["wall_s"])
    for r in rows:
        if float(r["grad_norm_sq"]) <= 1e-2 * g0:
            return {"reached": True, "seconds": float(r["wall_s"]) - t0, "round": int(r["round"]),
                    "bits": float(r["bits_per_worker"]), "up": float(r["wire_bytes_up"])}
    last = rows[-1]
    return {"reached": False, "seconds": float(last["wall_s"]) - t0, "round": int(last["round"]),
            "fraction": float(last["grad_norm_sq"]) / g0, "capped": capped,
            "bits": float(last["bits_per_worker"]), "up": float(last["wire_bytes_up"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", default=["1mbit", "100kbit"])
    ap.add_argument("--datasets", nargs="+", default=["krvskp", "supermarket"])
    ap.add_argument("--methods", nargs="+", default=["marina", "diana", "gd"])
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--time-cap", type=float, default=240.0)
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(REPO, "build")))
    args = ap.parse_args()

    why = available()
    if why:
        print(f"slow_link: skipped: {why}")
        return 0
    for ds in args.datasets:
        if not os.path.exists(data_file(ds)):
            print(f"slow_link: missing {data_file(ds)} (scripts/fetch-data.sh)", file=sys.stderr)
            return 1

    print("| uplink | data | method | time to 1e-2 (s) | rounds | bits/worker | "
          "uplink bytes (all workers) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            setup(args.rates[0])
            for rate in args.rates:
                for i in range(N):
                    shape(i, rate)
                for ds in args.datasets:
                    for method in args.methods:
                        r = one_run(args.build, ds, method, args.rounds, args.time_cap, tmp)
                        if r["reached"]:
                            t = f"**{r['seconds']:.1f}**"
                        else:
                            cap = f"{args.time_cap:.0f} s cap" if r["capped"] else "round cap"
                            t = (f"not reached ({cap}): {r['fraction']:.3g} of initial after "
                                 f"{r['seconds']:.1f} s")
                        print(f"| {rate} | {ds} | {method} | {t} | {r['round']} | "
                              f"{r['bits']:.0f} | {r['up']:.0f} |", flush=True)
        finally:
            teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
