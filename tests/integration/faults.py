#!/usr/bin/env python3
"""Real-process fault tests: marina-coordinator with separate marina-worker processes on
loopback (for `netns`, one worker in its own network namespace behind a veth pair) while
workers are killed, paused, restarted or cut off, the coordinator is killed and resumed, the
quorum is lost, and misconfigured workers ask to join.

Usage: faults.py BUILD_DIR DATA_DIR SCENARIO
  kill_restart  8 workers on krvskp; kill -9 two, restart one
  stop_cont     5 workers on heart_scale; SIGSTOP one for 3 s, then SIGCONT
  netns         4 workers, one behind a veth pair whose host end goes down, then up again;
                then down for 9 s: back, it must be served over PUB again
  slow_link     2 workers, one behind a 1 Mbit/s uplink, GD replies of 480 KB (~4 s each,
                longer than the 3 s liveness timeout, crossed by the repair at 3 s): every
                round must close with both, and no reply be sent twice; then with a 2 s
                deadline, its replies must come with 'late_reply' events
  resume        kill -9 the coordinator, resume from its checkpoints (also with the newest
                one corrupted); the log must equal marina-sim's
  quorum        3 workers, --min-workers 2; kill two: the coordinator must stop, naming them
  bad_config    workers with another data file, another --shard N, --bias: refused, no hang

One scenario per run. The test synchronises only by polling the coordinator's CSV log and
events file (every 20 ms) and the processes' exit status; every wait has a timeout that fails
with the coordinator's stderr and the events seen so far. Measured figures are printed on lines
that start with "MEASURED:". Exit status: 0 pass, 1 fail ("FAIL: reason"), 77 skipped
("SKIP: reason"; netns, slow_link without permission or without iproute2), 2 usage.

Standard library only. Set MARINA_FAULTS_KEEP=1 to keep the temporary directory (logs,
stderr of every process) for inspection.
"""

import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

POLL_S = 0.02  # polling interval of every wait
WAIT_S = 60.0  # default timeout of a wait
EXIT_S = 10.0  # a process told to stop (SIGTERM, bye) must exit within this
SKIP = 77

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPARE_LOGS = os.path.join(REPO, "tools", "compare_logs.py")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def say(text):
    print(text, flush=True)


def measured(text):
    say("MEASURED: " + text)


def now():
    return time.monotonic()


# ---- processes -------------------------------------------------------------------------------

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent():
    # In the child before exec: SIGKILL it when this test process dies (ctest timeout, ^C), so
    # nothing outlives the test even when the finally block cannot run.
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


class Proc:
    """A process with its stdout and stderr in files of the test's directory."""

    def __init__(self, name, argv, tmp):
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(tmp, name + ".stdout")
        self.err_path = os.path.join(tmp, name + ".stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      preexec_fn=_die_with_parent)
        self.started = now()
        self.exited_at = None  # when a poll first saw it gone

    @property
    def pid(self):
        return self.p.pid

    def poll(self):
        rc = self.p.poll()
        if rc is not None and self.exited_at is None:
            self.exited_at = now()
        return rc

    def running(self):
        return self.poll() is None

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines=25):
        text = self.stderr().rstrip("\n").split("\n")
        return "\n".join(text[-lines:])


def describe_rc(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


def free_port_pair(host="127.0.0.1"):
    """A port P such that P and P+1 are both free (the coordinator's PUB and ROUTER)."""
    for _ in range(200):
        a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            a.bind((host, 0))
            port = a.getsockname()[1]
            if port + 1 > 65535:
                continue
            b.bind((host, port + 1))
            return port
        except OSError:
            continue
        finally:
            a.close()
            b.close()
    raise Fail("no free pair of TCP ports found")


# ---- the coordinator's files -------------------------------------------------------------------

Row = namedtuple("Row", "round grad participants line seen")


class Tail:
    """Reads a growing file incrementally, complete lines only; notices truncation."""

    def __init__(self, path):
        self.path = path
        self.resets = 0
        self._clear()

    def _clear(self):
        self.offset = 0
        self.partial = b""
        self.ino = None
        self.clear()

    def clear(self):
        pass

    def line(self, text):
        raise NotImplementedError

    def poll(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if self.ino is not None and (st.st_ino != self.ino or st.st_size < self.offset):
            self._clear()  # truncated (a resumed coordinator) or replaced: read it again
            self.resets += 1
        self.ino = st.st_ino
        if st.st_size == self.offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            self.line(raw.decode("utf-8", "replace"))


class CsvLog(Tail):
    def clear(self):
        self.header = None
        self.col = {}
        self.rows = []

    def line(self, text):
        if self.header is None:
            self.header = text.split(",")
            self.col = {c: i for i, c in enumerate(self.header)}
            for need in ("round", "grad_norm_sq", "participants"):
                if need not in self.col:
                    raise Fail(f"{self.path}: no column {need!r} in the header {text!r}")
            return
        f = text.split(",")
        if len(f) != len(self.header):
            raise Fail(f"{self.path}: malformed row {text!r} ({len(f)} fields, header has "
                       f"{len(self.header)})")
        try:
            row = Row(int(f[self.col["round"]]), float(f[self.col["grad_norm_sq"]]),
                      int(f[self.col["participants"]]), text, now())
        except ValueError as e:
            raise Fail(f"{self.path}: unparsable row {text!r}: {e}")
        self.rows.append(row)

    @property
    def count(self):
        return len(self.rows)

    @property
    def last(self):
        return self.rows[-1] if self.rows else None

    def max_round(self):
        return self.rows[-1].round if self.rows else -1

    def row(self, k):
        if 0 <= k < len(self.rows) and self.rows[k].round == k:
            return self.rows[k]
        for r in self.rows:
            if r.round == k:
                return r
        return None

    def after(self, k):
        return [r for r in self.rows if r.round > k]


class Events(Tail):
    def clear(self):
        self.items = []

    def line(self, text):
        try:
            e = json.loads(text)
        except ValueError as err:
            raise Fail(f"{self.path}: invalid JSON line {text!r}: {err}")
        if not isinstance(e, dict) or "event" not in e or "round" not in e:
            raise Fail(f"{self.path}: not an event: {text!r}")
        e["_seen"] = now()
        e["_line"] = text
        self.items.append(e)

    def find(self, start, kind, worker=None):
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        for e in self.items[start:]:
            if e["event"] in kinds and (worker is None or e.get("worker") == worker):
                return e
        return None

    def all(self, kind, worker=None, start=0):
        return [e for e in self.items[start:]
                if e["event"] == kind and (worker is None or e.get("worker") == worker)]


def check_complete_csv(path):
    """Rounds 0..K, contiguous, no duplicates, every line complete. Returns K."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise Fail(f"{path} is empty")
    if not data.endswith(b"\n"):
        raise Fail(f"{path}: the last line is incomplete: {data[-120:]!r}")
    lines = data.decode("utf-8", "replace").split("\n")[:-1]
    header = lines[0].split(",")
    rounds = []
    for i, line in enumerate(lines[1:], start=2):
        f = line.split(",")
        if len(f) != len(header):
            raise Fail(f"{path}: line {i} has {len(f)} fields, the header {len(header)}: {line!r}")
        rounds.append(int(f[header.index("round")]))
    if rounds != list(range(len(rounds))):
        seen, dup, gap = set(), [], []
        for i, r in enumerate(rounds):
            if r in seen:
                dup.append(r)
            seen.add(r)
        gap = sorted(set(range(max(rounds) + 1)) - seen)
        raise Fail(f"{path}: rounds are not 0..K contiguous: {len(rounds)} rows, duplicates "
                   f"{dup[:10]}, missing {gap[:10]}")
    return len(rounds) - 1


# ---- one scenario's processes and files -------------------------------------------------------


class Harness:
    def __init__(self, build, data, scenario):
        self.build = os.path.abspath(build)
        self.data = os.path.abspath(data)
        self.scenario = scenario
        self.coord_bin = os.path.join(self.build, "coordinator", "marina-coordinator")
        self.worker_bin = os.path.join(self.build, "edge-worker", "marina-worker")
        self.sim_bin = os.path.join(self.build, "simulator", "marina-sim")
        self.tmp = tempfile.mkdtemp(prefix=f"marina-faults-{scenario}-")
        self.procs = []
        self.cleanups = []  # callables, run in reverse order
        self.coord = None
        self.csv = None
        self.events = None

    def need(self, *paths):
        for p in paths:
            if not (os.path.isfile(p) and os.access(p, os.X_OK)):
                raise Fail(f"missing executable {p} (build the project first)")

    def datafile(self, name):
        path = os.path.join(self.data, name)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise Fail(f"missing data file {path} (run scripts/fetch-data.sh)")
        return path

    def file(self, name):
        return os.path.join(self.tmp, name)

    def spawn(self, name, argv):
        p = Proc(name, argv, self.tmp)
        self.procs.append(p)
        return p

    def start_coordinator(self, port, args, name="coordinator", host="127.0.0.1",
                          log="run.csv", events="events.jsonl", new_readers=True):
        self.need(self.coord_bin)
        argv = [self.coord_bin, "--listen", f"tcp://{host}:{port}", *args,
                "--log", self.file(log), "--events", self.file(events), "--quiet"]
        self.coord = self.spawn(name, argv)
        if new_readers or self.csv is None:
            self.csv = CsvLog(self.file(log))
            self.events = Events(self.file(events))
        return self.coord

    def start_worker(self, i, n, port, data, name=None, host="127.0.0.1", prefix=(),
                     extra=()):
        self.need(self.worker_bin)
        argv = [*prefix, self.worker_bin, "--connect", f"tcp://{host}:{port}", "--data", data,
                "--shard", f"{i}/{n}", *extra]
        return self.spawn(name or f"worker{i}", argv)

    def poll(self):
        if self.csv is not None:
            self.csv.poll()
        if self.events is not None:
            self.events.poll()

    # -- failing with context --

    def diagnostics(self):
        out = []
        if self.coord is not None:
            out.append(f"--- coordinator ({self.coord.name}, {describe_rc(self.coord.poll())}): "
                       f"{' '.join(self.coord.argv)}")
            out.append("--- tail of its stderr:")
            out.append(self.coord.tail(25) or "(empty)")
        if self.csv is not None:
            last = self.csv.last
            out.append(f"--- CSV {self.csv.path}: {self.csv.count} rows"
                       + (f", last: {last.line}" if last else ""))
        if self.events is not None:
            items = self.events.items
            counts = {}
            for e in items:
                counts[e["event"]] = counts.get(e["event"], 0) + 1
            out.append(f"--- events seen so far: {len(items)} "
                       f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); the last "
                       f"40 but sync_partial:")
            out.extend([e["_line"] for e in items if e["event"] != "sync_partial"][-40:])
        for p in self.procs:
            if p is self.coord:
                continue
            out.append(f"--- {p.name} (pid {p.pid}, {describe_rc(p.poll())}): "
                       f"{p.tail(3).strip() or '(no stderr)'}")
        return "\n".join(out)

    def fail(self, reason):
        raise Fail(reason + "\n" + self.diagnostics())

    # -- waiting --

    def wait(self, what, pred, timeout=WAIT_S, coordinator_may_exit=False, poll_s=POLL_S):
        deadline = now() + timeout
        while True:
            self.poll()
            result = pred()
            if result:
                return result
            if not coordinator_may_exit and self.coord is not None:
                rc = self.coord.poll()
                if rc is not None:
                    self.poll()
                    result = pred()
                    if result:
                        return result
                    self.fail(f"the coordinator ended ({describe_rc(rc)}) while waiting for "
                              f"{what}")
            if now() > deadline:
                self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll_s)

    def wait_rows(self, n, timeout=WAIT_S, poll_s=POLL_S):
        return self.wait(f"{n} rows in the CSV log", lambda: self.csv.count >= n, timeout,
                         poll_s=poll_s)

    def wait_exit(self, procs, timeout, what):
        """Waits until every process in `procs` has exited; returns their codes."""
        procs = list(procs)
        self.wait(what, lambda: all(p.poll() is not None for p in procs), timeout,
                  coordinator_may_exit=True)
        return [p.poll() for p in procs]

    def hold(self, seconds, on_poll=None):
        """Keeps polling the files for `seconds` (a deliberate duration, e.g. a pause)."""
        end = now() + seconds
        while now() < end:
            self.poll()
            if on_poll:
                on_poll()
            time.sleep(POLL_S)

    def expect_clean_exit(self, workers, what):
        """Workers must exit 0 within EXIT_S (they leave on the coordinator's bye)."""
        codes = self.wait_exit(workers, EXIT_S, what)
        bad = [(w.name, describe_rc(rc), w.tail(2)) for w, rc in zip(workers, codes) if rc != 0]
        if bad:
            self.fail(f"{what}: " + "; ".join(f"{n} {rc}: {t.strip()}" for n, rc, t in bad))

    def stop_coordinator(self, label):
        """SIGTERM: it must exit 0 within EXIT_S. Returns the seconds it took."""
        t = now()
        self.coord.signal(signal.SIGTERM)
        (rc,) = self.wait_exit([self.coord], EXIT_S, "the coordinator to exit after SIGTERM")
        took = self.coord.exited_at - t
        if rc != 0:
            self.fail(f"the coordinator exited with {describe_rc(rc)} after SIGTERM (expected 0)")
        measured(f"{label}: SIGTERM -> coordinator exit 0: {took:.3f} s")
        return took

    def close(self):
        for p in self.procs:
            if p.p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                say(f"warning: {p.name} (pid {p.pid}) did not die after SIGKILL")
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup must go on
                say(f"warning: cleanup: {e}")
        if os.environ.get("MARINA_FAULTS_KEEP") == "1":
            say(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def bye_reason(worker):
    m = re.search(r"done \((.*)\): \d+ rounds", worker.stderr())
    return m.group(1) if m else "?"


# ---- scenarios ---------------------------------------------------------------------------------


def kill_restart(h):
    data = h.datafile("krvskp.libsvm")
    n = 8
    # krvskp.libsvm is sorted by label: contiguous shards 3 and 6 hold only -1 rows. Losing
    # them for good moves the iterates to a stationary point of the other six shards' mean, and
    # ||grad f||^2 of the full objective rises (0.0038 -> 0.067 within 500 rounds; marina-sim
    # --faults "303 3 down / 303 6 down" does the same). ARCHITECTURE.md's partial-participation
    # estimator assumes dropouts independent of the data, so the rows are shuffled before the
    # split (--shuffle-seed, on the coordinator and every worker alike).
    shuffle = ("--shuffle-seed", "1")
    port = free_port_pair()
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "marina",
                               "--compressor", "randk:5", "--rounds", "1000000", "--seed", "1",
                               "--round-timeout-ms", "500", *shuffle])
    workers = {i: h.start_worker(i, n, port, data, extra=shuffle) for i in range(n)}
    h.wait_rows(300)
    if any(r.participants > n for r in h.csv.rows):
        h.fail(f"a row has more than {n} participants")

    kill_row = h.csv.last
    ev0 = len(h.events.items)
    t_kill = now()
    workers[3].signal(signal.SIGKILL)
    workers[6].signal(signal.SIGKILL)
    say(f"killed workers 3 and 6 at row {kill_row.round}")

    gone = {}

    def both_gone():
        for w in (3, 6):
            if w not in gone:
                e = h.events.find(ev0, "gone", w)
                if e:
                    gone[w] = e
        return len(gone) == 2

    h.wait("'gone' events for workers 3 and 6", both_gone)
    for w in (3, 6):
        e = gone[w]
        measured(f"kill_restart: kill -9 -> 'gone' of worker {w}: {e['_seen'] - t_kill:.3f} s "
                 f"(event at round {e['round']}: {e.get('detail', '')})")
    g2 = max(e["round"] for e in gone.values())

    def six():
        return next((r for r in h.csv.after(kill_row.round) if r.participants == 6), None)

    first6 = h.wait("rows with participants == 6", six)
    measured(f"kill_restart: kill -9 -> first row with participants 6: "
             f"{first6.seen - t_kill:.3f} s, {first6.round - kill_row.round} rounds "
             f"(row {first6.round})")
    # How long the rounds open at the kill stayed open (wall_s of consecutive rows).
    col = h.csv.col.get("wall_s")
    if col is not None:
        walls = {r.round: float(r.line.split(",")[col])
                 for r in h.csv.rows if kill_row.round <= r.round <= first6.round}
        spans = [f"{walls[k] - walls[k - 1]:.3f}" for k in range(kill_row.round + 1,
                                                                  first6.round + 1)
                 if k in walls and k - 1 in walls]
        measured(f"kill_restart: rounds {kill_row.round}..{first6.round - 1} (open at the kill) "
                 f"took {', '.join(spans)} s (--round-timeout-ms 500)")
    target = kill_row.round + 500
    h.wait(f"row {target} (500 rows after the kill)", lambda: h.csv.max_round() >= target,
           timeout=2 * WAIT_S)

    bad = [r for r in h.csv.rows if r.round >= g2 + 20 and r.participants > 6]
    if bad:
        h.fail(f"rows 20 or more rounds after the second 'gone' (round {g2}) have more than 6 "
               f"participants, first: {bad[0].line}")
    at_kill, later = kill_row.grad, h.csv.row(target).grad
    if not (math.isfinite(later) and later < at_kill):
        h.fail(f"grad_norm_sq did not decrease: {at_kill!r} at row {kill_row.round} (kill), "
               f"{later!r} at row {target}")
    measured(f"kill_restart: grad_norm_sq {at_kill:.6g} at the kill (row {kill_row.round}) -> "
             f"{later:.6g} at row {target}")

    # Worker 3 again, as a new process.
    restart_row = h.csv.last
    ev1 = len(h.events.items)
    t_restart = now()
    workers["3b"] = h.start_worker(3, n, port, data, name="worker3-restarted", extra=shuffle)
    returned = h.wait("a 'returned' event for worker 3",
                      lambda: h.events.find(ev1, "returned", 3))
    measured(f"kill_restart: restart -> 'returned' of worker 3: "
             f"{returned['_seen'] - t_restart:.3f} s ({returned.get('detail', '')})")

    def seven():
        return next((r for r in h.csv.after(restart_row.round) if r.participants == 7), None)

    first7 = h.wait("a row with participants == 7 after the restart", seven)
    measured(f"kill_restart: restart -> first row with participants 7: "
             f"{first7.seen - t_restart:.3f} s, {first7.round - restart_row.round} rounds "
             f"(row {first7.round})")
    h.wait("50 more rows", lambda: h.csv.max_round() >= first7.round + 50)
    bad = [r for r in h.csv.after(max(g2 + 20, restart_row.round)) if r.participants > 7]
    if bad:
        h.fail(f"a row after the restart has more than 7 participants (worker 6 is dead): "
               f"{bad[0].line}")

    h.stop_coordinator("kill_restart")
    survivors = [workers[i] for i in (0, 1, 2, 4, 5, 7)] + [workers["3b"]]
    h.expect_clean_exit(survivors, "the remaining workers to exit 0 after the coordinator's bye")
    k = check_complete_csv(h.csv.path)
    say(f"kill_restart: CSV rounds 0..{k} contiguous; workers left with "
        f"'{bye_reason(survivors[0])}'")


def stop_cont(h):
    data = h.datafile("heart_scale")
    n = 5
    port = free_port_pair()
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "marina",
                               "--compressor", "randk:1", "--rounds", "1000000", "--seed", "2",
                               "--round-timeout-ms", "300", "--miss-limit", "3"])
    workers = [h.start_worker(i, n, port, data) for i in range(n)]
    h.wait_rows(201)
    g200 = h.csv.row(200).grad

    stop_row = h.csv.last
    ev0 = len(h.events.items)
    t_stop = now()
    workers[2].signal(signal.SIGSTOP)
    say(f"SIGSTOP worker 2 at row {stop_row.round}")
    h.hold(3.0)
    gone = h.events.find(ev0, "gone", 2)
    cont_row = h.csv.last
    ev_cont = len(h.events.items)
    t_cont = now()
    workers[2].signal(signal.SIGCONT)
    say(f"SIGCONT worker 2 at row {cont_row.round}")
    if gone is None:
        h.fail("no 'gone' event for worker 2 during its 3 s pause (--miss-limit 3 deadlines of "
               "300 ms)")
    if gone["_seen"] > t_cont:
        h.fail("the 'gone' event came after the pause")
    measured(f"stop_cont: SIGSTOP -> 'gone' of worker 2: {gone['_seen'] - t_stop:.3f} s "
             f"(event at round {gone['round']}: {gone.get('detail', '')})")
    paused = [r for r in h.csv.rows if stop_row.round < r.round <= cont_row.round]
    four = [r for r in paused if r.participants == 4]
    if not four:
        h.fail(f"no row with participants 4 during the pause (rows {stop_row.round + 1}.."
               f"{cont_row.round})")
    measured(f"stop_cont: rows during the pause: {len(paused)}, with participants 4: "
             f"{len(four)}")
    back = h.wait("a 'returned' or 'resync' event for worker 2 after SIGCONT",
                  lambda: h.events.find(ev_cont, ("returned", "resync"), 2))
    measured(f"stop_cont: SIGCONT -> '{back['event']}' of worker 2: "
             f"{back['_seen'] - t_cont:.3f} s ({back.get('detail', '')})")

    def five():
        return next((r for r in h.csv.after(cont_row.round) if r.participants == 5), None)

    first5 = h.wait("a row with participants == 5 after SIGCONT", five)
    measured(f"stop_cont: SIGCONT -> first row with participants 5: "
             f"{first5.seen - t_cont:.3f} s, {first5.round - cont_row.round} rounds "
             f"(row {first5.round})")
    h.wait("200 more rows", lambda: h.csv.max_round() >= first5.round + 200)

    h.stop_coordinator("stop_cont")
    h.expect_clean_exit(workers, "the workers to exit 0 after the coordinator's bye")
    k = check_complete_csv(h.csv.path)
    h.csv.poll()
    bad = [r for r in h.csv.rows if r.participants > n]
    if bad:
        h.fail(f"a row has more than {n} participants: {bad[0].line}")
    nonfinite = [r for r in h.csv.rows if not math.isfinite(r.grad)]
    if nonfinite:
        h.fail(f"grad_norm_sq is not finite: {nonfinite[0].line}")
    end = h.csv.last
    if not end.grad < g200:
        h.fail(f"grad_norm_sq at the end ({end.grad!r}, row {end.round}) is not below its value "
               f"at round 200 ({g200!r})")
    measured(f"stop_cont: grad_norm_sq {g200:.6g} at round 200 -> {end.grad:.6g} at round "
             f"{end.round}")
    say(f"stop_cont: CSV rounds 0..{k} contiguous")


def _iproute2(tool):
    """The path of an iproute2 tool ('ip', 'tc'), also where root's PATH is not ours; or None."""
    dirs = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
    for c in (shutil.which(tool), *(os.path.join(d, tool) for d in dirs)):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _ip():
    return _iproute2("ip")


def _run(argv, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    if check and r.returncode != 0:
        raise Fail(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def _remove_stale_namespaces(ip):
    # Namespaces of earlier runs of this test whose process is gone (it was SIGKILLed).
    r = _run([ip, "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"marina-faults-(\d+)", name)
        if not m or os.path.exists(f"/proc/{m.group(1)}"):
            continue
        pid = int(m.group(1))
        _run([ip, "link", "del", f"mf{pid}h"], check=False)
        _run([ip, "netns", "del", name], check=False)


def _veth_namespace(h, ip):
    """A network namespace joined to this one by a veth pair; removed at the end of the test.
    Returns (namespace, host end, namespace end, host address, namespace address)."""
    _remove_stale_namespaces(ip)
    pid = os.getpid()
    ns = f"marina-faults-{pid}"
    vh, vn = f"mf{pid}h", f"mf{pid}n"  # at most 15 characters
    r = _run([ip, "netns", "add", ns], check=False)
    if r.returncode != 0:
        raise Skip(f"network namespaces are not permitted here ({r.stderr.strip()})")
    h.cleanups.append(lambda: _run([ip, "netns", "del", ns], check=False))
    r = _run([ip, "link", "add", vh, "type", "veth", "peer", "name", vn], check=False)
    if r.returncode != 0:
        raise Skip(f"network namespaces are not permitted here (veth: {r.stderr.strip()})")
    h.cleanups.append(lambda: _run([ip, "link", "del", vh], check=False))
    used = _run([ip, "-4", "-o", "addr", "show"]).stdout
    subnet = next((f"10.77.{x}" for x in range(0, 250) if f" 10.77.{x}." not in used), None)
    if subnet is None:
        raise Fail("no free 10.77.X.0/24 subnet for the veth pair")
    host_ip, ns_ip = f"{subnet}.1", f"{subnet}.2"
    _run([ip, "link", "set", vn, "netns", ns])
    _run([ip, "addr", "add", f"{host_ip}/24", "dev", vh])
    _run([ip, "link", "set", vh, "up"])
    _run([ip, "-n", ns, "addr", "add", f"{ns_ip}/24", "dev", vn])
    _run([ip, "-n", ns, "link", "set", vn, "up"])
    _run([ip, "-n", ns, "link", "set", "lo", "up"])
    say(f"namespace {ns}: {vn} {ns_ip}/24 <-> host {vh} {host_ip}/24")
    return ns, vh, vn, host_ip, ns_ip


def netns(h):
    ip = _ip()
    if ip is None:
        raise Skip("iproute2 ('ip') is not installed; the network-namespace scenario needs it")
    data = h.datafile("heart_scale")
    h.need(h.coord_bin, h.worker_bin)
    ns, vh, vn, host_ip, ns_ip = _veth_namespace(h, ip)

    n = 4
    timeout_ms = 2000
    port = free_port_pair("0.0.0.0")
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "marina",
                               "--compressor", "randk:1", "--rounds", "1000000", "--seed", "3",
                               "--round-timeout-ms", str(timeout_ms)], host="0.0.0.0")
    workers = [h.start_worker(0, n, port, data, host=host_ip, name="worker0-netns",
                              prefix=(ip, "netns", "exec", ns))]
    workers += [h.start_worker(i, n, port, data) for i in range(1, n)]
    h.wait_rows(200)
    if h.csv.last.participants != n:
        h.wait(f"a row with all {n} participants",
               lambda: h.csv.last.participants == n)

    down_row = h.csv.last
    ev0 = len(h.events.items)
    t_down = now()
    _run([ip, "link", "set", vh, "down"])
    say(f"link {vh} down at row {down_row.round}")
    bound = min(3.0 + 1.0 + 1.0, 3 * timeout_ms / 1000.0)
    gone = h.wait("a 'gone' event for worker 0 after the link went down",
                  lambda: h.events.find(ev0, "gone", 0))
    took = gone["_seen"] - t_down
    measured(f"netns: link down -> 'gone' of worker 0: {took:.3f} s (documented bound "
             f"{bound:.0f} s + 5 s slack; event at round {gone['round']}: "
             f"{gone.get('detail', '')})")
    if took > bound + 5.0:
        h.fail(f"'gone' of worker 0 came {took:.3f} s after the link went down; the documented "
               f"bound is min(3 s + 1 s + 1 s, 3 x T) = {bound:.0f} s (+ 5 s slack)")
    h.wait("a row with participants 3 while the link is down",
           lambda: any(r.participants == 3 for r in h.csv.after(down_row.round)))

    up_row = h.csv.last
    ev1 = len(h.events.items)
    t_up = now()
    _run([ip, "link", "set", vh, "up"])
    say(f"link {vh} up at row {up_row.round}")
    back = h.wait("a 'returned' event for worker 0 after the link came up",
                  lambda: h.events.find(ev1, "returned", 0))
    measured(f"netns: link up -> 'returned' of worker 0: {back['_seen'] - t_up:.3f} s "
             f"({back.get('detail', '')})")

    def four():
        return next((r for r in h.csv.after(up_row.round) if r.participants == n), None)

    first4 = h.wait(f"a row with participants {n} after the link came up", four)
    measured(f"netns: link up -> first row with participants {n}: {first4.seen - t_up:.3f} s, "
             f"{first4.round - up_row.round} rounds (row {first4.round})")
    h.wait("20 more rows", lambda: h.csv.max_round() >= first4.round + 20)

    # A longer outage, past the worker's watch on its connections (heartbeat timeout 3 s) and
    # its liveness timeout (5 s): the worker gives up its connections, the coordinator its, and
    # the worker joins again. Back up, it must be served over PUB again: a SUB left on a dead
    # connection would have every round repair it.
    outage_s = 9.0
    ev2 = len(h.events.items)
    _run([ip, "link", "set", vh, "down"])
    say(f"link {vh} down for {outage_s:.0f} s at row {h.csv.last.round}")
    time.sleep(outage_s)
    t_up2 = now()
    _run([ip, "link", "set", vh, "up"])
    back2 = h.wait("a 'returned' event for worker 0 after the long outage",
                   lambda: h.events.find(ev2, "returned", 0))
    measured(f"netns: link up after {outage_s:.0f} s -> 'returned' of worker 0: "
             f"{back2['_seen'] - t_up2:.3f} s ({back2.get('detail', '')})")
    ev3 = len(h.events.items)
    start = h.csv.max_round()
    h.wait("200 rows after the return", lambda: h.csv.max_round() >= start + 200)
    repairs = h.events.all("repair", 0, start=ev3)
    full = sum(1 for r in h.csv.after(start) if r.participants == n)
    measured(f"netns: 200 rounds after the return: {len(repairs)} repairs of worker 0, "
             f"{full} rows with all {n} participants")
    if len(repairs) > 5 or full < 150:
        h.fail(f"after the long outage worker 0 was repaired {len(repairs)} times in 200 rounds "
               f"and {full} rows had all {n} participants: its broadcasts do not arrive over PUB")

    h.stop_coordinator("netns")
    h.expect_clean_exit(workers, "the workers to exit 0 after the coordinator's bye")
    k = check_complete_csv(h.csv.path)
    say(f"netns: CSV rounds 0..{k} contiguous")


def _wide_libsvm(path, d, rows, seed=11):
    """A small LibSVM file with d features (feature d appears, so the dimension is d)."""
    import random
    rng = random.Random(seed)
    with open(path, "w") as f:
        for r in range(rows):
            idx = sorted(set(rng.randrange(1, d) for _ in range(12)) | ({d} if r == 0 else set()))
            feats = " ".join(f"{j}:{rng.uniform(-1, 1):.4f}" for j in idx)
            f.write(f"{'+1' if rng.random() < 0.5 else '-1'} {feats}\n")
    return path


def slow_link(h):
    """One worker behind a 1 Mbit/s uplink whose every reply (GD, d = 60 000: 480 KB) takes
    about 4 s to cross, longer than the connections' 3 s liveness timeout. A watch that counts
    whole messages closes the connection under each reply, and no round ever closes; the
    kernel's watch sees the bytes move and leaves it alone. The round's repair, half-way to
    its deadline, crosses each reply: a worker that answered it with a second copy would
    double what its uplink carries and miss every deadline after the first."""
    ip, tc = _ip(), _iproute2("tc")
    if ip is None or tc is None:
        raise Skip("iproute2 ('ip', 'tc') is not installed; the slow-link scenario needs it")
    h.need(h.coord_bin, h.worker_bin)
    d = 60000
    data = _wide_libsvm(h.file("wide.libsvm"), d, rows=40)
    ns, vh, vn, host_ip, ns_ip = _veth_namespace(h, ip)
    r = _run([ip, "netns", "exec", ns, tc, "qdisc", "add", "dev", vn, "root", "tbf", "rate",
              "1mbit", "burst", "32kbit", "latency", "400ms"], check=False)
    if r.returncode != 0:
        raise Skip(f"tc cannot shape the veth here ({r.stderr.strip()})")
    say(f"uplink of {ns}: tbf rate 1mbit burst 32kbit latency 400ms")

    # The default deadlines: a full sync's is 6 s, so the coordinator repairs the round (sends
    # the broadcast again directly) at 3 s, while the reply is still crossing. The worker must
    # not answer the repair with a second copy: its link lost no connection, so the first is on
    # its way, and a second would double the next reply's wait and miss the deadlines.
    n, rounds = 2, 3
    port = free_port_pair("0.0.0.0")
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "gd",
                               "--rounds", str(rounds), "--seed", "1"], host="0.0.0.0")
    workers = [h.start_worker(0, n, port, data, host=host_ip, name="worker0-slow",
                              prefix=(ip, "netns", "exec", ns)),
               h.start_worker(1, n, port, data)]
    h.wait(f"rows 0..{rounds} (each round waits for a 480 KB reply at 1 Mbit/s)",
           lambda: h.csv.max_round() >= rounds, timeout=120.0, coordinator_may_exit=True)
    rows = [h.csv.row(k) for k in range(rounds + 1)]
    gaps = [b.seen - a.seen for a, b in zip(rows, rows[1:])]
    measured("slow_link: seconds between rows: " + ", ".join(f"{g:.2f}" for g in gaps))
    if min(gaps) < 3.2:
        h.fail(f"a round took {min(gaps):.2f} s: the reply did not take longer than the 3 s "
               "liveness timeout to cross, so this run shows nothing (is the uplink shaped?)")
    for name in ("gone", "deadline_miss", "late_reply"):
        bad = h.events.all(name, 0)
        if bad:
            h.fail(f"a '{name}' event for the slow worker: {bad[0]['_line']}")
    repairs = h.events.all("repair", 0)
    measured(f"slow_link: repairs of the slow worker's rounds (at 3 s, its reply still on its "
             f"way): {len(repairs)}")
    if not repairs:
        h.fail("no repair crossed the slow worker's replies: this run does not show what it is "
               "for (are the default deadlines still 2 s and 3 x 2 s?)")
    short = [r.round for r in rows[1:] if r.participants != n]
    if short:
        h.fail(f"rounds {short} closed without the slow worker's reply")
    codes = h.wait_exit([h.coord] + workers, 30.0, "the coordinator and workers to finish")
    if any(c != 0 for c in codes):
        h.fail(f"exit codes {codes} (expected all 0)")
    summary = workers[0].stderr()
    if "(0 sent again)" not in summary:
        h.fail(f"the slow worker answered a repair with a second copy of its reply: {summary}")

    # A full-sync deadline shorter than the reply's crossing: each round closes without the
    # slow worker, and its reply, arriving about 2 s after the deadline, must say so (a
    # 'late_reply' naming --sync-timeout-ms), not only count as a miss.
    port = free_port_pair("0.0.0.0")
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "gd",
                               "--rounds", "1000", "--seed", "1", "--round-timeout-ms", "2000",
                               "--sync-timeout-ms", "2000", "--miss-limit", "1000"],
                        host="0.0.0.0", name="coordinator-short", log="short.csv",
                        events="short-events.jsonl")
    workers = [h.start_worker(0, n, port, data, host=host_ip, name="worker0-slow-short",
                              prefix=(ip, "netns", "exec", ns)),
               h.start_worker(1, n, port, data, name="worker1-short")]
    late = h.wait("a 'late_reply' event for the slow worker with a 2 s full-sync deadline",
                  lambda: h.events.find(0, "late_reply", 0), timeout=60.0)
    measured(f"slow_link: with --sync-timeout-ms 2000: {late['detail']}")
    m = re.search(r"came (\d+) ms after its deadline", late.get("detail", ""))
    if not m or "--sync-timeout-ms" not in late["detail"]:
        h.fail(f"the 'late_reply' does not say how late, or which deadline: {late['_line']}")
    if not 500 <= int(m.group(1)) <= 10000:
        h.fail(f"the 'late_reply' says {m.group(1)} ms; the reply takes about 4 s against a "
               "2 s deadline, so about 2000 ms was expected")
    if not h.events.find(0, "deadline_miss", 0):
        h.fail("a 'late_reply' without the 'deadline_miss' before it")
    h.stop_coordinator("slow_link")
    h.expect_clean_exit(workers, "the workers to exit 0 after the coordinator's bye")


class Disturbed(Exception):
    """A run that a loaded machine turned into a partial-participation run (a worker's reply
    later than half the deadline: repair, deadline miss); it cannot equal marina-sim's."""


# Events after which a networked log legitimately differs from marina-sim's: a repair adds to
# wire_bytes_down, a deadline miss or a gone worker changes the aggregate.
DISTURBANCES = ("repair", "deadline_miss", "gone", "sync_partial", "quorum_lost")


def _resume_variant(h, variant, data, flags, sim_csv, attempt):
    n = 4
    label = variant if attempt == 1 else f"{variant}-attempt{attempt}"
    port = free_port_pair()
    ckdir = h.file(f"checkpoints-{label}")
    log, events = f"{label}.csv", f"{label}-events.jsonl"
    args = flags + ["--checkpoint", ckdir, "--checkpoint-every", "100"]
    h.start_coordinator(port, args, name=f"coordinator-{label}", log=log, events=events)
    workers = [h.start_worker(i, n, port, data, name=f"worker{i}-{label}") for i in range(n)]
    h.wait_rows(1200, poll_s=0.005)
    first = h.coord
    first.signal(signal.SIGKILL)
    first.p.wait(timeout=10)
    t_kill = now()
    h.poll()
    stale_max = h.csv.max_round()
    if first.poll() != -signal.SIGKILL:
        h.fail(f"the first coordinator ended by itself ({describe_rc(first.poll())}) before it "
               f"could be killed at >= 1200 rows")
    say(f"{variant}: kill -9 the coordinator at row {stale_max}")

    files = sorted(f for f in os.listdir(ckdir) if re.fullmatch(r"checkpoint-\d+\.mrck", f))
    if not files:
        h.fail(f"no checkpoint-*.mrck in {ckdir}: {os.listdir(ckdir)}")
    newest = os.path.join(ckdir, files[-1])
    use = newest
    if variant == "corrupt":
        if len(files) < 2:
            h.fail(f"only one checkpoint in {ckdir} ({files}); the two newest should be kept")
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:
            f.truncate(size // 2)
        use = os.path.join(ckdir, files[-2])
        say(f"{variant}: truncated {files[-1]} from {size} to {size // 2} bytes")
    resume_round = int(re.search(r"(\d+)", os.path.basename(use)).group(1))
    dead = [w.name for w in workers if not w.running()]
    if dead:
        h.fail(f"workers died with the coordinator: {dead}")

    resets = h.csv.resets
    t_restart = now()
    h.start_coordinator(port, args + ["--resume", ckdir], name=f"coordinator-{label}-resumed",
                        log=log, events=events, new_readers=False)
    say(f"{variant}: restarted {t_restart - t_kill:.3f} s after the kill, resuming from "
        f"{os.path.basename(use)} (round {resume_round})")

    def new_row():
        top = h.csv.max_round()
        if h.csv.resets > resets and top > resume_round:
            return h.csv.last
        if top > stale_max:
            return h.csv.last
        return None

    row = h.wait("the first row of the resumed coordinator", new_row)
    measured(f"resume/{variant}: restart -> first new row: {row.seen - t_restart:.3f} s "
             f"(resumed from round {resume_round}, killed at row {stale_max}; rows up to "
             f"{row.round} by then)")
    (rc,) = h.wait_exit([h.coord], 3 * WAIT_S, "the resumed coordinator to finish 3000 rounds")
    if rc != 0:
        h.fail(f"the resumed coordinator exited with {describe_rc(rc)} (expected 0)")
    err = h.coord.stderr()
    m = re.search(r"resuming from (\S+)", err)
    if not m or os.path.basename(m.group(1)) != os.path.basename(use):
        h.fail(f"expected 'resuming from {use}' on the resumed coordinator's stderr")
    if variant == "corrupt":
        refused = [ln for ln in err.splitlines() if "refused checkpoint" in ln]
        if not any(os.path.basename(newest) in ln for ln in refused):
            h.fail(f"expected a 'refused checkpoint' line naming {newest}; got {refused}")
        measured(f"resume/{variant}: {refused[0].strip()}")
    h.expect_clean_exit(workers, "the workers (never restarted) to exit 0 at the end of the run")
    k = check_complete_csv(h.csv.path)
    r = _run([sys.executable, COMPARE_LOGS, sim_csv, h.csv.path], check=False)
    if r.returncode != 0:
        h.poll()
        disturbed = [e["_line"] for e in h.events.items if e["event"] in DISTURBANCES]
        if disturbed:
            raise Disturbed(f"{(r.stdout + r.stderr).strip()}; the log holds {len(disturbed)} "
                            f"events of a slow machine, first: {disturbed[0]}")
        h.fail(f"resume/{variant}: the log differs from marina-sim's: "
               f"{(r.stdout + r.stderr).strip()}")
    say(f"resume/{variant}: rounds 0..{k}; {r.stdout.strip()}")


def resume(h):
    data = h.datafile("heart_scale")
    h.need(h.sim_bin, h.coord_bin, h.worker_bin)
    algo = ["--workers", "4", "--method", "marina", "--compressor", "randk:2", "--rounds", "3000",
            "--seed", "7"]
    sim_csv = h.file("sim.csv")
    r = subprocess.run([h.sim_bin, "--data", data, *algo, "--log", sim_csv],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=240)
    if r.returncode != 0:
        raise Fail(f"marina-sim failed (exit {r.returncode}): {r.stderr.strip()}")
    flags = ["--data", data, *algo, "--round-timeout-ms", "2000"]
    for variant in ("plain", "corrupt"):
        # Equality with marina-sim holds only for a run without deadline pressure: on a machine
        # so loaded that a reply takes longer than 1 s (half the deadline), the coordinator
        # repairs or closes rounds without it, by design. Such a run is repeated (up to 3).
        for attempt in (1, 2, 3):
            try:
                _resume_variant(h, variant, data, flags, sim_csv, attempt)
                break
            except Disturbed as e:
                say(f"resume/{variant}: attempt {attempt} disturbed by load: {e}")
                for p in h.procs:
                    if p.running():
                        p.signal(signal.SIGKILL)
                if attempt == 3:
                    raise Fail(f"resume/{variant}: 3 attempts, each disturbed by load (replies "
                               f"later than half the 2000 ms deadline); last: {e}")


def _missing_ids(text):
    m = re.search(r"missing(?: workers?)?:? (\d+(?:, \d+)*)", text)
    return {int(x) for x in m.group(1).split(", ")} if m else None


def quorum(h):
    data = h.datafile("heart_scale")
    n = 3
    port = free_port_pair()
    h.start_coordinator(port, ["--workers", str(n), "--data", data, "--method", "marina",
                               "--compressor", "randk:1", "--rounds", "1000000", "--seed", "4",
                               "--min-workers", "2", "--quorum-timeout-ms", "3000",
                               "--round-timeout-ms", "300"])
    workers = [h.start_worker(i, n, port, data) for i in range(n)]
    h.wait_rows(100)
    t_kill = now()
    workers[0].signal(signal.SIGKILL)
    workers[2].signal(signal.SIGKILL)
    say(f"killed workers 0 and 2 at row {h.csv.max_round()}")
    (rc,) = h.wait_exit([h.coord], 3.0 + 10.0,
                        "the coordinator to stop (quorum lost, --quorum-timeout-ms 3000)")
    took = h.coord.exited_at - t_kill
    measured(f"quorum: kill -9 of 2 of 3 workers -> coordinator exit ({describe_rc(rc)}): "
             f"{took:.3f} s (bound 3 s + 10 s)")
    if rc == 0:
        h.fail("the coordinator exited 0 after losing its quorum (expected non-zero)")
    err = h.coord.stderr()
    lines = [ln for ln in err.splitlines() if "error" in ln] or err.splitlines()[-1:]
    ids = _missing_ids("\n".join(lines))
    if ids != {0, 2}:
        h.fail(f"the coordinator's error should name the missing workers 0 and 2; it names "
               f"{ids}: {lines}")
    say(f"quorum: coordinator: {lines[-1].strip() if lines else ''}")
    h.poll()
    if not h.events.all("quorum_lost"):
        h.fail("no 'quorum_lost' event")
    t_exit = h.coord.exited_at
    (wrc,) = h.wait_exit([workers[1]], EXIT_S, "the remaining worker 1 to exit after the bye")
    measured(f"quorum: coordinator exit -> worker 1 exit ({describe_rc(wrc)}, "
             f"'{bye_reason(workers[1])}'): {workers[1].exited_at - t_exit:.3f} s")
    if wrc != 0:
        h.fail(f"worker 1 exited with {describe_rc(wrc)} after the coordinator's bye")


def _children(pid):
    """PIDs whose parent is `pid` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces: the fields after it are fixed.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(entry))
    return out


def local_exit(h):
    """--spawn-local: when every local worker has exited, the coordinator stops at once with
    their exit statuses, instead of waiting out --join-timeout-ms or --quorum-timeout-ms."""
    data = h.datafile("heart_scale")
    common = ["--spawn-local", "--data", data, "--method", "marina", "--compressor", "randk:1",
              "--seed", "2"]
    # Workers that fail at start (/bin/false exits 1 at once): the join wait is 60 s.
    h.start_coordinator(0, ["--workers", "2", "--rounds", "50", "--worker-binary", "/bin/false",
                            "--join-timeout-ms", "60000", *common], log="a.csv",
                        events="a.jsonl")
    t0 = h.coord.started
    (rc,) = h.wait_exit([h.coord], 20.0, "the coordinator to stop (its local workers failed)")
    measured(f"local_exit: 2 local workers exiting 1 at start -> coordinator exit "
             f"({describe_rc(rc)}): {h.coord.exited_at - t0:.3f} s (join timeout 60 s)")
    err = h.coord.stderr()
    if rc == 0 or "all 2 local workers exited (0: exit status 1; 1: exit status 1)" not in err:
        h.fail(f"expected a non-zero exit naming both workers' exit status 1; got "
               f"{describe_rc(rc)}: {err.strip()[-400:]}")

    # Mid-run: every local worker killed; the quorum wait is 60 s.
    h.start_coordinator(0, ["--workers", "3", "--rounds", "1000000", "--round-timeout-ms", "300",
                            "--quorum-timeout-ms", "60000", "--checkpoint", h.file("cp"),
                            *common], log="b.csv", events="b.jsonl")
    h.wait_rows(50)
    kids = _children(h.coord.pid)
    if len(kids) != 3:
        h.fail(f"expected 3 local worker processes, found {kids}")
    t_kill = now()
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
    (rc,) = h.wait_exit([h.coord], 20.0, "the coordinator to stop (all local workers killed)")
    took = h.coord.exited_at - t_kill
    measured(f"local_exit: kill -9 of all 3 local workers at row {h.csv.max_round()} -> "
             f"coordinator exit ({describe_rc(rc)}): {took:.3f} s (quorum timeout 60 s)")
    err = h.coord.stderr()
    lines = [ln for ln in err.splitlines() if "error" in ln]
    want = "all 3 local workers exited (0: killed by signal 9; 1: killed by signal 9; " \
           "2: killed by signal 9)"
    if rc == 0 or not lines or want not in lines[-1]:
        h.fail(f"expected a non-zero exit naming the three kills; got {describe_rc(rc)}: "
               f"{lines[-1:] or err.strip()[-400:]}")
    if not any(f.endswith(".mrck") for f in os.listdir(h.file("cp"))):
        h.fail("no checkpoint was written on the way out")
    h.poll()
    if not h.events.all("quorum_lost"):
        h.fail("no 'quorum_lost' event")
    check_complete_csv(h.file("b.csv"))


def _expect_refused(h, worker, must_contain, what):
    (rc,) = h.wait_exit([worker], EXIT_S, f"{worker.name} ({what}) to be refused and exit")
    took = worker.exited_at - worker.started
    err = worker.stderr()
    measured(f"bad_config: {what}: worker exit {describe_rc(rc)} after {took:.3f} s")
    if rc != 1:
        h.fail(f"{worker.name} ({what}) exited with {describe_rc(rc)}, expected exit 1")
    lines = [ln for ln in err.splitlines() if "refused" in ln]
    if not lines:
        h.fail(f"{worker.name} ({what}): no 'refused' on its stderr: {err.strip()[-400:]!r}")
    for s in must_contain:
        if not any(s in ln for ln in lines):
            h.fail(f"{worker.name} ({what}): the refusal does not name {s!r}: {lines[-1]!r}")
    say(f"bad_config: {worker.name}: {lines[-1]}")


def _bad_config_a(h, heart, krvskp, algo):
    # (a) the workers hold another data file than the coordinator's --data.
    port = free_port_pair()
    h.start_coordinator(port, ["--workers", "2", "--data", heart, *algo, "--rounds", "50",
                               "--join-timeout-ms", "3000"], name="coordinator-a",
                        log="a.csv", events="a-events.jsonl")
    wa = [h.start_worker(i, 2, port, krvskp, name=f"worker{i}-a") for i in range(2)]
    for w in wa:
        _expect_refused(h, w, ["d = "], "(a) krvskp against heart_scale")
    (rc,) = h.wait_exit([h.coord], 3.0 + 10.0,
                        "coordinator (a) to give up (--join-timeout-ms 3000)")
    measured(f"bad_config: (a) coordinator {describe_rc(rc)} after "
             f"{h.coord.exited_at - h.coord.started:.3f} s (bound 3 s + 10 s)")
    if rc == 0:
        h.fail("coordinator (a) exited 0 although no worker could join")
    h.poll()
    refused = h.events.all("refused")
    for w in (0, 1):
        if not any(f"worker {w} " in e.get("detail", "") and "d = " in e.get("detail", "")
                   for e in refused):
            h.fail(f"no 'refused' event naming worker {w} and 'd = ': {refused}")
    err = h.coord.stderr()
    say(f"bad_config: coordinator (a): {err.strip().splitlines()[-1]}")
    # Per worker: "worker W ... d = " on one line, or "W: ... d = " (the quorum message's style).
    missing = [w for w in (0, 1)
               if not re.search(rf"worker {w}\b[^\n]*d = ", err)
               and not re.search(rf"\b{w}: [^;\n]*d = ", err)]
    if missing:
        h.fail(f"coordinator (a) (--quiet): its stderr does not say why worker(s) {missing} "
               f"could not join (expected 'd = ' for both, as in its 'refused' events); "
               f"stderr: {err.strip()!r}")


def _bad_config_bc(h, heart, algo, mid_run):
    # (b) --shard 0/3 against --workers 2, (c) --bias against a coordinator without: refused
    # before the run starts, or (mid_run) while it runs, which goes on undisturbed.
    tag = "mid-run" if mid_run else "before the start"
    name = "midrun" if mid_run else "start"
    port = free_port_pair()
    h.start_coordinator(port, ["--workers", "2", "--data", heart, *algo, "--rounds", "1000000",
                               "--join-timeout-ms", "30000", "--round-timeout-ms", "2000"],
                        name=f"coordinator-bc-{name}", log=f"bc-{name}.csv",
                        events=f"bc-{name}-events.jsonl")
    good = []
    if mid_run:
        good = [h.start_worker(i, 2, port, heart, name=f"worker{i}-bc-{name}") for i in range(2)]
        h.wait_rows(20)
    mark = h.csv.max_round()
    wb = h.start_worker(0, 3, port, heart, name=f"worker-b-shard0of3-{name}")
    wc = h.start_worker(1, 2, port, heart, name=f"worker-c-bias-{name}", extra=("--bias",))
    problems = []
    for w, need, what in ((wb, "--shard", f"(b) --shard 0/3 against --workers 2, {tag}"),
                          (wc, "bias=1 (run: bias=0)",
                           f"(c) --bias against a coordinator without, {tag}")):
        try:
            _expect_refused(h, w, [need], what)
        except Fail as e:
            problems.append(str(e).split("\n")[0])
    if not mid_run:
        good = [h.start_worker(i, 2, port, heart, name=f"worker{i}-bc-{name}") for i in range(2)]
        h.wait_rows(20)
    h.wait("20 more rows after the refusals", lambda: h.csv.max_round() >= mark + 40)
    bad = [r for r in h.csv.rows if r.round > 0 and r.participants != 2]
    if bad:
        problems.append(f"the refusals disturbed the run: {bad[0].line}")
    h.stop_coordinator(f"bad_config (b, c) {tag}")
    h.expect_clean_exit(good, "the good workers to exit 0 after the coordinator's bye")
    check_complete_csv(h.csv.path)
    if problems:
        h.fail("; ".join(problems))


def bad_config(h):
    heart = h.datafile("heart_scale")
    krvskp = h.datafile("krvskp.libsvm")
    algo = ["--method", "marina", "--compressor", "randk:1", "--seed", "1"]
    parts = [("(a) another data file", lambda: _bad_config_a(h, heart, krvskp, algo)),
             ("(b, c) before the start", lambda: _bad_config_bc(h, heart, algo, False)),
             ("(b, c) mid-run", lambda: _bad_config_bc(h, heart, algo, True))]
    failed = []
    for label, part in parts:
        try:
            part()
            say(f"bad_config {label}: ok")
        except Fail as e:
            say(f"bad_config {label}: FAILED: {e}")
            failed.append(f"{label}: {str(e).splitlines()[0]}")
        for p in h.procs:  # nothing of a failed part may linger into the next
            if p.running():
                p.signal(signal.SIGKILL)
    if failed:
        raise Fail(" | ".join(failed))


SCENARIOS = {
    "kill_restart": kill_restart,
    "stop_cont": stop_cont,
    "netns": netns,
    "slow_link": slow_link,
    "resume": resume,
    "quorum": quorum,
    "local_exit": local_exit,
    "bad_config": bad_config,
}


def main(argv):
    if len(argv) != 4 or argv[3] not in SCENARIOS:
        print(f"usage: {os.path.basename(argv[0])} BUILD_DIR DATA_DIR "
              f"{{{'|'.join(SCENARIOS)}}}", file=sys.stderr)
        return 2
    build, data, name = argv[1:]

    def on_term(signum, _frame):
        raise SystemExit(f"FAIL: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    h = Harness(build, data, name)
    t0 = now()
    try:
        SCENARIOS[name](h)
    except Skip as e:
        say(f"SKIP: {e}")
        return SKIP
    except Fail as e:
        say(f"FAIL: {name}: {e}")
        return 1
    finally:
        h.close()
    say(f"PASS: {name} ({now() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
