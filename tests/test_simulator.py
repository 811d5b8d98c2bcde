"""The simulator's Amber API, clock and control endpoints, checked on the wire (Flask test client), plus
one real-socket run. Invariants come from the shared fixtures README."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from statistics import mean
from zoneinfo import ZoneInfo

import pytest
import requests

from app.simulator import create_simulator_app, identity, start_simulator_thread
from tests.simulator_support import ManualClock
from app.simulator import prices

FIXTURE_NOW = datetime(2025, 11, 20, 3, 12, tzinfo=timezone.utc)  # 14:12 AEDT, 13:12 NEM
AMBER = {"Authorization": f"Bearer {identity.AMBER_TOKEN}"}
SITE = f"/amber/v1/sites/{identity.AMBER_SITE_ID}"




@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock(FIXTURE_NOW)


@pytest.fixture
def sim(sim_clock):
    return create_simulator_app(clock=sim_clock, seed=7).test_client()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def by_channel(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["channelType"], []).append(row)
    return grouped


# --- auth and rate limit ----------------------------------------------------------------------------


def test_amber_rejects_missing_and_wrong_tokens(sim):
    assert sim.get("/amber/v1/sites").status_code == 401
    wrong = sim.get("/amber/v1/sites", headers={"Authorization": "Bearer psk_wrong"})
    assert wrong.status_code == 401
    assert wrong.get_json() == {"message": "Unauthorized"}


def test_amber_sites_and_rate_limit_headers(sim):
    response = sim.get("/amber/v1/sites", headers=AMBER)
    assert response.status_code == 200
    active = [s for s in response.get_json() if s["status"] == "active"]
    assert [s["id"] for s in active] == [identity.AMBER_SITE_ID]
    assert active[0]["intervalLength"] == 30
    assert response.headers["RateLimit-Limit"] == "50"
    assert response.headers["RateLimit-Remaining"] == "49"
    assert response.headers["RateLimit-Policy"] == "50;w=300"
    assert 0 < int(response.headers["RateLimit-Reset"]) <= 300


def test_amber_answers_429_after_50_requests_until_the_window_resets(sim, sim_clock):
    remaining = []
    for _ in range(50):
        response = sim.get("/amber/v1/sites", headers=AMBER)
        assert response.status_code == 200
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == list(range(49, -1, -1))
    refused = sim.get(f"{SITE}/prices/current", headers=AMBER)
    assert refused.status_code == 429
    assert refused.get_data() == b'{"message":"Too Many Requests"}'  # the 31-byte API Gateway body
    assert len(refused.get_data()) == 31
    assert refused.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    sim_clock.now += timedelta(seconds=299)
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 429
    sim_clock.now += timedelta(seconds=1)
    again = sim.get("/amber/v1/sites", headers=AMBER)
    assert again.status_code == 200
    assert again.headers["RateLimit-Remaining"] == "49"


def test_rate_limit_can_be_switched_off_for_benchmarks(sim):
    assert sim.post("/_sim/config", json={"amber_rate_limit": 0}).status_code == 200
    for _ in range(60):
        response = sim.get("/amber/v1/sites", headers=AMBER)
        assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers


# --- interval wire format ---------------------------------------------------------------------------


def check_time_invariants(rows: list[dict], duration: int) -> None:
    """fixtures/README.md 'Invariants' for one channel's chronological intervals."""
    previous_end = None
    for row in rows:
        start, end = utc(row["startTime"]), utc(row["endTime"])
        nem = datetime.fromisoformat(row["nemTime"])
        assert row["startTime"].endswith("Z") and row["endTime"].endswith("Z")
        assert row["nemTime"].endswith("+10:00")
        assert nem == end
        assert row["duration"] == duration
        assert end - start == timedelta(minutes=duration, seconds=-1)
        assert end.timestamp() % (duration * 60) == 0
        assert row["date"] == (end - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=10))).date().isoformat()
        if previous_end is not None:
            assert start == previous_end + timedelta(seconds=1)
        previous_end = end


def test_current_prices_30_minute_shape_matches_the_fixture_scenario(sim):
    rows = sim.get(f"{SITE}/prices/current?next=48&resolution=30", headers=AMBER).get_json()
    assert len(rows) == 98
    assert [r["channelType"] for r in rows] == ["general"] * 49 + ["feedIn"] * 49
    for channel, items in by_channel(rows).items():
        check_time_invariants(items, 30)
        current = items[0]
        assert current["type"] == "CurrentInterval"
        assert current["startTime"] == "2025-11-20T03:00:01Z"
        assert current["endTime"] == "2025-11-20T03:30:00Z"
        assert current["nemTime"] == "2025-11-20T13:30:00+10:00"
        assert current["estimate"] is True  # 30-minute price is final only in its last five minutes
        assert {r["type"] for r in items[1:]} == {"ForecastInterval"}
        assert all("advancedPrice" in r for r in items)
        assert items[-1]["endTime"] == "2025-11-21T03:30:00Z"
        if channel == "general":
            assert all("tariffInformation" in r for r in items)
        else:
            assert all("tariffInformation" not in r for r in items)


def test_midnight_interval_belongs_to_the_previous_nem_date(sim):
    rows = sim.get(f"{SITE}/prices/current?next=48&resolution=30", headers=AMBER).get_json()
    midnight = [r for r in rows if r["nemTime"] == "2025-11-21T00:00:00+10:00"]
    assert len(midnight) == 2
    assert {r["date"] for r in midnight} == {"2025-11-20"}
    after = [r for r in rows if r["nemTime"] == "2025-11-21T00:30:00+10:00"]
    assert {r["date"] for r in after} == {"2025-11-21"}


def test_five_minute_current_with_previous_and_next(sim):
    rows = sim.get(f"{SITE}/prices/current?previous=3&next=12&resolution=5", headers=AMBER).get_json()
    assert len(rows) == 32
    for items in by_channel(rows).values():
        check_time_invariants(items, 5)
        assert [r["type"] for r in items] == ["ActualInterval"] * 3 + ["CurrentInterval"] + ["ForecastInterval"] * 12
        assert items[3]["startTime"] == "2025-11-20T03:10:01Z"
        assert items[3]["estimate"] is False  # 03:12 is 120 s into the interval: confirmed
        assert "advancedPrice" not in items[3]
        assert all("advancedPrice" not in r and "estimate" not in r for r in items[:3])


def test_five_minute_forecasts_are_near_term_only(sim):
    rows = sim.get(f"{SITE}/prices/current?next=288&resolution=5", headers=AMBER).get_json()
    assert len(by_channel(rows)["general"]) == 1 + 12  # one hour of 5-minute forecasts
    rows = sim.get(f"{SITE}/prices/current?next=2048&resolution=30", headers=AMBER).get_json()
    assert by_channel(rows)["general"][-1]["nemTime"] == "2025-11-22T00:00:00+10:00"  # end of next NEM day


def test_thirty_minute_price_is_the_mean_of_its_six_five_minute_prices(sim):
    half_hour = by_channel(sim.get(f"{SITE}/prices/current?resolution=30", headers=AMBER).get_json())
    fives = by_channel(sim.get(f"{SITE}/prices/current?previous=2&next=3&resolution=5", headers=AMBER).get_json())
    for channel in ("general", "feedIn"):
        assert [r["startTime"] for r in fives[channel]][0] == half_hour[channel][0]["startTime"]
        assert fives[channel][-1]["endTime"] == half_hour[channel][0]["endTime"]
        for field in ("perKwh", "spotPerKwh"):
            expected = mean(r[field] for r in fives[channel])
            assert half_hour[channel][0][field] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("estimate_seconds", [20, 45])
def test_estimate_flips_at_the_configured_second(sim, sim_clock, estimate_seconds):
    sim.post("/_sim/config", json={"estimate_seconds": estimate_seconds})
    interval_start = datetime(2025, 11, 20, 3, 10, tzinfo=timezone.utc)

    def current_general() -> dict:
        return sim.get(f"{SITE}/prices/current?resolution=5", headers=AMBER).get_json()[0]

    sim_clock.now = interval_start + timedelta(seconds=estimate_seconds - 1)
    before = current_general()
    assert before["estimate"] is True
    assert "advancedPrice" in before
    sim_clock.now = interval_start + timedelta(seconds=estimate_seconds)
    after = current_general()
    assert after["estimate"] is False
    assert "advancedPrice" not in after
    assert after["perKwh"] != before["perKwh"]  # the estimate was provisional
    assert abs(after["perKwh"] - before["perKwh"]) < 0.1 * abs(after["perKwh"]) + 1.1


@pytest.mark.parametrize("estimate_seconds", [0, 40, 299, 300, 900])
def test_current_prices_are_what_the_price_model_says_at_every_second(sim, sim_clock, estimate_seconds):
    """The route keeps each answer for the stretch in which it cannot change (a 5-minute interval, split
    where its price is confirmed): at any second it equals the price model's own answer for that second."""
    sim.post("/_sim/config", json={"estimate_seconds": estimate_seconds})
    start = datetime(2025, 11, 20, 13, 55, tzinfo=timezone.utc)  # the NEM day turns over at 14:00 UTC
    offsets = [0, 1, 39, 40, 41, 150, 298, 299, 300, 301, 339, 340, 599, 600, 900, 1799, 1800, 1801]
    for seconds in offsets:
        sim_clock.now = start + timedelta(seconds=seconds)
        for query, previous, next_, duration in (("previous=6&next=12&resolution=5", 6, 12, 5), ("next=48&resolution=30", 0, 48, 30)):
            served = sim.get(f"{SITE}/prices/current?{query}", headers=AMBER).get_json()
            expected = prices.current_prices(
                7, sim_clock.now, ZoneInfo("Australia/Sydney"), previous=previous, next_=next_, duration=duration,
                estimate_seconds=estimate_seconds, five_minute_horizon_minutes=60,
            )
            assert served == expected, (seconds, query)


def test_resolutions_agree_while_the_current_price_is_an_estimate(sim, sim_clock):
    sim_clock.now = datetime(2025, 11, 20, 3, 10, 5, tzinfo=timezone.utc)
    half_hour = by_channel(sim.get(f"{SITE}/prices/current?resolution=30", headers=AMBER).get_json())
    fives = by_channel(sim.get(f"{SITE}/prices/current?previous=2&next=3&resolution=5", headers=AMBER).get_json())
    assert fives["general"][2]["estimate"] is True
    for channel in ("general", "feedIn"):
        expected = mean(r["perKwh"] for r in fives[channel])
        assert half_hour[channel][0]["perKwh"] == pytest.approx(expected, abs=1e-5)


def test_thirty_minute_estimate_is_final_once_the_last_five_minutes_are_confirmed(sim, sim_clock):
    sim_clock.now = datetime(2025, 11, 20, 3, 25, 19, tzinfo=timezone.utc)
    assert sim.get(f"{SITE}/prices/current", headers=AMBER).get_json()[0]["estimate"] is True
    sim_clock.now = datetime(2025, 11, 20, 3, 25, 20, tzinfo=timezone.utc)
    assert sim.get(f"{SITE}/prices/current", headers=AMBER).get_json()[0]["estimate"] is False


def test_feed_in_sign_convention_and_advanced_price_order(sim):
    rows = by_channel(sim.get(f"{SITE}/prices/current?next=48", headers=AMBER).get_json())
    for general, feed_in in zip(rows["general"], rows["feedIn"]):
        assert general["startTime"] == feed_in["startTime"]
        assert general["spotPerKwh"] == feed_in["spotPerKwh"]  # spot is not inverted
        # perKwh is what the user pays: feed-in is negative (earning) when spot is positive.
        assert feed_in["perKwh"] * feed_in["spotPerKwh"] <= 0
        spot = abs(feed_in["spotPerKwh"])
        assert 0.97 * spot - 1e-4 <= abs(feed_in["perKwh"]) <= 0.99 * spot + 1e-4  # spot x loss factor
        low, high = feed_in["advancedPrice"]["low"], feed_in["advancedPrice"]["high"]
        assert low > high  # feed-in low outcome is numerically greater
        assert general["advancedPrice"]["low"] < general["advancedPrice"]["high"]
    assert any(r["perKwh"] > 0 for r in rows["feedIn"]), "midday negative spot: paying to export"
    assert any(r["perKwh"] < -20 for r in rows["feedIn"]), "evening: earning well"


def test_daily_shape_over_a_month_of_days():
    tz = ZoneInfo(identity.SITE_TIME_ZONE)
    evening_peaks, midday_lows, spikes = [], [], 0
    for day in range(30):
        midnight = prices.nem_midnight(date(2025, 11, 1) + timedelta(days=day))
        values = {h: prices.interval_values(7, midnight + timedelta(minutes=30 * h), 30, tz) for h in range(48)}
        midday_lows.append(min(values[h].spot for h in range(22, 28)))  # 11:00-14:00 NEM
        evening_peaks.append(max(values[h].general for h in range(34, 40)))  # 17:00-20:00 NEM
        spikes += any(values[h].spot >= 100 for h in range(48))
    assert sum(low < 0 for low in midday_lows) >= 20  # negative midday spot most days
    assert mean(evening_peaks) > 3 * mean(max(low, 1) for low in midday_lows)
    assert 3 <= spikes <= 15  # an occasional spike, not every day


def test_prices_between_dates_types_relative_to_now(sim):
    rows = sim.get(f"{SITE}/prices?startDate=2025-11-20&endDate=2025-11-20&resolution=30", headers=AMBER).get_json()
    for items in by_channel(rows).values():
        assert len(items) == 48
        check_time_invariants(items, 30)
        assert {r["date"] for r in items} == {"2025-11-20"}
        types = [r["type"] for r in items]
        assert types == ["ActualInterval"] * 26 + ["CurrentInterval"] + ["ForecastInterval"] * 21


def test_prices_between_dates_stop_at_the_forecast_horizon_and_clamp_to_a_week(sim):
    rows = sim.get(f"{SITE}/prices?startDate=2025-11-10&endDate=2025-11-30", headers=AMBER).get_json()
    general = by_channel(rows)["general"]
    assert general[0]["date"] == "2025-11-10"
    assert general[-1]["date"] == "2025-11-16"
    assert {r["type"] for r in general} == {"ActualInterval"}
    future = sim.get(f"{SITE}/prices?startDate=2025-11-21&endDate=2025-11-25", headers=AMBER).get_json()
    assert {r["date"] for r in future} == {"2025-11-21"}


def test_resolution_handling_and_parameter_errors(sim):
    rows = sim.get(f"{SITE}/prices/current", headers=AMBER).get_json()
    assert rows[0]["duration"] == 30  # default = the site's intervalLength
    assert sim.get(f"{SITE}/prices/current?resolution=15", headers=AMBER).status_code == 400
    assert sim.get(f"{SITE}/prices/current?next=abc", headers=AMBER).status_code == 400
    assert sim.get(f"{SITE}/prices?startDate=20-11-2025", headers=AMBER).status_code == 400
    missing = sim.get("/amber/v1/sites/01NOTASITE00000000000000000/prices/current", headers=AMBER)
    assert missing.status_code == 404
    assert missing.get_json() == {"message": "Site not found"}
    sim.post("/_sim/config", json={"ignore_resolution": True})
    assert sim.get(f"{SITE}/prices/current?resolution=5", headers=AMBER).get_json()[0]["duration"] == 30
    sim.post("/_sim/config", json={"ignore_resolution": False, "interval_length": 5})
    assert sim.get(f"{SITE}/prices/current", headers=AMBER).get_json()[0]["duration"] == 5


def test_usage_rows(sim):
    assert sim.get(f"{SITE}/usage", headers=AMBER).status_code == 400
    rows = sim.get(f"{SITE}/usage?startDate=2025-11-20&endDate=2025-11-20", headers=AMBER).get_json()
    grouped = by_channel(rows)
    assert [r["channelIdentifier"] for r in grouped["general"]][:1] == ["E1"]
    assert len(grouped["general"]) == len(grouped["feedIn"]) == 26  # completed intervals only
    for items in grouped.values():
        check_time_invariants(items, 30)
    for row in rows:
        assert row["type"] == "Usage"
        assert row["kwh"] >= 0
        assert row["cost"] == pytest.approx(row["kwh"] * row["perKwh"], abs=1e-4)
        assert row["quality"] == "estimated"
    midday_export = [r for r in grouped["feedIn"] if r["kwh"] > 0]
    assert midday_export, "solar exports around midday"


def test_renewables_is_public_and_checks_the_state(sim):
    rows = sim.get("/amber/v1/state/nsw/renewables/current?previous=1&next=2").get_json()
    assert [r["type"] for r in rows] == ["ActualRenewable", "CurrentRenewable", "ForecastRenewable", "ForecastRenewable"]
    check_time_invariants(rows, 30)
    assert {r["descriptor"] for r in rows} <= {"best", "great", "ok", "notGreat", "worst"}
    assert sim.get("/amber/v1/state/wa/renewables/current").status_code == 404


def test_prices_are_a_pure_function_of_seed_and_time(sim_clock):
    first = create_simulator_app(clock=sim_clock, seed=7).test_client()
    second = create_simulator_app(clock=sim_clock, seed=7).test_client()
    other = create_simulator_app(clock=sim_clock, seed=8).test_client()
    url = f"{SITE}/prices/current?next=12"
    assert first.get(url, headers=AMBER).get_json() == second.get(url, headers=AMBER).get_json()
    assert first.get(url, headers=AMBER).get_json() != other.get(url, headers=AMBER).get_json()


# --- control endpoints ------------------------------------------------------------------------------


def test_clock_control_set_freeze_advance_offset(sim, sim_clock):
    frozen = sim.post("/_sim/clock", json={"set": "2026-01-01T00:00:00Z", "freeze": True}).get_json()
    assert frozen == {"now": "2026-01-01T00:00:00+00:00", "frozen": True, "offset_seconds": frozen["offset_seconds"]}
    sim_clock.now += timedelta(hours=1)  # base clock moves; frozen clock does not
    assert sim.get("/_sim/clock").get_json()["now"] == "2026-01-01T00:00:00+00:00"
    assert sim.post("/_sim/clock", json={"advance_seconds": 90}).get_json()["now"] == "2026-01-01T00:01:30+00:00"
    running = sim.post("/_sim/clock", json={"freeze": False}).get_json()
    assert running["frozen"] is False
    sim_clock.now += timedelta(seconds=10)
    assert sim.get("/_sim/clock").get_json()["now"] == "2026-01-01T00:01:40+00:00"
    assert sim.post("/_sim/clock", json={"offset_seconds": 0}).get_json()["now"] == sim_clock.now.isoformat()
    assert sim.post("/_sim/clock", json={"set": "not a time"}).status_code == 400
    assert sim.post("/_sim/clock", json={"set": "2026-01-01T00:00:00"}).status_code == 400  # needs an offset
    assert sim.post("/_sim/clock", json={"bogus": 1}).status_code == 400


def test_clock_moves_amber_intervals(sim):
    sim.post("/_sim/clock", json={"set": "2026-11-24T05:00:00Z", "freeze": True})
    current = sim.get(f"{SITE}/prices/current", headers=AMBER).get_json()[0]
    assert current["startTime"] == "2026-11-24T05:00:01Z"


def test_reset_restores_initial_state(sim):
    sim.post("/_sim/config", json={"estimate_seconds": 99})
    sim.post("/_sim/clock", json={"advance_seconds": 3600})
    sim.post("/_sim/faults", json={"endpoint": "*", "status": 500})
    sim.post("/_sim/reset")
    state = sim.get("/_sim/state").get_json()
    assert state["config"]["estimate_seconds"] == 20
    assert state["clock"]["now"] == FIXTURE_NOW.isoformat()
    assert state["faults"] == []
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 200


def test_config_rejects_unknown_keys_and_bad_values(sim):
    assert sim.post("/_sim/config", json={"nope": 1}).status_code == 400
    assert sim.post("/_sim/config", json={"interval_length": 15}).status_code == 400
    assert sim.post("/_sim/config", json={"tou_invalid": "maybe"}).status_code == 400
    assert sim.post("/_sim/config", json={"estimate_seconds": "20"}).status_code == 400


def test_identity_endpoint_lists_the_demo_constants(sim):
    body = sim.get("/_sim/identity").get_json()
    assert body["AMBER_TOKEN"] == identity.AMBER_TOKEN
    assert body["TESLA_ENERGY_SITE_ID"] == identity.TESLA_ENERGY_SITE_ID
    assert body["SITE_TIME_ZONE"] == "Australia/Sydney"
    assert len(identity.AMBER_TOKEN) == 36 and identity.AMBER_TOKEN.startswith("psk_")
    assert body["app_settings"]["AMBER_API_URL"] == "http://localhost/amber/v1"
    assert body["app_settings"]["TESLA_TOKEN_URL"] == "http://localhost/oauth2/v3/token"


def test_unknown_paths_answer_json_in_each_api_style(sim):
    assert sim.get("/amber/v1/nothing", headers=AMBER).get_json() == {"message": "Not Found"}
    tesla = sim.get("/tesla/api/1/nothing")
    assert tesla.status_code == 404 and tesla.get_json()["response"] is None


# --- real socket ------------------------------------------------------------------------------------


def test_served_on_a_real_loopback_socket():
    base_url, stop = start_simulator_thread(clock=lambda: FIXTURE_NOW, seed=7)
    try:
        assert base_url.startswith("http://127.0.0.1:")
        sites = requests.get(f"{base_url}/amber/v1/sites", headers=AMBER, timeout=5)
        assert sites.status_code == 200
        assert sites.headers["Content-Type"] == "application/json"
        assert sites.headers["RateLimit-Remaining"] == "49"
        live = requests.get(
            f"{base_url}/teslemetry/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}/live_status",
            headers={"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"},
            timeout=5,
        ).json()["response"]
        assert live["load_power"] == live["solar_power"] + live["battery_power"] + live["grid_power"]
        region = requests.get(
            f"{base_url}/tesla/api/1/users/region",
            headers={"Authorization": f"Bearer {identity.DEMO_FLEET_ACCESS_TOKEN}"},
            timeout=5,
        ).json()
        assert region == {"response": {"region": "na", "fleet_api_base_url": f"{base_url}/tesla"}}
    finally:
        stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base_url}/amber/v1/sites", timeout=1)


def test_concurrent_requests_on_the_threaded_server():
    from concurrent.futures import ThreadPoolExecutor

    base_url, stop = start_simulator_thread(seed=7, amber_rate_limit=0, teslemetry_rate_limit=0)
    site = f"{base_url}/teslemetry/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}"
    tesla = {"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"}

    def one(i: int) -> int:
        with requests.Session() as session:
            if i % 3 == 0:
                body = session.get(f"{site}/live_status", headers=tesla, timeout=5).json()["response"]
                assert body["load_power"] == body["solar_power"] + body["battery_power"] + body["grid_power"]
                return 200
            if i % 3 == 1:
                return session.post(f"{site}/backup", json={"backup_reserve_percent": i % 100}, headers=tesla, timeout=5).status_code
            return session.get(f"{base_url}{SITE}/prices/current?next=12", headers=AMBER, timeout=5).status_code

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(one, range(48))) == {200}
    finally:
        stop()


def test_request_log_masks_teslemetry_query_tokens(caplog):
    caplog.set_level("INFO", logger="werkzeug")
    base_url, stop = start_simulator_thread(seed=7, log_requests=True)
    try:
        response = requests.get(f"{base_url}/teslemetry/api/1/products?token={identity.TESLEMETRY_TOKEN}", timeout=5)
        assert response.status_code == 200
    finally:
        stop()
    assert "/teslemetry/api/1/products?token=***" in caplog.text
    assert identity.TESLEMETRY_TOKEN not in caplog.text


def test_cli_group_offers_run_with_its_options():
    from click.testing import CliRunner

    from app.simulator.cli import simulator_cli

    result = CliRunner().invoke(simulator_cli, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--seed", "--estimate-seconds", "--access-token-ttl", "--no-rate-limits"):
        assert option in result.output
