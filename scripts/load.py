"""Load test: the dashboard page and its JSON endpoint under concurrent signed-in clients, against gunicorn.

Run from the repository root (loopback only, bounded by --duration):

    .venv/bin/python scripts/load.py                      # 50 clients for 60 s, no think time
    .venv/bin/python scripts/load.py --clients 50 --duration 30 --think 1

Starts, all on 127.0.0.1 and free ports: the simulator (a subprocess, real clock, rate limits off), a
SQLite database in a temporary directory with --users households (the demo account and copies of it:
Amber + Teslemetry, sync on; one per client by default, so no client rides on another's cached
battery reading or charts), and
`gunicorn -c gunicorn.conf.py run:app` with --workers workers, the embedded scheduler ticking every
--tick seconds (SCHEDULER_TICK_SECONDS). Then --clients threads, each with its own requests.Session
signed in through the real form as one of the users, alternate GET / and GET /api/dashboard for
--duration seconds, back to back, or with --think: waiting 0.5-1.5 x --think seconds (uniform, after a
random start within the first --think), as independent users would, not in lockstep. Prints p50/p95/p99/max per endpoint, requests/s, errors,
the ticks the scheduler ran meanwhile, CPU used by gunicorn and a /metrics scrape. Target: no errors
and p95 under 100 ms. Not a test: it prints figures and exits 0 (1 when there were errors).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import requests  # noqa: E402
from bench_sync import percentile, simulator  # noqa: E402  (one simulator subprocess, one percentile)
from bench_sync import child_cpu_seconds as _child_cpu  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """CPU of `pid` and its reaped children so far; 0 once it is gone."""
    return _child_cpu(pid) or 0.0

METRICS_TOKEN = "load-test-metrics-token-0123456789"
ACCESS_RE = re.compile(r'logger=app\.access .*?msg="GET (/|/api/dashboard) 200".*?duration_ms=([0-9.]+)')
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def prepare_database(sim_base: str, data_dir: Path, users: int) -> tuple[str, list[tuple[str, str]]]:
    """Migrate a new SQLite database with the demo account and `users - 1` more households set up the
    same way (Amber + Teslemetry on the simulator, sync on); return (database URL, [(email, password)])."""
    import logging

    logging.disable(logging.WARNING)
    from app import accounts, clock, create_app
    from app.households import owned_or_new
    from app.simulator import identity
    from app.demo import DEMO_EMAIL, DEMO_PASSWORD, connect_to_simulator, demo_config, prepare_demo
    from app.extensions import db

    config = demo_config(sim_base, data_dir, "127.0.0.1", 5001)
    config.SCHEDULER = "off"
    app = create_app(config)
    prepare_demo(app)
    logins = [(DEMO_EMAIL, DEMO_PASSWORD)]
    with app.app_context():
        for i in range(1, users):
            email, password = f"load{i:03d}@example.com", f"load test password {i:03d}"
            household = owned_or_new(accounts.create_user(email, password), clock.now())
            connect_to_simulator(household, tesla_site_id=identity.TESLA_ENERGY_SITE_ID + i)  # one Powerwall each
            logins.append((email, password))
        db.session.commit()
        db.engine.dispose()
    logging.disable(logging.NOTSET)
    return config.SQLALCHEMY_DATABASE_URI, logins


def start_gunicorn(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "run:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{env['PORT']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited ({proc.returncode}); see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def stop_gunicorn(proc: subprocess.Popen | None) -> None:
    """SIGTERM the whole gunicorn process group (SIGKILL after 30 s), if it still runs."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def sign_in(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30).text
    match = CSRF_RE.search(page)
    assert match, "no CSRF token on /login"
    token = match.group(1) or match.group(2)
    response = session.post(f"{base}/login", data={"email": email, "password": password, "csrf_token": token},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 302, f"sign-in failed: {response.status_code}"
    return session


def run_clients(base: str, sessions: list[requests.Session], duration: float, think: float):
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    start_gate = threading.Barrier(len(sessions))

    def client(index: int, session: requests.Session) -> None:
        paths = ["/", "/api/dashboard"] if index % 2 == 0 else ["/api/dashboard", "/"]
        pause = random.Random(index)  # independent users: staggered starts, think times ±50 %
        start_gate.wait()
        if think:
            time.sleep(pause.uniform(0, think))
        i = 0
        while time.monotonic() < stop_at:
            path = paths[i % 2]
            i += 1
            started = time.perf_counter()
            try:
                response = session.get(f"{base}{path}", timeout=30, allow_redirects=False)
                ok = response.status_code == 200 and (path != "/api/dashboard" or "html" in response.json())
                key = None if ok else f"{path} -> {response.status_code}"
            except (requests.RequestException, ValueError) as exc:
                key = f"{path} -> {type(exc).__name__}"
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if key:
                    errors[key] += 1
                else:
                    latencies[path].append(elapsed)
            if think:
                time.sleep(pause.uniform(0.5 * think, 1.5 * think))

    threads = [threading.Thread(target=client, args=(i, s), daemon=True) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 60)
    return latencies, errors


def sync_run_counts(db_url: str) -> tuple[int, dict[str, int]]:
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        runs = conn.execute("SELECT outcome, COUNT(*) FROM sync_runs GROUP BY outcome").fetchall()
    return sum(n for _, n in runs), dict(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=0,
                        help="accounts the clients sign in as, in turn (default: one per client)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--think", type=float, default=0.0, help="mean seconds each client waits between requests")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--tick", type=int, default=60,
                        help="SCHEDULER_TICK_SECONDS during the run (divides 3600; the app's default is 300)")
    args = parser.parse_args()
    args.users = args.users or args.clients
    if not (1 <= args.clients <= 500 and 1 <= args.users <= 500 and 1 <= args.duration <= 600 and 1 <= args.workers <= 16):
        parser.error("clients 1..500, users 1..500, duration 1..600 s, workers 1..16")

    from app.simulator import identity

    gunicorn: subprocess.Popen | None = None
    with contextlib.ExitStack() as stack:
        sim_base, sim_pid = stack.enter_context(simulator("process"))
        if not sim_base.startswith("http://127.0.0.1:"):
            raise SystemExit("the simulator did not start on loopback")
        stack.callback(lambda: stop_gunicorn(gunicorn))
        with tempfile.TemporaryDirectory(prefix="tas-load-") as tmp:
            data_dir = Path(tmp)
            db_url, logins = prepare_database(sim_base, data_dir, args.users)
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "SCHEDULER"))}
            env.update(identity.app_settings(sim_base))
            env.update(
                APP_ENV="production", DATA_DIR=str(data_dir), DATABASE_URL=db_url, HOST="127.0.0.1", PORT=str(port),
                GUNICORN_WORKERS=str(args.workers), GUNICORN_THREADS=str(args.threads), SCHEDULER="embedded",
                SCHEDULER_TICK_SECONDS=str(args.tick), SCHEDULER_TICK_DELAY_SECONDS="1",
                SCHEDULER_LEASE_TTL_SECONDS="10", SCHEDULER_LEASE_RENEW_SECONDS="3", METRICS_TOKEN=METRICS_TOKEN,
                LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
            )
            log_path = data_dir / "gunicorn.log"
            gunicorn = start_gunicorn(env, log_path)
            base = f"http://127.0.0.1:{port}"
            print(f"gunicorn pid {gunicorn.pid} on {base}: {args.workers} workers x {args.threads} threads; "
                  f"simulator {sim_base}; scheduler tick {args.tick} s; SQLite in {data_dir}; {os.cpu_count()} CPUs")

            started = time.perf_counter()
            sessions: list[requests.Session] = [None] * args.clients  # type: ignore[list-item]

            def login_one(i: int) -> None:
                sessions[i] = sign_in(base, *logins[i % len(logins)])

            login_threads = [threading.Thread(target=login_one, args=(i,)) for i in range(args.clients)]
            for t in login_threads:
                t.start()
            for t in login_threads:
                t.join()
            print(f"{args.clients} clients signed in as {args.users} users in {time.perf_counter() - started:.1f} s")
            for s in sessions:  # warm up: first render per worker, first Tesla read
                s.get(f"{base}/api/dashboard", timeout=30)

            pids = [gunicorn.pid] + worker_pids(gunicorn.pid)
            cpu_before = sum(cpu_seconds(p) for p in pids)
            runs_before, _ = sync_run_counts(db_url)
            self_before = resource.getrusage(resource.RUSAGE_SELF)
            sim_before = cpu_seconds(sim_pid)
            wall = time.perf_counter()
            latencies, errors = run_clients(base, sessions, args.duration, args.think)
            wall = time.perf_counter() - wall
            cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
            self_after = resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = (self_after.ru_utime - self_before.ru_utime) + (self_after.ru_stime - self_before.ru_stime)
            sim_cpu = cpu_seconds(sim_pid) - sim_before
            runs_after, outcomes = sync_run_counts(db_url)

            total = sum(len(v) for v in latencies.values())
            print(f"\n{total} requests in {wall:.1f} s = {total / wall:.0f}/s with {args.clients} clients, think {args.think} s; "
                  f"errors {sum(errors.values())}")
            print(f"{'endpoint':<16}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'mean ms':>9}")
            everything: list[float] = []
            for path in ("/", "/api/dashboard"):
                values = sorted(latencies.get(path, []))
                everything += values
                if values:
                    print(f"{path:<16}{len(values):>7}{percentile(values, .5):>9.1f}{percentile(values, .95):>9.1f}"
                          f"{percentile(values, .99):>9.1f}{values[-1]:>9.1f}{statistics.fmean(values):>9.1f}")
            everything.sort()
            if everything:
                print(f"{'all':<16}{len(everything):>7}{percentile(everything, .5):>9.1f}{percentile(everything, .95):>9.1f}"
                      f"{percentile(everything, .99):>9.1f}{everything[-1]:>9.1f}{statistics.fmean(everything):>9.1f}")
            for key, n in sorted(errors.items()):
                print(f"  error {key}: {n}")
            print(f"gunicorn CPU {cpu:.1f} s over {wall:.1f} s wall = {cpu / wall:.2f} cores; "
                  f"{cpu * 1000 / max(total, 1):.1f} ms CPU per request (incl. scheduler ticks)")
            print(f"load generator CPU {client_cpu / wall:.2f} cores ({client_cpu * 1000 / max(total, 1):.1f} ms per request); "
                  f"simulator {sim_cpu / wall:.2f} cores; machine {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            if not args.think and total:
                # Little's law for a closed loop: each client always has one request in flight, so the
                # mean latency is at least clients x CPU per request / cores, whatever the server's order.
                floor_ms = args.clients * (cpu + client_cpu) * 1000 / total / (os.cpu_count() or 1)
                print(f"closed loop without think time: mean latency >= {args.clients} clients x "
                      f"{(cpu + client_cpu) * 1000 / total:.1f} ms CPU / {os.cpu_count()} cores = {floor_ms:.0f} ms "
                      f"(measured mean {statistics.fmean(everything):.0f} ms)")
            print(f"sync runs during the load: {runs_after - runs_before} (all time {outcomes})")
            scrape = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
            wanted = ("tas_sync_runs_total", "tas_scheduler_leader", "tas_push_latency_last_24h_ms{quantile=\"0.5\"}",
                      "tas_api_calls_total", "tas_force_sessions_active")
            print(f"/metrics {scrape.status_code}: " + "; ".join(
                line for line in scrape.text.splitlines() if line.startswith(wanted)))
            p95 = percentile(everything, .95)
            verdict = "met" if not errors and p95 < 100 else "MISSED"
            print(f"target (no errors, p95 < 100 ms): {verdict} (p95 {p95:.1f} ms)")
            stop_gunicorn(gunicorn)
            log_text = log_path.read_text()
            bad = [line for line in log_text.splitlines() if "level=ERROR" in line or "level=CRITICAL" in line
                   or "Traceback" in line or "[CRITICAL]" in line or "[ERROR]" in line]
            print(f"gunicorn log: {len(log_text.splitlines())} lines, {len(bad)} errors")
            for line in bad[:3]:
                print(f"  {line[:300]}")
            # Time inside the app (the access line's duration_ms) against what the clients saw: the rest is
            # queueing for a worker thread, the network stack and the load generator itself.
            server = defaultdict(list)
            for match in ACCESS_RE.finditer(log_text):
                server[match.group(1)].append(float(match.group(2)))
            for path, values in sorted(server.items()):
                values.sort()
                print(f"server time {path:<16} n {len(values):>6}  p50 {percentile(values, .5):7.1f}  "
                      f"p95 {percentile(values, .95):7.1f}  p99 {percentile(values, .99):7.1f} ms")
            return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
