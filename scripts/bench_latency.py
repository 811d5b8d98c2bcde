"""Benchmark how soon a newly confirmed Amber price reaches the Powerwall (issue 5's latency target).

Run from the repository root:

    .venv/bin/python scripts/bench_latency.py                          # confirmed 20 s into each interval
    .venv/bin/python scripts/bench_latency.py --estimate-seconds 10-50 # spread, seeded
    .venv/bin/python scripts/bench_latency.py --users 1000 --database-url postgresql://postgres@127.0.0.1:5432/postgres

Runs ticks exactly as the scheduler does (at each 5-minute boundary + SCHEDULER_TICK_DELAY_SECONDS)
for `--intervals` consecutive intervals against the simulator, which confirms each 5-minute price
`--estimate-seconds` into its interval. For every user and interval it takes

    latency = (time Tesla accepted the push carrying the confirmed price) - (time Amber published it)

and prints p50 / p95 / max, and the share within the 15 s target. The target is p95 <= 15 s.

Time: the app and the simulator share one simulated clock that runs at the real rate, so the real
time of every HTTP call and of the app's own work counts, while a sleep (the sync's re-polls for the
confirmed price, retry back-offs) moves the clock forward at once instead of waiting. Between ticks the
clock jumps to the next tick time. The simulator runs in a subprocess by default (its clock is kept in
step through /_sim/clock); `--sim thread` runs it in this process on the same clock object.

When a tick gives up waiting (the price is still an estimate after the sync's re-polls), the pushed
tariff carries the estimate; the confirmed price then reaches Tesla with the next tick, if its interval
still belongs to the current half hour, and otherwise never (the half hour has passed: counted as
missed). A user whose tariff did not need to change ("unchanged") already holds a tariff that reflects
the price: their latency is taken when the sync decided so. Not a test: it prints figures and exits 0.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_sync  # noqa: E402
from bench_sync import create_users, fresh_database, make_app, percentile, sim_post, site_ids  # noqa: E402

UTC = timezone.utc
TARGET_SECONDS = 15.0
# 19:00 AEDT on a summer evening: prices move every interval, so nearly every tick pushes.
DEFAULT_START = "2026-11-24T08:00:00+00:00"
FIVE_MINUTES = timedelta(minutes=5)


class SharedClock:
    """Simulated time for the app and the simulator: it runs at the real rate, and `sleep` moves it
    forward at once. Concurrent sleepers towards the same moment move it once, not once each."""

    def __init__(self, start: datetime, mirror: Callable[[dict], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._start = start
        self._origin = time.monotonic()
        self._mirror = mirror  # keeps a simulator in another process in step
        self.slept = 0.0

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._start, self._origin = instant, time.monotonic()
            if self._mirror:
                self._mirror({"set": instant.isoformat()})

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        target = self() + timedelta(seconds=seconds)
        with self._lock:
            ahead = (target - self()).total_seconds()
            if ahead > 0:
                self._start += timedelta(seconds=ahead)
                self.slept += ahead
                if self._mirror:
                    self._mirror({"advance_seconds": ahead})


@contextmanager
def simulator(mode: str, clock: SharedClock) -> Iterator[str]:
    """A simulator with Teslemetry's per-token budget lifted (every benchmark user shares its demo
    token); Amber keeps its real 50-per-5-minutes budget, which the sync's re-polls respect."""
    if mode == "thread":
        from app.simulator.server import create_simulator_app, start_simulator_thread

        sim_app = create_simulator_app(clock=clock, teslemetry_rate_limit=0, amber_site_aliases=True)
        base, stop = start_simulator_thread(app=sim_app)
        try:
            yield base
        finally:
            stop()
        return
    with bench_sync.simulator("subprocess") as (base, _pid):
        sim_post(base, "config", {"amber_rate_limit": 50})  # the subprocess starts with budgets off
        sim_post(base, "clock", {"set": clock().isoformat()})
        clock._mirror = lambda body: sim_post(base, "clock", body)
        yield base


class AcceptLog:
    """When Tesla accepted each tariff push, on the shared clock, by household."""

    def __init__(self, clock: SharedClock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.accepted: dict[int, datetime] = {}
        self.current_user = threading.local()

    @contextmanager
    def installed(self) -> Iterator[None]:
        import app.sync.engine as sync_module
        from app.clients.tesla import TeslaClient

        real_set_tariff = TeslaClient.set_tariff
        real_push = sync_module._HouseholdSync._push
        log = self

        def set_tariff(client, site_id, tariff):
            result = real_set_tariff(client, site_id, tariff)
            if getattr(result, "result", True):
                with log.lock:
                    log.accepted[log.current_user.id] = log.clock()
            return result

        def push(run, *args, **kwargs):
            log.current_user.id = run.household.id
            return real_push(run, *args, **kwargs)

        TeslaClient.set_tariff = set_tariff
        sync_module._HouseholdSync._push = push
        try:
            yield
        finally:
            TeslaClient.set_tariff = real_set_tariff
            sync_module._HouseholdSync._push = real_push


def estimate_seconds_for(spec: str, rng: random.Random) -> Callable[[], float]:
    if "-" in spec:
        low, high = (float(part) for part in spec.split("-", 1))
        return lambda: round(rng.uniform(low, high), 1)
    value = float(spec)
    return lambda: value


def half_hour(instant: datetime) -> datetime:
    return instant.replace(minute=instant.minute // 30 * 30, second=0, microsecond=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--intervals", type=int, default=48, help="consecutive 5-minute intervals (ticks)")
    parser.add_argument("--estimate-seconds", default="20",
                        help="when the simulator confirms each 5-minute price: seconds, or a range LOW-HIGH")
    parser.add_argument("--latency-ms", type=int, default=100, help="added to every Amber and Tesla call")
    parser.add_argument("--workers", type=int, default=0, help="SYNC_MAX_WORKERS (default: the app's)")
    parser.add_argument("--database-url", help="PostgreSQL server to create a fresh database on (default SQLite)")
    parser.add_argument("--pool-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--waits", help="AMBER_CONFIRM_POLL_WAITS as seconds separated by commas, e.g. 10,10,15,15 "
                        "(default: the app's)")
    parser.add_argument("--sim", choices=("subprocess", "thread"), default="subprocess")
    parser.add_argument("--start", default=DEFAULT_START, help="first interval (ISO 8601, on a 5-minute boundary)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()

    start = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(UTC)
    rng = random.Random(args.seed)
    next_estimate = estimate_seconds_for(args.estimate_seconds, rng)
    clock = SharedClock(start)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp_name, simulator(args.sim, clock) as base:
        tmp = Path(tmp_name)
        if args.latency_ms:
            sim_post(base, "faults", {"endpoint": "*", "latency_ms": args.latency_ms})
        with fresh_database(args.database_url, tmp) as database_url:
            app = make_app(database_url, tmp, base, clock, log_level=args.log_level, workers=args.workers,
                           pool_size=args.pool_size)
            app.extensions["clock"] = clock
            app.extensions["sleep"] = clock.sleep
            if args.waits:
                app.config["AMBER_CONFIRM_POLL_WAITS"] = tuple(float(w) for w in args.waits.split(","))
            create_users(app, args.users, site_ids(1))
            delay = app.config["SCHEDULER_TICK_DELAY_SECONDS"]
            print(
                f"{args.users} users on one Amber site, {app.config['SYNC_MAX_WORKERS']} workers, "
                f"{args.latency_ms} ms added per call, simulator in a {args.sim}; {args.intervals} intervals from "
                f"{start.isoformat()}, ticks at the boundary + {delay:g} s; price confirmed "
                f"{args.estimate_seconds} s into each interval; re-polls after "
                f"{', '.join(f'{w:g}' for w in app.config['AMBER_CONFIRM_POLL_WAITS'])} s"
            )
            print(f"  load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
            run(app, base, clock, args, start, delay, next_estimate)
            print(f"  load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()
    return 0


def run(app, base: str, clock: SharedClock, args, start: datetime, delay: float, next_estimate) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import SyncRun
    from app.sync import run_tick

    log = AcceptLog(clock)
    latencies: list[float] = []
    missed = 0
    unconfirmed_ticks = 0
    outcomes: Counter[str] = Counter()
    tick_walls: list[float] = []
    waiting: list[tuple[datetime, datetime]] = []  # (interval start, published at) still an estimate on Tesla
    with log.installed():
        for k in range(args.intervals + 1):
            interval = start + k * FIVE_MINUTES
            estimate = next_estimate()
            sim_post(base, "config", {"estimate_seconds": estimate})
            published = interval + timedelta(seconds=estimate)
            tick_at = interval + timedelta(seconds=delay)
            clock.set(tick_at)
            log.accepted.clear()
            started = time.perf_counter()
            with app.app_context():
                results = run_tick(tick_at, sleep=clock.sleep)
            tick_walls.append(time.perf_counter() - started)
            with app.app_context():
                finished = {
                    run.household_id: run.finished_at
                    for run in db.session.scalars(select(SyncRun).where(SyncRun.tick_at == tick_at))
                }
                db.session.remove()
            outcomes.update(r.outcome for r in results)
            confirmed = not any("estimate was used" in r.reason for r in results)

            def reflected_at(result) -> datetime | None:
                if result.outcome == "pushed":
                    return log.accepted.get(result.household_id)
                if result.outcome == "unchanged":
                    return finished.get(result.household_id)
                return None

            # Earlier intervals whose confirmed price reaches Tesla now (still in the current half hour).
            for old_interval, old_published in waiting:
                if half_hour(old_interval) != half_hour(interval):
                    missed += args.users
                    continue
                for result in results:
                    at = reflected_at(result)
                    if at is None:
                        missed += 1
                    else:
                        latencies.append((at - old_published).total_seconds())
            waiting = []
            if k == args.intervals:
                break  # this tick only served to deliver the last interval's waiting price
            if not confirmed:
                unconfirmed_ticks += 1
                waiting.append((interval, published))
                continue
            for result in results:
                at = reflected_at(result)
                if at is None:
                    missed += 1
                else:
                    latencies.append((at - published).total_seconds())

    total = len(latencies) + missed
    within = sum(1 for value in latencies if value <= TARGET_SECONDS)
    print(f"outcomes over all ticks: {dict(outcomes)}")
    print(
        f"ticks that gave up waiting for the confirmed price: {unconfirmed_ticks} of {args.intervals}; "
        f"tick wall time p50 {statistics_median(tick_walls):.1f} s, max {max(tick_walls):.1f} s"
    )
    # A price that never reached Tesla counts as infinitely late in the percentiles.
    everything = latencies + [math.inf] * missed
    print(
        f"latency (Tesla accepted - Amber published) over {total} user-intervals: "
        f"p50 {fmt(percentile(everything, 0.5))}, p95 {fmt(percentile(everything, 0.95))}, "
        f"max {fmt(max(everything, default=math.nan))}; reflected {len(latencies)}, never reflected {missed}"
    )
    if latencies:
        print(
            f"  of the reflected ones: p50 {fmt(percentile(latencies, 0.5))}, p95 {fmt(percentile(latencies, 0.95))}, "
            f"min {fmt(min(latencies))}"
        )
    print(
        f"  within {TARGET_SECONDS:g} s: {within / max(total, 1) * 100:.1f} %  "
        f"(target p95 <= {TARGET_SECONDS:g} s: {'MET' if percentile(everything, 0.95) <= TARGET_SECONDS else 'MISSED'})"
    )


def statistics_median(values: list[float]) -> float:
    return percentile(values, 0.5)


def fmt(value: float) -> str:
    return "never" if value == math.inf else f"{value:.1f} s"


if __name__ == "__main__":
    raise SystemExit(main())
