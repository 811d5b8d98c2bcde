"""The simulator's Tesla Fleet / Teslemetry energy API and Powerwall model, on the wire."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.simulator import create_simulator_app, identity
from tests.simulator_support import ManualClock

NIGHT = datetime(2025, 11, 19, 15, 0, tzinfo=timezone.utc)  # 02:00 AEDT: no solar
NIGHT_SLOT = 4  # PERIOD_02_00
FLEET = {"Authorization": f"Bearer {identity.DEMO_FLEET_ACCESS_TOKEN}"}
TESLEMETRY = {"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"}
SITE = f"/tesla/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}"
from tests.reference import FIXTURES  # noqa: E402




@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock(NIGHT)


@pytest.fixture
def sim(sim_clock):
    return create_simulator_app(clock=sim_clock, seed=7).test_client()


def half_hour_tariff(buy: list[float], sell: list[float]) -> dict:
    """A tou_settings body with 48 half-hour periods, all six fields explicit (reference §6.4)."""
    names = [f"PERIOD_{i // 2:02d}_{i % 2 * 30:02d}" for i in range(48)]
    periods = {
        name: {
            "periods": [
                {
                    "fromDayOfWeek": 0,
                    "toDayOfWeek": 6,
                    "fromHour": i // 2,
                    "fromMinute": i % 2 * 30,
                    "toHour": (i + 1) // 2 % 24,
                    "toMinute": (i + 1) % 2 * 30,
                }
            ]
        }
        for i, name in enumerate(names)
    }
    seasons = {"Summer": {"fromMonth": 1, "fromDay": 1, "toMonth": 12, "toDay": 31, "tou_periods": periods}}
    return {
        "tou_settings": {
            "tariff_content_v2": {
                "version": 1,
                "code": "TEST",
                "name": "Test tariff",
                "utility": "Test",
                "currency": "AUD",
                "daily_charges": [{"name": "Charge", "amount": 0}],
                "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {}},
                "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": dict(zip(names, buy))}},
                "seasons": seasons,
                "sell_tariff": {
                    "name": "Test sell",
                    "utility": "Test",
                    "daily_charges": [{"name": "Charge", "amount": 0}],
                    "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {}},
                    "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": dict(zip(names, sell))}},
                    "seasons": copy.deepcopy(seasons),
                },
            }
        }
    }


def push(sim, body: dict):
    return sim.post(f"{SITE}/time_of_use_settings", json=body, headers=FLEET)


def live(sim) -> dict:
    return sim.get(f"{SITE}/live_status", headers=FLEET).get_json()["response"]


def set_soc(sim, percent: float) -> None:
    assert sim.post("/_sim/powerwall", json={"percentage_charged": percent}).status_code == 200


def command(sim, name: str, body: dict) -> dict:
    response = sim.post(f"{SITE}/{name}", json=body, headers=FLEET)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- read endpoints ---------------------------------------------------------------------------------


def test_products_envelope_and_energy_site(sim):
    body = sim.get("/tesla/api/1/products", headers=FLEET).get_json()
    assert body["count"] == 3 == len(body["response"])
    sites = [p for p in body["response"] if "energy_site_id" in p]
    battery = [p for p in sites if p["components"]["battery"]]
    assert [p["energy_site_id"] for p in battery] == [identity.TESLA_ENERGY_SITE_ID]
    assert isinstance(battery[0]["energy_site_id"], int)
    assert battery[0]["resource_type"] == "battery"


def test_users_region_points_back_at_the_simulator(sim):
    body = sim.get("/tesla/api/1/users/region", headers=FLEET).get_json()
    assert body == {"response": {"region": "na", "fleet_api_base_url": "http://localhost/tesla"}}
    body = sim.get("/teslemetry/api/1/users/region", headers=TESLEMETRY).get_json()
    assert body["response"]["fleet_api_base_url"] == "http://localhost/teslemetry"


def test_site_info_has_the_au_fixture_shape(sim):
    info = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]
    fixture = json.loads((FIXTURES / "tesla_site_info_au.json").read_text())["response"]
    assert set(fixture) <= set(info)
    assert info["installation_time_zone"] == "Australia/Sydney"
    assert info["default_real_mode"] == "autonomous"
    assert "disallow_charge_from_grid_with_solar_installed" not in info["components"]  # allowed
    assert info["tariff_content_v2"]["currency"] == "AUD"  # the site's own plan, before any push


def test_unknown_site_is_404_in_the_envelope(sim):
    response = sim.get("/tesla/api/1/energy_sites/1/site_info", headers=FLEET)
    assert response.status_code == 404
    assert response.get_json()["response"] is None


def test_live_status_fields_and_timestamp_offset(sim):
    status = live(sim)
    fixture = json.loads((FIXTURES / "tesla_live_status.json").read_text())["response"]
    assert set(status) == set(fixture)
    assert status["timestamp"] == "2025-11-20T02:00:00+11:00"  # site-local offset (AEDT)
    assert status["percentage_charged"] == pytest.approx(status["energy_left"] / status["total_pack_energy"] * 100, abs=0.01)


def test_power_balance_holds_all_day(sim):
    for hour in range(0, 48):
        sim.post("/_sim/clock", json={"advance_seconds": 1800})
        status = live(sim)
        assert status["load_power"] == (
            status["solar_power"] + status["battery_power"] + status["grid_power"] + status["generator_power"]
        )
        assert status["solar_power"] >= 0 and status["load_power"] > 0
        assert 0 <= status["percentage_charged"] <= 100


# --- auth -------------------------------------------------------------------------------------------


def test_fleet_auth_errors(sim):
    missing = sim.get(f"{SITE}/site_info")
    assert missing.status_code == 401
    assert missing.get_json() == {"response": None, "error": "invalid bearer token", "error_description": ""}
    assert sim.get(f"{SITE}/site_info", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert sim.get(f"{SITE}/site_info", headers=TESLEMETRY).status_code == 401  # Teslemetry token is not a Fleet token


def test_teslemetry_auth_and_metadata(sim):
    path = f"/teslemetry/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}/site_info"
    assert sim.get(path, headers=TESLEMETRY).status_code == 200
    assert sim.get(f"{path}?token={identity.TESLEMETRY_TOKEN}").status_code == 200
    assert sim.get(path).get_json()["error"] == "missing_token"
    assert sim.get(path, headers={"Authorization": "Bearer wrong"}).get_json()["error"] == "invalid_token"
    assert sim.get(path, headers=FLEET).status_code == 401
    metadata = sim.get("/teslemetry/api/metadata", headers=TESLEMETRY).get_json()
    assert "response" not in metadata  # bare object
    assert metadata["region"] == "NA"
    assert "energy_cmds" in metadata["scopes"]
    assert metadata["energy_sites"] == {str(identity.TESLA_ENERGY_SITE_ID): {"access": True, "name": "Simulated Home"}}


def test_teslemetry_rate_limit_is_30_per_minute_with_retry_after(sim, sim_clock):
    path = "/teslemetry/api/1/products"
    for _ in range(30):
        assert sim.get(path, headers=TESLEMETRY).status_code == 200
    refused = sim.get(path, headers=TESLEMETRY)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert refused.get_json()["error"] == "rate limited"
    sim_clock.now += timedelta(seconds=60)
    assert sim.get(path, headers=TESLEMETRY).status_code == 200


def test_region_modes_412_until_registered_and_421(sim):
    sim.post("/_sim/config", json={"fleet_region": "unregistered"})
    refused = sim.get(f"{SITE}/site_info", headers=FLEET)
    assert refused.status_code == 412
    assert set(refused.get_json()) == {"error"}
    assert "must be registered in the current region" in refused.get_json()["error"]
    form = {
        "grant_type": "client_credentials",
        "client_id": identity.FLEET_CLIENT_ID,
        "client_secret": identity.FLEET_CLIENT_SECRET,
        "audience": "http://localhost/tesla",
    }
    partner = sim.post("/oauth2/v3/token", data=form).get_json()["access_token"]
    user_try = sim.post("/tesla/api/1/partner_accounts", json={"domain": "app.example.com"}, headers=FLEET)
    assert user_try.status_code == 403 and user_try.get_json()["error"] == "Expected partner account"
    registered = sim.post(
        "/tesla/api/1/partner_accounts", json={"domain": "app.example.com"}, headers={"Authorization": f"Bearer {partner}"}
    )
    assert registered.status_code == 200
    assert sim.get(f"{SITE}/site_info", headers=FLEET).status_code == 200
    sim.post("/_sim/config", json={"fleet_region": "wrong_region"})
    assert sim.get(f"{SITE}/site_info", headers=FLEET).status_code == 421


# --- commands ---------------------------------------------------------------------------------------


def test_commands_change_site_info(sim):
    assert command(sim, "operation", {"default_real_mode": "self_consumption"}) == {
        "response": {"reason": "", "result": True}
    }
    command(sim, "backup", {"backup_reserve_percent": 75})
    command(sim, "grid_import_export", {"disallow_charge_from_grid_with_solar_installed": True, "customer_preferred_export_rule": "never"})
    command(sim, "storm_mode", {"enabled": True})
    info = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]
    assert info["default_real_mode"] == "self_consumption"
    assert info["backup_reserve_percent"] == 75
    assert info["components"]["disallow_charge_from_grid_with_solar_installed"] is True
    assert info["components"]["customer_preferred_export_rule"] == "never"
    assert info["components"]["non_export_configured"] is True
    assert info["user_settings"]["storm_mode_enabled"] is True
    command(sim, "grid_import_export", {"disallow_charge_from_grid_with_solar_installed": False})
    info = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]
    assert "disallow_charge_from_grid_with_solar_installed" not in info["components"]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("operation", {"default_real_mode": "turbo"}),
        ("backup", {"backup_reserve_percent": 101}),
        ("backup", {"backup_reserve_percent": "50"}),
        ("grid_import_export", {"customer_preferred_export_rule": "always"}),
        ("grid_import_export", {}),
        ("storm_mode", {"enabled": "yes"}),
    ],
)
def test_invalid_commands_are_400(sim, name, body):
    response = sim.post(f"{SITE}/{name}", json=body, headers=FLEET)
    assert response.status_code == 400
    assert response.get_json()["response"] is None


def test_missing_energy_cmds_scope_is_403(sim):
    location = sim.get(
        "/oauth2/v3/authorize",
        query_string={
            "response_type": "code",
            "client_id": identity.FLEET_CLIENT_ID,
            "redirect_uri": "http://localhost/cb",
            "scope": "openid offline_access energy_device_data",
            "state": "s",
        },
    ).headers["Location"]
    code = location.split("code=")[1].split("&")[0]
    token = sim.post(
        "/oauth2/v3/token",
        data={
            "grant_type": "authorization_code",
            "client_id": identity.FLEET_CLIENT_ID,
            "client_secret": identity.FLEET_CLIENT_SECRET,
            "code": code,
            "redirect_uri": "http://localhost/cb",
        },
    ).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert sim.get(f"{SITE}/site_info", headers=headers).status_code == 200
    refused = sim.post(f"{SITE}/backup", json={"backup_reserve_percent": 50}, headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "Unauthorized missing scopes"


# --- time_of_use_settings ---------------------------------------------------------------------------


def test_tou_push_of_the_reference_request_is_read_back_in_site_info(sim):
    body = json.loads((FIXTURES / "tesla_tou_settings_request.json").read_text())
    assert push(sim, body).get_json() == {"response": {"reason": "", "result": True}}
    info = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]
    assert info["tariff_content_v2"] == body["tou_settings"]["tariff_content_v2"]
    state = sim.get("/_sim/state").get_json()
    assert state["powerwall"]["tariff_content_v2"] == body["tou_settings"]["tariff_content_v2"]
    assert state["tou_pushes"][-1]["accepted"] is True


def without_period(body: dict, name: str) -> dict:
    broken = copy.deepcopy(body)
    tariff = broken["tou_settings"]["tariff_content_v2"]
    del tariff["seasons"]["Summer"]["tou_periods"][name]
    del tariff["energy_charges"]["Summer"]["rates"][name]
    return broken


def test_invalid_tariffs_are_refused_and_not_stored(sim):
    good = half_hour_tariff([0.3] * 48, [0.05] * 48)
    before = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]["tariff_content_v2"]
    gap = push(sim, without_period(good, "PERIOD_13_00")).get_json()["response"]
    assert gap["result"] is False and "gap" in gap["reason"] and "13:00" in gap["reason"]

    no_to_hour = copy.deepcopy(good)
    del no_to_hour["tou_settings"]["tariff_content_v2"]["seasons"]["Summer"]["tou_periods"]["PERIOD_23_30"]["periods"][0]["toHour"]
    assert "toHour" in push(sim, no_to_hour).get_json()["response"]["reason"]

    overlap = copy.deepcopy(good)
    overlap["tou_settings"]["tariff_content_v2"]["seasons"]["Summer"]["tou_periods"]["PERIOD_00_00"]["periods"][0]["toHour"] = 1
    assert "overlaps" in push(sim, overlap).get_json()["response"]["reason"]

    season_gap = copy.deepcopy(good)
    season_gap["tou_settings"]["tariff_content_v2"]["seasons"]["Summer"].update(toMonth=11, toDay=30)
    assert "no season covers 12/1" in push(sim, season_gap).get_json()["response"]["reason"]

    sell_above_buy = half_hour_tariff([0.3] * 48, [0.05] * 47 + [0.4])
    assert "exceeds buy" in push(sim, sell_above_buy).get_json()["response"]["reason"]

    negative = half_hour_tariff([0.3] * 47 + [-0.01], [0.0] * 48)
    assert "negative" in push(sim, negative).get_json()["response"]["reason"]

    assert push(sim, {"tariff_content_v2": {}}).get_json()["response"]["result"] is False
    after = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]["tariff_content_v2"]
    assert after == before
    pushes = sim.get("/_sim/state").get_json()["tou_pushes"]
    assert [p["accepted"] for p in pushes] == [False] * 7


def test_tou_refusal_modes_400_422_and_normalise(sim):
    bad = half_hour_tariff([0.3] * 47 + [-0.01], [0.05] * 47 + [0.0])
    sim.post("/_sim/config", json={"tou_invalid": "400"})
    assert push(sim, bad).status_code == 400
    sim.post("/_sim/config", json={"tou_invalid": "422"})
    refused = push(sim, bad)
    assert refused.status_code == 422
    assert refused.get_json()["messages"]["tou_settings"]
    sim.post("/_sim/config", json={"tou_invalid": "normalise"})
    sell_high = half_hour_tariff([0.3] * 47 + [-0.01], [0.05] * 46 + [0.4, 0.0])
    assert push(sim, sell_high).get_json()["response"]["result"] is True
    stored = sim.get(f"{SITE}/site_info", headers=FLEET).get_json()["response"]["tariff_content_v2"]
    rates = stored["energy_charges"]["Summer"]["rates"]
    assert rates["PERIOD_23_30"] == 0  # negative rounded to zero
    assert rates["PERIOD_23_00"] == 0.4  # buy raised to sell
    assert sim.get("/_sim/state").get_json()["tou_pushes"][-1]["normalised"] is True
    assert push(sim, without_period(sell_high, "PERIOD_01_00")).get_json()["response"]["result"] is False


# --- behaviour model --------------------------------------------------------------------------------


def cheap_now_tariff() -> dict:
    buy = [0.30] * 48
    buy[NIGHT_SLOT] = 0.05
    return half_hour_tariff(buy, [0.02] * 48)


def high_sell_now_tariff() -> dict:
    sell = [0.02] * 48
    sell[NIGHT_SLOT] = 0.25
    return half_hour_tariff([0.30] * 48, sell)


def test_charges_from_grid_when_now_is_cheapest_and_grid_charging_allowed(sim):
    set_soc(sim, 50)
    push(sim, cheap_now_tariff())
    status = live(sim)
    assert status["solar_power"] == 0
    assert status["battery_power"] == -10000  # charging at full power
    assert status["grid_power"] == status["load_power"] + 10000
    sim.post("/_sim/clock", json={"advance_seconds": 600})
    state = sim.get("/_sim/state").get_json()
    assert state["powerwall"]["percentage_charged"] == pytest.approx(50 + 10000 / 6 / 27000 * 100, abs=0.01)
    assert state["price_signal"] == {"cheap": True, "high_sell": False}


def test_does_not_charge_from_grid_when_grid_charging_is_disallowed(sim):
    set_soc(sim, 50)
    push(sim, cheap_now_tariff())
    command(sim, "grid_import_export", {"disallow_charge_from_grid_with_solar_installed": True})
    status = live(sim)
    assert status["battery_power"] == 0
    assert status["grid_power"] == status["load_power"]
    sim.post("/_sim/clock", json={"advance_seconds": 600})
    assert sim.get("/_sim/state").get_json()["powerwall"]["percentage_charged"] == pytest.approx(50)


def test_cheap_tariff_does_nothing_outside_time_based_control(sim):
    set_soc(sim, 50)
    push(sim, cheap_now_tariff())
    command(sim, "operation", {"default_real_mode": "self_consumption"})
    status = live(sim)
    assert status["battery_power"] == status["load_power"]  # self-powered: battery covers the home
    assert status["grid_power"] == 0


def test_discharges_to_grid_when_sell_is_high_and_export_allowed(sim):
    set_soc(sim, 80)
    push(sim, high_sell_now_tariff())
    status = live(sim)
    assert status["battery_power"] == 10000
    assert status["grid_power"] == status["load_power"] - 10000  # exporting
    command(sim, "grid_import_export", {"customer_preferred_export_rule": "pv_only"})
    status = live(sim)
    assert status["battery_power"] == status["load_power"]  # covers the home, exports nothing
    assert status["grid_power"] == 0


def test_reserve_is_honoured(sim):
    push(sim, high_sell_now_tariff())
    command(sim, "backup", {"backup_reserve_percent": 40})
    set_soc(sim, 40)
    status = live(sim)
    assert status["battery_power"] == 0
    assert status["grid_power"] == status["load_power"]
    set_soc(sim, 41)
    sim.post("/_sim/clock", json={"advance_seconds": 3 * 3600})
    state = sim.get("/_sim/state").get_json()["powerwall"]
    assert state["percentage_charged"] == pytest.approx(40, abs=1e-6)
    command(sim, "operation", {"default_real_mode": "self_consumption"})
    sim.post("/_sim/clock", json={"advance_seconds": 3600})
    assert sim.get("/_sim/state").get_json()["powerwall"]["percentage_charged"] >= 40 - 1e-6


def test_soc_is_clamped_at_full(sim):
    set_soc(sim, 99)
    command(sim, "operation", {"default_real_mode": "backup"})
    sim.post("/_sim/clock", json={"advance_seconds": 6 * 3600})
    status = live(sim)
    assert status["percentage_charged"] == pytest.approx(100)
    assert status["battery_power"] == 0


def test_export_rule_never_curtails_solar(sim):
    sim.post("/_sim/clock", json={"set": "2025-11-20T02:00:00Z"})  # 13:00 AEDT, sunny
    set_soc(sim, 100)
    command(sim, "grid_import_export", {"customer_preferred_export_rule": "never"})
    status = live(sim)
    assert status["grid_power"] >= 0
    assert status["load_power"] == status["solar_power"] + status["battery_power"] + status["grid_power"]


def test_calendar_history_reports_integrated_energy(sim):
    sim.post("/_sim/clock", json={"advance_seconds": 24 * 3600})  # 02:00 on the 20th to 02:00 on the 21st
    path = f"{SITE}/calendar_history?kind=energy&period=week&start_date=2025-11-20T00:00:00%2B11:00"
    body = sim.get(path, headers=FLEET).get_json()["response"]
    assert body["installation_time_zone"] == "Australia/Sydney"
    day = body["time_series"][0]
    assert day["timestamp"] == "2025-11-20T00:00:00+11:00"
    assert day["total_solar_generation"] > 10000
    assert day["total_home_usage"] > 0
    into_home = sum(day[f"consumer_energy_imported_from_{s}"] for s in ("grid", "solar", "battery"))
    assert into_home == pytest.approx(day["total_home_usage"], abs=0.1)
    assert day["total_grid_energy_exported"] == pytest.approx(
        day["grid_energy_exported_from_solar"] + day["grid_energy_exported_from_battery"], abs=0.1
    )
    balance = (
        day["total_solar_generation"] + day["total_battery_discharge"] + day["grid_energy_imported"]
        - day["total_battery_charge"] - day["total_grid_energy_exported"]
    )
    assert balance == pytest.approx(day["total_home_usage"], abs=0.1)
    # The day's history comes in five-minute rows (as Tesla's does), from local midnight up to now (02:00).
    today = sim.get(f"{SITE}/calendar_history?kind=energy&period=day", headers=FLEET).get_json()["response"]
    stamps = [row["timestamp"] for row in today["time_series"]]
    assert stamps[:2] == ["2025-11-21T00:00:00+11:00", "2025-11-21T00:05:00+11:00"] and len(stamps) == 24
    assert sim.get(f"{SITE}/calendar_history?kind=power", headers=FLEET).status_code == 400


def test_grid_outage_islands_the_site_and_uses_the_reserve(sim):
    command(sim, "backup", {"backup_reserve_percent": 30})
    assert sim.post("/_sim/powerwall", json={"percentage_charged": 30, "grid_status": "Inactive"}).status_code == 200
    status = live(sim)
    assert status["grid_status"] == "Inactive"
    assert status["island_status"] == "off_grid_unintentional"
    assert status["grid_power"] == 0
    assert status["battery_power"] == status["load_power"]  # night: the battery carries the home
    sim.post("/_sim/clock", json={"advance_seconds": 3600})
    assert sim.get("/_sim/state").get_json()["powerwall"]["percentage_charged"] < 30  # below reserve is allowed
    sim.post("/_sim/powerwall", json={"percentage_charged": 0})
    status = live(sim)
    assert status["battery_power"] == 0 and status["load_power"] == 0  # empty battery, no sun: lights out
    sim.post("/_sim/powerwall", json={"grid_status": "Active"})
    assert live(sim)["grid_status"] == "Active"
    assert sim.post("/_sim/powerwall", json={"grid_status": "Down"}).status_code == 400
    assert sim.post("/_sim/powerwall", json={"percentage_charged": 101}).status_code == 400


def test_the_meter_agrees_with_the_powerwall_history(sim):
    """Amber's /usage reads the grid flows the Powerwall model recorded, so a bill and Tesla's energy
    history of the same interval agree (the Money page prices one with the other)."""
    sim.post("/_sim/clock", json={"advance_seconds": 24 * 3600})  # 02:00 on the 20th to 02:00 on the 21st
    history = sim.get(
        f"{SITE}/calendar_history?kind=energy&period=day&start_date=2025-11-20T00:00:00%2B11:00&end_date=2025-11-20T23:59:59%2B11:00",
        headers=FLEET,
    ).get_json()["response"]["time_series"]
    by_stamp = {row["timestamp"]: row for row in history}
    usage = sim.get(
        "/amber/v1/sites/" + identity.AMBER_SITE_ID + "/usage?startDate=2025-11-20&endDate=2025-11-20",
        headers={"Authorization": f"Bearer {identity.AMBER_TOKEN}"},
    ).get_json()
    checked = 0
    for row in usage:
        start = datetime.fromisoformat(row["endTime"].replace("Z", "+00:00")) - timedelta(minutes=row["duration"])
        stamps = [(start + timedelta(minutes=5 * k)).astimezone(ZoneInfo("Australia/Sydney")).isoformat() for k in range(row["duration"] // 5)]
        if not all(s in by_stamp for s in stamps):
            continue  # before 02:00 on the 20th the model had not run yet
        key = "grid_energy_imported" if row["channelType"] == "general" else "total_grid_energy_exported"
        assert row["kwh"] == pytest.approx(sum(by_stamp[s][key] for s in stamps) / 1000, abs=0.0011)
        checked += 1
    assert checked > 60
    assert any(r["kwh"] > 0 for r in usage if r["channelType"] == "feedIn")
