"""Benchmark the dashboard's server time with a year of 5-minute price history (the dashboard issue's target).

Run from the repository root:

    .venv/bin/python scripts/bench_dashboard.py
    .venv/bin/python scripts/bench_dashboard.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

For each backend (SQLite always; PostgreSQL too with `--database-url`, on a fresh database created on
that server and dropped afterwards) it builds one user with sync on, bulk-inserts `--days` of settled
5-minute prices (general and feed-in: 365 days = 210,240 rows), `--days` of 5-minute sync runs and an
hourly tariff push for the last `--push-days`, then runs one real sync tick against the in-process
simulator (so the forecast, the pushed tariff and its explanation are real). The clock is frozen, so
after the first page view the battery reading stays fresh and no request calls Tesla (checked).

Then it times `--requests` requests per endpoint with the Flask test client (server time: routing,
session, queries, templates) and prints p50 / p95 / max, the queries per request and their time. The
target is p95 under 50 ms. "CPU" is this process's CPU time per request (SQLite's work included,
PostgreSQL's not): on a busy machine it shows what the request costs when wall time is inflated by
other processes. An endpoint over the target (or every endpoint with `--profile`) gets a breakdown:
its slowest SQL statements and the time spent in each of the view's helpers (`--cprofile` adds a
cProfile). `--gc-freeze` freezes the objects alive after warm-up, to show how much of the tail is
the cyclic garbage collector walking the loaded app. Not a test: it prints figures and exits 0.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_sync import fresh_database, percentile  # noqa: E402  (one way to make a throw-away database)
from bench_sync import make_app as bench_sync_app  # noqa: E402

UTC = timezone.utc
# 19:12:40 AEDT: evening peak, 160 s into a 5-minute interval (the simulator's price is confirmed).
DEFAULT_AT = "2026-11-24T08:12:40+00:00"
ENDPOINTS = ("/", "/api/dashboard", "/tariff", "/history")
# The dashboard's charts are kept per minute and per price data (app.dashboard.routes.price_charts):
# its views are timed both with the charts drawn on every request (what a view costs when the
# prices or the minute changed) and reused (another view in the same minute).
CHART_VIEWS = ("/", "/api/dashboard")
TARGET_MS = 50.0
EMAIL = "bench@example.com"
PASSWORD = "benchmark password"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class FrozenClock:
    """The app's and the simulator's clock: one instant that does not move."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


# -- databases ----------------------------------------------------------------------------------------------


def make_app(database_url: str, tmp: Path, sim_base: str, clock: FrozenClock):
    """bench_sync's app (production settings, scheduler off) with the clock frozen and no waiting."""
    app = bench_sync_app(database_url, tmp, sim_base, clock)
    app.extensions["sleep"] = lambda seconds: None  # the price is already confirmed; never wait
    return app


# -- the data -----------------------------------------------------------------------------------------------


def chunks(rows: list[dict], size: int = 5000) -> Iterator[list[dict]]:
    for first in range(0, len(rows), size):
        yield rows[first:first + size]


def price_rows(site_id: str, first: datetime, count: int) -> list[dict]:
    """`count` settled 5-minute intervals from `first`, general and feed-in: a daily shape with noise."""
    rows = []
    for n in range(count):
        start = first + timedelta(minutes=5 * n)
        hour = (start.hour + 10) % 24 + start.minute / 60  # roughly the local hour in the NEM
        spot = 9 + 8 * math.sin((hour - 12) / 24 * 2 * math.pi) ** 2 - (6 if 10 <= hour <= 15 else 0) + (n * 7919 % 13) / 4
        general = round(spot * 1.04 + (18 if 15 <= hour < 21 else 6), 5)
        common = {
            "amber_site_id": site_id, "start_at": start, "duration_minutes": 5, "kind": "actual",
            "spot_per_kwh": round(spot, 5), "advanced_low": None, "advanced_predicted": None, "advanced_high": None,
            "estimate": False, "spike_status": "none", "descriptor": "neutral", "renewables": 35.0,
            "updated_at": start + timedelta(minutes=5),
        }
        rows.append({**common, "channel": "general", "per_kwh": general})
        rows.append({**common, "channel": "feedIn", "per_kwh": round(-spot * 0.98, 5)})
    return rows


def build(app, at: datetime, days: int, push_days: int) -> dict[str, int]:
    """A configured user, the history, and one real tick; returns row counts."""
    from sqlalchemy import func, insert, select

    from app import accounts
    from app.connections import check_connections
    from app.credentials import apply_settings
    from app.extensions import db
    from app.households import owned_or_new
    from app.models import StoredPrice, SyncRun, TariffPush
    from app.simulator import identity
    from app.sync import run_tick

    with app.app_context():
        user = owned_or_new(accounts.create_user(EMAIL, PASSWORD, is_admin=True), at)  # the household it owns
        apply_settings(
            user, amber_token=identity.AMBER_TOKEN, amber_site_id=identity.AMBER_SITE_ID,
            teslemetry_token=identity.TESLEMETRY_TOKEN, tesla_site_id=str(identity.TESLA_ENERGY_SITE_ID),
            site_timezone=identity.SITE_TIME_ZONE, sync_enabled=True,
        )
        check_connections(user, at)
        db.session.commit()
        user_id = user.id

        interval = at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)
        intervals = days * 288
        for chunk in chunks(price_rows(identity.AMBER_SITE_ID, interval - timedelta(minutes=5 * intervals), intervals)):
            db.session.execute(insert(StoredPrice), chunk)
        db.session.commit()

    # A real tick: Amber's forecast and near-term prices, a real push with its explanation, sync state.
    with app.app_context():
        results = run_tick(at)
    if [r.outcome for r in results] != ["pushed"]:
        raise SystemExit(f"the setup tick did not push: {results}")

    with app.app_context():
        real = db.session.scalar(select(TariffPush).order_by(TariffPush.id.desc()).limit(1))
        pushes = [
            {"household_id": user_id, "tesla_site_id": real.tesla_site_id, "created_at": at - timedelta(hours=h),
             "kind": "normal", "tariff": real.tariff, "tariff_hash": f"{h:064x}", "explanation": real.explanation,
             "accepted": True, "tesla_reason": None}
            for h in range(push_days * 24, 0, -1)
        ]
        push_ids: list[int] = []
        for chunk in chunks(pushes, 200):
            push_ids += list(db.session.scalars(insert(TariffPush).returning(TariffPush.id), chunk))
        by_hour = dict(zip(range(push_days * 24, 0, -1), push_ids))
        runs = []
        for n in range(days * 288, 0, -1):
            started = at - timedelta(minutes=5 * n)
            push_id = by_hour.get(n // 12) if n % 12 == 0 else None
            runs.append({
                "household_id": user_id, "tick_at": started, "started_at": started, "finished_at": started + timedelta(seconds=2),
                "outcome": "pushed" if push_id else "unchanged",
                "reason": "Prices moved by 1.2c in the current half hour." if push_id else "No price changed enough to be worth a push.",
                "amber_calls": 2, "tesla_calls": 2 if push_id else 0, "pushed": bool(push_id),
                "push_latency_ms": 850 if push_id else None, "tariff_push_id": push_id,
            })
        for chunk in chunks(runs):
            db.session.execute(insert(SyncRun), chunk)
        db.session.commit()
        db.session.execute(db.text("ANALYZE"))  # both backends: plan with real row counts
        db.session.commit()
        counts = {
            "price rows": db.session.scalar(select(func.count(StoredPrice.id))),
            "sync runs": db.session.scalar(select(func.count(SyncRun.id))),
            "tariff pushes": db.session.scalar(select(func.count(TariffPush.id))),
            "explanation KB": len(str(real.explanation)) // 1024,
        }
        db.session.remove()
    return counts


# -- measuring ----------------------------------------------------------------------------------------------


class QueryLog:
    """Every SQL statement's time, per request (attached to the engine's cursor events)."""

    def __init__(self) -> None:
        self.enabled = False
        self.current: list[tuple[str, float]] = []
        self._started: dict[int, float] = {}

    def attach(self, engine) -> None:
        from sqlalchemy import event

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn, cursor, statement, parameters, context, executemany):
            self._started[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):
            started = self._started.pop(id(cursor), None)
            if self.enabled and started is not None:
                self.current.append((statement, time.perf_counter() - started))

    def take(self) -> list[tuple[str, float]]:
        taken, self.current = self.current, []
        return taken


def signed_in_client(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")
    return client


def short(statement: str, width: int = 150) -> str:
    text = " ".join(statement.split())
    text = re.sub(r"SELECT .*? FROM", "SELECT … FROM", text, count=1)
    return text if len(text) <= width else text[: width - 1] + "…"


def time_endpoints(app, requests_per_endpoint: int, sim_base: str, profile: bool, cprofile: bool, freeze: bool) -> list[str]:
    """Time every endpoint; return the endpoints that missed the target."""
    import requests as http

    from app.extensions import db

    from app.dashboard.routes import price_charts

    clear_charts = price_charts.cache_clear  # kept before the profiler wraps the module's names
    log = QueryLog()
    with app.app_context():
        log.attach(db.engine)
    client = signed_in_client(app)
    for path in ENDPOINTS:  # warm up: templates compiled, battery read once (then fresh for the frozen clock)
        for _ in range(5):
            assert client.get(path).status_code == 200, path
    tesla_before = http.get(f"{sim_base}/_sim/state", timeout=10).json()["request_counts"]
    if freeze:
        # What a server can do once its app is loaded: move every object alive now out of the
        # collector's reach, so full collections no longer walk the app, SQLAlchemy and Jinja.
        gc.collect()
        gc.freeze()
    print(f"  {len(gc.get_objects()):,} objects tracked by the garbage collector"
          + (f" ({gc.get_freeze_count():,} frozen)" if freeze else "") + f"; gc thresholds {gc.get_threshold()}")

    missed = []
    print(f"  {'endpoint':<24}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'CPU p50':>9}{'CPU p95':>9}{'queries':>9}{'SQL p50':>9}{'SQL p95':>9}  bytes")
    per_endpoint_sql: dict[str, dict[str, list[float]]] = {}
    runs = [(path, True) for path in ENDPOINTS] + [(path, False) for path in CHART_VIEWS]
    for path, draw in runs:
        label = path if path not in CHART_VIEWS else f"{path} ({'drawn' if draw else 'reused'})"
        times, cpu_times, sql_times, counts = [], [], [], []
        statements: dict[str, list[float]] = defaultdict(list)
        size = 0
        for _ in range(requests_per_endpoint):
            if draw:
                clear_charts()
            log.enabled = True
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path)
            body = response.get_data()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            log.enabled = False
            assert response.status_code == 200, (path, response.status_code)
            size = len(body)
            queries = log.take()
            times.append(elapsed * 1000)
            cpu_times.append(cpu * 1000)
            sql_times.append(sum(t for _, t in queries) * 1000)
            counts.append(len(queries))
            for statement, seconds in queries:
                statements[statement].append(seconds * 1000)
        if draw:
            per_endpoint_sql[path] = statements
        p95 = percentile(times, 0.95)
        flag = "" if p95 < TARGET_MS else "  <-- over the 50 ms target"
        print(
            f"  {label:<24}{percentile(times, 0.5):>9.1f}{p95:>9.1f}{max(times):>9.1f}"
            f"{percentile(cpu_times, 0.5):>9.1f}{percentile(cpu_times, 0.95):>9.1f}{statistics.median(counts):>9.0f}"
            f"{percentile(sql_times, 0.5):>9.1f}{percentile(sql_times, 0.95):>9.1f}  {size}{flag}"
        )
        if p95 >= TARGET_MS and path not in missed:
            missed.append(path)

    tesla_after = http.get(f"{sim_base}/_sim/state", timeout=10).json()["request_counts"]
    changed = {k: tesla_after.get(k, 0) - tesla_before.get(k, 0) for k in tesla_after if tesla_after.get(k, 0) != tesla_before.get(k, 0)}
    print(f"  simulator calls while timing: {changed or 'none'}")

    for path in ENDPOINTS if profile else missed:
        explain(client, path, per_endpoint_sql[path], requests_per_endpoint, cprofile, clear_charts)
    return missed


# Functions the dashboard's views call, timed inclusively (a function that calls another includes it).
COMPONENTS = {
    "app.dashboard.data": ("battery", "now_prices", "sync_status", "last_push", "health", "costs", "tariff_timeline",
                           "forecast_points", "history_points", "price_rows", "_rows_between", "_points", "explained_slots", "push_diff",
                           "site_zone", "control_view"),
    "app.dashboard.routes": ("price_charts", "forecast_chart", "history_chart", "render_part", "render_template", "setup_steps"),
    "app.api.routes": ("render_part", "jsonify"),
}


@contextmanager
def timed_components(totals: dict[str, list[float]]) -> Iterator[None]:
    """Wrap the views' helpers so every call's time lands in `totals` (restored afterwards)."""
    import functools
    import importlib

    patched = []
    for module_name, names in COMPONENTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            real = getattr(module, name, None)
            if real is None:
                continue  # the app changed; time what still exists

            def wrapper(*args, __real=real, __key=f"{module_name.removeprefix('app.')}.{name}", **kwargs):
                started = time.perf_counter()
                try:
                    return __real(*args, **kwargs)
                finally:
                    totals[__key].append((time.perf_counter() - started) * 1000)

            setattr(module, name, functools.wraps(real)(wrapper))
            patched.append((module, name, real))
    try:
        yield
    finally:
        for module, name, real in patched:
            setattr(module, name, real)


def explain(client, path: str, statements: dict[str, list[float]], requests_per_endpoint: int, cprofile: bool,
            clear_charts) -> None:
    """Where one endpoint's time goes: its slowest SQL statements and its helpers' time per request."""
    print(f"\n  breakdown of {path}: SQL statements by total time ({requests_per_endpoint} requests)")
    ranked = sorted(statements.items(), key=lambda item: -sum(item[1]))
    for statement, times in ranked[:6]:
        per_request = sum(times) / requests_per_endpoint
        print(f"    {per_request:7.2f} ms/request  {len(times) / requests_per_endpoint:.0f}x  {short(statement)}")
    samples = 50
    totals: dict[str, list[float]] = defaultdict(list)
    whole = []
    with timed_components(totals):
        for _ in range(samples):
            clear_charts()  # the breakdown is of a view that draws its charts
            started = time.perf_counter()
            client.get(path)
            whole.append((time.perf_counter() - started) * 1000)
    print(f"  time in the view's helpers, ms per request (inclusive, {samples} requests, whole request "
          f"median {statistics.median(whole):.1f} ms):")
    for key, times in sorted(totals.items(), key=lambda item: -sum(item[1])):
        print(f"    {sum(times) / samples:7.2f}  {key} ({len(times) / samples:.0f} calls)")
    if not cprofile:
        return
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(30):
        clear_charts()
        client.get(path)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(20)
    print(f"  cProfile of 30 requests to {path}, by own time:")
    for line in stream.getvalue().splitlines():
        if line.strip():
            print("    " + line)


def run_backend(label: str, database_url: str | None, args, at: datetime) -> None:
    from app.extensions import db
    from app.simulator.server import create_simulator_app, start_simulator_thread

    clock = FrozenClock(at)
    sim_base, stop = start_simulator_thread(
        app=create_simulator_app(clock=clock, amber_rate_limit=0, teslemetry_rate_limit=0)
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp_name, \
                fresh_database(database_url, Path(tmp_name)) as url:
            app = make_app(url, Path(tmp_name), sim_base, clock)
            started = time.perf_counter()
            counts = build(app, at, args.days, args.push_days)
            setup = time.perf_counter() - started
            with app.app_context():
                version = db.session.execute(
                    db.text("select sqlite_version()" if url.startswith("sqlite") else "show server_version")
                ).scalar()
                db.session.remove()
            print(f"\n{label} {version}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) + f"; built in {setup:.1f} s")
            print(f"  {args.requests} requests per endpoint, signed in, frozen clock {at.isoformat()}")
            missed = time_endpoints(app, args.requests, sim_base, args.profile, args.cprofile, args.gc_freeze)
            print(f"  target p95 < {TARGET_MS:.0f} ms: " + ("met by every endpoint" if not missed else f"missed by {', '.join(missed)}"))
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    finally:
        stop()
        if gc.get_freeze_count():
            gc.unfreeze()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--days", type=int, default=365, help="days of 5-minute prices and sync runs")
    parser.add_argument("--push-days", type=int, default=30, help="days of hourly tariff pushes")
    parser.add_argument("--database-url", help="PostgreSQL server to create a fresh database on (also measured)")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--profile", action="store_true", help="break down every endpoint, not only slow ones")
    parser.add_argument("--cprofile", action="store_true", help="add a cProfile (by own time) to each breakdown")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after warming up, as a server could after loading the app (shows the GC's share)")
    parser.add_argument("--at", default=DEFAULT_AT, help="the frozen instant (ISO 8601 with offset)")
    args = parser.parse_args()
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")).astimezone(UTC)
    print(f"Dashboard server time, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; target p95 < {TARGET_MS:.0f} ms")
    if not args.skip_sqlite:
        run_backend("SQLite", None, args, at)
    if args.database_url:
        run_backend("PostgreSQL", args.database_url, args, at)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
