"""Issue 14's acceptance: an owner, an operator and a viewer share one Powerwall and an outsider tries to
connect it too. One push per tick reaches it, the viewer is refused, the operator's force charge reaches it,
a sync during the force session leaves the forced tariff alone, and the history names the operator."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import select

from app.credentials import apply_settings
from app.extensions import db as _db
from app.households import add_member, owned_or_new
from app.models import ForceSession, Household, User
from app.simulator import identity
from app.sync import run_tick
from tests.amber_fake import FakeAmber
from tests.conftest import create_user, csrf_token, login
from tests.sync_env import AMBER_URL, NOW, SHARED, SITE, fake_sleep, simulator  # noqa: F401 (fixture)

POWERWALL = str(identity.TESLA_ENERGY_SITE_ID)
CONNECTION = dict(
    amber_token="psk_0123456789abcdef0123456789abcdef", amber_site_id=SITE, teslemetry_token=identity.TESLEMETRY_TOKEN,
    site_timezone="Australia/Sydney", sync_enabled=True,
)


@pytest.fixture()
def shared_home(app, simulator):
    SHARED.current = NOW
    requests.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()
    app.extensions["clock"] = SHARED
    app.extensions["sleep"] = fake_sleep
    app.config.update(identity.app_settings(simulator))
    app.config.update(AMBER_API_URL=AMBER_URL, SYNC_MAX_WORKERS=4)
    ids = {email: create_user(app, email) for email in ("owner@example.com", "op@example.com", "viewer@example.com", "outsider@example.com")}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(simulator)
        amber = FakeAmber(AMBER_URL, SITE, lambda: SHARED.current)
        amber.install(mock)
        with app.app_context():
            users = {email: _db.session.get(User, uid) for email, uid in ids.items()}
            home = owned_or_new(users["owner@example.com"], NOW)
            apply_settings(home, by="owner@example.com", tesla_site_id=POWERWALL, **CONNECTION)
            add_member(home, users["op@example.com"], "operator", "owner@example.com", NOW)
            add_member(home, users["viewer@example.com"], "viewer", "owner@example.com", NOW)
            elsewhere = owned_or_new(users["outsider@example.com"], NOW)
            apply_settings(elsewhere, by="outsider@example.com", **CONNECTION)  # same Amber site is fine
            _db.session.commit()
            households = (home.id, elsewhere.id)
        yield simulator, households, amber


def sim_state(simulator):
    return requests.get(f"{simulator}/_sim/state", timeout=5).json()


def tick(app):
    with app.app_context():
        return run_tick(SHARED.current, sleep=fake_sleep)


def test_a_shared_powerwall_has_one_controller(app, shared_home):
    simulator, (home, elsewhere), amber = shared_home

    # The outsider's "Test connection" finds the only Powerwall on the account but may not take it.
    outsider = app.test_client()
    assert login(outsider, "outsider@example.com").status_code == 302
    response = outsider.post("/settings/test", data={"csrf_token": csrf_token(outsider, "/settings")}, follow_redirects=True)
    assert "already managed here by another household; ask its owner to invite you" in response.get_data(as_text=True)
    with app.app_context():
        assert _db.session.get(Household, elsewhere).settings.tesla_site_id is None

    # One push per tick reaches the Powerwall, whoever is looking at it.
    results = tick(app)
    assert sorted(r.household_id for r in results) == [home, elsewhere]
    assert len(sim_state(simulator)["tou_pushes"]) == 1
    SHARED.advance(minutes=5)
    tick(app)
    assert len(sim_state(simulator)["tou_pushes"]) <= 2

    # The viewer is refused.
    viewer = app.test_client()
    assert login(viewer, "viewer@example.com").status_code == 302
    token = csrf_token(viewer, "/household")
    refused = viewer.post("/api/control", json={"action": "force_charge", "minutes": 30}, headers={"X-CSRFToken": token})
    assert refused.status_code == 403 and refused.is_json

    # The operator's force charge reaches the Powerwall.
    operator = app.test_client()
    assert login(operator, "op@example.com").status_code == 302
    token = csrf_token(operator, "/household")
    started = operator.post("/api/control", json={"action": "force_charge", "minutes": 30}, headers={"X-CSRFToken": token})
    assert started.status_code == 200, started.get_data(as_text=True)
    powerwall = sim_state(simulator)["powerwall"]
    assert powerwall["backup_reserve_percent"] == 100 and powerwall["grid_charging_allowed"] is True
    forced = powerwall["tariff_content_v2"]
    assert "FORCED" in forced["code"]

    # A sync during the force session leaves the forced tariff alone.
    pushes = len(sim_state(simulator)["tou_pushes"])
    SHARED.advance(minutes=5)
    results = {r.household_id: r for r in tick(app)}
    assert results[home].outcome == "skipped" and results[home].forced
    assert sim_state(simulator)["powerwall"]["tariff_content_v2"] == forced
    assert len(sim_state(simulator)["tou_pushes"]) == pushes

    # The history names the operator.
    with app.app_context():
        session = _db.session.scalar(select(ForceSession).where(ForceSession.household_id == home))
        assert session.started_by == "op@example.com"
    history = viewer.get("/history").get_data(as_text=True)
    assert "Force charge 30 min by op@example.com" in history


def test_force_before_the_first_sync_picks_the_only_powerwall(app, shared_home):
    simulator, (home, _), _amber = shared_home
    with app.app_context():
        _db.session.get(Household, home).settings.tesla_site_id = None
        _db.session.commit()
    operator = app.test_client()
    assert login(operator, "op@example.com").status_code == 302
    token = csrf_token(operator, "/household")
    started = operator.post("/api/control", json={"action": "force_charge", "minutes": 30}, headers={"X-CSRFToken": token})
    assert started.status_code == 200, started.get_json()
    with app.app_context():
        assert _db.session.get(Household, home).settings.tesla_site_id == POWERWALL
    assert sim_state(simulator)["powerwall"]["backup_reserve_percent"] == 100


def test_sync_run_all_exits_non_zero_and_names_a_household_whose_token_was_refused(app, shared_home):
    simulator, (home, elsewhere), amber = shared_home
    runner = app.test_cli_runner()
    result = runner.invoke(args=["sync", "run", "--all"])
    # the outsider's household has no Powerwall: skipped, so the run needs attention
    assert result.exit_code == 1
    assert "Needs attention: outsider@example.com's household (skipped)" in result.output
    with app.app_context():
        _db.session.get(Household, elsewhere).settings.sync_enabled = False
        _db.session.commit()
    SHARED.advance(minutes=5)
    assert runner.invoke(args=["sync", "run", "--all"]).exit_code == 0
    amber.fail_status = 401  # Amber refuses the household's token
    SHARED.advance(minutes=5)
    result = runner.invoke(args=["sync", "run", "--all"])
    assert result.exit_code == 1 and "owner@example.com's household" in result.output.split("Needs attention:")[1]
