#!/usr/bin/env python3
"""marina-worker@.service's command lines, run as systemd would run them for instance 0, against
real coordinators on loopback: the CurveZMQ keys of the unit (a LoadCredential= secret key and
MARINA_CURVE_SERVER_PUBLIC_KEY in the conf) and its refusals.

The test reads the unit CMake generated (BUILD_DIR/packaging/marina-worker@.service), joins its
continuation lines, takes ExecStartPre= and ExecStart=, splits their words at systemd's quotes,
resolves the specifiers in each word (%i -> 0, %% -> %) and expands systemd's variables ($$ ->
$, ${VAR}, a word $VAR) from the environment file. Anything else (another specifier, a
backslash escape, an exec prefix, ${VAR:-...}) fails the test, so that a change to the unit
that this emulation would get wrong is noticed. /usr/bin/marina-worker becomes BUILD_DIR's
worker. The commands run in "/" with the environment systemd gives the service: PATH,
CREDENTIALS_DIRECTORY (the unit loads a credential, so the directory is there even when the key
is not) and the variables of a conf written from packaging/worker-0.conf. Scenarios:

  1 curve      credential + MARINA_CURVE_SERVER_PUBLIC_KEY: the worker joins a CURVE
               coordinator (allowlist with its key), the run completes (201 log rows), exit 0;
               the main PID becomes the worker (the shell execs it) and, for a Type=notify
               unit, READY=1 comes from that PID (NotifyAccess=main)
  2 no_key     server key, no credential: refused (exit 1, "unencrypted"), never connects
  3 no_server  credential, empty server key: refused, naming the conf and the credential
  4 plaintext  neither, against a plaintext coordinator: works (MARINA_WORKER_ARGS split
               into several flags)
  5 obsolete   MARINA_CURVE_SECRET_KEY_FILE set: refused, naming /etc/credstore/...
The CURVE coordinator must see nothing from scenarios 2, 3 and 5: no join, no rejected key.
With systemd-analyze, the unit (as marina-worker@0.service) must pass `systemd-analyze verify`.

Usage: systemd_unit.py BUILD_DIR DATA_FILE      (DATA_FILE: data/heart_scale)
Exit status: 0 pass, 1 fail ("FAIL: reason"), 2 usage, 77 skipped (no /bin/sh to run the unit's
commands). Measured figures are printed on lines that start with "measured:". Standard library
only; MARINA_SYSTEMD_UNIT_KEEP=1 keeps the temporary directory (confs, stderr of every process).
"""

import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

POLL_S = 0.02
JOIN_S = 60.0     # a worker must be welcomed within this
REFUSE_S = 10.0   # a refusing unit must exit within this
EXIT_S = 60.0     # a run of 200 rounds must end within this
ROUNDS = 200
SKIP = 77
INSTANCE = "0"
UNIT_BINARY = "/usr/bin/marina-worker"
CONF_PATH = f"/etc/marina/worker-{INSTANCE}.conf"
CRED_ID = f"marina-worker-{INSTANCE}.key"
CREDSTORE_PATH = f"/etc/credstore/{CRED_ID}"
# The PATH systemd gives system services; the commands get no variable of this process's
# environment, only what systemd would set (see start_unit).
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE_CONF = os.path.join(REPO, "packaging", "worker-0.conf")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def say(text):
    print(text, flush=True)


def measured(text):
    say("measured: " + text)


def now():
    return time.monotonic()


# ---- the unit, as systemd reads it -------------------------------------------------------------

def read_unit(path):
    """[(section, key, value, line)] of a unit file: comments dropped, continuation lines joined
    (a line ending in an odd number of backslashes continues: the backslash becomes a space and
    the next line is appended as it is; comment lines inside are skipped), as in systemd's
    config_parse()."""
    entries = []
    section = None
    pending = None
    start = 0
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, raw in enumerate(lines, 1):
        if raw.lstrip()[:1] in ("#", ";"):
            continue
        line = raw if pending is None else pending + raw
        if pending is None:
            start = n
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = line[:-1] + " "
            continue
        pending = None
        s = line.strip()
        if not s:
            continue
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
            continue
        key, sep, value = s.partition("=")
        if not sep:
            raise Fail(f"{path}:{start}: not KEY=VALUE: {s[:80]!r}")
        entries.append((section, key.strip(), value.strip(), start))
    if pending is not None:
        raise Fail(f"{path}: ends inside a continuation line")
    return entries


def specifiers(value, where):
    """%i -> the instance, %% -> %; the unit must use no other specifier."""
    def one(m):
        c = m.group(1)
        if c == "i":
            return INSTANCE
        if c == "%":
            return "%"
        raise Fail(f"{where}: specifier %{c} (this test resolves only %i and %%)")
    return re.sub(r"%(.)", one, value, flags=re.S)


def split_words(value, where):
    """systemd's word splitting of a command line: whitespace separates words, '…' and "…"
    group. Backslash escapes are not emulated: the unit must not use any."""
    if "\\" in value:
        raise Fail(f"{where}: a backslash escape in the command line (not emulated here)")
    words, cur, quote, in_word = [], [], None, False
    for c in value:
        if quote:
            if c == quote:
                quote = None
            else:
                cur.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            cur.append(c)
            in_word = True
    if quote:
        raise Fail(f"{where}: unterminated {quote} quote")
    if in_word:
        words.append("".join(cur))
    return words


VAR_WORD = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)$")


def expand(words, env, where, used):
    """systemd's variable expansion of ExecStart= words: a word that is exactly $VAR becomes
    the variable's value split at whitespace; in any word ${VAR} is replaced by the value and
    $$ by $; a $ before anything else stays. ${VAR:-…} and the like are not emulated."""
    out = []
    for w in words:
        m = VAR_WORD.match(w)
        if m:
            used.add("$" + m.group(1))
            out.extend(env.get(m.group(1), "").split())
            continue
        r, i = [], 0
        while i < len(w):
            if w.startswith("$$", i):
                used.add("$$")
                r.append("$")
                i += 2
            elif w.startswith("${", i):
                j = w.find("}", i)
                name = w[i + 2:j] if j > 0 else ""
                if j < 0 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise Fail(f"{where}: systemd expansion {w[i:i + 30]!r} is not emulated here")
                used.add("${" + name + "}")
                r.append(env.get(name, ""))
                i = j + 1
            else:
                r.append(w[i])
                i += 1
        out.append("".join(r))
    return out


def commands_of(unit_path, build_worker):
    """The unit's checked settings and its ExecStartPre= + ExecStart= commands as word lists
    (specifiers resolved, $-expansion still to do) with /usr/bin/marina-worker replaced."""
    entries = read_unit(unit_path)
    service = [(k, v, n) for s, k, v, n in entries if s == "Service"]
    settings = {}
    for k, v, _ in service:
        settings.setdefault(k, []).append(v)
    with open(unit_path, encoding="utf-8") as f:
        if "@MARINA_" in f.read():
            raise Fail(f"{unit_path}: an unreplaced @MARINA_…@ (not from configure_file?)")

    def want(key, value):
        if value not in settings.get(key, []):
            raise Fail(f"{unit_path}: no {key}={value} in [Service] (has {settings.get(key)})")

    want("EnvironmentFile", "/etc/marina/worker-%i.conf")
    want("LoadCredential", "marina-worker-%i.key")
    want("DynamicUser", "yes")
    types = settings.get("Type", [])
    if len(types) != 1 or types[0] not in ("notify", "exec"):
        raise Fail(f"{unit_path}: Type= is {types}, not one of notify, exec")
    if types[0] == "notify" and settings.get("NotifyAccess") != ["main"]:
        raise Fail(f"{unit_path}: Type=notify without NotifyAccess=main")
    starts = settings.get("ExecStart", [])
    if len(starts) != 1:
        raise Fail(f"{unit_path}: {len(starts)} ExecStart= lines, not 1")

    commands = []
    replaced = 0
    for k, v, n in service:
        if k not in ("ExecStartPre", "ExecStart"):
            continue
        where = f"{os.path.basename(unit_path)}:{n} {k}="
        words = split_words(v, where)
        if not words:
            raise Fail(f"{where}: empty")
        if words[0][:1] in "-@:+!|":
            raise Fail(f"{where}: exec prefix {words[0][0]!r} (not emulated here)")
        if any(w == ";" for w in words):
            raise Fail(f"{where}: several commands on one line (not emulated here)")
        words = [specifiers(w, where) for w in words]  # per word, after unquoting, as systemd
        for i, w in enumerate(words):
            count = w.count(UNIT_BINARY)
            if count:
                replaced += count
                words[i] = build_worker if w == UNIT_BINARY else \
                    w.replace(UNIT_BINARY, shlex.quote(build_worker))
        commands.append((k, words, where))
    if replaced != 1:
        raise Fail(f"{unit_path}: {UNIT_BINARY} appears {replaced} times in the commands, not 1")
    return commands, types[0]


def read_env_file(path):
    """A systemd EnvironmentFile= as this test writes it: KEY=VALUE lines, # and ; comments,
    whitespace around key and value dropped; quotes and backslashes (which systemd would
    interpret) are refused rather than emulated."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            key, sep, value = s.partition("=")
            if not sep:
                raise Fail(f"{path}:{n}: not KEY=VALUE: {s!r}")
            value = value.strip()
            if any(c in value for c in "'\"\\"):
                raise Fail(f"{path}:{n}: quotes or backslashes (not emulated here): {s!r}")
            env[key.strip()] = value
    return env


# ---- processes ---------------------------------------------------------------------------------

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def _die_with_parent():
    # SIGKILL the child (and what it execs) when this test dies: nothing outlives a ctest timeout.
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


class Proc:
    def __init__(self, name, argv, tmp, env=None, cwd=None):
        self.name = name
        self.err_path = os.path.join(tmp, name + ".stderr")
        out_path = os.path.join(tmp, name + ".stdout")
        with open(out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      env=env, cwd=cwd, preexec_fn=_die_with_parent)
        self.started = now()

    @property
    def pid(self):
        return self.p.pid

    def poll(self):
        return self.p.poll()

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


def describe_rc(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc}"


class Test:
    def __init__(self, build, data, tmp):
        self.build, self.data, self.tmp = build, data, tmp
        self.worker_bin = os.path.join(build, "edge-worker", "marina-worker")
        self.coord_bin = os.path.join(build, "coordinator", "marina-coordinator")
        self.keygen_bin = os.path.join(build, "edge-worker", "marina-keygen")
        self.unit_path = os.path.join(build, "packaging", "marina-worker@.service")
        for f in (self.worker_bin, self.coord_bin, self.keygen_bin):
            if not os.access(f, os.X_OK):
                raise Fail(f"{f}: missing or not executable (build the project first)")
        for f in (self.unit_path, self.data, EXAMPLE_CONF):
            if not os.path.isfile(f):
                raise Fail(f"{f}: missing" + (" (configure the build first)"
                                              if f == self.unit_path else ""))
        self.procs = []
        self.commands, self.type = commands_of(self.unit_path, self.worker_bin)
        self.example = read_env_file(EXAMPLE_CONF)
        self.cred_dir = os.path.join(tmp, "credentials", f"marina-worker@{INSTANCE}.service")
        os.makedirs(self.cred_dir)
        self.used = set()

    def close(self):
        for p in self.procs:
            p.stop()

    def spawn(self, name, argv, **kw):
        p = Proc(name, argv, self.tmp, **kw)
        self.procs.append(p)
        return p

    # -- keys and coordinators --

    def keys(self):
        for name in ("coord", "worker-0"):
            r = subprocess.run([self.keygen_bin, name], cwd=self.tmp, capture_output=True,
                               text=True, timeout=30)
            if r.returncode != 0:
                raise Fail(f"marina-keygen {name}: {describe_rc(r.returncode)}: {r.stderr}")
        self.coord_pub = self.pub_key(os.path.join(self.tmp, "coord.pub"))
        worker_pub = self.pub_key(os.path.join(self.tmp, "worker-0.pub"))
        self.allow = os.path.join(self.tmp, "allow")
        with open(self.allow, "w") as f:
            f.write(f"0 {worker_pub}\n")
        self.worker_key = os.path.join(self.tmp, "worker-0.key")

    @staticmethod
    def pub_key(path):
        with open(path) as f:
            keys = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        if len(keys) != 1 or len(keys[0]) != 40:
            raise Fail(f"{path}: no 40-character Z85 key in it: {keys}")
        return keys[0]

    def coordinator(self, name, curve):
        log = os.path.join(self.tmp, name + ".csv")
        events = os.path.join(self.tmp, name + ".events")
        argv = [self.coord_bin, "--listen", "tcp://127.0.0.1:0", "--workers", "1",
                "--data", self.data, "--rounds", str(ROUNDS), "--log", log, "--events", events]
        if curve:
            argv += ["--curve-secret", os.path.join(self.tmp, "coord.key"),
                     "--allow-keys", self.allow]
        c = self.spawn(name, argv)
        c.log, c.events = log, events
        deadline = now() + 30
        while now() < deadline:
            m = re.search(r"listening: PUB (tcp://127\.0\.0\.1:\d+)", c.stderr())
            if m:
                c.endpoint = m.group(1)
                return c
            if c.poll() is not None:
                break
            time.sleep(POLL_S)
        raise Fail(f"{name}: no 'listening: PUB …' line ({describe_rc(c.poll())}):\n{c.stderr()}")

    @staticmethod
    def events(c):
        try:
            with open(c.events) as f:
                return [l.strip() for l in f if l.strip()]
        except FileNotFoundError:
            return []

    # -- the unit's commands --

    def conf(self, name, values):
        """A conf written from packaging/worker-0.conf: its lines with new values for the keys
        in `values` (appended when the example has no such line)."""
        with open(EXAMPLE_CONF, encoding="utf-8") as f:
            lines = f.read().split("\n")
        left = dict(values)
        out = []
        for line in lines:
            key = line.partition("=")[0].strip()
            if not line.lstrip().startswith(("#", ";")) and "=" in line and key in left:
                out.append(f"{key}={left.pop(key)}")
            else:
                out.append(line)
        out += [f"{k}={v}" for k, v in left.items()]
        path = os.path.join(self.tmp, name + ".conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        return path

    def credential(self, present):
        target = os.path.join(self.cred_dir, CRED_ID)
        if os.path.exists(target):
            os.chmod(target, 0o600)
            os.unlink(target)
        if present:
            shutil.copyfile(self.worker_key, target)
            os.chmod(target, 0o400)  # what systemd writes for the service's user

    def start_unit(self, name, conf_path, notify_socket=None):
        """Runs the ExecStartPre= commands to completion, then starts ExecStart=. Returns
        (None, stderr, rc) when an ExecStartPre= fails, else (Proc, pre-stderr, None)."""
        env = {"PATH": SERVICE_PATH, "CREDENTIALS_DIRECTORY": self.cred_dir}
        env.update(read_env_file(conf_path))
        if notify_socket:
            env["NOTIFY_SOCKET"] = notify_socket
        pre_err = ""
        for i, (kind, words, where) in enumerate(self.commands):
            argv = expand(words, env, where, self.used)
            if kind == "ExecStartPre":
                p = self.spawn(f"{name}.pre{i}", argv, env=env, cwd="/")
                try:
                    rc = p.p.wait(timeout=REFUSE_S)
                except subprocess.TimeoutExpired:
                    raise Fail(f"{name}: {where} still running after {REFUSE_S:.0f} s")
                pre_err += p.stderr()
                if rc != 0:
                    return None, pre_err, rc
            else:
                return self.spawn(name, argv, env=env, cwd="/"), pre_err, None
        raise Fail("no ExecStart= command")

    def refused(self, name, conf_values, key, must_say):
        """A scenario in which the unit must refuse to start: exit 1 within REFUSE_S, before
        the worker runs, with a message that contains every string of must_say."""
        self.credential(key)
        conf = self.conf(name, conf_values)
        t0 = now()
        p, text, rc = self.start_unit(name, conf)
        if p is not None:
            try:
                rc = p.p.wait(timeout=REFUSE_S)
            except subprocess.TimeoutExpired:
                raise Fail(f"{name}: the unit did not refuse to start: still running after "
                           f"{REFUSE_S:.0f} s; stderr:\n{p.stderr()}")
            text += p.stderr()
        took = now() - t0
        if rc != 1:
            raise Fail(f"{name}: the unit {describe_rc(rc)}, not exit 1; stderr:\n{text}")
        if "marina-worker 0:" in text or "marina-worker:" in text:
            raise Fail(f"{name}: the worker ran before the refusal; stderr:\n{text}")
        missing = [s for s in must_say if s not in text]
        if missing:
            raise Fail(f"{name}: the refusal does not mention {missing}; stderr:\n{text}")
        say(f"systemd_unit: {name}: refused ({text.strip()})")
        measured(f"{name}: refused in {took:.3f} s")

    def served(self, name, coord, conf_values, key, notify):
        """A scenario in which the worker must join coord and complete its run."""
        self.credential(key)
        conf = self.conf(name, dict(conf_values, MARINA_CONNECT=coord.endpoint))
        sock = path = None
        if notify:
            path = os.path.join(self.tmp, name + ".notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(path)
            sock.setblocking(False)
        try:
            return self._served(name, coord, conf, path, sock)
        finally:
            if sock:
                sock.close()

    def _served(self, name, coord, conf, notify_path, sock):
        t0 = now()
        p, text, rc = self.start_unit(name, conf, notify_path)
        if p is None:
            raise Fail(f"{name}: ExecStartPre= failed ({describe_rc(rc)}):\n{text}")
        real = os.path.realpath(self.worker_bin)
        became_worker = joined = ready = None
        ready_pid = None
        notes = []
        deadline = now() + JOIN_S + EXIT_S

        def drain_notifications():
            nonlocal ready, ready_pid
            while sock:
                try:
                    msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
                except BlockingIOError:
                    return
                pid = None
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                        pid = struct.unpack("iII", data[:12])[0]
                for m in msg.decode("utf-8", "replace").split("\n"):
                    notes.append((m, pid))
                    if m == "READY=1" and ready is None:
                        ready, ready_pid = now() - t0, pid

        while p.poll() is None and now() < deadline:
            if became_worker is None:
                try:
                    if os.readlink(f"/proc/{p.pid}/exe") == real:
                        became_worker = now() - t0
                except OSError:
                    pass
            if joined is None and "welcomed" in p.stderr():
                joined = now() - t0
            drain_notifications()
            if joined is None and now() - t0 > JOIN_S:
                raise Fail(f"{name}: not welcomed within {JOIN_S:.0f} s; worker stderr:\n"
                           f"{p.stderr()}\ncoordinator stderr:\n{coord.stderr()}")
            time.sleep(POLL_S)
        if p.poll() is None:
            raise Fail(f"{name}: the worker is still running after {JOIN_S + EXIT_S:.0f} s")
        # What the worker sent between the last poll and its exit is still queued: a run can
        # end within one POLL_S of its welcome.
        drain_notifications()
        text += p.stderr()
        if joined is None and "welcomed" in text:
            joined = now() - t0
        if p.poll() != 0 or "done (run complete)" not in text:
            raise Fail(f"{name}: the worker {describe_rc(p.poll())} without completing the run; "
                       f"stderr:\n{text}\ncoordinator stderr:\n{coord.stderr()}")
        if became_worker is None:
            raise Fail(f"{name}: process {p.pid} (the unit's main PID) was never seen running "
                       f"{real}: the shell must exec the worker")
        if sock is not None:
            if ready is None:
                raise Fail(f"{name}: Type=notify but no READY=1 arrived; got {notes}")
            if ready_pid != p.pid:
                raise Fail(f"{name}: READY=1 came from pid {ready_pid}, not the main PID "
                           f"{p.pid}: systemd (NotifyAccess=main) would ignore it")
        try:
            crc = coord.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Fail(f"{name}: the coordinator is still running 30 s after its worker left")
        if crc != 0:
            raise Fail(f"{name}: the coordinator {describe_rc(crc)}:\n{coord.stderr()}")
        with open(coord.log) as f:
            rows = sum(1 for l in f if l.strip()) - 1
        if rows != ROUNDS + 1:
            raise Fail(f"{name}: the coordinator's log has {rows} rows, not {ROUNDS + 1}")
        say(f"systemd_unit: {name}: joined, {rows} log rows, worker exit 0"
            + (f", READY=1 from the main PID {p.pid}" if sock is not None else ""))
        measured(f"{name}: welcomed {joined:.3f} s after the unit started"
                 + (f", READY=1 at {ready:.3f} s" if ready is not None else "")
                 + f", run of {ROUNDS} rounds over at {now() - t0:.3f} s")
        return text

    # -- the test --

    def run(self):
        say(f"systemd_unit: {self.unit_path}: Type={self.type}, "
            f"{len(self.commands)} command line(s)")
        self.verify()
        self.keys()
        base = {"MARINA_DATA": self.data, "MARINA_SHARD": "0/1", "MARINA_WORKER_ARGS": "",
                "MARINA_CONNECT": "tcp://127.0.0.1:1", "MARINA_CURVE_SERVER_PUBLIC_KEY": ""}

        curve = self.coordinator("coordinator-curve", curve=True)
        base_curve = dict(base, MARINA_CONNECT=curve.endpoint)
        self.refused("no_key", dict(base_curve, MARINA_CURVE_SERVER_PUBLIC_KEY=self.coord_pub),
                     key=False, must_say=["unencrypted", CONF_PATH, CREDSTORE_PATH])
        self.refused("no_server", base_curve, key=True,
                     must_say=["MARINA_CURVE_SERVER_PUBLIC_KEY", CONF_PATH, CREDSTORE_PATH])
        self.refused("obsolete", dict(base_curve, MARINA_CURVE_SERVER_PUBLIC_KEY=self.coord_pub,
                                      MARINA_CURVE_SECRET_KEY_FILE="/etc/marina/worker-0.key"),
                     key=True, must_say=["MARINA_CURVE_SECRET_KEY_FILE", CREDSTORE_PATH])
        seen = self.events(curve)
        if seen or curve.poll() is not None:
            raise Fail(f"the CURVE coordinator heard from a refused unit "
                       f"({describe_rc(curve.poll())}): events {seen}\n{curve.stderr()}")
        self.served("curve", curve, dict(base, MARINA_CURVE_SERVER_PUBLIC_KEY=self.coord_pub),
                    key=True, notify=self.type == "notify")
        events = self.events(curve)
        joins = [e for e in events if '"event":"join"' in e]
        bad = [e for e in events if '"event":"rejected"' in e or "impersonation" in e]
        if len(joins) != 1 or bad:
            raise Fail(f"curve: the coordinator saw {len(joins)} joins, rejections {bad}")
        if "CurveZMQ" not in curve.stderr():
            raise Fail(f"curve: the coordinator did not run with CurveZMQ:\n{curve.stderr()}")

        plain = self.coordinator("coordinator-plain", curve=False)
        self.served("plaintext", plain, dict(base, MARINA_WORKER_ARGS="--liveness-ms 5000 "
                                             "--idle-timeout-ms 60000"),
                    key=False, notify=False)

        say(f"systemd_unit: systemd expansions in the unit's commands: {sorted(self.used)}")

    def verify(self):
        tool = shutil.which("systemd-analyze")
        if not tool:
            say("systemd_unit: no systemd-analyze: `systemd-analyze verify` not run")
            return
        d = os.path.join(self.tmp, "verify")
        os.makedirs(d)
        copy = os.path.join(d, f"marina-worker@{INSTANCE}.service")
        shutil.copyfile(self.unit_path, copy)
        t0 = now()
        r = subprocess.run([tool, "verify", copy], capture_output=True, text=True, timeout=120)
        notes = [l for l in (r.stdout + r.stderr).splitlines()
                 if l.strip() and "Command /usr/bin/marina-worker is not executable" not in l]
        if r.returncode != 0 or notes:
            raise Fail(f"systemd-analyze verify {copy}: {describe_rc(r.returncode)}: "
                       + "\n".join(notes))
        say(f"systemd_unit: systemd-analyze verify marina-worker@{INSTANCE}.service: clean "
            f"({now() - t0:.1f} s)")


def main(argv):
    if len(argv) != 3:
        print(f"usage: {os.path.basename(argv[0])} BUILD_DIR DATA_FILE", file=sys.stderr)
        return 2
    build, data = os.path.abspath(argv[1]), os.path.abspath(argv[2])

    def on_term(signum, _frame):
        raise SystemExit(f"FAIL: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    t0 = now()
    keep = os.environ.get("MARINA_SYSTEMD_UNIT_KEEP") == "1"
    tmp = tempfile.mkdtemp(prefix="marina_unit_")
    test = None
    try:
        if not os.access("/bin/sh", os.X_OK):
            raise Skip("no /bin/sh to run the unit's commands with")
        test = Test(build, data, tmp)
        test.run()
    except Skip as e:
        say(f"SKIP: {e}")
        return SKIP
    except Fail as e:
        say(f"FAIL: {e}")
        if not keep:
            say(f"(MARINA_SYSTEMD_UNIT_KEEP=1 keeps the temporary directory)")
        return 1
    finally:
        if test:
            test.close()
        if keep:
            say(f"systemd_unit: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"PASS: systemd_unit ({now() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
