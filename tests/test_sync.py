"""The sync engine against fakes: Amber through `responses` (scriptable prices), Tesla through the
local simulator over loopback, one shared frozen clock, and a sleep that only moves that clock."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db as _db
from app.models import ApiCallCount, ServiceStatus, StoredPrice, SyncRun, TariffPush, Household
from app.simulator import identity
from app.sync import run_tick, sync_household
from app.tariff import tariff_rates
from tests.amber_fake import flat
from tests.conftest import create_user, household_id_for
from tests.sync_env import (  # noqa: F401  (fixtures)
    another_powerwall,
    AMBER_URL,
    NOW,
    SHARED,
    SITE,
    TESLA_SITE,
    configure,
    env,
    fake_sleep,
    simulator,
)


# -- the normal path ---------------------------------------------------------------------------------------


def test_first_tick_pushes_a_tariff_tesla_accepts_and_records_it(env, household_id):
    env.amber.price_fn = flat(30.0, -8.0)
    [result] = env.tick()
    assert result.outcome == "pushed", result.reason
    assert "First tariff" in result.reason
    buy, sell = tariff_rates(env.pushed_tariff())
    assert set(buy.values()) == {0.3} and set(sell.values()) == {0.08}
    [run] = env.runs()
    assert run.pushed and run.outcome == "pushed" and run.push_latency_ms is not None
    assert run.amber_calls == 2 and run.tesla_calls == 1
    with env.app.app_context():
        push = _db.session.scalar(select(TariffPush))
        assert push.accepted and len(push.explanation["slots"]) == 48 and len(push.tariff_hash) == 64
        assert _db.session.scalar(select(func.count(StoredPrice.id))) > 0
        counts = {(r.service, r.kind): (r.calls, r.billable) for r in _db.session.scalars(select(ApiCallCount))}
        assert counts[("teslemetry", "time_of_use_settings")] == (1, 1)
        assert counts[("amber", "prices_current")] == (2, 0)


def test_unchanged_prices_do_not_push_again_until_the_refresh_age(env):
    env.tick()
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "unchanged" and not result.pushed
    assert len(env.sim()["tou_pushes"]) == 1
    SHARED.advance(minutes=56)
    [result] = env.tick()
    assert result.outcome == "pushed" and "Refresh" in result.reason


def test_small_changes_wait_and_big_ones_push(env):
    env.tick()
    far = lambda start, minutes: (30.4 if (start.hour, start.minute // 30) == (8, 0) else 30.0, -8.0)  # 19:00 AEDT, +0.4c
    env.amber.price_fn = far
    SHARED.advance(minutes=5)
    assert env.tick()[0].outcome == "unchanged"
    env.amber.price_fn = lambda start, minutes: (31.0 if (start.hour, start.minute // 30) == (8, 0) else 30.0, -8.0)
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "pushed" and "19:00" in result.reason
    assert tariff_rates(env.pushed_tariff())[0]["PERIOD_19_00"] == 0.31


def test_any_change_of_the_current_slot_pushes(env):
    env.tick()
    env.amber.price_fn = lambda start, minutes: (30.1 if start <= SHARED.current < start + timedelta(minutes=minutes) or (start.hour == 3 and start.minute < 30) else 30.0, -8.0)
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "pushed" and "current half hour (14:00)" in result.reason


def test_the_sync_waits_for_the_confirmed_price_within_the_amber_budget(env):
    env.amber.estimate_until = NOW + timedelta(seconds=12)
    [result] = env.tick()
    assert result.outcome == "pushed"
    assert "estimate was used" not in result.reason
    # Re-polls after 10 s and 10 s more: the second sees the confirmed price (12 s in).
    assert env.amber.calls == ["prices/30", "prices/5", "prices/5", "prices/5"]
    assert SHARED.current == NOW + timedelta(seconds=20)


def test_never_more_than_six_amber_calls_when_the_price_stays_an_estimate(env):
    env.amber.estimate_until = NOW + timedelta(hours=1)
    [result] = env.tick()
    assert len(env.amber.calls) == 6
    assert result.outcome == "pushed" and "estimate was used" in result.reason


def test_re_polling_stops_when_the_amber_budget_runs_low(env):
    env.amber.estimate_until = NOW + timedelta(hours=1)
    env.amber.remaining = 13
    env.tick()
    assert len(env.amber.calls) == 3  # 2 calls and 1 re-poll bring it to the reserve of 10: stop


def test_amber_is_fetched_once_per_site_per_tick_for_all_its_users(env, app, household_id):
    others = [household_id_for(app, create_user(app, f"house{n}@example.com")) for n in range(3)]
    for n, other in enumerate(others, start=1):
        configure(app, other, tesla_site_id=another_powerwall(n))  # each house its own Powerwall
    results = env.tick()
    assert len(results) == 4 and {r.outcome for r in results} == {"pushed"}
    assert env.amber.calls.count("prices/30") == 1 and env.amber.calls.count("prices/5") == 1
    assert sum(r.amber_calls for r in results) == 2  # attributed to the household who fetched


def test_sites_are_chosen_automatically_when_there_is_exactly_one(env, app, household_id):
    configure(app, household_id, amber_site_id=None)
    [result] = env.tick()
    assert result.outcome == "pushed", result.reason
    with app.app_context():
        assert _db.session.get(Household, household_id).settings.amber_site_id == SITE


def test_disabled_sync_and_missing_credentials_are_skipped_with_a_reason(env, app, household_id):
    configure(app, household_id, sync_enabled=False)
    with app.app_context():
        result = sync_household(household_id, sleep=fake_sleep)
    assert result.outcome == "skipped" and "turned off" in result.reason
    assert env.tick() == []  # the tick only takes households with sync on
    configure(app, household_id, sync_enabled=True, teslemetry_token=None)
    [result] = env.tick()
    assert result.outcome == "skipped" and "Teslemetry token" in result.reason


# -- failures keep the last good tariff ---------------------------------------------------------------------


def test_amber_down_keeps_the_last_good_tariff_and_says_why(env, app, household_id):
    env.tick()
    before = env.pushed_tariff()
    env.amber.fail_status = 500
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "failed" and "Amber prices could not be read" in result.reason
    assert "last good tariff stays" in result.reason
    assert env.pushed_tariff() == before
    with app.app_context():
        status = _db.session.scalar(select(ServiceStatus).where(ServiceStatus.service == "amber"))
        assert status.state == "attention" and "temporarily unavailable" in status.message


def test_too_short_a_forecast_refuses_to_build_and_pushes_nothing(env):
    env.tick()
    before = env.pushed_tariff()
    env.amber.forecast_slots = 2
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "failed" and "last good tariff stays" in result.reason
    assert env.pushed_tariff() == before


def test_tesla_refusing_the_tariff_records_its_reason(env, app):
    url = f"{env.simulator}/teslemetry/api/1/energy_sites/{TESLA_SITE}/time_of_use_settings"
    env.mock.post(url, json={"response": {"result": False, "reason": "tariff overlaps itself"}})
    [result] = env.tick()
    assert result.outcome == "failed"
    assert "Tesla refused the tariff: tariff overlaps itself" in result.reason
    with app.app_context():
        [push] = _db.session.scalars(select(TariffPush)).all()
        assert not push.accepted and push.tesla_reason == "tariff overlaps itself"
        [run] = _db.session.scalars(select(SyncRun)).all()
        assert not run.pushed


def test_tesla_429_waits_as_told_without_hammering(env, app, household_id):
    env.sim("faults", json={"endpoint": "tesla_time_of_use_settings", "status": 429, "retry_after": 120, "count": 1})
    [result] = env.tick()
    assert result.outcome == "failed" and "slow down" in result.reason
    SHARED.advance(minutes=1)
    [result] = env.tick()
    assert result.outcome == "skipped" and "next push is after" in result.reason
    assert result.tesla_calls == 0
    SHARED.advance(minutes=2)
    assert env.tick()[0].outcome == "pushed"


def tesla_status(app) -> ServiceStatus:
    with app.app_context():
        row = _db.session.scalar(select(ServiceStatus).where(ServiceStatus.service == "tesla"))
        _db.session.expunge_all()
        return row


def test_tesla_401_stops_tesla_calls_until_the_user_fixes_the_token(env, app, household_id):
    configure(app, household_id, teslemetry_token="not-the-simulator-token")
    [result] = env.tick()
    assert result.outcome == "failed" and "No more Tesla calls" in result.reason
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "skipped" and result.tesla_calls == 0
    assert "checks again after" in result.reason
    assert result.amber_calls == 2  # prices are still recorded
    assert tesla_status(app).state == "attention"
    for _ in range(10):  # the rest of the hour: no Tesla call at all
        SHARED.advance(minutes=5)
        assert env.tick()[0].tesla_calls == 0
    SHARED.advance(minutes=5)
    [result] = env.tick()  # the hourly check: one call, refused again, blocked for another hour
    assert result.outcome == "failed" and result.tesla_calls == 1
    SHARED.advance(minutes=5)
    assert env.tick()[0].tesla_calls == 0
    configure(app, household_id, teslemetry_token=identity.TESLEMETRY_TOKEN)  # fixed: tried at once
    SHARED.advance(minutes=5)
    assert env.tick()[0].outcome == "pushed"


def test_a_passing_401_clears_itself_at_the_hourly_check(env, app, household_id):
    assert env.tick()[0].outcome == "pushed"
    env.amber.price_fn = flat(44.0, -6.0)  # the next sync has something to push
    env.sim("faults", json={"endpoint": "tesla_time_of_use_settings", "status": 401, "count": 1})
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "failed" and "No more Tesla calls" in result.reason
    SHARED.advance(minutes=30)
    assert env.tick()[0].outcome == "skipped"
    SHARED.advance(minutes=30)
    [result] = env.tick()  # an hour after the refusal the credentials are tried again, and work
    assert result.outcome == "pushed"
    assert env.state(household_id).tesla_blocked_reason is None and env.state(household_id).tesla_retry_after is None
    assert tesla_status(app).state == "connected"
    SHARED.advance(minutes=5)
    assert env.tick()[0].outcome in ("pushed", "unchanged")


def test_an_exception_in_one_user_is_recorded_and_others_still_sync(env, app, household_id, monkeypatch):
    other = household_id_for(app, create_user(app, "bob@example.com"))
    configure(app, other, tesla_site_id=another_powerwall(1))
    import app.sync.engine as sync_module

    real = sync_module._HouseholdSync._decide

    def explode_for_alice(self, tariff, explanation):
        if self.household.id == household_id:
            raise RuntimeError("boom: internal detail")
        return real(self, tariff, explanation)

    monkeypatch.setattr(sync_module._HouseholdSync, "_decide", explode_for_alice)
    results = {r.household_id: r for r in env.tick()}
    assert results[other].outcome == "pushed"
    assert results[household_id].outcome == "failed"
    assert "Unexpected error" in results[household_id].reason and "boom" not in results[household_id].reason
    assert {r.household_id: r.outcome for r in env.runs()} == {household_id: "failed", other: "pushed"}


def test_prices_fetched_by_a_sync_that_then_fails_are_still_stored(env, app, household_id, monkeypatch):
    """The fetched prices are written with the run, in its one transaction at the end, whatever the outcome."""
    import app.sync.engine as sync_module

    def explode(self, tariff, explanation):
        raise RuntimeError("boom")

    monkeypatch.setattr(sync_module._HouseholdSync, "_decide", explode)
    [result] = env.tick()
    assert result.outcome == "failed"
    with app.app_context():
        assert _db.session.scalar(select(func.count(StoredPrice.id))) > 0


def test_a_run_is_recorded_even_when_its_prices_cannot_be_written(env, app, household_id, monkeypatch, caplog):
    import app.sync.engine as sync_module

    def broken(changes, now):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(sync_module, "write_price_changes", broken)
    [result] = env.tick()
    assert result.outcome == "pushed"
    [run] = env.runs()
    assert run.outcome == "pushed" and run.tariff_push_id is not None
    assert "the run is recorded without them" in caplog.text
    with app.app_context():
        assert _db.session.scalar(select(func.count(StoredPrice.id))) == 0


def test_a_tick_that_sees_the_same_prices_writes_no_price_rows(env, app, household_id):
    """Amber repeating itself (the same interval polled again) costs no price writes at all."""
    from sqlalchemy import event

    env.tick()
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = _db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        SHARED.advance(seconds=20)  # the same 5-minute interval
        [result] = env.tick()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert result.outcome == "unchanged"
    assert not [s for s in statements if ("price_intervals" in s or "price_digests" in s) and not s.lstrip().upper().startswith("SELECT")]
    assert any(s.lstrip().upper().startswith("INSERT INTO SYNC_RUNS") for s in statements)


def test_on_postgresql_the_read_goes_without_a_transaction_and_the_writes_in_one(env, app, household_id):
    """A sync's first read is one SELECT in autocommit (a transaction of its own would cost a BEGIN and a
    COMMIT round trip); what the run writes still goes in one transaction."""
    from sqlalchemy import event

    with app.app_context():
        engine = _db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's driver begins a transaction only before a write")
    env.tick()
    seen: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread().name.startswith("sync"):  # the household's sync, not the tick's own list
            seen.append((statement.lstrip().split()[0].upper(), conn.connection.dbapi_connection.autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        SHARED.advance(seconds=20)
        [result] = env.tick()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert result.outcome == "unchanged"
    reads = [autocommit for kind, autocommit in seen if kind == "SELECT"]
    writes = [autocommit for kind, autocommit in seen if kind in ("INSERT", "UPDATE", "DELETE")]
    assert reads and all(reads)
    assert writes and not any(writes)


def test_a_tick_sends_only_the_price_intervals_that_changed(env, app, household_id):
    from sqlalchemy import event

    env.amber.price_fn = flat(30.0, -8.0)
    env.tick()
    later = NOW.replace(minute=0, second=0) + timedelta(hours=6)  # a 30-minute interval's start
    env.amber.price_fn = lambda start, minutes: (45.0 if minutes == 30 and start == later else 30.0, -8.0)
    sent: list[int] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO price_intervals" in statement:
            sent.append(len(parameters) if executemany else 1)

    with app.app_context():
        engine = _db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        SHARED.advance(seconds=20)
        env.tick()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sum(sent) == 1  # the general price of the one 30-minute interval that moved; not the other 135 rows


def test_one_hanging_user_does_not_delay_the_others(env, app, household_id, monkeypatch):
    others = [household_id_for(app, create_user(app, f"h{n}@example.com")) for n in range(3)]
    for n, other in enumerate(others, start=1):
        configure(app, other, tesla_site_id=another_powerwall(n))
    import app.sync.engine as sync_module

    release = threading.Event()
    real = sync_module._HouseholdSync._decide

    def slow_for_alice(self, tariff, explanation):
        if self.household.id == household_id:
            release.wait(10)
        return real(self, tariff, explanation)

    monkeypatch.setattr(sync_module._HouseholdSync, "_decide", slow_for_alice)
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("results", env.tick()))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len([r for r in env.runs() if r.household_id in others]) < 3:
        time.sleep(0.02)  # waits on the other threads' work, not on the clock
    finished_others = [r for r in env.runs() if r.household_id in others]
    assert len(finished_others) == 3 and all(r.outcome == "pushed" for r in finished_others)
    assert not [r for r in env.runs() if r.household_id == household_id]  # alice is still inside her sync
    release.set()
    thread.join(10)
    assert {r.household_id for r in env.runs()} == {household_id, *others}


def test_a_sync_past_its_deadline_stops_before_its_next_call(env, app, household_id):
    app.config["SYNC_USER_DEADLINE_SECONDS"] = 10
    env.amber.estimate_until = NOW + timedelta(hours=1)  # four 5-second re-polls push the clock 20 s on
    [result] = env.tick()
    assert result.outcome == "failed" and "took too long" in result.reason
    assert env.sim()["tou_pushes"] == []


# -- watchdog, read-back and export protection ---------------------------------------------------------------


def test_stale_data_pushes_a_flat_fallback_once_then_resumes(env, app, household_id):
    env.amber.price_fn = lambda start, minutes: (90.0 if start.hour == 7 else 30.0, -8.0)
    env.tick()
    env.amber.fail_status = 500
    for minutes in range(5, 45, 5):  # up to 40 minutes of failures: not yet stale
        SHARED.current = NOW + timedelta(minutes=minutes)
        result = env.tick()[0]
        assert result.outcome == "failed" and "safe flat tariff" not in result.reason
    SHARED.current = NOW + timedelta(minutes=46)
    [result] = env.tick()
    assert "safe flat tariff" in result.reason
    buy, _sell = tariff_rates(env.pushed_tariff())
    assert set(buy.values()) == {0.3}  # the median, so no 90c slot invites a grid charge
    assert env.state(household_id).fallback_active
    SHARED.advance(minutes=5)
    assert "safe flat tariff" not in env.tick()[0].reason  # once, not every tick
    env.amber.fail_status = None
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "pushed" and "replacing the safe fallback" in result.reason
    assert not env.state(household_id).fallback_active
    assert tariff_rates(env.pushed_tariff())[0]["PERIOD_18_00"] == 0.9


def test_a_tariff_edited_in_the_tesla_app_is_put_back_at_the_read_back(env, app, household_id):
    env.tick()
    ours = env.pushed_tariff()
    edited = dict(ours)
    edited["name"] = "Edited by hand"
    edited["energy_charges"] = {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": {p: 0.55 for p in ours["energy_charges"]["Summer"]["rates"]}}}
    requests.post(
        f"{env.simulator}/teslemetry/api/1/energy_sites/{TESLA_SITE}/time_of_use_settings",
        json={"tou_settings": {"tariff_content_v2": edited}},
        headers={"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"},
        timeout=5,
    ).raise_for_status()
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "pushed" and "changed outside this app" in result.reason
    assert tariff_rates(env.pushed_tariff())[0] == tariff_rates(ours)[0]
    SHARED.advance(minutes=5)
    assert env.tick()[0].outcome == "unchanged"  # the next read-back is hours away


SLOT_1430 = datetime(2026, 11, 24, 3, 30, tzinfo=timezone.utc)  # 14:30 in Sydney


def test_negative_feed_in_stops_exports_and_restores_the_users_rule(env, app, household_id):
    assert env.sim()["powerwall"]["customer_preferred_export_rule"] == "battery_ok"
    env.amber.price_fn = lambda start, minutes: (10.0, 4.0 if start < SLOT_1430 else -8.0)
    [result] = env.tick()
    assert "Exporting costs money now" in result.reason
    assert env.sim()["powerwall"]["customer_preferred_export_rule"] == "never"
    assert env.state(household_id).export_rule_before == "battery_ok"
    SHARED.advance(minutes=25)  # 14:37: this half hour and the next earn again; held 25 minutes
    [result] = env.tick()
    assert env.sim()["powerwall"]["customer_preferred_export_rule"] == "battery_ok"
    assert "export setting is restored" in result.reason
    assert not env.state(household_id).export_protection_active


def test_export_protection_survives_a_restart_and_does_not_flap(env, app, household_id, tmp_path, database_url):
    slot_1500, slot_1530 = SLOT_1430 + timedelta(minutes=30), SLOT_1430 + timedelta(minutes=60)
    env.amber.price_fn = lambda start, minutes: (
        10.0, 4.0 if start < SLOT_1430 or slot_1500 <= start < slot_1530 else -8.0
    )
    env.tick()
    assert env.state(household_id).export_protection_active
    # A new process (fresh app on the same database) carries on with the remembered rule.
    from app import create_app
    from tests.conftest import make_config

    restarted = create_app(make_config(tmp_path / "restart", database_url, FERNET_ENCRYPTION_KEY=app.config["FERNET_ENCRYPTION_KEY"]))
    restarted.extensions["clock"] = SHARED
    restarted.extensions["sleep"] = fake_sleep
    restarted.config.update(identity.app_settings(env.simulator))
    restarted.config.update(AMBER_API_URL=AMBER_URL)

    def rule_after(minutes: int) -> str:
        SHARED.advance(minutes=minutes)
        with restarted.app_context():
            run_tick(SHARED.current, sleep=fake_sleep)
        return env.sim()["powerwall"]["customer_preferred_export_rule"]

    assert rule_after(20) == "never"  # 14:32: this half hour earns, but the next costs: stay off
    assert rule_after(30) == "never"  # 15:02: costs again
    assert rule_after(30) == "battery_ok"  # 15:32: this and the next earn: the household's rule is back
    with restarted.app_context():
        _db.engine.dispose()


def test_dry_run_pushes_and_records_nothing(env, app, household_id):
    with app.app_context():
        [result] = run_tick(SHARED.current, dry_run=True, sleep=fake_sleep)
    assert result.outcome == "pushed" and result.reason.startswith("Dry run")
    assert result.tariff is not None and len(result.explanation.slots) == 48
    assert env.sim()["tou_pushes"] == [] and env.runs() == []
    with app.app_context():
        assert _db.session.scalar(select(func.count(StoredPrice.id))) == 0


def test_cli_sync_run(env, app, runner, household_id):
    result = runner.invoke(args=["sync", "run", "--user", "alice@example.com", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "alice@example.com's household: pushed - Dry run: First tariff" in result.output
    assert result.output.count("buy ") == 48
    result = runner.invoke(args=["sync", "run", "--all"])
    assert result.exit_code == 0 and "alice@example.com's household: pushed" in result.output
    env.amber.fail_status = 500
    SHARED.advance(minutes=5)
    result = runner.invoke(args=["sync", "run", "--all"])
    assert result.exit_code == 1 and "failed - Amber prices could not be read" in result.output
    result = runner.invoke(args=["sync", "run"])
    assert result.exit_code != 0 and "--user EMAIL or --all" in result.output


def test_a_push_whose_answer_is_lost_is_read_back_and_corrected(env, app, household_id):
    env.tick()  # the first tariff, accepted
    env.amber.price_fn = lambda start, minutes: (45.0, -8.0)
    SHARED.advance(minutes=5)
    # Tesla applies the tariff but the answer never arrives.
    env.sim("faults", json={"endpoint": "tesla_time_of_use_settings", "malformed": True, "count": 1})
    [result] = env.tick()
    assert result.outcome == "failed" and "answer to the push was lost" in result.reason
    assert tariff_rates(env.pushed_tariff())[0]["PERIOD_14_00"] == 0.45  # the Powerwall did take it
    SHARED.advance(minutes=5)
    [result] = env.tick()  # the next sync reads the Powerwall back first: it arrived, so nothing is sent again
    assert result.outcome == "unchanged" and "shows it arrived" in result.reason
    with app.app_context():
        latest = _db.session.scalar(select(TariffPush).where(TariffPush.accepted.is_(True)).order_by(TariffPush.id.desc()))
        assert tariff_rates(latest.tariff)[0]["PERIOD_14_00"] == 0.45


def test_call_counts_add_up_across_syncs_and_days(env, app, household_id):
    """Each sync adds its calls to the day's counts in the database (no read-modify-write to lose calls)."""
    env.tick()
    SHARED.advance(minutes=5)
    env.tick()
    with app.app_context():
        counts = {(r.day, r.service, r.kind, r.status_class): (r.calls, r.billable) for r in _db.session.scalars(select(ApiCallCount))}
    day = NOW.astimezone(timezone(timedelta(hours=11))).date()  # Sydney (AEDT)
    assert counts[(day, "amber", "prices_current", "2xx")] == (4, 0)
    assert counts[(day, "teslemetry", "time_of_use_settings", "2xx")][1] >= 1


def test_the_tick_builds_a_sites_tariff_once_and_lets_it_go_after_its_last_household():
    from collections import Counter

    from app.price_sanity import PriceBounds
    from app.sync.engine import PriceFeed, SiteFetch
    from tests.test_tariff import FIXTURE_NOW, fixture_intervals

    feed = PriceFeed(lambda: FIXTURE_NOW, lambda s: None, (), Counter({"a": 2, "b": 1}), bounds=PriceBounds())
    fetches = {site: SiteFetch(fixture_intervals("amber_prices_current.json"), True) for site in ("a", "b")}
    first = feed.tariff("a", fetches["a"], "Australia/Sydney", "predicted", FIXTURE_NOW)
    second = feed.tariff("a", fetches["a"], "Australia/Sydney", "predicted", FIXTURE_NOW + timedelta(seconds=5))
    assert second.tariff is first.tariff and second.explanation.now == FIXTURE_NOW + timedelta(seconds=5)  # one build
    feed.tariff("b", fetches["b"], "Australia/Sydney", "predicted", FIXTURE_NOW)
    feed.done("a")
    assert set(feed._tariffs) == {"a", "b"}  # a's second household has not finished
    feed.done("a")
    assert set(feed._tariffs) == {"b"}
