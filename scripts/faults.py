"""Fault drills: an hour of simulated sync ticks against the local simulator with one fault at a time.

Run from the repository root (loopback only, bounded: about a minute in all):

    .venv/bin/python scripts/faults.py                 # every scenario
    .venv/bin/python scripts/faults.py amber_500 tesla_408_offline
    .venv/bin/python scripts/faults.py --ticks 6       # half an hour per scenario

For each scenario: a fresh SQLite database in a temporary directory, the demo account (Amber + Teslemetry,
or the Fleet API for `tesla_401_fleet_expired`), one good tick so a tariff is on the Powerwall, then
`--ticks` ticks five simulated minutes apart with the fault on (the simulator's `/_sim/faults`, or
`/_sim/tokens/expire`), then the fault cleared and one recovery tick. The app and the simulator share one
manual clock, so an hour takes seconds; the app's HTTP read timeout is shortened to TIMEOUT_S for the
timeout scenarios. Prints per scenario: ticks, pushes, failures with reasons, whether the tariff on the
Powerwall is still the last one the app pushed successfully (compared with the simulator's stored
tariff), consistency checks, and recovery. Not a test: it prints figures and exits 0 (1 if a check failed).
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

TIMEOUT_S = 1.5  # the app's read timeout during the drill (the real one is 20 s)
# 14:00:40 AEDT: 40 s into an interval, so Amber's current price is confirmed when a tick starts.
START = datetime(2026, 11, 24, 3, 0, 40, tzinfo=timezone.utc)


class ManualClock:
    """One clock for the app and the simulator; the app's `sleep` moves it instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self.current = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.current

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.current += timedelta(seconds=seconds)


@dataclass
class Scenario:
    name: str
    what: str
    faults: list[dict] = field(default_factory=list)
    fleet: bool = False
    # Called before each faulted tick with (tick index, simulator base URL): faults that come and go.
    each_tick: Callable[[int, str], None] | None = None


def _expire_tokens_at(ticks: set[int]) -> Callable[[int, str], None]:
    def run(index: int, base: str) -> None:
        if index in ticks:
            requests.post(f"{base}/_sim/tokens/expire", timeout=5).raise_for_status()

    return run


SCENARIOS = [
    Scenario("amber_500", "Amber answers 500 to everything", [{"endpoint": "amber_*", "status": 500}]),
    Scenario("amber_timeout", f"Amber answers after {TIMEOUT_S + 1:.1f} s (past the read timeout)",
             [{"endpoint": "amber_*", "latency_ms": int((TIMEOUT_S + 1) * 1000)}]),
    Scenario("amber_429_storm", "Amber rate-limits everything (429, Retry-After 60)",
             [{"endpoint": "amber_*", "status": 429, "retry_after": 60}]),
    Scenario("amber_malformed", "Amber's price bodies cut in half", [{"endpoint": "amber_prices_*", "malformed": True}]),
    Scenario("tesla_401_fleet_expired", "Fleet access token expires mid-session (ticks 3 and 8); refresh must carry on",
             fleet=True, each_tick=_expire_tokens_at({3, 8})),
    Scenario("tesla_401_teslemetry", "Teslemetry refuses the token once on the push (401)",
             [{"endpoint": "tesla_time_of_use_settings", "status": 401, "count": 1}]),
    Scenario("tesla_408_offline", "Powerwall offline (408) on every Tesla call", [{"endpoint": "tesla_*", "status": 408}]),
    Scenario("tesla_429_retry_after", "Tesla rate-limits (429, Retry-After 900 s)",
             [{"endpoint": "tesla_*", "status": 429, "retry_after": 900}]),
    Scenario("tesla_malformed", "Tesla's site_info and push answers cut in half",
             [{"endpoint": "tesla_site_info", "malformed": True}, {"endpoint": "tesla_time_of_use_settings", "malformed": True}]),
    Scenario("tesla_push_dropped", "The push is held past the read timeout: the app drops the connection, "
             "the simulator still applies it", [{"endpoint": "tesla_time_of_use_settings", "latency_ms": int((TIMEOUT_S + 1) * 1000)}]),
]


def shorten_client_timeouts() -> None:
    from app.clients import base

    original = base.HttpClient.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.timeout = (1.0, TIMEOUT_S)

    base.HttpClient.__init__ = init  # type: ignore[method-assign]


def make_app(sim_base: str, clock: ManualClock, data_dir: Path, fleet: bool):
    from app import create_app
    from app.credentials import apply_settings, set_secret, settings_for
    from app.demo import DEMO_EMAIL, demo_config, prepare_demo
    from app.extensions import db
    from app.simulator import identity

    config = demo_config(sim_base, data_dir, "127.0.0.1", 5001)
    config.SCHEDULER = "off"
    config.LOG_LEVEL = "CRITICAL"
    app = create_app(config)
    app.extensions["clock"] = clock
    app.extensions["sleep"] = clock.advance
    prepare_demo(app)
    with app.app_context():
        from app import accounts

        from app.households import find_owned

        user = find_owned(accounts.find_user(DEMO_EMAIL))  # the demo account's household
        if fleet:
            settings = settings_for(user)
            set_secret(settings, "tesla_access_token", identity.DEMO_FLEET_ACCESS_TOKEN)
            set_secret(settings, "tesla_refresh_token", identity.DEMO_FLEET_REFRESH_TOKEN)
            settings.tesla_region = identity.FLEET_REGION
            settings.tesla_token_expires_at = clock() + timedelta(hours=8)
            apply_settings(user, tesla_path="fleet")
        db.session.commit()
        user_id = user.id
    return app, user_id


def tick(app, clock: ManualClock) -> list:
    from app.sync.scheduler import tick_for
    from app.sync import run_tick

    with app.app_context():
        results = run_tick(tick_for(clock()))
    clock.advance(300)
    return results


def sim_state(base: str) -> dict:
    return requests.get(f"{base}/_sim/state", timeout=5).json()


def same_tariff(a: dict | None, b: dict | None) -> bool:
    if not a or not b:
        return False
    return a.get("energy_charges") == b.get("energy_charges") and (a.get("sell_tariff") or {}).get("energy_charges") == (
        b.get("sell_tariff") or {}
    ).get("energy_charges")


def run_scenario(scenario: Scenario, sim_base: str, clock: ManualClock, ticks: int) -> bool:
    from sqlalchemy import select

    from app.control import LIVE_STATES
    from app.extensions import db
    from app.models import ForceSession, SyncRun, SyncState, TariffPush

    requests.post(f"{sim_base}/_sim/reset", timeout=5).raise_for_status()
    clock.current = START
    with tempfile.TemporaryDirectory(prefix=f"tas-faults-{scenario.name}-") as tmp:
        app, user_id = make_app(sim_base, clock, Path(tmp), scenario.fleet)
        first = tick(app, clock)
        baseline_ok = first[0].outcome == "pushed"
        with app.app_context():
            first_run_id = db.session.scalar(select(SyncRun.id).order_by(SyncRun.id.desc()).limit(1)) or 0
        if scenario.faults:
            requests.post(f"{sim_base}/_sim/faults", json=scenario.faults, timeout=5).raise_for_status()
        started = time.perf_counter()
        for index in range(ticks):
            if scenario.each_tick:
                scenario.each_tick(index, sim_base)
            tick(app, clock)
        faulted_s = time.perf_counter() - started
        sim_after = sim_state(sim_base)
        stored = sim_after["powerwall"]["tariff_content_v2"]
        sim_pushes = sim_after["tou_pushes"]
        requests.delete(f"{sim_base}/_sim/faults", timeout=5).raise_for_status()

        with app.app_context():
            runs = db.session.scalars(select(SyncRun).where(SyncRun.id > first_run_id).order_by(SyncRun.id)).all()
            last_good = db.session.scalar(
                select(TariffPush).where(TariffPush.household_id == user_id, TariffPush.accepted.is_(True)).order_by(TariffPush.id.desc()).limit(1)
            )
            state = db.session.get(SyncState, user_id)
            live_sessions = db.session.scalar(select(db.func.count()).select_from(ForceSession).where(ForceSession.state.in_(LIVE_STATES)))
            outcomes = Counter(r.outcome for r in runs)
            reasons = Counter((r.reason or "")[:110] for r in runs if r.outcome in ("failed", "skipped"))
            pushes = sum(1 for r in runs if r.pushed)
            unfinished = sum(1 for r in runs if r.finished_at is None)
            kept = same_tariff(stored, last_good.tariff if last_good else None)
            kept_kind = last_good.kind if last_good else "none"
            # A push whose answer was lost (timeout, cut body) may have been applied all the same: the app
            # records no push for it, the simulator has it as accepted.
            sim_accepted = [p for p in sim_pushes if p.get("accepted")]
            unconfirmed = not kept and bool(sim_accepted) and same_tariff(stored, sim_accepted[-1].get("received"))
            app_accepted = sum(1 for r in runs if r.pushed)
            fallback = bool(state and state.fallback_active)
            blocked = (state.tesla_blocked_reason or "")[:80] if state else ""
            retry_after = state.tesla_retry_after if state else None

        recovery = tick(app, clock)[0]
        recovered_stored = sim_state(sim_base)["powerwall"]["tariff_content_v2"]
        with app.app_context():
            newest = db.session.scalar(
                select(TariffPush).where(TariffPush.household_id == user_id, TariffPush.accepted.is_(True)).order_by(TariffPush.id.desc()).limit(1)
            )
            consistent_after = same_tariff(recovered_stored, newest.tariff if newest else None)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

    checks = {
        "baseline pushed": baseline_ok,
        f"{ticks} runs recorded": len(runs) == ticks,
        "every run finished": unfinished == 0,
        "no force session left live": live_sessions == 0,
        "Powerwall has the app's last accepted tariff, or the unconfirmed one it then sent": kept or unconfirmed,
        "consistent after recovery": consistent_after,
    }
    print(f"\n== {scenario.name}: {scenario.what}")
    print(f"   ticks {ticks} (+1 good before, +1 recovery) in {faulted_s:.1f} s wall; pushes {pushes}; "
          f"outcomes {dict(outcomes)}")
    for reason, n in reasons.most_common(4):
        print(f"   {n:>2} x {reason}")
    if kept:
        on_powerwall = f"the app's last accepted push ({kept_kind})"
    elif unconfirmed:
        on_powerwall = ("a newer tariff from a push the app recorded as FAILED (the answer was lost, the Powerwall "
                        f"applied it; simulator accepted {len(sim_accepted)} pushes in all, the app counted {app_accepted} in the window)")
    else:
        on_powerwall = "something the app did not send"
    print(f"   last good tariff kept: {'yes' if kept else 'no'}; Powerwall has {on_powerwall}; fallback active: {fallback}; "
          f"tesla blocked: {blocked or 'no'}; tesla retry after: {retry_after.isoformat() if retry_after else 'none'}")
    print(f"   recovery tick: {recovery.outcome} ({(recovery.reason or '')[:90]})")
    failed = [name for name, ok in checks.items() if not ok]
    print(f"   consistency: {'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return not failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="names to run (default: all)")
    parser.add_argument("--ticks", type=int, default=12, help="faulted ticks per scenario (12 = one simulated hour)")
    args = parser.parse_args()
    if not 1 <= args.ticks <= 48:
        parser.error("--ticks must be between 1 and 48")
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    unknown = set(args.scenarios) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (known: {', '.join(s.name for s in SCENARIOS)})")

    logging.disable(logging.CRITICAL)  # the drill prints its own figures
    shorten_client_timeouts()
    from app.simulator.server import create_simulator_app, start_simulator_thread

    clock = ManualClock(START)
    sim_app = create_simulator_app(clock=clock)
    sim_base, stop = start_simulator_thread(app=sim_app)  # 127.0.0.1, ephemeral port
    assert sim_base.startswith("http://127.0.0.1:"), sim_base
    started = time.perf_counter()
    try:
        results = {s.name: run_scenario(s, sim_base, clock, args.ticks) for s in chosen}
    finally:
        stop()
    print(f"\n{sum(results.values())}/{len(results)} scenarios consistent in {time.perf_counter() - started:.0f} s")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
