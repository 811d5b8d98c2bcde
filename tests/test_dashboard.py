"""The dashboard pages and their JSON endpoints, with the clock injected and the simulator behind Tesla."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app.extensions import db as _db
from app.models import ApiCallCount, SyncRun, SyncState, TariffPush
from tests.amber_fake import flat
from tests.conftest import create_user, csrf_token, login, household_id_for
from tests.sync_env import NOW, SHARED, configure, env, simulator  # noqa: F401  (fixtures)


def live_status_calls(env) -> int:
    counts = env.sim()["request_counts"]
    return sum(v for k, v in counts.items() if "live_status" in k)


def signed_in(env):
    client = env.app.test_client()
    assert login(client, "alice@example.com").status_code == 302
    return client


def test_dashboard_shows_price_battery_and_what_was_pushed(env):
    env.amber.price_fn = flat(31.5, -7.25)
    env.tick()
    client = signed_in(env)
    page = client.get("/").get_data(as_text=True)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Buy 31.5c /kWh" in text and "Sell 7.2c /kWh" in text or "Sell 7.3c /kWh" in text
    assert "14:10–14:15" in text  # the 5-minute interval on the Sydney clock
    assert "AEDT" in text
    soc = env.sim()["powerwall"]["percentage_charged"]
    assert f"{soc:.0f}%" in text
    assert "Sent a new tariff to the Powerwall" in text
    assert page.count('class="tariff-slot') == 48
    assert "Sync now" in page


def test_json_endpoint_matches_the_page_and_needs_login(env):
    env.amber.price_fn = flat(22.0, -5.0)
    env.tick()
    anonymous = env.app.test_client()
    assert anonymous.get("/api/dashboard").status_code == 401
    data = signed_in(env).get("/api/dashboard").get_json()
    assert data["time_zone"] == "Australia/Sydney"
    assert data["now"]["five_minute"]["buy"] == 22.0 and data["now"]["five_minute"]["sell"] == 5.0
    assert data["battery"]["percentage"] == env.sim()["powerwall"]["percentage_charged"]
    assert data["status"]["last_run"]["outcome"] == "pushed"
    assert set(data["html"]) == {"now", "battery", "control", "status", "forecast", "history", "health"}
    assert "22.0c" in data["html"]["now"]


def test_tesla_is_read_at_most_once_a_minute_and_only_while_someone_looks(env):
    env.tick()
    assert live_status_calls(env) == 0  # the sync itself never reads the battery
    client = signed_in(env)
    client.get("/")
    client.get("/api/dashboard")
    assert live_status_calls(env) == 1
    SHARED.advance(seconds=61)
    client.get("/api/dashboard")
    assert live_status_calls(env) == 2
    other = signed_in(env)  # a second browser tab shares the cached reading
    other.get("/")
    assert live_status_calls(env) == 2
    with env.app.app_context():
        counted = _db.session.scalar(select(ApiCallCount).where(ApiCallCount.kind == "live_status"))
        assert counted.calls == 2 and counted.billable == 2


def test_sync_now_needs_csrf_runs_once_a_minute_and_reports(env):
    client = signed_in(env)
    assert client.post("/api/sync").status_code == 400  # no X-CSRFToken header
    token = csrf_token(client, "/")
    response = client.post("/api/sync", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["outcome"] == "pushed"
    again = client.post("/api/sync", headers={"X-CSRFToken": token})
    assert again.status_code == 429 and "try again in" in again.get_json()["message"]
    SHARED.advance(seconds=61)
    response = client.post("/sync-now", data={"csrf_token": token})  # the no-JavaScript form
    assert response.status_code == 302
    assert "still right" in client.get("/").get_data(as_text=True) or "Prices checked" in client.get("/").get_data(as_text=True)


def test_tariff_page_explains_every_slot_and_the_change(env):
    env.amber.price_fn = flat(30.0, -8.0)
    env.tick()
    env.amber.price_fn = lambda start, minutes: (45.0 if start.hour == 8 and start.minute < 30 else 30.0, -8.0)
    SHARED.advance(minutes=5)
    env.tick()
    page = signed_in(env).get("/tariff").get_data(as_text=True)
    assert page.count("<details>") == 48
    assert "19:00–19:30" in page and "buy +15.0c" in page
    assert "forecast" in page and "advancedPrice.predicted" in page or "perKwh" in page
    assert "Before adjustments" in page


def test_tariff_page_gives_each_half_hour_amber_s_level_in_words(env, app):
    """Each half hour wears the dearest level of the Amber intervals it was built from, as a word (with colour)."""
    from app.models import StoredPrice

    env.tick()
    with app.app_context():
        push = _db.session.scalar(select(TariffPush))
        slot = push.explanation["slots"][3]
        general = [u for u in slot["intervals"] if u["channel"] == "general"]
        first = datetime.fromisoformat(general[0]["start"])
        row = _db.session.scalar(select(StoredPrice).where(StoredPrice.channel == "general", StoredPrice.start_at == first))
        row.descriptor = "spike"
        _db.session.commit()
        wall = slot["wall_from"]
    page = signed_in(env).get("/tariff").get_data(as_text=True)
    assert page.count("Amber: spike") == 1 and page.count("Amber: neutral") >= 40
    item = page[page.index(f'<span class="slot-time">{wall}'):]
    assert item[:item.index("</summary>")].count('level-tag-spike" title="Amber\'s level for this half hour">Amber: spike') == 1


def test_another_users_push_is_not_found(env, app):
    env.tick()
    with app.app_context():
        push_id = _db.session.scalar(select(TariffPush.id))
    create_user(app, "mallory@example.com")
    mallory = app.test_client()
    login(mallory, "mallory@example.com")
    assert mallory.get(f"/tariff/{push_id}").status_code == 404
    assert signed_in(env).get(f"/tariff/{push_id}").status_code == 200
    assert "Nothing has been pushed yet" in mallory.get("/tariff").get_data(as_text=True)


def test_history_is_paginated_and_private(env, app, household_id):
    other = household_id_for(app, create_user(app, "bob@example.com"))
    with app.app_context():
        for n in range(120):
            _db.session.add(SyncRun(household_id=household_id, started_at=NOW - timedelta(minutes=5 * n), outcome="unchanged", reason=f"run {n}"))
        _db.session.add(SyncRun(household_id=other, started_at=NOW, outcome="failed", reason="bob's secret run"))
        _db.session.commit()
    client = signed_in(env)
    first = client.get("/history").get_data(as_text=True)
    assert "Page 1 of 3" in first and first.count("<tr class=\"outcome-row") == 50 and "run 0<" in first
    last = client.get("/history?page=3").get_data(as_text=True)
    assert last.count("<tr class=\"outcome-row") == 20 and "run 119" in last
    assert "bob&#39;s secret run" not in first + last and "bob's secret run" not in first + last
    assert client.get("/history?page=999").status_code == 200
    assert client.get("/history?page=abc").status_code == 200


def test_alerts_say_what_needs_attention(env, app, household_id):
    env.tick()
    with app.app_context():
        state = _db.session.get(SyncState, household_id)
        state.fallback_active = True
        state.tesla_blocked_reason = "Teslemetry did not accept the saved credentials."
        state.export_protection_active = True
        _db.session.commit()
    text = signed_in(env).get("/").get_data(as_text=True)
    assert "safe flat tariff" in text
    assert "Reconnect needed: Teslemetry did not accept" in text
    assert "Export protection is on" in text


def test_cost_meter_uses_teslas_rates_and_says_it_is_an_estimate(env, app, household_id):
    configure(app, household_id)
    with app.app_context():
        for kind, calls in (("time_of_use_settings", 1000), ("site_info", 500)):
            _db.session.add(ApiCallCount(household_id=household_id, day=date(2026, 11, 24), service="tesla", kind=kind, calls=calls, billable=calls))
        _db.session.add(ApiCallCount(household_id=household_id, day=date(2026, 10, 31), service="tesla", kind="site_info", calls=99, billable=99))
        _db.session.commit()
    text = " ".join(re.sub(r"<[^>]+>", " ", signed_in(env).get("/").get_data(as_text=True)).split())
    assert "about $2.00 this month" in text
    assert "1000 commands at $0.001 and 500 data requests at $0.002" in text
    assert "An estimate at Tesla's published rates" in text or "An estimate at Tesla&#39;s published rates" in text


def test_without_prices_or_sites_the_page_still_works_and_says_what_to_do(app, user_client):
    page = user_client.get("/").get_data(as_text=True)
    assert "No prices yet" in page and "Getting started: 0 of 5 done" in page
    assert "Choose your Tesla energy site" in page
    assert user_client.get("/api/dashboard").status_code == 200
    assert "Nothing has been pushed yet" in user_client.get("/tariff").get_data(as_text=True)


def test_stale_prices_are_flagged(env):
    env.tick()
    SHARED.advance(minutes=20)
    text = signed_in(env).get("/").get_data(as_text=True)
    assert "the sync has not refreshed them since" in text


def chart_of(client, part: str) -> str:
    return client.get("/api/dashboard").get_json()["html"][part]


def test_charts_show_new_prices_at_once_and_are_drawn_once_per_minute_otherwise(env):
    from app.dashboard.routes import price_charts

    price_charts.cache_clear()
    SHARED.advance(seconds=65 - SHARED.current.second)  # 5 s into a minute
    env.amber.price_fn = flat(21.0, -5.0)
    env.tick()
    client = signed_in(env)
    first = chart_of(client, "forecast")
    assert "buy price from 21c to 21c" in first
    SHARED.advance(seconds=40)  # same minute, same prices: drawn once, shown twice
    assert chart_of(client, "forecast") == first
    assert price_charts.cache_info().misses == 1 and price_charts.cache_info().hits >= 1

    env.amber.price_fn = flat(47.0, -5.0)  # new prices in the same minute are drawn at once
    env.tick()
    changed = chart_of(client, "forecast")
    assert "buy price from 47c to 47c" in changed and "21c" not in changed
    assert price_charts.cache_info().misses == 2

    history = chart_of(client, "history")
    SHARED.advance(seconds=60)  # the next minute moves the history window
    assert chart_of(client, "history") != history
    assert price_charts.cache_info().misses == 3


def test_the_onboarding_checklist_ticks_itself_off_and_links_to_each_step(env, app, household_id):
    from app.extensions import db as _db
    from app.models import Household

    with app.app_context():  # connected, tested and synced by the env: only turning it off again is left
        _db.session.get(Household, household_id).settings.sync_enabled = False
        _db.session.commit()
    env.tick()
    client = signed_in(env)
    page = client.get("/").get_data(as_text=True)
    # The env's tick checked both connections, so all but the sync are done; each open step links to its place.
    assert "Getting started: 3 of 5 done" in page or "Getting started: 4 of 5 done" in page
    assert 'href="/settings#prefs-h">do it in Settings' in page
    with app.app_context():
        _db.session.get(Household, household_id).settings.sync_enabled = True
        _db.session.commit()
    env.tick()
    text = client.get("/").get_data(as_text=True)
    if "Getting started" in text:  # the connection test is the one step a tick does not do
        assert "Getting started: 4 of 5 done" in text and 'href="/settings#status-h"' in text


def test_the_checklist_offers_notifications_and_home_assistant_as_optional_steps(app, user_client):
    """Optional steps are listed with where they are done, but only the five required ones are counted."""
    page = user_client.get("/").get_data(as_text=True)
    assert "Getting started: 0 of 5 done" in page
    assert 'Optionally, get notifications on your phone (an Apprise URL):\n      not yet\n       — <a href="/settings/notifications">set it up</a>' in page
    assert '<a href="/settings/notifications#home-assistant">set it up</a>' in page
    off = user_client.get("/settings/notifications").get_data(as_text=True)
    assert 'id="home-assistant"' in off and "Off." in off
    app.config["MQTT_URL"] = "mqtt://ha:s3cret-pass@broker.lan:1883"
    on = user_client.get("/settings/notifications").get_data(as_text=True)
    assert "broker mqtt://broker.lan:1883" in on and "s3cret-pass" not in on
    assert "Optionally, see it in Home Assistant (over MQTT):\n      done" in user_client.get("/").get_data(as_text=True)
