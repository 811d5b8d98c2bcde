"""The simulator's fault injection: status faults per endpoint, seeded rates, counts, Retry-After,
401 expiry, 408 offline, malformed bodies, latency through an injected sleep."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from app.simulator import create_simulator_app, fault_name, identity

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
AMBER = {"Authorization": f"Bearer {identity.AMBER_TOKEN}"}
FLEET = {"Authorization": f"Bearer {identity.DEMO_FLEET_ACCESS_TOKEN}"}
TESLEMETRY = {"Authorization": f"Bearer {identity.TESLEMETRY_TOKEN}"}
PRICES = f"/amber/v1/sites/{identity.AMBER_SITE_ID}/prices/current"
TESLA_SITE = f"/tesla/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def sim(sleeps):
    app = create_simulator_app(clock=lambda: NOW, seed=7, sleep=sleeps.append, amber_rate_limit=0)
    return app.test_client()


def add(sim, **rule) -> None:
    response = sim.post("/_sim/faults", json=rule)
    assert response.status_code == 201, response.get_json()


def test_fault_names():
    assert fault_name("amber", "amber.prices_current") == "amber_prices_current"
    assert fault_name("amber", "amber.prices_between") == "amber_prices_between"
    assert fault_name("teslemetry", "teslemetry.site_info") == "tesla_site_info"
    assert fault_name("teslemetry_extra", "teslemetry_extra.metadata") == "teslemetry_metadata"
    assert fault_name("control", "control.state") is None


def test_status_fault_with_count_fires_that_many_times(sim):
    add(sim, endpoint="amber_prices_current", status=500, count=2)
    first = sim.get(PRICES, headers=AMBER)
    assert first.status_code == 500
    assert first.get_json() == {"message": "Internal server error"}
    assert sim.get(PRICES, headers=AMBER).status_code == 500
    assert sim.get(PRICES, headers=AMBER).status_code == 200
    assert sim.get("/_sim/faults").get_json()["faults"][0]["count"] == 0


def test_fault_only_hits_its_endpoint_and_patterns_match(sim):
    add(sim, endpoint="amber_prices*", status=503)
    assert sim.get(PRICES, headers=AMBER).status_code == 503
    assert sim.get(f"/amber/v1/sites/{identity.AMBER_SITE_ID}/prices", headers=AMBER).status_code == 503
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 200
    assert sim.get(f"{TESLA_SITE}/site_info", headers=FLEET).status_code == 200


def statuses(seed: int, n: int = 40) -> list[int]:
    client = create_simulator_app(clock=lambda: NOW, seed=seed, amber_rate_limit=0).test_client()
    client.post("/_sim/faults", json={"endpoint": "amber_sites", "status": 500, "rate": 0.5})
    return [client.get("/amber/v1/sites", headers=AMBER).status_code for _ in range(n)]


def test_partial_rate_is_seeded_and_repeatable():
    run = statuses(7)
    assert run == statuses(7)
    assert 8 <= run.count(500) <= 32 and 200 in run
    assert run != statuses(8)


def test_429_storm_with_retry_after_on_tesla_and_amber(sim):
    add(sim, endpoint="tesla_live_status", status=429, retry_after=30)
    storm = sim.get(f"{TESLA_SITE}/live_status", headers=FLEET)
    assert storm.status_code == 429
    assert storm.headers["Retry-After"] == "30"
    assert storm.get_json() == {"response": None, "error": "rate limited", "error_description": ""}
    via_proxy = sim.get(f"/teslemetry/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}/live_status", headers=TESLEMETRY)
    assert via_proxy.status_code == 429
    add(sim, endpoint="amber_sites", status=429)
    amber = sim.get("/amber/v1/sites", headers=AMBER)
    assert amber.status_code == 429
    assert amber.get_data() == b'{"message":"Too Many Requests"}'
    assert "Retry-After" not in amber.headers


def test_401_token_expiry_fault_then_recovery(sim):
    add(sim, endpoint="tesla_site_info", status=401, count=1)
    expired = sim.get(f"{TESLA_SITE}/site_info", headers=FLEET)
    assert expired.status_code == 401
    assert expired.get_json()["error"] == "token expired (401)"
    assert sim.get(f"{TESLA_SITE}/site_info", headers=FLEET).status_code == 200


def test_408_device_offline(sim):
    add(sim, endpoint="tesla_live_status", status=408)
    offline = sim.get(f"{TESLA_SITE}/live_status", headers=FLEET)
    assert offline.status_code == 408
    assert offline.get_json()["error"] == "device is offline or asleep"


def test_malformed_body_is_truncated_json_with_status_200(sim):
    add(sim, endpoint="amber_prices_current", malformed=True)
    response = sim.get(PRICES, headers=AMBER)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.get_data())


def test_latency_uses_the_injected_sleep(sim, sleeps):
    add(sim, endpoint="tesla_*", latency_ms=250)
    assert sim.get(f"{TESLA_SITE}/site_info", headers=FLEET).status_code == 200
    assert sleeps == [0.25]
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 200
    assert sleeps == [0.25]


def test_star_faults_every_api_but_never_the_control_endpoints(sim):
    add(sim, endpoint="*", status=500)
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 500
    assert sim.get("/teslemetry/api/metadata", headers=TESLEMETRY).status_code == 500
    token = sim.post("/oauth2/v3/token", data={"grant_type": "refresh_token"})
    assert token.status_code == 500 and token.get_json()["error"] == "server_error"
    assert sim.get("/_sim/state").status_code == 200
    assert sim.delete("/_sim/faults").get_json() == {"faults": []}
    assert sim.get("/amber/v1/sites", headers=AMBER).status_code == 200


def test_faults_come_before_auth(sim):
    add(sim, endpoint="amber_sites", status=502)
    assert sim.get("/amber/v1/sites").status_code == 502


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "*"},
        {"endpoint": "*", "status": 99},
        {"endpoint": "*", "status": 500, "rate": 2},
        {"endpoint": "*", "status": 500, "colour": "red"},
        "not an object",
    ],
)
def test_invalid_fault_rules_are_400(sim, rule):
    assert sim.post("/_sim/faults", json=rule).status_code == 400


def test_several_rules_at_once_and_request_counts(sim):
    response = sim.post(
        "/_sim/faults",
        json=[{"endpoint": "amber_sites", "status": 500, "count": 1}, {"endpoint": "amber_sites", "status": 504, "count": 1}],
    )
    assert response.status_code == 201
    codes = [sim.get("/amber/v1/sites", headers=AMBER).status_code for _ in range(3)]
    assert codes == [500, 504, 200]
    assert sim.get("/_sim/state").get_json()["request_counts"]["amber.sites"] == 3


def test_402_through_teslemetry_is_subscription_required(sim):
    add(sim, endpoint="tesla_site_info", status=402)
    proxied = sim.get(f"/teslemetry/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}/site_info", headers=TESLEMETRY)
    assert proxied.status_code == 402
    assert proxied.get_json()["error"] == "subscription_required"
    assert sim.get(f"{TESLA_SITE}/site_info", headers=FLEET).get_json()["error"] == "payment required"
