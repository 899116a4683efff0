#!/usr/bin/python3
"""The coordinator's HTTP view (--http) in a real run, checked from outside.

A loopback run of marina-coordinator with --http and four separately started marina-worker
processes on heart_scale; one worker is killed (SIGKILL) mid-run and started again with the same
--shard. Meanwhile:
  1. /metrics is parsed with prometheus_client's parser and compared with the run's CSV log:
     each scrape must equal a row the CSV holds within a second (rounds, bits per worker,
     wire bytes up and down), and the per-worker series must follow the kill and the return;
  2. headless Chromium (Selenium, chromedriver) loads the dashboard and must see the chart fill,
     the participants drop and come back, and the worker table show the worker gone and then
     returned; a screenshot of the page goes to SCREENSHOT (docs/dashboard.png).
After the checks the coordinator is stopped with SIGTERM: the page must show the run finished
while --http-linger-s keeps the server up, and a second SIGTERM must end the linger.
Every wait is on a log row, an event or the page's state, bounded by a generous deadline.

Usage: dashboard.py BUILD_DIR DATA_DIR SCREENSHOT
Exit 77 (skipped) only when Chromium cannot start; the metrics checks have passed by then.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

WORKERS = 4
VICTIM = 2
DEADLINE_S = 90  # bound of any one wait; reached only when something is broken


def fail(msg):
    print(f"dashboard: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


T0 = time.monotonic()


def wait_for(what, predicate, timeout=DEADLINE_S, poll=0.05):
    """Polls `predicate` until it returns a true value; fails naming `what` at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            print(f"dashboard: [{time.monotonic() - T0:6.1f} s] {what}: yes", flush=True)
            return value
        if time.monotonic() > end:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


class Tail:
    """Complete lines appended to a file since the last read (the writer may flush mid-line)."""

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [line.decode() for line in complete]


class CsvRows:
    """The CSV log as it grows: rows by round."""

    def __init__(self, path):
        self.tail, self.header, self.rows = Tail(path), None, {}
        self.last = None

    def update(self):
        for line in self.tail.lines():
            if self.header is None:
                self.header = line.split(",")
                continue
            row = dict(zip(self.header, next(csv.reader([line]))))
            self.rows[int(row["round"])] = row
            self.last = int(row["round"])
        return self


class Events:
    def __init__(self, path):
        self.tail, self.all = Tail(path), []

    def update(self):
        self.all.extend(json.loads(line) for line in self.tail.lines())
        return self

    def has(self, kind, worker):
        return any(e["event"] == kind and e.get("worker") == worker for e in self.update().all)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def scrape(base):
    """/metrics as {(sample name, sorted label items): value}, through the reference parser."""
    out = {}
    for family in text_string_to_metric_families(get(base + "metrics")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def check_scrape_against_csv(m, rows):
    """The scraped totals equal the CSV row of the round they report."""
    rounds = metric(m, "marina_rounds_total")
    if rounds is None:
        fail("/metrics has no marina_rounds_total while rows are logged")
    # The CSV's rows are written in batches, at least every 0.1 s (run::CsvLog): the row of a
    # scraped round is in the file within that, and a second is generous.
    end = time.monotonic() + 1.0
    while (row := rows.update().rows.get(int(rounds))) is None and time.monotonic() < end:
        time.sleep(0.02)
    if row is None:
        fail(f"/metrics reports round {int(rounds)}, which the CSV (last {rows.last}) still "
             "lacks after 1 s")
    pairs = [("marina_uplink_bits_per_worker_total", "bits_per_worker"),
             ("marina_wire_bytes_up_total", "wire_bytes_up"),
             ("marina_wire_bytes_down_total", "wire_bytes_down"),
             ("marina_participants", "participants")]
    for name, column in pairs:
        if metric(m, name) != float(row[column]):
            fail(f"round {int(rounds)}: {name} {metric(m, name)!r} != CSV {column} {row[column]}")
    if metric(m, "marina_grad_norm_sq") != float(row["grad_norm_sq"]):
        fail(f"round {int(rounds)}: marina_grad_norm_sq != CSV {row['grad_norm_sq']}")
    return int(rounds)


def start_browser(profile):
    """Headless Chromium through /usr/bin/chromedriver, or (None, why) when it cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        return None, f"python3-selenium is missing ({e})"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists("/usr/bin/chromedriver") or not os.path.exists(chromium):
        return None, "chromium or /usr/bin/chromedriver is not installed"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    # Root in a container needs --no-sandbox; the rest keeps Chromium off the network: the page
    # is on loopback and nothing else may be contacted.
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1500", f"--user-data-dir={profile}", "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--disable-domain-reliability",
                "--disable-client-side-phishing-detection", "--metrics-recording-only",
                "--disable-features=Translate,OptimizationHints,MediaRouter,"
                "AutofillServerCommunication,CertificateTransparencyComponentUpdater"]:
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    except Exception as e:  # any failure to start the browser is a skip, not a failure
        return None, f"Chromium did not start: {str(e).splitlines()[0] if str(e) else e!r}"
    driver.set_script_timeout(30)
    return driver, ""


def page(driver, script):
    return driver.execute_script(script)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    build, data_dir, screenshot = sys.argv[1:]
    coordinator = os.path.join(build, "coordinator", "marina-coordinator")
    worker_bin = os.path.join(build, "edge-worker", "marina-worker")
    data = os.path.join(data_dir, "heart_scale")
    if not os.path.exists(data):
        fail(f"{data} missing: run scripts/fetch-data.sh")
    tmp = tempfile.mkdtemp(prefix="marina_dashboard_")
    log, events_file = os.path.join(tmp, "run.csv"), os.path.join(tmp, "events.jsonl")
    coord_err = open(os.path.join(tmp, "coordinator.err"), "w")
    procs, workers, driver = [], {}, None

    def start_worker(i, port):
        err = open(os.path.join(tmp, f"worker{i}.err"), "a")
        p = subprocess.Popen([worker_bin, "--connect", f"tcp://127.0.0.1:{port}", "--data", data,
                              "--shard", f"{i}/{WORKERS}", "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=err)
        procs.append(p)
        return p

    try:
        # Rounds enough never to end by themselves: the test ends the run with SIGTERM.
        coord = subprocess.Popen(
            [coordinator, "--listen", "tcp://127.0.0.1:0", "--workers", str(WORKERS),
             "--method", "marina", "--compressor", "randk:1", "--rounds", "100000000",
             "--seed", "3", "--data", data, "--log", log, "--events", events_file,
             "--round-timeout-ms", "300", "--http", "127.0.0.1:0", "--http-linger-s", "300"],
            stdout=subprocess.DEVNULL, stderr=coord_err)
        procs.append(coord)
        err_path = coord_err.name

        def stderr_match(pattern):
            with open(err_path) as f:
                return re.search(pattern, f.read())

        port = int(wait_for("the coordinator's ports",
                            lambda: stderr_match(r"PUB tcp://127\.0\.0\.1:(\d+)")).group(1))
        base = wait_for("the --http line",
                        lambda: stderr_match(r"http: dashboard (http://127\.0\.0\.1:\d+/)")).group(1)
        for i in range(WORKERS):
            workers[i] = start_worker(i, port)

        rows, events = CsvRows(log), Events(events_file)
        wait_for("50 logged rounds", lambda: (rows.update().last or 0) >= 50)

        # (1) Metrics against the CSV while the run goes on.
        scraped = []
        for _ in range(5):
            m = scrape(base)
            r = check_scrape_against_csv(m, rows)
            if scraped and r < scraped[-1]:
                fail(f"/metrics went back from round {scraped[-1]} to {r}")
            scraped.append(r)
            if metric(m, "marina_workers_live") is None:
                wait_for("a fleet status", lambda: metric(scrape(base), "marina_workers_live"))
            wait_for("another logged round", lambda: rows.update().last > r)
        print(f"dashboard: 5 scrapes match the CSV at rounds {scraped}")

        driver, why = start_browser(os.path.join(tmp, "chromium"))
        if driver is None:
            print(f"dashboard: browser part skipped: {why}", file=sys.stderr)
        else:
            driver.get(base)
            wait_for("the chart to have points",
                     lambda: int(page(driver, "return document.getElementById('chart-grad-round')"
                                              ".dataset.points || 0")) > 10)
            wait_for("the worker table to list 4 live workers",
                     lambda: page(driver, "return document.querySelectorAll("
                                          "'#workers tr[data-state=live]').length") == WORKERS)

        # Kill a worker mid-run; the coordinator marks it gone (its connection is closed).
        workers[VICTIM].send_signal(signal.SIGKILL)
        workers[VICTIM].wait()
        wait_for(f"a 'gone' event for worker {VICTIM}", lambda: events.has("gone", VICTIM))
        m = wait_for("/metrics to show the worker gone",
                     lambda: (lambda m: m if metric(m, "marina_worker_live", worker=str(VICTIM)) == 0
                              else None)(scrape(base)))
        if metric(m, "marina_worker_state", worker=str(VICTIM), state="gone") != 1:
            fail("marina_worker_state{state=gone} is not 1 for the killed worker")
        if metric(m, "marina_workers_live") != WORKERS - 1:
            fail(f"marina_workers_live {metric(m, 'marina_workers_live')} != {WORKERS - 1}")
        if metric(m, "marina_events_total", event="gone") < 1:
            fail("marina_events_total{event=gone} did not count the worker's loss")
        check_scrape_against_csv(m, rows)
        if driver:
            wait_for("the table to show the worker gone",
                     lambda: page(driver, f"return document.querySelector("
                                          f"'#workers tr[data-worker=\"{VICTIM}\"]')"
                                          f".dataset.state") == "gone")
            wait_for("the page to see a round with fewer participants",
                     lambda: page(driver, f"return window.marinaDash.part.some(p => p < {WORKERS})"))

        # The same shard again: a new process takes worker VICTIM's id back.
        workers[VICTIM] = start_worker(VICTIM, port)
        wait_for(f"a 'returned' event for worker {VICTIM}", lambda: events.has("returned", VICTIM))
        back = len(events.update().all)
        m = wait_for("/metrics to show the worker back",
                     lambda: (lambda m: m if metric(m, "marina_worker_live", worker=str(VICTIM)) == 1
                              and metric(m, "marina_participants") == WORKERS else None)(scrape(base)))
        if metric(m, "marina_worker_returns_total", worker=str(VICTIM)) < 1:
            fail("marina_worker_returns_total did not count the return")
        if metric(m, "marina_worker_info", worker=str(VICTIM), arch=os.uname().machine) != 1:
            fail("marina_worker_info lacks the worker's architecture")
        check_scrape_against_csv(m, rows)
        print(f"dashboard: worker {VICTIM} gone and back, seen in /metrics ({back} events)")

        if driver:
            wait_for("the table to show the worker returned",
                     lambda: page(driver, f"const r = document.querySelector("
                                          f"'#workers tr[data-worker=\"{VICTIM}\"]');"
                                          "return r.dataset.state === 'live' && "
                                          "r.querySelector('.badge.returned') !== null"))
            wait_for("the participants to drop and come back in the page's series",
                     lambda: page(driver, f"const p = window.marinaDash.part;"
                                          f"const i = p.findIndex(x => x < {WORKERS});"
                                          f"return i >= 0 && p.slice(i).includes({WORKERS})"))
            wait_for("gone and returned markers on the participants chart",
                     lambda: page(driver, "const s = document.getElementById('chart-participants');"
                                          "return s.querySelector('.ev-gone') !== null && "
                                          "s.querySelector('.ev-returned') !== null"))
            # Enough rounds after the return that the picture shows the recovery too.
            mark = rows.update().last
            wait_for("rounds after the return", lambda: rows.update().last > mark + 1000,
                     timeout=DEADLINE_S)
            wait_for("the page to catch up",
                     lambda: page(driver, "return window.marinaDash.nextRound") > mark + 1000)
            driver.set_window_size(1400, 1500)
            height = page(driver, "return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(max(int(height), 900), 2400))
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            if not driver.save_screenshot(screenshot):
                fail(f"could not save the screenshot to {screenshot}")
            print(f"dashboard: screenshot {screenshot}")

        # The end of the run: the view stays up (--http-linger-s) and says the run is over.
        coord.send_signal(signal.SIGTERM)
        wait_for("the coordinator to say the run is over", lambda: stderr_match(r"http: run over"))
        status = json.loads(get(base + "api/status"))
        if not status["finished"]:
            fail("/api/status does not say finished after the run")
        final = scrape(base)
        last = check_scrape_against_csv(final, rows)
        if last != rows.update().last:
            fail(f"after the run /metrics reports round {last}, the CSV ends at {rows.last}")
        if metric(final, "marina_run_finished") != 1:
            fail("marina_run_finished is not 1 after the run")
        log_json = json.loads(get(base + f"api/log?since={last - 2}"))
        if [r["round"] for r in log_json] != [last - 2, last - 1, last]:
            fail(f"/api/log?since={last - 2} returned rounds {[r['round'] for r in log_json]}")
        for r in log_json:
            row = rows.rows[r["round"]]
            for k, v in r.items():
                if v is None or float(v) != float(row[k]):
                    fail(f"/api/log round {r['round']}: {k} {v!r} != CSV {row[k]!r}")
        with open(events_file) as f:
            want = [json.loads(line) for line in f]
        if json.loads(get(base + "api/events?since=0")) != want:
            fail("/api/events?since=0 differs from the events file")
        if driver:
            wait_for("the page to show the run finished",
                     lambda: "finished" in page(driver, "return document.getElementById('state')"
                                                        ".textContent"))
        print(f"dashboard: run over at round {last}; the view lingers and agrees with the files")

        coord.send_signal(signal.SIGTERM)  # ends the linger early
        try:
            rc = coord.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            fail("a second SIGTERM did not end --http-linger-s")
        if rc != 0:
            fail(f"marina-coordinator exited {rc}")
        for i, p in workers.items():
            try:
                p.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                fail(f"worker {i} did not leave after the coordinator's bye")
        if driver is None:
            print(f"dashboard: SKIPPED the browser checks: {why}")
            return 77
        print("dashboard: OK")
        return 0
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:
                pass
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        coord_err.close()
        if os.environ.get("MARINA_KEEP_TMP"):
            print(f"dashboard: files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
