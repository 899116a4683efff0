#!/usr/bin/python3
"""marina-worker under systemd's notification protocol, without systemd: this script plays the
service manager. It binds a Unix datagram socket, starts a worker with NOTIFY_SOCKET pointing at
it (as systemd does for Type=notify) against a loopback coordinator, and checks what arrives:
STATUS while joining, READY=1 exactly once and only after joining, STATUS lines with the round,
WATCHDOG=1 pings, and STOPPING=1 when the worker leaves.

Usage: sd_notify.py BUILD_DIR DATA_DIR      (only for builds with MARINA_WITH_SYSTEMD=ON)
"""

import os
import re
import socket
import subprocess
import sys
import tempfile


def fail(msg):
    print(f"sd_notify: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    build, data_dir = sys.argv[1:3]
    data = os.path.join(data_dir, "heart_scale")
    with tempfile.TemporaryDirectory(prefix="marina_notify_") as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        coord = subprocess.Popen(
            [os.path.join(build, "coordinator", "marina-coordinator"), "--listen",
             "tcp://127.0.0.1:0", "--workers", "1", "--method", "marina", "--compressor",
             "randk:1", "--rounds", "2000", "--data", data, "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = coord.stderr.readline()
        m = re.search(r"PUB tcp://127\.0\.0\.1:(\d+)", line)
        if not m:
            coord.kill()
            fail(f"no ports in the coordinator's first line: {line!r}")
        env = dict(os.environ, NOTIFY_SOCKET=path)
        worker = subprocess.Popen(
            [os.path.join(build, "edge-worker", "marina-worker"), "--connect",
             f"tcp://127.0.0.1:{m.group(1)}", "--data", data, "--shard", "0/1", "--quiet"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        messages = []
        sock.settimeout(60)  # a bound for a broken worker; messages come every ~500 ms
        while True:
            try:
                msg = sock.recv(4096).decode()
            except socket.timeout:
                worker.kill()
                coord.kill()
                fail(f"no notification for 60 s; so far: {messages}")
            messages.append(msg)
            if msg == "STOPPING=1":
                break
        if worker.wait(timeout=60) != 0:
            fail(f"marina-worker exited {worker.returncode}")
        coord.communicate(timeout=60)
        if coord.returncode != 0:
            fail(f"marina-coordinator exited {coord.returncode}")

    print("sd_notify: received " + ", ".join(sorted(set(
        re.sub(r"\d+", "N", m) for m in messages))))
    ready = [i for i, m in enumerate(messages) if m == "READY=1"]
    if len(ready) != 1:
        fail(f"READY=1 sent {len(ready)} times: {messages}")
    if "STATUS=joining the coordinator" not in messages[:ready[0]]:
        fail(f"no STATUS while joining before READY=1: {messages[:ready[0] + 1]}")
    rounds = [int(m.group(1)) for m in (re.match(r"STATUS=round (\d+), \d+ replies", s)
                                        for s in messages[ready[0]:]) if m]
    if not rounds:
        fail(f"no 'STATUS=round N' after READY=1: {messages}")
    if rounds != sorted(rounds):
        fail(f"the rounds in STATUS go backwards: {rounds}")
    if "WATCHDOG=1" not in messages[ready[0]:]:
        fail("no WATCHDOG=1 after READY=1")
    if messages[-1] != "STOPPING=1":
        fail("the last notification is not STOPPING=1")
    print(f"sd_notify: READY once, {len(rounds)} round STATUS lines, "
          f"{messages.count('WATCHDOG=1')} watchdog pings, STOPPING at the end: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
