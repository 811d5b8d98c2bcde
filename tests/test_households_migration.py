"""Migration 0012 in place: every account becomes the owner of a household holding its rows, nothing is
lost, two accounts on one Powerwall are settled by the latest accepted push, and a force session that was
running during the upgrade still ends on time and puts the Powerwall back."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import control, create_app
from app.clients.tesla import teslemetry_client
from app.extensions import db
from app.models import ForceSession, Household
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from tests.conftest import FakeClock, make_config
from tests.db_backends import BACKENDS, fresh_database

BEFORE = "0011_price_refusals"
NOW = datetime(2026, 11, 24, 3, 10, tzinfo=timezone.utc)
POWERWALL = str(identity.TESLA_ENERGY_SITE_ID)
CLOCK = FakeClock(NOW)
# Per-account tables and the columns compared before and after (user_id becomes household_id).
PER_ACCOUNT = {
    "user_settings": "id, user_id, amber_site_id, amber_token_enc, teslemetry_token_enc, tesla_site_id, sync_enabled, forecast_estimate",
    "service_status": "id, user_id, service, state, message",
    "sync_states": "user_id, last_success_at, fallback_active",
    "sync_runs": "id, user_id, outcome, reason, tariff_push_id",
    "tariff_pushes": "id, user_id, tesla_site_id, created_at, tariff_hash, accepted",
    "api_call_counts": "id, user_id, day, service, kind, status_class, calls",
    "tesla_readings": "user_id, tesla_site_id, error",
    "force_sessions": "id, user_id, tesla_site_id, action, state, minutes, started_at, ends_at, saved_reserve, saved_mode",
    "control_events": "id, user_id, session_id, step, message",
}


def ts(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module")
def simulator():
    base, stop = start_simulator_thread(app=create_simulator_app(clock=lambda: CLOCK.current))
    yield base
    stop()


def fill(conn, crypto) -> None:
    """Three accounts; alice and bob both control the simulator's Powerwall, bob pushed last and is forcing it."""
    token = crypto.encrypt(identity.TESLEMETRY_TOKEN)
    amber = crypto.encrypt("psk_" + "ab" * 16)
    users = [(1, "alice@example.com"), (2, "bob@example.com"), (3, "carol@example.com")]
    for uid, email in users:
        conn.execute(text(
            "INSERT INTO users (id, email, password_hash, is_admin, is_disabled, session_nonce, created_at) "
            "VALUES (:id, :email, 'scrypt:32768:8:1$salt$hash', :admin, false, :nonce, :at)"
        ), {"id": uid, "email": email, "admin": uid == 1, "nonce": f"n{uid}" * 8, "at": ts(-10000 + uid)})
    sites = {1: POWERWALL, 2: POWERWALL, 3: "55555"}
    for uid, _ in users:
        conn.execute(text(
            "INSERT INTO user_settings (id, user_id, amber_token_enc, amber_site_id, teslemetry_token_enc, tesla_site_id, "
            "tesla_path, site_timezone, sync_enabled, forecast_estimate, change_threshold_cents, export_protection, "
            "export_protection_rule, discharge_floor_percent, updated_at) VALUES (:id, :id, :amber, '01JCX8Q4V6M2R9T3ZKD5HB7WNE', "
            ":tok, :site, 'teslemetry', 'Australia/Sydney', true, 'predicted', 0.5, true, 'never', 20, :at)"
        ), {"id": uid, "amber": amber, "tok": token, "site": sites[uid], "at": ts(-60)})
        conn.execute(text(
            "INSERT INTO service_status (id, user_id, service, state, message, checked_at) VALUES (:id, :u, 'tesla', 'connected', 'ok', :at)"
        ), {"id": uid, "u": uid, "at": ts(-5)})
        conn.execute(text("INSERT INTO sync_states (user_id, last_success_at, fallback_active, export_protection_active) VALUES (:u, :at, false, false)"),
                     {"u": uid, "at": ts(-5)})
        conn.execute(text(
            "INSERT INTO api_call_counts (id, user_id, day, service, kind, status_class, calls, billable) "
            "VALUES (:id, :u, '2026-11-24', 'tesla', 'site_info', '2xx', 3, 3)"
        ), {"id": uid, "u": uid})
        conn.execute(text("INSERT INTO tesla_readings (user_id, tesla_site_id) VALUES (:u, :s)"), {"u": uid, "s": sites[uid]})
    tariff = json.dumps({"name": "x"})
    # alice pushed to the shared Powerwall an hour ago, bob 10 minutes ago: bob keeps it.
    for pid, uid, minutes in ((1, 1, -60), (2, 2, -10), (3, 3, -20)):
        conn.execute(text(
            "INSERT INTO tariff_pushes (id, user_id, tesla_site_id, created_at, kind, tariff, tariff_hash, accepted) "
            "VALUES (:id, :u, :s, :at, 'normal', :t, :h, true)"
        ), {"id": pid, "u": uid, "s": sites[uid], "at": ts(minutes), "t": tariff, "h": f"{pid:064d}"})
        conn.execute(text(
            "INSERT INTO sync_runs (id, user_id, started_at, outcome, reason, amber_calls, tesla_calls, pushed, tariff_push_id) "
            "VALUES (:id, :u, :at, 'pushed', 'changed', 2, 1, true, :id)"
        ), {"id": pid, "u": uid, "at": ts(minutes)})
    # bob's force charge: started 10 minutes ago, 30 minutes long, settings saved (reserve 20 %, self-powered).
    conn.execute(text(
        "INSERT INTO force_sessions (id, user_id, tesla_site_id, action, state, minutes, started_at, ends_at, saved_mode, "
        "saved_reserve, saved_export_rule, saved_grid_charging, verification, updated_at) VALUES "
        "(1, 2, :s, 'force_charge', 'active', 30, :start, :end, 'self_consumption', 20, 'pv_only', false, 'responding', :start)"
    ), {"s": POWERWALL, "start": ts(-10), "end": ts(20)})
    conn.execute(text(
        "INSERT INTO control_events (id, user_id, session_id, at, step, ok, message) VALUES (1, 2, 1, :at, 'start', true, 'Force charge requested')"
    ), {"at": ts(-10)})


def snapshot(conn, household: bool) -> dict[str, list[tuple]]:
    out = {}
    for table, columns in PER_ACCOUNT.items():
        cols = columns.replace("user_id", "household_id") if household else columns
        out[table] = [tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {table} ORDER BY 1, 2"))]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_accounts_become_households_and_nothing_is_lost(backend, tmp_path, simulator):
    with fresh_database(backend, tmp_path) as url:
        config = make_config(tmp_path, url, **identity.app_settings(simulator))
        app = create_app(config)
        app.extensions["clock"] = CLOCK
        CLOCK.current = NOW
        requests_reset(simulator)
        with app.app_context():
            upgrade(revision=BEFORE)
            with db.engine.begin() as conn:
                fill(conn, app.extensions["crypto"])
                if conn.dialect.name == "postgresql":  # rows were given ids: move the sequences past them
                    for table in ("users", "user_settings", "service_status", "sync_runs", "tariff_pushes",
                                  "api_call_counts", "force_sessions", "control_events"):
                        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
            with db.engine.connect() as conn:
                before = snapshot(conn, household=False)
            upgrade()
            with db.engine.connect() as conn:
                after = snapshot(conn, household=True)
                households = conn.execute(text("SELECT id, name FROM households ORDER BY id")).all()
                members = conn.execute(text("SELECT household_id, user_id, role FROM household_members ORDER BY 1")).all()
                notices = dict(conn.execute(text("SELECT id, notice FROM households")).all())
                events = conn.execute(text("SELECT household_id, actor, message FROM household_events")).all()
                started_by = conn.execute(text("SELECT started_by FROM force_sessions")).scalar()

            # every account owns a household with its own id; every row is still there with the same values,
            # except alice's hold on the shared Powerwall (moved into her history) and her sync (turned off)
            assert [tuple(h) for h in households] == [
                (1, "alice@example.com's household"), (2, "bob@example.com's household"), (3, "carol@example.com's household")
            ]
            assert [tuple(m) for m in members] == [(1, 1, "owner"), (2, 2, "owner"), (3, 3, "owner")]
            expected = dict(before)
            expected["user_settings"] = [
                (*row[:5], None, False, *row[7:]) if row[1] == 1 else row for row in before["user_settings"]
            ]
            for table in expected:
                assert after[table] == expected[table], (table, [(r[0], r[1], r[5:]) for r in after[table]], [(r[0], r[1], r[5:]) for r in expected[table]])
            assert "bob@example.com" in notices[1] and "sync was turned off" in notices[1]
            assert "alice@example.com" in notices[2] and notices[3] is None
            assert [(e.household_id, e.actor) for e in events] == [(1, "upgrade")] and POWERWALL in events[0].message
            assert started_by == "bob@example.com"

            # the force session that was running during the upgrade ends on time and restores bob's settings
            tesla = teslemetry_client(identity.TESLEMETRY_TOKEN, base_url=app.config["TESLEMETRY_API_URL"])
            tesla.set_backup_reserve(POWERWALL, 100)  # as the force charge left it
            tesla.set_operation_mode(POWERWALL, "autonomous")
            CLOCK.current = NOW + timedelta(minutes=15)
            control.check_sessions(CLOCK.current, battery_reader=lambda household, now: _Reading())
            assert db.session.get(ForceSession, 1).state == "active"  # not yet: ends in 5 minutes
            CLOCK.current = NOW + timedelta(minutes=21)
            control.check_sessions(CLOCK.current, battery_reader=lambda household, now: _Reading())
            session = db.session.get(ForceSession, 1)
            assert session.state == "ended" and session.household_id == 2
            info = tesla.site_info(POWERWALL)
            assert (info.backup_reserve_percent, info.operation_mode, info.export_rule, info.grid_charging_allowed) == (
                20, "self_consumption", "pv_only", False
            )
            assert db.session.get(Household, 2).settings.tesla_site_id == POWERWALL
            db.session.remove()
            db.engine.dispose()


class _Reading:
    battery_w = -3000.0


def requests_reset(simulator: str) -> None:
    import requests

    requests.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()
