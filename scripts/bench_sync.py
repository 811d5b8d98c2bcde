"""Benchmark one sync tick for many users against the local simulator (issue 5's throughput target).

Run from the repository root:

    .venv/bin/python scripts/bench_sync.py --users 1000
    .venv/bin/python scripts/bench_sync.py --users 10000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

Creates N users with sync on (bulk rows: a precomputed password hash and tokens encrypted once with the
app's key), spread over `--sites` Amber sites (the simulator answers any other ULID as its demo site),
all pointing at the simulator's one Powerwall, adds `--latency-ms` to every Amber and Tesla call, lifts
the simulator's rate limits, then times `run_tick` and prints users/s, wall time, outcomes, calls,
per-user duration percentiles and peak memory. The target: 1,000 users in under 15 s and 10,000 in
under 120 s with 100 ms per call.

The database is new for the run: a SQLite file in a temporary directory, or a fresh database on the
PostgreSQL server that `--database-url` names (created and dropped again). The simulator runs in a
subprocess by default (`--sim thread` runs it inside this process, where it competes for the GIL).
The tick runs at a fixed simulated instant 40 s into a 5-minute interval, so Amber's current price is
already confirmed and the tick measures the fan-out, not the wait for confirmation (that is
scripts/bench_latency.py's subject). `--ticks` ticks run (default 4): the first is every household's
first sync (state rows created, a first push each), the second comes five simulated minutes later (prices
moved: the previous push is read, compared and replaced), and every later one runs the same interval
again, both clocks set back to a few seconds after the pushing tick, so nothing is pushed; the
third reads each Powerwall back once (due every SYNC_READBACK_HOURS), the fourth on are the steady state
(what most ticks of a household look like: Amber repeats itself within an interval, as the simulator does, so
nothing is written but the run). The simulator answers over HTTP/1.1 with kept-open connections, as Amber and
Tesla do. The summary at the end gives the issue-15 figures:
app CPU per household in the steady state, tick wall time, p95 from the tick's start to a household
synced (and, in the pushing tick, to the push Tesla accepted: the confirmed price is already out when the
tick starts, 40 s into the interval), and peak RSS. `--cprofile` profiles the last tick's syncs (on the
threads' CPU clocks); `--phases` prints each tick's CPU per household in the sync's phases.

Households are created in batches of 2,000 (no ORM objects); the tick reads only their ids.
Not a test: it prints figures and exits 0.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import io
import math
import os
import pstats
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

UTC = timezone.utc
# 19:10:40 AEDT: evening peak (no export protection calls), 40 s into the interval (price confirmed).
DEFAULT_AT = "2026-11-24T08:10:40+00:00"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- the simulator ------------------------------------------------------------------------------------------


def serve_simulator() -> None:
    """Child process: serve a simulator under gunicorn's threaded worker on an ephemeral port, print its URL
    and the worker's pid, stop when stdin closes.

    Gunicorn (already the app's server) keeps HTTP/1.1 connections open between requests, as Amber's and
    Tesla's servers do, so the app is measured reusing its connections as it does in production. Werkzeug's
    development server cannot stand in: it closes every connection after one answer."""
    import signal
    import socket

    from gunicorn.app.base import BaseApplication

    from app.simulator.server import create_simulator_app

    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.set_inheritable(True)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    sim_app = create_simulator_app(amber_rate_limit=0, teslemetry_rate_limit=0, amber_site_aliases=True)
    options = {
        "bind": [f"fd://{listener.fileno()}"],
        "workers": 1,  # one process: the simulator's state (clock, Powerwalls, faults) lives in it
        "worker_class": "gthread",
        "threads": 128,  # every app thread's call can be waiting out the added latency at once
        "keepalive": 300,
        "worker_connections": 4096,
        "loglevel": "warning",
        "accesslog": None,
        "post_worker_init": lambda worker: print(base, os.getpid(), flush=True),
    }

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return sim_app

    master = os.getpid()

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()  # returns when the parent exits or closes the pipe
        os.kill(master, signal.SIGTERM)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    Server().run()


@contextmanager
def simulator(mode: str) -> Iterator[tuple[str, int | None]]:
    """(base URL, pid of the process that answers or None) of a simulator with rate limits off and site
    aliases on: a subprocess under gunicorn (connections kept open), or a thread of this process (werkzeug's
    server, a new connection per call)."""
    if mode == "thread":
        from app.simulator.server import create_simulator_app, start_simulator_thread

        sim_app = create_simulator_app(amber_rate_limit=0, teslemetry_rate_limit=0, amber_site_aliases=True)
        base, stop = start_simulator_thread(app=sim_app)
        try:
            yield base, None
        finally:
            stop()
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-simulator"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base, _, worker_pid = child.stdout.readline().strip().partition(" ")
        if not base.startswith("http") or not worker_pid.isdigit():
            raise SystemExit("the simulator subprocess did not start")
        yield base, int(worker_pid)  # the process that answers (its CPU and memory are the simulator's)
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def child_peak_rss_mb(pid: int | None) -> float | None:
    """Peak resident memory of a running child process (Linux VmHWM), in MB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a running process and its children that have exited have used so far
    (Linux /proc), in seconds; None when there is no such process."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds(app) -> dict[int, float] | None:
    """CPU seconds used so far by each PostgreSQL backend serving the app's database, when the server runs
    on this machine (its processes readable in /proc); None on SQLite or a remote server."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return None
        with db.engine.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars().all()
    used = {pid: child_cpu_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in used.items() if seconds is not None} or None


def database_cpu_between(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU the database's backends used between two readings (a backend opened meanwhile counts from 0)."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def host_speed_ms() -> float:
    """This thread's CPU for a fixed pure-Python workload (dict, float and int work, none of the app's code),
    the best of five: the host's speed at that moment. The shared VMs these benchmarks run on change speed
    by up to 2x from one hour to the next, so a figure means something only next to this one."""
    def work() -> float:
        totals: dict[int, float] = {}
        for i in range(200_000):
            key = i % 997
            totals[key] = totals.get(key, 0.0) + i * 0.5
        return sum(totals.values())

    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best * 1000


def sim_post(base: str, path: str, body: object) -> dict:
    response = requests.post(f"{base}/_sim/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


class RunningClock:
    """The app's clock: a chosen instant that runs on in real time (the simulator's runs alongside)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


# -- the database -------------------------------------------------------------------------------------------


@contextmanager
def fresh_database(database_url: str | None, tmp: Path) -> Iterator[str]:
    """A new SQLite file in `tmp`, or a new database on the PostgreSQL server of `database_url`."""
    if not database_url:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    from config import normalise_database_url

    url = make_url(normalise_database_url(database_url))

    def admin():
        return psycopg.connect(
            host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
            password=url.password, dbname=url.database or "postgres", autocommit=True, connect_timeout=5,
        )

    name = f"tas_bench_{uuid.uuid4().hex[:12]}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def site_ids(count: int) -> list[str]:
    """The simulator's demo Amber site, then made-up ULIDs (aliases of it)."""
    from app.simulator import identity

    ids = [identity.AMBER_SITE_ID]
    for n in range(1, count):
        suffix = ""
        value = n
        for _ in range(6):
            suffix = CROCKFORD[value % 32] + suffix
            value //= 32
        ids.append("01JBENCH0000000000" + "00" + suffix)
    return ids


def create_users(app, count: int, sites: list[str]) -> None:
    """Insert `count` users with sync on, in bulk (no per-user password hashing or encryption)."""
    from sqlalchemy import insert
    from werkzeug.security import generate_password_hash

    from app.crypto import get_crypto
    from app.extensions import db
    from app.models import Household, HouseholdMember, HouseholdSettings, User
    from app.simulator import identity

    with app.app_context():
        crypto = get_crypto()
        password_hash = generate_password_hash(secrets.token_hex(8), method="scrypt:1024:8:1")
        amber = crypto.encrypt(identity.AMBER_TOKEN)
        teslemetry = crypto.encrypt(identity.TESLEMETRY_TOKEN)
        now = datetime.now(UTC)
        batch = 2000
        for first in range(0, count, batch):
            numbers = range(first + 1, min(count, first + batch) + 1)
            db.session.execute(
                insert(User),
                [
                    {
                        "id": n, "email": f"bench{n}@example.com", "password_hash": password_hash,
                        "is_admin": False, "is_disabled": False, "session_nonce": secrets.token_hex(16),
                        "created_at": now,
                    }
                    for n in numbers
                ],
            )
            db.session.execute(insert(Household), [{"id": n, "name": f"bench{n}'s household", "created_at": now} for n in numbers])
            db.session.execute(
                insert(HouseholdMember),
                [{"household_id": n, "user_id": n, "role": "owner", "created_at": now} for n in numbers],
            )
            db.session.execute(
                insert(HouseholdSettings),
                [
                    {
                        # Each household its own Powerwall (one controller each): the simulator's n-th site.
                        "household_id": n, "amber_token_enc": amber, "amber_site_id": sites[(n - 1) % len(sites)],
                        "teslemetry_token_enc": teslemetry, "tesla_site_id": str(identity.TESLA_ENERGY_SITE_ID + n - 1),
                        "tesla_path": "teslemetry", "site_timezone": identity.SITE_TIME_ZONE, "sync_enabled": True,
                        "forecast_estimate": "predicted", "change_threshold_cents": 0.5,
                        "export_protection": True, "export_protection_rule": "never", "updated_at": now,
                    }
                    for n in numbers
                ],
            )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            for table in ("users", "households"):
                db.session.execute(db.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :n)"), {"n": count})
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()


def make_app(database_url: str, tmp: Path, base: str, clock, *, log_level: str = "WARNING",
              workers: int | None = None, pool_size: int | None = 0):
    """Production settings on `database_url` with throw-away keys, pointed at the simulator at `base`,
    scheduler off, the given clock; `pool_size` None sizes the PostgreSQL pool to the sync workers, 0
    keeps the default. The schema is created from the models."""
    from cryptography.fernet import Fernet

    from app import create_app
    from app.simulator import identity
    from config import ProductionConfig

    os.environ.setdefault("LOG_LEVEL", log_level)
    config = ProductionConfig()
    config.DATA_DIR = str(tmp / "data")
    config.SQLALCHEMY_DATABASE_URI = database_url
    config.SECRET_KEY = secrets.token_hex(16)
    config.FERNET_ENCRYPTION_KEY = Fernet.generate_key().decode()
    config.SCHEDULER = "off"
    config.LOG_LEVEL = log_level
    if workers:
        config.SYNC_MAX_WORKERS = workers
    if database_url.startswith("postgresql") and pool_size != 0:
        pool = pool_size or config.SYNC_MAX_WORKERS
        config.SQLALCHEMY_ENGINE_OPTIONS = {**config.SQLALCHEMY_ENGINE_OPTIONS, "pool_size": pool, "max_overflow": 10}
    for name, value in identity.app_settings(base).items():
        setattr(config, name, value)
    app = create_app(config)
    app.extensions["clock"] = clock
    from app.extensions import db

    with app.app_context():
        db.create_all()
    return app


# -- measuring ----------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


@contextmanager
def profiling(enabled: bool, out: str | None) -> Iterator[None]:
    """cProfile every user's sync in the worker threads (each thread's calls, summed), on each thread's CPU
    clock: the waits for Amber, Tesla and the database are not counted as time spent."""
    if not enabled:
        yield
        return
    import app.sync.engine as sync_module

    real = sync_module._sync_in_context
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profiled(*a, **kw):
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        try:
            return real(*a, **kw)
        finally:
            profile.disable()
            with lock:
                profiles.append(profile)

    sync_module._sync_in_context = profiled
    try:
        yield
    finally:
        sync_module._sync_in_context = real
        stream = io.StringIO()
        stats = pstats.Stats(profiles[0], stream=stream)
        for profile in profiles[1:]:
            stats.add(profile)
        if out:
            stats.dump_stats(out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        print(stream.getvalue())


# What `--phases` times: (module, attribute, label). Inclusive: a phase's figure holds the phases it calls.
PHASES = (
    ("app.sync.engine", "_load", "load (one SELECT)"),
    ("app.sync.engine", "fetch_site_prices", "Amber fetch"),
    ("app.clients.base", "HttpClient.request", "  HTTP, every call"),  # Amber's 2 in the fetch; Tesla's in the rest
    ("app.clients.amber", "parse_prices", "  parse"),
    ("app.sync.engine", "screen_prices", "  screen"),
    ("app.sync.engine", "price_changes", "price signatures"),
    ("app.sync.engine", "build_tariff", "build tariff"),
    ("app.sync.engine", "decide_push", "decide"),
    ("app.sync.engine", "_HouseholdSync._push", "push (a pushing sync)"),
    ("app.sync.engine", "_record_run", "record the run"),
    ("app.sync.engine", "record_call_counts", "  call counts"),
    ("app.sync.engine", "write_price_changes", "  changed prices"),
    ("app.sync.engine", "after_sync", "notifications"),
)


class PhaseTimers:
    """Per-thread CPU time (time.thread_time: the waits for Amber, Tesla and the database excluded) spent
    in each of PHASES during a tick, added over the tick's threads; the wrappers cost about 2 us a call."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()  # database round trips by kind (SELECT, INSERT, COMMIT, ...)
        self._lock = threading.Lock()
        self._originals: list[tuple[object, str, object]] = []
        self._listeners: list[tuple[object, str, object]] = []

    def clear(self) -> None:
        self.seconds.clear()
        self.statements.clear()

    def listen(self, engine) -> None:
        """Count the engine's statements by their first word, and its BEGIN / COMMIT / ROLLBACK events (sent
        without a cursor). These are SQLAlchemy's: in autocommit (the household's read on PostgreSQL) its
        BEGIN and COMMIT reach no server, and SQLite's driver sends no BEGIN before a read."""
        from sqlalchemy import event

        def statement(conn, cursor, sql, parameters, context, executemany):
            words = sql.lstrip().split(None, 1)
            self._count(words[0].upper() if words else "?")

        for name, listener in (
            ("before_cursor_execute", statement),
            ("begin", lambda conn: self._count("BEGIN")),
            ("commit", lambda conn: self._count("COMMIT")),
            ("rollback", lambda conn: self._count("ROLLBACK")),
        ):
            event.listen(engine, name, listener)
            self._listeners.append((engine, name, listener))

    def _count(self, kind: str) -> None:
        with self._lock:
            self.statements[kind] += 1

    def install(self) -> None:
        import importlib

        for module_name, attribute, label in (*PHASES, ("app.sync.engine", "_sync_in_context", "whole sync")):
            owner: object = importlib.import_module(module_name)
            name = attribute
            if "." in attribute:
                class_name, name = attribute.split(".")
                owner = getattr(owner, class_name)
            real = getattr(owner, name)
            self._originals.append((owner, name, real))
            setattr(owner, name, self._timed(real, label))

    def uninstall(self) -> None:
        from sqlalchemy import event

        for owner, name, real in reversed(self._originals):
            setattr(owner, name, real)
        self._originals.clear()
        for engine, name, listener in self._listeners:
            event.remove(engine, name, listener)
        self._listeners.clear()

    def _timed(self, real, label: str):
        seconds, lock = self.seconds, self._lock

        @functools.wraps(real)
        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with lock:
                    seconds[label] += spent

        return timed

    def report(self, households: int) -> str:
        per = {label: self.seconds[label] / max(households, 1) * 1000 for _, _, label in PHASES}
        whole = self.seconds["whole sync"] / max(households, 1) * 1000
        named = sum(value for label, value in per.items() if not label.startswith(" "))  # the indented are inside these
        lines = [f"  where a household's sync CPU goes (ms, thread CPU, inclusive): whole sync {whole:.2f}"]
        lines += [f"    {label:<22} {value:6.2f}" for label, value in per.items()]
        lines.append(f"    {'the rest':<22} {whole - named:6.2f}  (app context, session, statuses, the sync's own steps)")
        n = max(households, 1)
        trips = ", ".join(f"{kind} {count / n:.2f}" for kind, count in self.statements.most_common())
        lines.append(f"  database round trips per household: {sum(self.statements.values()) / n:.2f} ({trips or 'none'})")
        return "\n".join(lines)


def run_ticks(app, clock: RunningClock, args, base: str, child_pid: int | None) -> None:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import StoredPrice, SyncRun, TariffPush
    from app.sync import engine as sync_engine
    from app.sync import run_tick

    # Price rows the syncs send to the database (only new or changed intervals are meant to be): counted at
    # the one function every price write goes through. list.append is atomic, so the threads can share it.
    written: list[int] = []
    write_rows = sync_engine._write_price_rows

    def counting_write(rows):
        written.append(len(rows))
        write_rows(rows)

    sync_engine._write_price_rows = counting_write
    summary: dict[str, dict[str, float]] = {}
    phases = PhaseTimers() if args.phases else None
    if phases is not None:
        phases.install()
        with app.app_context():
            phases.listen(db.engine)
    pushing_at: datetime | None = None
    for tick in range(1, args.ticks + 1):
        if tick >= 3 and pushing_at is not None:
            # The same interval again, a few seconds after the pushing tick for both clocks, however long the
            # ticks before took (on a busy machine real time would otherwise carry them into the next interval).
            clock.start, clock.origin = pushing_at + timedelta(seconds=tick), time.monotonic()
            sim_post(base, "clock", {"set": clock.start.isoformat()})
        tick_at = clock()
        if tick == 2:
            pushing_at = tick_at
        db_cpu_before = database_cpu_seconds(app)
        written.clear()
        if phases is not None:
            phases.clear()
        with app.app_context(), profiling(args.cprofile and tick == args.ticks, args.cprofile_out):
            cpu_before, sim_cpu_before = own_cpu_seconds(), child_cpu_seconds(child_pid)
            started = time.perf_counter()
            results = run_tick(tick_at)
            wall = time.perf_counter() - started
            cpu = own_cpu_seconds() - cpu_before
            sim_cpu = (child_cpu_seconds(child_pid) or 0.0) - (sim_cpu_before or 0.0)
        db_cpu = database_cpu_between(db_cpu_before, database_cpu_seconds(app))
        with app.app_context():
            runs = db.session.scalars(select(SyncRun).where(SyncRun.tick_at == tick_at)).all()
            durations = [(r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at]
            # From the tick's start to the household's run recorded (synced: pushed, or decided unchanged).
            to_synced = [(r.finished_at - tick_at).total_seconds() for r in runs if r.finished_at]
            to_pushed = [(r.finished_at - tick_at).total_seconds() for r in runs if r.finished_at and r.pushed]
            latencies = [r.push_latency_ms for r in runs if r.push_latency_ms is not None]
            pushes = db.session.scalar(select(func.count(TariffPush.id)))
            prices = db.session.scalar(select(func.count(StoredPrice.id)))
            db.session.remove()
        outcomes = Counter(r.outcome for r in results)
        reasons = Counter(r.reason for r in results if r.outcome in ("failed", "skipped"))
        amber = sum(r.amber_calls for r in results)
        tesla = sum(r.tesla_calls for r in results)
        # Tick 3 is the first to find nothing to push, and reads each Powerwall back once (due every
        # SYNC_READBACK_HOURS); the ticks after it are the plain steady state.
        kind = "first" if tick == 1 else "pushing" if tick == 2 else "steady" if not tesla else "readback"
        print(f"tick {tick} ({kind}): {len(results)} households in {wall:.2f} s = {len(results) / wall:.1f} households/s")
        print(f"  outcomes {dict(outcomes)}; Amber calls {amber}, Tesla calls {tesla}")
        print(
            f"  per-user sync p50 {percentile(durations, 0.5) * 1000:.0f} ms, p95 {percentile(durations, 0.95) * 1000:.0f} ms, "
            f"max {max(durations, default=float('nan')) * 1000:.0f} ms; Tesla push p50 {percentile(latencies, 0.5):.0f} ms, "
            f"p95 {percentile(latencies, 0.95):.0f} ms"
        )
        print(
            f"  CPU during the tick: app {cpu:.1f} s ({cpu / max(len(results), 1) * 1000:.1f} ms per user)"
            + (f", simulator {sim_cpu:.1f} s" if child_pid else " (simulator included)")
            + (f", PostgreSQL {db_cpu:.1f} s ({db_cpu / max(len(results), 1) * 1000:.1f} ms per user)" if db_cpu is not None else "")
        )
        if phases is not None:
            print(phases.report(len(results)))
        print(f"  rows: {len(runs)} sync runs this tick, {sum(written)} price rows written this tick (new or changed), "
              f"{pushes} tariff pushes, {prices} stored prices")
        print(
            f"  tick start -> synced p50 {percentile(to_synced, 0.5):.1f} s, p95 {percentile(to_synced, 0.95):.1f} s"
            + (f"; -> push accepted p95 {percentile(to_pushed, 0.95):.1f} s ({len(to_pushed)} pushes)" if to_pushed else "")
        )
        entry = summary.setdefault(kind, {"ticks": 0, "cpu_ms": 0.0, "wall": 0.0, "p95_synced": 0.0, "p95_pushed": float("nan")})
        entry["ticks"] += 1
        entry["cpu_ms"] += cpu / max(len(results), 1) * 1000
        entry["wall"] += wall
        entry["p95_synced"] = max(entry["p95_synced"], percentile(to_synced, 0.95))
        if to_pushed:
            entry["p95_pushed"] = percentile(to_pushed, 0.95)
        slowest = sorted(runs, key=lambda r: r.finished_at - r.started_at)[-3:]
        print("  slowest: " + ", ".join(
            f"household {r.household_id} {(r.finished_at - r.started_at).total_seconds():.2f} s ({r.amber_calls} Amber calls)" for r in slowest
        ))
        for reason, count in reasons.most_common(3):
            print(f"  {count} x {reason[:160]}")
        if tick == 1 and args.ticks > 1:
            # The next tick: five simulated minutes later for both clocks, so prices have moved on.
            clock.start += timedelta(seconds=300)
            sim_post(base, "clock", {"advance_seconds": 300})

    sync_engine._write_price_rows = write_rows
    if phases is not None:
        phases.uninstall()
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"peak RSS: app process {peak_rss_mb():.0f} MB" + (
        f", simulator process {child_peak_rss_mb(child_pid):.0f} MB" if child_pid else " (simulator in-process)"
    ))
    backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    print(f"summary ({args.users} households, {args.sites} Amber sites, {backend}, {args.latency_ms} ms per call):")
    for kind, entry in summary.items():
        n = entry["ticks"]
        print(
            f"  {kind:8s} tick: app CPU {entry['cpu_ms'] / n:.1f} ms per household, tick {entry['wall'] / n:.2f} s, "
            f"p95 tick start -> synced {entry['p95_synced']:.1f} s"
            + (f", -> push accepted {entry['p95_pushed']:.1f} s" if entry['p95_pushed'] == entry['p95_pushed'] else "")
        )
    print(f"  peak RSS {peak_rss_mb():.0f} MB (app process, whole run)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100, help="added to every Amber and Tesla call")
    parser.add_argument("--workers", type=int, default=0, help="SYNC_MAX_WORKERS (default: the app's)")
    parser.add_argument("--database-url", help="PostgreSQL server to create a fresh database on (default SQLite)")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="PostgreSQL pool size (default: the number of workers; 0 = the app's default)")
    parser.add_argument("--sites", type=int, default=1, help="distinct Amber sites the users spread over")
    parser.add_argument("--sim", choices=("subprocess", "thread"), default="subprocess")
    parser.add_argument("--at", default=DEFAULT_AT, help="simulated instant of the tick (ISO 8601 with offset)")
    parser.add_argument("--ticks", type=int, default=4,
                        help="ticks to run: 1 = every household's first sync, 2 = five simulated minutes later "
                             "(prices moved, pushes), 3 = the same interval again (nothing to push; each Powerwall read back once), "
                             "4+ = the steady state")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--cprofile", action="store_true", help="profile every household's sync in the last tick (slows it down)")
    parser.add_argument("--cprofile-out", help="write the summed profile here (pstats format)")
    parser.add_argument("--phases", action="store_true",
                        help="print each tick's thread CPU per household in the sync's phases (load, fetch, tariff, record, ...)")
    parser.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_simulator:
        serve_simulator()
        return 0

    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")).astimezone(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp_name, simulator(args.sim) as (base, child_pid):
        tmp = Path(tmp_name)
        with fresh_database(args.database_url, tmp) as database_url:
            clock = RunningClock(at)
            sim_post(base, "clock", {"set": at.isoformat()})
            if args.latency_ms:
                sim_post(base, "faults", {"endpoint": "*", "latency_ms": args.latency_ms})
            app = make_app(database_url, tmp, base, clock, log_level=args.log_level, workers=args.workers,
                           pool_size=args.pool_size)
            started = time.perf_counter()
            create_users(app, args.users, site_ids(args.sites))
            setup = time.perf_counter() - started
            backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
            with app.app_context():
                from app.extensions import db

                pool = db.engine.pool.status() if hasattr(db.engine.pool, "status") else type(db.engine.pool).__name__
            print(
                f"{args.users} users over {args.sites} Amber site(s) on {backend}; {app.config['SYNC_MAX_WORKERS']} workers; "
                f"{args.latency_ms} ms added per call; simulator in a {args.sim}; users created in {setup:.1f} s"
            )
            print(f"  pool: {pool}; {os.cpu_count()} CPUs; tick at {at.isoformat()} (simulated)")
            print(f"  load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} (other work on the machine skews the figures)")
            speed_before = host_speed_ms()
            run_ticks(app, clock, args, base, child_pid)
            print(f"host speed: reference workload {speed_before:.1f} ms before the ticks, {host_speed_ms():.1f} ms after "
                  "(thread CPU, lower is faster: compare figures only between runs with similar values)")
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
