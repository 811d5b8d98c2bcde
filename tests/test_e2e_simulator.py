"""End to end over loopback: the real clients and the app's pages against the local simulator.

The simulator and the app share one frozen clock, so prices, token expiry and estimates are
deterministic."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import func, select

from app.clients.amber import AmberClient
from app.clients.errors import AuthenticationError
from app.clients.tesla import teslemetry_client
from app.demo import DEMO_EMAIL, DEMO_PASSWORD, demo_config, prepare_demo
from app.extensions import db as _db
from app.models import ServiceStatus
from app.prices import Channel, IntervalKind
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from app.tariff import TariffPolicy, build_tariff, validate_tariff
from tests.conftest import csrf_token, login

# 14:12:40 AEDT: 40 s into a 5-minute interval, so its price is confirmed.
NOW = datetime(2026, 11, 24, 3, 12, 40, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def simulator():
    sim_app = create_simulator_app(clock=lambda: NOW)
    base, stop = start_simulator_thread(app=sim_app)
    yield base
    stop()


@pytest.fixture(autouse=True)
def reset_simulator(simulator):
    requests.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()


@pytest.fixture()
def sim_app(app, simulator, clock):
    clock.current = NOW
    app.config.update(identity.app_settings(simulator))
    return app


def test_amber_client_reads_the_simulator_feed(simulator):
    client = AmberClient(identity.AMBER_TOKEN, base_url=f"{simulator}/amber/v1")
    sites = client.sites()
    assert [s.id for s in sites if s.is_active] == [identity.AMBER_SITE_ID]
    result = client.current_prices(identity.AMBER_SITE_ID, next_intervals=48, previous_intervals=1, resolution=30)
    assert result.skipped == 0
    general = [i for i in result.intervals if i.channel is Channel.GENERAL]
    feed_in = [i for i in result.intervals if i.channel is Channel.FEED_IN]
    assert len(general) == len(feed_in) == 50
    current = [i for i in general if i.kind is IntervalKind.CURRENT]
    assert len(current) == 1 and current[0].start <= NOW < current[0].end
    assert all(i.start.minute in (0, 30) and i.start.second == 0 for i in general)  # exact starts
    assert client.rate_limit is not None and client.rate_limit.remaining == 48


def test_a_tariff_built_from_simulator_prices_is_accepted_and_read_back(simulator):
    amber = AmberClient(identity.AMBER_TOKEN, base_url=f"{simulator}/amber/v1")
    intervals = amber.current_prices(identity.AMBER_SITE_ID, next_intervals=48, resolution=30).intervals
    tariff, explanation = build_tariff(intervals, "Australia/Sydney", NOW, TariffPolicy())
    assert validate_tariff(tariff) == []
    tesla = teslemetry_client(identity.TESLEMETRY_TOKEN, base_url=f"{simulator}/teslemetry")
    tesla.set_tariff(identity.TESLA_ENERGY_SITE_ID, tariff)
    info = tesla.site_info(identity.TESLA_ENERGY_SITE_ID)
    assert info.time_zone == "Australia/Sydney"
    assert info.tariff_content_v2["energy_charges"] == tariff["energy_charges"]
    assert info.tariff_content_v2["sell_tariff"]["energy_charges"] == tariff["sell_tariff"]["energy_charges"]


def test_wrong_teslemetry_token_is_an_authentication_error(simulator):
    tesla = teslemetry_client("not-the-token", base_url=f"{simulator}/teslemetry")
    with pytest.raises(AuthenticationError):
        tesla.energy_sites()


def test_new_user_saves_tokens_tests_the_connection_and_sees_both_connected(sim_app, user_client):
    token = csrf_token(user_client, "/settings")
    assert user_client.post("/settings/amber", data={"token": identity.AMBER_TOKEN, "site_id": "", "csrf_token": token}).status_code == 302
    assert user_client.post(
        "/settings/tesla", data={"token": identity.TESLEMETRY_TOKEN, "site_id": "", "path": "teslemetry", "csrf_token": token}
    ).status_code == 302
    assert user_client.post("/settings/test", data={"csrf_token": token}).status_code == 302
    page = user_client.get("/settings").get_data(as_text=True)
    assert page.count("badge-connected") == 2
    assert f'<option value="{identity.AMBER_SITE_ID}" selected>' in page
    assert f'<option value="{identity.TESLA_ENERGY_SITE_ID}" selected>' in page
    assert "Tesla reports Australia/Sydney" in page
    assert identity.AMBER_TOKEN not in page and identity.TESLEMETRY_TOKEN not in page
    home = " ".join(user_client.get("/").get_data(as_text=True).split())
    assert "Choose your Amber site and your Powerwall: done" in home and "Test the connection (both say Connected): done" in home


def test_simulated_outage_shows_needs_attention_in_plain_words(sim_app, simulator, user_client):
    token = csrf_token(user_client, "/settings")
    user_client.post("/settings/amber", data={"token": identity.AMBER_TOKEN, "site_id": "", "csrf_token": token})
    requests.post(f"{simulator}/_sim/faults", json={"endpoint": "amber_sites", "status": 500}, timeout=5).raise_for_status()
    user_client.post("/settings/test", data={"csrf_token": token})
    page = user_client.get("/settings").get_data(as_text=True)
    assert "badge-attention" in page
    assert "Amber Electric is temporarily unavailable" in page


def test_demo_setup_gives_a_connected_demo_account(simulator, tmp_path):
    from app import create_app

    app = create_app(demo_config(simulator, tmp_path / "demo", "127.0.0.1", 5001))
    prepare_demo(app)
    prepare_demo(app)  # a second start reuses the account
    with app.app_context():
        states = {row.service: row.state for row in _db.session.scalars(select(ServiceStatus))}
    assert states == {"amber": "connected", "tesla": "connected"}
    client = app.test_client()
    assert login(client, DEMO_EMAIL, DEMO_PASSWORD).status_code == 302
    assert client.get("/settings").get_data(as_text=True).count("badge-connected") == 2
    with app.app_context():
        _db.engine.dispose()


def test_the_demo_opens_on_a_lived_in_week(simulator, tmp_path):
    """`flask demo` backfills a simulated week before it serves: every page has data on first open."""
    from app import create_app
    from app.models import ControlEvent, StoredPrice, SyncRun

    app = create_app(demo_config(simulator, tmp_path / "demo", "127.0.0.1", 5001))
    prepare_demo(app)
    prepare_demo(app)  # a restart does not write the week twice
    client = app.test_client()
    assert login(client, DEMO_EMAIL, DEMO_PASSWORD).status_code == 302
    history = client.get("/api/history?days=7").get_json()
    days = {push["at"][:10] for push in history["pushes"]}
    assert len(days) >= 5, days
    assert [(s["action"], s["by"]) for s in history["force_sessions"]] == [("force_charge", DEMO_EMAIL)]
    with app.app_context():
        runs = _db.session.scalar(select(func.count(SyncRun.id)))
        assert 7 * 288 <= runs < 7 * 288 + 10  # one sync every 5 minutes, once
        assert _db.session.scalar(select(func.max(StoredPrice.per_kwh))) >= 1000  # the evening spike
        assert _db.session.scalar(select(func.count(ControlEvent.id))) >= 10  # the force charge, step by step
        reasons = " ".join(_db.session.scalars(select(SyncRun.reason)))
        assert "Export protection is on" in reasons  # the negative-price afternoons
    for path in ("/", "/tariff", "/history", "/history?kind=pushes", "/history?kind=force", "/household", "/settings"):
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get("/").get_data(as_text=True)
    assert "No prices yet" not in page and "Nothing has been pushed yet" not in client.get("/tariff").get_data(as_text=True)
    # The Money page is full: a week of billed days, the battery's savings, the force charge's cost.
    money = client.get("/api/money").get_json()
    assert len(money["days"]) == 7 and money["total"]["import_kwh"] > 0 and money["total"]["export_kwh"] > 0
    assert money["savings"] is not None and money["savings"]["total"] != 0
    kinds = [w["kind"] for w in money["windows"]]
    assert "force_charge" in kinds and "export_protection" in kinds
    [force] = [w for w in money["windows"] if w["kind"] == "force_charge"]
    assert force["has_energy_data"] and force["battery"] < 0  # charging from the grid cost money in its window
    assert '<svg class="money-chart"' in client.get("/money").get_data(as_text=True)
    with app.app_context():
        _db.engine.dispose()
