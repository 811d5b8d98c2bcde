"""Force charge and discharge: the pure decisions table-driven, the executor against the simulator."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import control
from app.control import (
    ControlError,
    SavedSettings,
    forced_tariff,
    restore_commands,
    start_commands,
    validate_request,
    verification_step,
    window_periods,
)
from app.extensions import db as _db
from app.models import ControlEvent, ForceSession, StoredPrice, User
from app.simulator import identity
from app.tariff import tariff_rates, validate_tariff
from tests.conftest import csrf_token, login, owned_household
from tests.sync_env import NOW, SHARED, TESLA_SITE, env, simulator  # noqa: F401  (fixtures)

SYDNEY = ZoneInfo("Australia/Sydney")
T = datetime(2026, 11, 24, 3, 12, tzinfo=timezone.utc)  # 14:12 AEDT


# -- pure ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "minutes", "ok"),
    [
        ("force_charge", 30, True), ("force_discharge", "240", True), ("force_charge", 15, True),
        ("force_charge", 14, False), ("force_charge", 241, False), ("force_charge", "1h", False),
        ("force_charge", True, False), ("force_charge", None, False), ("charge", 60, False), (None, 60, False),
    ],
)
def test_validate_request(action, minutes, ok):
    if ok:
        assert validate_request(action, minutes) == (action, int(minutes))
    else:
        with pytest.raises(ControlError):
            validate_request(action, minutes)


@pytest.mark.parametrize(
    ("start", "minutes", "periods"),
    [
        (T, 60, ["PERIOD_14_00", "PERIOD_14_30", "PERIOD_15_00"]),
        (datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc), 60, ["PERIOD_14_00", "PERIOD_14_30"]),
        (datetime(2026, 11, 24, 12, 50, tzinfo=timezone.utc), 30, ["PERIOD_23_30", "PERIOD_00_00"]),
    ],
)
def test_window_periods(start, minutes, periods):
    assert window_periods(start, start + timedelta(minutes=minutes), SYDNEY) == periods


def test_forced_charge_tariff_makes_the_window_the_cheapest_time():
    tariff = forced_tariff("force_charge", T, T + timedelta(minutes=60), SYDNEY)
    assert validate_tariff(tariff) == []
    buy, sell = tariff_rates(tariff)
    window = {"PERIOD_14_00", "PERIOD_14_30", "PERIOD_15_00"}
    assert all(buy[p] < min(buy[q] for q in buy if q not in window) for p in window)
    assert set(sell.values()) == {0.0}  # no export value anywhere


def test_forced_discharge_tariff_sells_highest_in_the_window_and_falls_through_it():
    tariff = forced_tariff("force_discharge", T, T + timedelta(minutes=90), SYDNEY)
    assert validate_tariff(tariff) == []
    buy, sell = tariff_rates(tariff)
    window = ["PERIOD_14_00", "PERIOD_14_30", "PERIOD_15_00", "PERIOD_15_30"]
    values = [sell[p] for p in window]
    assert values == sorted(values, reverse=True) and len(set(values)) == 4
    assert min(values) > 10 * max(v for p, v in sell.items() if p not in window)
    assert all(sell[p] <= buy[p] for p in sell)


def test_start_commands_do_both_tariff_and_reserve():
    charge = start_commands("force_charge", {"t": 1}, 20)
    assert [c.step for c in charge] == ["operation", "grid", "tariff", "backup"]
    assert charge[0].args == {"mode": "autonomous"} and charge[1].args == {"allow_grid_charging": True}
    assert charge[3].args == {"percent": 100}
    discharge = start_commands("force_discharge", {"t": 1}, 35)
    assert discharge[1].args == {"export_rule": "battery_ok"} and discharge[3].args == {"percent": 35}


def test_restore_commands_put_back_exactly_what_was_saved():
    saved = SavedSettings("self_consumption", 35.0, "pv_only", False, {"name": "before"})
    commands = restore_commands(saved)
    assert [(c.step, c.args) for c in commands] == [
        ("tariff", {"tariff": {"name": "before"}}),
        ("operation", {"mode": "self_consumption"}),
        ("backup", {"percent": 35}),
        ("grid", {"export_rule": "pv_only", "allow_grid_charging": False}),
    ]
    assert restore_commands(SavedSettings(None, None, None, None, None)) == []


@pytest.mark.parametrize(
    ("action", "battery_w", "minutes", "escalated_minutes_ago", "step"),
    [
        ("force_charge", -3000, 1, None, "responding"),
        ("force_charge", -400, 1, None, "wait"),
        ("force_charge", 0, 10, None, "escalate"),
        ("force_charge", 0, 15, 5, "wait"),
        ("force_charge", 0, 20, 10, "not_responding"),
        ("force_discharge", 5000, 3, None, "responding"),
        ("force_discharge", -5000, 3, None, "wait"),
        ("force_discharge", None, 12, None, "escalate"),
    ],
)
def test_verification_step(action, battery_w, minutes, escalated_minutes_ago, step):
    started = T - timedelta(minutes=minutes)
    escalated = None if escalated_minutes_ago is None else T - timedelta(minutes=escalated_minutes_ago)
    assert verification_step(action, battery_w, started, escalated, T) == step


@pytest.mark.parametrize(
    ("state", "age", "attempt_failed", "expected"),
    [
        ("active", timedelta(seconds=5), False, "restore"),
        ("starting", timedelta(seconds=30), False, "signal"),  # its process is at work: it stops and puts back
        ("starting", timedelta(minutes=2), False, "take_over"),  # its process is gone
        ("restoring", timedelta(seconds=30), False, "in_hand"),  # an attempt is under way
        ("restoring", timedelta(seconds=30), True, "take_over"),  # the last attempt failed: retry now
        ("restoring", timedelta(minutes=3), False, "take_over"),
        ("ended", timedelta(minutes=3), False, "in_hand"),
    ],
)
def test_cancel_action(state, age, attempt_failed, expected):
    assert control.cancel_action(state, T - age, attempt_failed, T) == expected


def test_restore_attempt_failed():
    unfinished = f"{control.RESTORE_UNFINISHED} (Put the backup reserve back (35%)); it is retried automatically."
    assert control.restore_attempt_failed("restoring", unfinished)
    assert not control.restore_attempt_failed("restoring", None)
    assert not control.restore_attempt_failed("ended", unfinished)


# -- executor against the simulator --------------------------------------------------------------------------


def tesla(env, path, body):
    response = requests.post(
        f"{env.simulator}/teslemetry/api/1/energy_sites/{TESLA_SITE}/{path}", json=body,
        headers={"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"}, timeout=5,
    )
    response.raise_for_status()


def powerwall(env) -> dict:
    p = env.sim()["powerwall"]
    return {k: p[k] for k in ("default_real_mode", "backup_reserve_percent", "customer_preferred_export_rule",
                              "grid_charging_allowed", "tariff_content_v2")}


@pytest.fixture()
def before(env):
    """A Powerwall set up unlike anything force control uses, with the app's own tariff on it."""
    env.tick()
    tesla(env, "operation", {"default_real_mode": "self_consumption"})
    tesla(env, "backup", {"backup_reserve_percent": 35})
    tesla(env, "grid_import_export", {"customer_preferred_export_rule": "pv_only", "disallow_charge_from_grid_with_solar_installed": True})
    settings = powerwall(env)
    assert settings["default_real_mode"] == "self_consumption" and settings["grid_charging_allowed"] is False
    return settings


def alice(app):
    """The household alice@example.com owns."""
    return owned_household(_db.session.scalar(select(User.id).where(User.email == "alice@example.com")))


def events(app) -> list[tuple[str, bool]]:
    with app.app_context():
        return [(e.step, e.ok) for e in _db.session.scalars(select(ControlEvent).order_by(ControlEvent.id))]


def test_force_charge_charges_and_cancel_restores_every_setting(env, app, before):
    with app.app_context():
        session = control.start(alice(app), "force_charge", 60)
        assert session.state == "active" and session.ends_at == NOW + timedelta(minutes=60)
        assert session.saved_mode == "self_consumption" and session.saved_reserve == 35
    forced = powerwall(env)
    assert forced["default_real_mode"] == "autonomous" and forced["backup_reserve_percent"] == 100
    assert forced["grid_charging_allowed"] is True
    assert forced["tariff_content_v2"]["name"] == "Tesla-Amber-Sync forced window"
    SHARED.advance(minutes=2)
    assert env.sim()["live_status"]["battery_power"] < -1000  # the simulated battery charges
    with app.app_context():
        control.check_sessions()
        assert _db.session.scalar(select(ForceSession)).verification == "responding"
        assert control.cancel(alice(app)) is True
    assert powerwall(env) == before  # exactly the saved settings, tariff included
    steps = events(app)
    assert ("start", True) in steps and ("verify", True) in steps and ("cancel", True) in steps
    assert ("end", True) in steps and any(step == "sync" for step, _ in steps)


def test_force_discharge_exports_and_expiry_restores(env, app, before):
    with app.app_context():
        control.start(alice(app), "force_discharge", 30)
    forced = powerwall(env)
    assert forced["customer_preferred_export_rule"] == "battery_ok" and forced["backup_reserve_percent"] == 20
    SHARED.advance(minutes=2)
    assert env.sim()["live_status"]["grid_power"] < -1000  # exporting
    SHARED.advance(minutes=29)
    with app.app_context():
        control.check_sessions()
        session = _db.session.scalar(select(ForceSession))
        assert session.state == "ended" and "Finished" in session.end_reason
    assert powerwall(env) == before


def test_an_end_missed_while_the_app_was_down_is_restored_when_it_is_back(env, app, before):
    with app.app_context():
        control.start(alice(app), "force_charge", 30)
    SHARED.advance(hours=3)  # nothing ran in between
    with app.app_context():
        control.check_sessions()
        session = _db.session.scalar(select(ForceSession))
        assert session.state == "ended" and "late" in session.end_reason
    assert powerwall(env) == before


@pytest.mark.parametrize("failing", ["tesla_operation", "tesla_grid_import_export", "tesla_time_of_use_settings", "tesla_backup"])
def test_a_failure_at_any_step_puts_everything_back(env, app, before, failing):
    env.sim("faults", json={"endpoint": failing, "status": 500, "count": 1})
    with app.app_context():
        with pytest.raises(ControlError, match="previous settings were put back"):
            control.start(alice(app), "force_charge", 60)
        session = _db.session.scalar(select(ForceSession))
        assert session.state == "failed"
        assert control.live_session(alice(app)) is None
    assert powerwall(env) == before
    assert any(not ok for _, ok in events(app))


def test_a_restore_that_fails_is_kept_and_retried(env, app, before):
    with app.app_context():
        control.start(alice(app), "force_charge", 60)
    env.sim("faults", json={"endpoint": "tesla_backup", "status": 500, "count": 1})  # commands are never retried
    with app.app_context():
        assert control.cancel(alice(app)) is False
        assert control.live_session(alice(app)).state == "restoring"  # never left forced without a record
        control.check_sessions()
        assert control.live_session(alice(app)).state == "restoring"  # not while its last attempt is fresh
    SHARED.advance(minutes=3)  # retried once nobody has touched it for control.STALE_AFTER
    with app.app_context():
        control.check_sessions()
        assert control.live_session(alice(app)) is None
    assert powerwall(env) == before


def test_replacing_a_session_keeps_the_settings_from_before_the_first(env, app, before):
    with app.app_context():
        first = control.start(alice(app), "force_charge", 60)
        SHARED.advance(minutes=1)
        second = control.start(alice(app), "force_discharge", 30)
        assert second.id != first.id and second.saved_mode == "self_consumption" and second.saved_reserve == 35
        assert _db.session.get(ForceSession, first.id).state == "ended"
        control.cancel(alice(app))
    assert powerwall(env) == before


def test_a_double_click_starts_one_session_and_only_one_can_be_live(env, app, before):
    with app.app_context():
        one = control.start(alice(app), "force_charge", 60)
        SHARED.advance(seconds=2)
        two = control.start(alice(app), "force_charge", 60)
        assert one.id == two.id
        assert len(_db.session.scalars(select(ForceSession)).all()) == 1
        _db.session.add(ForceSession(household_id=one.household_id, tesla_site_id=TESLA_SITE, action="force_charge", state="active",
                                     minutes=30, started_at=NOW, ends_at=NOW + timedelta(minutes=30)))
        with pytest.raises(IntegrityError):
            _db.session.flush()
        _db.session.rollback()


def test_the_sync_leaves_a_forced_tariff_alone_but_records_prices(env, app, before):
    with app.app_context():
        control.start(alice(app), "force_charge", 60)
        count_before = _db.session.query(StoredPrice).count()
    SHARED.advance(minutes=5)
    [result] = env.tick()
    assert result.outcome == "skipped" and "Force charge is running until 15:12" in result.reason
    assert powerwall(env)["tariff_content_v2"]["name"] == "Tesla-Amber-Sync forced window"
    with app.app_context():
        assert _db.session.query(StoredPrice).count() > count_before or result.amber_calls == 2


def test_no_response_escalates_once_then_says_so(env, app, before):
    env.sim("powerwall", json={"percentage_charged": 100})  # a full battery cannot charge
    with app.app_context():
        control.start(alice(app), "force_charge", 120)
    for minutes in (2, 10, 20):
        SHARED.current = NOW + timedelta(minutes=minutes, seconds=1)
        with app.app_context():
            control.check_sessions()
    with app.app_context():
        session = _db.session.scalar(select(ForceSession))
        assert session.verification == "not_responding" and session.escalated_at is not None
    steps = events(app)
    assert steps.count(("escalate", True)) == 1 and ("verify", False) in steps
    page = " ".join(re.sub(r"<[^>]+>", " ", login_and_get(env, "/")).split())
    assert "The battery is not responding" in page


def login_and_get(env, path):
    client = env.app.test_client()
    login(client, "alice@example.com")
    return client.get(path).get_data(as_text=True)


def test_api_and_dashboard(env, app, before):
    client = env.app.test_client()
    login(client, "alice@example.com")
    token = csrf_token(client, "/")
    assert client.post("/api/control", json={"action": "force_charge", "minutes": 60}).status_code == 400  # no CSRF
    bad = client.post("/api/control", json={"action": "force_charge", "minutes": 5}, headers={"X-CSRFToken": token})
    assert bad.status_code == 400 and "between 15 minutes and 4 hours" in bad.get_json()["error"]
    garbage = client.post("/api/control", data=b"\xff\xfe", content_type="application/json", headers={"X-CSRFToken": token})
    assert garbage.status_code == 400
    started = client.post("/api/control", json={"action": "force_discharge", "minutes": 45}, headers={"X-CSRFToken": token})
    assert started.status_code == 200 and started.get_json()["state"] == "active"
    page = " ".join(re.sub(r"<[^>]+>", " ", client.get("/").get_data(as_text=True)).split())
    assert "Force discharge until 14:57" in page and "(45 min left)" in page and "Cancel and restore my settings" in page
    history = client.get("/history").get_data(as_text=True)
    assert "Battery control steps" in history and "Lower the backup reserve to 20%" in history
    cancelled = client.post("/api/control", json={"action": "cancel"}, headers={"X-CSRFToken": token})
    assert cancelled.get_json() == {"ok": True, "state": "ended", "cancel_pending": False,
                                    "message": "Cancelled; your settings were put back."}
    assert powerwall(env) == before


def test_cancel_retries_a_failed_restore_at_once(env, app, before):
    """A restore whose last attempt failed is retried now by Cancel (the button, the API), not 2 minutes later."""
    with app.app_context():
        control.start(alice(app), "force_charge", 60)
    env.sim("faults", json={"endpoint": "tesla_backup", "status": 500, "count": 1})
    with app.app_context():
        assert control.cancel(alice(app)) is False
        assert control.live_session(alice(app)).state == "restoring"
        with pytest.raises(ControlError) as refused:  # a new force says how to get out
            control.start(alice(app), "force_discharge", 30)
    assert 'POST /api/control with {"action": "cancel"}' in str(refused.value)
    client = env.app.test_client()
    login(client, "alice@example.com")
    page = " ".join(re.sub(r"<[^>]+>", " ", client.get("/").get_data(as_text=True)).split())
    assert "Put my settings back now" in page  # the way out is on the dashboard too
    SHARED.advance(seconds=20)  # well inside control.STALE_AFTER
    done = client.post("/control/cancel", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True)
    assert "your settings were put back" in done.get_data(as_text=True)
    with app.app_context():
        assert control.live_session(alice(app)) is None
    assert powerwall(env) == before


def test_a_cancel_that_lands_as_the_start_finishes_is_not_lost(env, app, before):
    """A cancel that arrives after the start's last look at the row, just before the session is marked active,
    still ends it (it used to leave an active session marked cancelled, with no Cancel button)."""
    import threading

    calls: list[str] = []
    after_backup = 0
    firing = threading.Event()

    def cancel_elsewhere() -> None:
        with app.app_context():
            control.cancel(alice(app), actor="bob@example.com")

    def clock() -> datetime:
        nonlocal after_backup
        if not firing.is_set() and calls and calls[-1].endswith("/backup"):
            after_backup += 1
            if after_backup == 2:  # the first stamps the backup step; the second, the session becoming active
                firing.set()
                other = threading.Thread(target=cancel_elsewhere)
                other.start()
                other.join(timeout=30)
        return SHARED()

    app.extensions["clock"] = clock
    with app.app_context():
        session = control.start(alice(app), "force_charge", 60, on_call=lambda record: calls.append(record.path))
        assert firing.is_set()
        assert session.state == "ended" and "bob@example.com" in session.end_reason
        assert control.live_session(alice(app)) is None
    assert powerwall(env) == before


def test_a_session_row_written_in_another_time_format_is_still_taken_over(env, app, before):
    """updated_at written by hand or by an older version ("03:12:40" where SQLAlchemy writes "03:12:40.000000" on
    SQLite) must not make the compare-and-set miss for ever, which would leave the battery forced."""
    from sqlalchemy import text

    with app.app_context():
        session = control.start(alice(app), "force_charge", 60)
        _db.session.execute(text("UPDATE force_sessions SET state = 'starting', updated_at = :at WHERE id = :id"),
                            {"at": NOW.strftime("%Y-%m-%d %H:%M:%S"), "id": session.id})
        _db.session.commit()
    SHARED.advance(minutes=3)
    with app.app_context():
        control.check_sessions()
        assert control.live_session(alice(app)) is None
    assert powerwall(env) == before
