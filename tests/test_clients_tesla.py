"""Tests for the Tesla Fleet API / Teslemetry energy client (app/clients/tesla.py)."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from app.clients.base import CallRecord
from app.clients.errors import (
    AppNotRegisteredError,
    AuthenticationError,
    BadResponseError,
    ClientError,
    CommandRejectedError,
    DeviceOfflineError,
    PaymentRequiredError,
    RateLimitedError,
    TransientError,
    WrongRegionError,
)
from app.clients.tesla import (
    FLEET_API_HOSTS,
    TESLEMETRY_BASE_URL,
    CommandResult,
    TeslaClient,
    fleet_api_host,
    parse_energy_sites,
    parse_site_info,
    teslemetry_client,
)

from tests.reference import FIXTURES  # noqa: E402
HOST = "https://fleet.example.test"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.USER-ACCESS.TOKEN"
SITE_ID = 123456
SITE_PATH = f"{HOST}/api/1/energy_sites/{SITE_ID}"
OK = {"response": {"reason": "", "result": True}}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def client(records: list[CallRecord]) -> TeslaClient:
    return TeslaClient(HOST, TOKEN, requests.Session(), sleep=lambda s: None, on_call=records.append)


def sent_json(mocked: responses.RequestsMock, index: int = 0) -> Any:
    return json.loads(mocked.calls[index].request.body)


# -- hosts ----------------------------------------------------------------------------------------------


def test_fleet_api_host_per_region_and_override() -> None:
    assert fleet_api_host("na") == "https://fleet-api.prd.na.vn.cloud.tesla.com"
    assert fleet_api_host("EU") == "https://fleet-api.prd.eu.vn.cloud.tesla.com"
    assert fleet_api_host("cn") == "https://fleet-api.prd.cn.vn.cloud.tesla.cn"
    assert fleet_api_host("eu", override="http://127.0.0.1:5055/") == "http://127.0.0.1:5055"
    assert fleet_api_host("na", override="") == FLEET_API_HOSTS["na"]
    with pytest.raises(ValueError):
        fleet_api_host("ap")


# -- products -------------------------------------------------------------------------------------------


def test_energy_sites_keeps_only_battery_sites(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{HOST}/api/1/products", json=load("tesla_products.json"))

    sites = client.energy_sites()

    assert [s.energy_site_id for s in sites] == [SITE_ID]  # vehicle and battery-less site 98765 dropped
    assert sites[0].site_name == "Energy Site"
    assert sites[0].resource_type == "battery"
    assert sites[0].battery_type == "ac_powerwall"
    assert sites[0].has_solar is True
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_energy_sites_without_components_fall_back_to_resource_type() -> None:
    big_id = 2252147483647123  # 16 digits: must stay an exact int
    products = [
        {"energy_site_id": big_id, "resource_type": "battery"},
        {"energy_site_id": 5, "resource_type": "solar"},
        {"energy_site_id": "77", "components": {"battery": True}},
        {"energy_site_id": 1.5, "components": {"battery": True}},
    ]
    sites = parse_energy_sites(products)
    assert [s.energy_site_id for s in sites] == [big_id, 77]
    assert isinstance(sites[0].energy_site_id, int)


def test_products_response_must_be_a_list(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{HOST}/api/1/products", json={"response": {"not": "a list"}})
    with pytest.raises(BadResponseError):
        client.products()


def test_missing_envelope_is_bad_response(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{HOST}/api/1/products", json=[{"energy_site_id": 1}])
    with pytest.raises(BadResponseError):
        client.products()


# -- site_info ------------------------------------------------------------------------------------------


def test_site_info_ha_fixture(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    fixture = load("tesla_site_info.json")
    mocked.get(f"{SITE_PATH}/site_info", json=fixture)

    info = client.site_info(SITE_ID)

    assert info.energy_site_id == SITE_ID
    assert info.time_zone is None  # "" in the fixture
    assert info.operation_mode == "self_consumption"
    assert info.backup_reserve_percent == 0
    assert info.export_rule == "pv_only"
    assert info.grid_charging_allowed is False  # disallow_charge_from_grid_with_solar_installed: true
    assert info.storm_mode_enabled is True
    assert info.firmware_version == "23.44.0 eb113390"
    assert info.battery_count == 1
    assert info.tariff_content_v2 == fixture["response"]["tariff_content_v2"]


def test_site_info_au_fixture_carries_the_pushed_tariff(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/site_info", json=load("tesla_site_info_au.json"))

    info = client.site_info(SITE_ID)

    assert info.time_zone == "Australia/Sydney"
    assert info.operation_mode == "autonomous"
    assert info.backup_reserve_percent == 20
    assert info.export_rule == "battery_ok"
    assert info.grid_charging_allowed is True  # key absent means allowed
    assert info.firmware_version == "25.18.4 1e5c1a2b"
    assert info.tou_capable is True
    pushed = load("tesla_tou_settings_request.json")["tou_settings"]["tariff_content_v2"]
    assert info.tariff_content_v2 == pushed


def test_site_info_defaults_for_sparse_site() -> None:
    info = parse_site_info(9, {"components": {"non_export_configured": True}})
    assert info.tariff_content_v2 is None
    assert info.export_rule == "never"
    assert info.grid_charging_allowed is True
    assert info.time_zone is None and info.operation_mode is None
    assert parse_site_info(9, {}).export_rule == "battery_ok"


def test_site_info_not_an_object(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/site_info", json={"response": None})
    with pytest.raises(BadResponseError):
        client.site_info(SITE_ID)


# -- live_status ----------------------------------------------------------------------------------------


def test_live_status_fixture(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/live_status", json=load("tesla_live_status.json"))

    status = client.live_status(SITE_ID)

    assert (status.solar_power_w, status.battery_power_w, status.grid_power_w, status.load_power_w) == (6420, -3150, -2090, 1180)
    assert status.load_power_w == status.solar_power_w + status.battery_power_w + status.grid_power_w + status.generator_power_w
    assert status.percentage_charged == pytest.approx(72.44128373)
    assert status.energy_left_wh == pytest.approx(19863.4)
    assert status.grid_status == "Active"
    assert status.island_status == "on_grid"
    assert status.timestamp == datetime(2025, 11, 20, 14, 12, 5, tzinfo=timezone(timedelta(hours=11)))


def test_live_status_ha_fixture_without_energy_fields(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/live_status", json=load("tesla_live_status_ha.json"))
    status = client.live_status(SITE_ID)
    assert status.energy_left_wh is None and status.total_pack_energy_wh is None
    assert status.battery_power_w == 5060
    assert status.percentage_charged == pytest.approx(95.50537403739663)


# -- calendar_history -----------------------------------------------------------------------------------


def test_calendar_history_time_series(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/calendar_history", json=load("tesla_energy_history_ha.json"))
    tz = timezone(timedelta(hours=11))

    history = client.calendar_history(
        SITE_ID, start_date=datetime(2025, 11, 20, tzinfo=tz), end_date=datetime(2025, 11, 20, 23, 59, 59, tzinfo=tz),
        time_zone="Australia/Sydney",
    )

    assert history.period == "day"
    assert history.time_zone == "America/Los_Angeles"
    assert len(history.entries) == 2 and history.entries[0]["total_home_usage"] == 20932
    query = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert query == {
        "kind": ["energy"],
        "period": ["day"],
        "start_date": ["2025-11-20T00:00:00+11:00"],
        "end_date": ["2025-11-20T23:59:59+11:00"],
        "time_zone": ["Australia/Sydney"],
    }


def test_calendar_history_entries_shape(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/calendar_history", json={"response": {"time_zone": "Australia/Sydney", "entries": [{"a": 1}]}})
    history = client.calendar_history(SITE_ID)
    assert history.time_zone == "Australia/Sydney"
    assert history.entries == [{"a": 1}]


def test_calendar_history_rejects_naive_datetimes(client: TeslaClient) -> None:
    with pytest.raises(ValueError):
        client.calendar_history(SITE_ID, start_date=datetime(2025, 11, 20))


# -- commands -------------------------------------------------------------------------------------------


def test_set_tariff_posts_the_tou_settings_body(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    request_body = load("tesla_tou_settings_request.json")
    mocked.post(f"{SITE_PATH}/time_of_use_settings", json=load("tesla_command_response.json"))

    result = client.set_tariff(SITE_ID, request_body["tou_settings"]["tariff_content_v2"])

    assert result == CommandResult(reason="")
    assert sent_json(mocked) == request_body


def test_set_tariff_does_not_double_wrap(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    request_body = load("tesla_tou_settings_request.json")
    mocked.post(f"{SITE_PATH}/time_of_use_settings", json=OK)
    client.set_tariff(SITE_ID, request_body["tou_settings"])  # {"tariff_content_v2": {...}}
    assert sent_json(mocked) == request_body


def test_command_result_false_is_rejected_with_reason(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    example = load("tesla_error_examples.json")["200_command_rejected"]
    mocked.post(f"{SITE_PATH}/time_of_use_settings", status=example["status"], json=example["body"])

    with pytest.raises(CommandRejectedError) as excinfo:
        client.set_tariff(SITE_ID, {"version": 1})

    assert excinfo.value.reason == "invalid tariff"
    assert excinfo.value.status == 200
    assert excinfo.value.user_message


@pytest.mark.parametrize("response_value", [{"reason": ""}, None, "ok", {"result": "true"}])
def test_command_without_a_true_result_is_not_success(
    mocked: responses.RequestsMock, client: TeslaClient, response_value: Any
) -> None:
    mocked.post(f"{SITE_PATH}/storm_mode", json={"response": response_value})
    with pytest.raises((BadResponseError, CommandRejectedError)):
        client.set_storm_mode(SITE_ID, True)


def test_command_5xx_is_not_retried(mocked: responses.RequestsMock, client: TeslaClient, records: list[CallRecord]) -> None:
    mocked.post(f"{SITE_PATH}/time_of_use_settings", status=503)
    mocked.post(f"{SITE_PATH}/time_of_use_settings", json=OK)
    with pytest.raises(TransientError):
        client.set_tariff(SITE_ID, {"version": 1})
    assert len(mocked.calls) == 1
    assert [(r.status, r.billable) for r in records] == [(503, False)]


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (lambda c: c.set_operation_mode(SITE_ID, "autonomous"), "operation", {"default_real_mode": "autonomous"}),
        (lambda c: c.set_backup_reserve(SITE_ID, 75), "backup", {"backup_reserve_percent": 75}),
        (lambda c: c.set_storm_mode(SITE_ID, False), "storm_mode", {"enabled": False}),
        (
            lambda c: c.set_grid_import_export(SITE_ID, allow_grid_charging=True),
            "grid_import_export",
            {"disallow_charge_from_grid_with_solar_installed": False},
        ),
        (
            lambda c: c.set_grid_import_export(SITE_ID, allow_grid_charging=False, export_rule="pv_only"),
            "grid_import_export",
            {"disallow_charge_from_grid_with_solar_installed": True, "customer_preferred_export_rule": "pv_only"},
        ),
        (
            lambda c: c.set_grid_import_export(SITE_ID, export_rule="never"),
            "grid_import_export",
            {"customer_preferred_export_rule": "never"},
        ),
    ],
)
def test_command_bodies(mocked: responses.RequestsMock, client: TeslaClient, call: Any, path: str, body: dict[str, Any]) -> None:
    mocked.post(f"{SITE_PATH}/{path}", json=OK)
    assert call(client) == CommandResult()
    assert sent_json(mocked) == body
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.set_operation_mode(SITE_ID, "turbo"),
        lambda c: c.set_backup_reserve(SITE_ID, 101),
        lambda c: c.set_backup_reserve(SITE_ID, -1),
        lambda c: c.set_backup_reserve(SITE_ID, 50.5),
        lambda c: c.set_grid_import_export(SITE_ID),
        lambda c: c.set_grid_import_export(SITE_ID, export_rule="sometimes"),
    ],
)
def test_invalid_command_arguments_never_reach_tesla(mocked: responses.RequestsMock, client: TeslaClient, call: Any) -> None:
    with pytest.raises(ValueError):
        call(client)
    assert len(mocked.calls) == 0


# -- error examples from the reference --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error_class"),
    [
        ("401_token_expired", AuthenticationError),
        ("403_missing_scopes", AuthenticationError),
        ("408_device_offline", DeviceOfflineError),
        ("412_partner_not_registered", AppNotRegisteredError),
        ("421_wrong_region", WrongRegionError),
        ("429_rate_limited", RateLimitedError),
    ],
)
def test_reference_error_examples(
    mocked: responses.RequestsMock, client: TeslaClient, key: str, error_class: type[ClientError]
) -> None:
    example = load("tesla_error_examples.json")[key]
    mocked.get(f"{SITE_PATH}/live_status", status=example["status"], json=example["body"], headers=example.get("headers", {}))

    with pytest.raises(error_class) as excinfo:
        client.live_status(SITE_ID)

    error = excinfo.value
    assert (error.service, error.status) == ("tesla", example["status"])
    assert error.code == example["body"]["error"]
    assert len(mocked.calls) == 1
    if isinstance(error, RateLimitedError):
        assert error.retry_after == 30.0


def test_403_message_asks_for_permission(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{SITE_PATH}/site_info", status=403, json={"error": "Unauthorized missing scopes"})
    with pytest.raises(AuthenticationError) as excinfo:
        client.site_info(SITE_ID)
    assert "permission" in excinfo.value.user_message


# -- users/region ---------------------------------------------------------------------------------------


def test_user_region(mocked: responses.RequestsMock, client: TeslaClient) -> None:
    mocked.get(f"{HOST}/api/1/users/region", json={"response": {"region": "NA", "fleet_api_base_url": FLEET_API_HOSTS["na"]}})
    region = client.user_region()
    assert region.region == "na"
    assert region.fleet_api_base_url == FLEET_API_HOSTS["na"]


# -- Teslemetry -----------------------------------------------------------------------------------------


def test_teslemetry_is_the_same_client_with_its_own_url_and_name(mocked: responses.RequestsMock) -> None:
    static = "teslemetry-static-token-abcdef"
    client = teslemetry_client(static, requests.Session())
    mocked.get(f"{TESLEMETRY_BASE_URL}/api/1/energy_sites/{SITE_ID}/site_info", json=load("tesla_site_info_au.json"))
    mocked.get(f"{TESLEMETRY_BASE_URL}/api/metadata", json=load("teslemetry_metadata.json"))

    assert isinstance(client, TeslaClient)
    assert client.service == "teslemetry"
    assert client.site_info(SITE_ID).time_zone == "Australia/Sydney"
    assert "energy_cmds" in client.metadata()["scopes"]
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {static}"


def test_teslemetry_402_is_payment_required(mocked: responses.RequestsMock) -> None:
    client = teslemetry_client("tok", requests.Session())
    mocked.get(f"{TESLEMETRY_BASE_URL}/api/1/products", status=402, json={"error": "subscription_required"})
    with pytest.raises(PaymentRequiredError) as excinfo:
        client.products()
    assert excinfo.value.service == "teslemetry"
    assert "Teslemetry" in excinfo.value.user_message
    assert excinfo.value.code == "subscription_required"


def test_tesla_token_never_logged(mocked: responses.RequestsMock, client: TeslaClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{HOST}/api/1/products", json=load("tesla_products.json"))
    mocked.post(f"{SITE_PATH}/backup", json={"response": {"result": False, "reason": f"token {TOKEN} not allowed"}})
    mocked.get(f"{SITE_PATH}/live_status", status=401, json={"error": f"invalid bearer token {TOKEN}"})

    client.energy_sites()
    with pytest.raises(CommandRejectedError):
        client.set_backup_reserve(SITE_ID, 50)
    with pytest.raises(AuthenticationError) as excinfo:
        client.live_status(SITE_ID)

    assert len(caplog.records) >= 3
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN not in str(excinfo.value)
