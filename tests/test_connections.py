"""The connections service: clients per household, Fleet token refresh, Tesla path fallback, status and
site discovery (with `responses` standing in for Amber and Tesla)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from sqlalchemy import select

from app import connections
from app.clients.tesla_auth import TokenSet
from app.credentials import apply_settings, get_secret
from app.extensions import db as _db
from app.models import ServiceStatus, Household
from tests.conftest import csrf_token

from tests.reference import FIXTURES  # noqa: E402
AMBER = "https://amber.test/v1"
TESLEMETRY = "https://teslemetry.test"
FLEET = "https://fleet.test"
TOKEN_URL = "https://auth.test/oauth2/v3/token"
SITE_INFO_URL = f"{{base}}/api/1/energy_sites/{{site}}/site_info"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture()
def app_urls(app):
    app.config.update(
        AMBER_API_URL=AMBER,
        TESLEMETRY_API_URL=TESLEMETRY,
        TESLA_FLEET_API_URL=FLEET,
        TESLA_TOKEN_URL=TOKEN_URL,
        TESLA_CLIENT_ID="client-id",
        TESLA_CLIENT_SECRET="client-secret-value",
    )
    return app


def alice(app) -> Household:
    """The household alice@example.com owns (made on first use)."""
    from app import clock
    from app.households import owned_or_new
    from app.models import User

    return owned_or_new(_db.session.scalar(select(User).where(User.email == "alice@example.com")), clock.now())


def products_with_one_site(site_id: int = 123456) -> dict:
    return {"response": [{"energy_site_id": site_id, "resource_type": "battery", "site_name": "Home", "components": {"battery": True}}], "count": 1}


def site_info(tz: str = "Australia/Sydney") -> dict:
    body = fixture("tesla_site_info_au.json")
    body.setdefault("response", body)["installation_time_zone"] = tz
    return body


def configure_fleet(app, now, *, expires_in: timedelta = timedelta(hours=8)):
    household = alice(app)
    connections.save_fleet_tokens(
        household, TokenSet("fleet-access-1", "NA_refresh-1", int(expires_in.total_seconds())), now, region="na"
    )
    _db.session.commit()


@responses.activate
def test_check_amber_lists_sites_active_first_and_chooses_the_only_active_one(app_urls, db, household_id, clock):
    responses.get(f"{AMBER}/sites", json=fixture("amber_sites.json"))
    household = alice(app_urls)
    apply_settings(household, amber_token="psk_0123456789abcdef0123456789abcdef")
    status = connections.check_amber(household, clock())
    assert status.state == "connected"
    assert household.settings.amber_site_id == "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
    assert [s["id"] for s in status.details["sites"]] == ["01JCX8Q4V6M2R9T3ZKD5HB7WNE", "01F5A5CRKMZ5BCX9P1S4V990AM"]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer psk_0123456789abcdef0123456789abcdef"


@responses.activate
def test_check_amber_flags_a_closed_or_unknown_chosen_site(app_urls, db, household_id, clock):
    responses.get(f"{AMBER}/sites", json=fixture("amber_sites.json"))
    household = alice(app_urls)
    apply_settings(household, amber_token="psk_x" * 8, amber_site_id="01F5A5CRKMZ5BCX9P1S4V990AM")
    status = connections.check_amber(household, clock())
    assert status.state == "attention" and "closed" in status.message
    apply_settings(household, amber_site_id="NOTONTHISACCOUNT")
    status = connections.check_amber(household, clock())
    assert status.state == "attention" and "not on this Amber account" in status.message


@responses.activate
def test_check_amber_bad_token_needs_attention_in_plain_words(app_urls, db, household_id, clock):
    responses.get(f"{AMBER}/sites", status=401, json={"message": "Unauthorized"})
    household = alice(app_urls)
    apply_settings(household, amber_token="psk_wrongwrongwrongwrongwrongwrong0000")
    status = connections.check_amber(household, clock())
    assert status.state == "attention"
    assert "did not accept the saved credentials" in status.message
    assert "psk_" not in status.message


def test_nothing_configured_is_not_configured_and_makes_no_call(app_urls, db, household_id, clock):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        result = connections.check_connections(alice(app_urls), clock())
        assert len(mock.calls) == 0
    assert result["amber"].state == "not_configured" and "Amber API token" in result["amber"].message
    assert result["tesla"].state == "not_configured"


@responses.activate
def test_check_tesla_via_teslemetry_chooses_the_only_site_and_reads_its_zone(app_urls, db, household_id, clock):
    responses.get(f"{TESLEMETRY}/api/1/products", json=products_with_one_site())
    responses.get(SITE_INFO_URL.format(base=TESLEMETRY, site=123456), json=site_info("Australia/Adelaide"))
    household = alice(app_urls)
    apply_settings(household, teslemetry_token="tslm-secret-token")
    status = connections.check_tesla(household, clock())
    assert status.state == "connected" and status.via == "teslemetry"
    assert "Connected through Teslemetry" in status.message
    assert household.settings.tesla_site_id == "123456"
    assert household.settings.tesla_reported_timezone == "Australia/Adelaide"
    assert connections.effective_timezone(household.settings) == "Australia/Adelaide"


@responses.activate
def test_tesla_without_a_zone_asks_the_user_to_pick_one(app_urls, db, household_id, clock):
    responses.get(f"{TESLEMETRY}/api/1/products", json=products_with_one_site())
    responses.get(SITE_INFO_URL.format(base=TESLEMETRY, site=123456), json=site_info(""))
    household = alice(app_urls)
    apply_settings(household, teslemetry_token="tslm-secret-token")
    status = connections.check_tesla(household, clock())
    assert status.state == "attention" and "choose it under Preferences" in status.message
    apply_settings(household, site_timezone="Australia/Brisbane")
    assert connections.check_tesla(household, clock()).state == "connected"
    assert connections.effective_timezone(household.settings) == "Australia/Brisbane"


@responses.activate
def test_several_sites_are_listed_and_none_is_chosen(app_urls, db, household_id, clock):
    body = products_with_one_site()
    body["response"].append({"energy_site_id": 999, "resource_type": "battery", "site_name": "Beach", "components": {"battery": True}})
    responses.get(f"{TESLEMETRY}/api/1/products", json=body)
    household = alice(app_urls)
    apply_settings(household, teslemetry_token="tslm-secret-token")
    status = connections.check_tesla(household, clock())
    assert status.state == "attention" and "Choose which Tesla energy site" in status.message
    assert household.settings.tesla_site_id is None
    assert {s["id"] for s in status.details["sites"]} == {"123456", "999"}


@responses.activate
def test_fleet_token_is_refreshed_before_expiry_and_the_rotated_refresh_token_saved(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock(), expires_in=timedelta(minutes=4))  # inside the 5-minute margin
    responses.post(TOKEN_URL, json={"access_token": "fleet-access-2", "refresh_token": "NA_refresh-2", "expires_in": 28800})
    responses.get(f"{FLEET}/api/1/products", json=products_with_one_site())
    household = alice(app_urls)
    outcome = connections.call_tesla(household, lambda c: c.energy_sites(), clock())
    assert outcome.via == "fleet"
    assert "refresh_token=NA_refresh-1" in responses.calls[0].request.body
    assert responses.calls[1].request.headers["Authorization"] == "Bearer fleet-access-2"
    _db.session.expire_all()
    settings = alice(app_urls).settings
    assert get_secret(settings, "tesla_refresh_token") == "NA_refresh-2"
    assert settings.tesla_token_expires_at == clock() + timedelta(seconds=28800)


@responses.activate
def test_fresh_fleet_token_is_used_without_refreshing(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock())
    responses.get(f"{FLEET}/api/1/products", json=products_with_one_site())
    connections.call_tesla(alice(app_urls), lambda c: c.energy_sites(), clock())
    assert [c.request.url for c in responses.calls] == [f"{FLEET}/api/1/products"]


@responses.activate
def test_fleet_401_refreshes_once_and_retries(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock())
    responses.get(f"{FLEET}/api/1/products", status=401, json={"error": "token expired (401)"})
    responses.get(f"{FLEET}/api/1/products", json=products_with_one_site())
    responses.post(TOKEN_URL, json={"access_token": "fleet-access-2", "refresh_token": "NA_refresh-2", "expires_in": 28800})
    outcome = connections.call_tesla(alice(app_urls), lambda c: c.energy_sites(), clock())
    assert outcome.via == "fleet" and len(outcome.value) == 1
    assert responses.calls[2].request.headers["Authorization"] == "Bearer fleet-access-2"


@responses.activate
def test_refused_refresh_means_connect_again_and_is_shown_as_such(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock(), expires_in=timedelta(minutes=1))
    responses.post(TOKEN_URL, status=401, json={"error": "login_required"})
    household = alice(app_urls)
    status = connections.check_tesla(household, clock())
    assert status.state == "attention"
    assert "connect Tesla again" in status.message
    assert get_secret(alice(app_urls).settings, "tesla_refresh_token") == "NA_refresh-1"  # kept, not dropped


@responses.activate
def test_fleet_421_rediscovers_the_region_and_retries(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock())
    responses.get(f"{FLEET}/api/1/products", status=421, json={"error": "user out of region"})
    responses.get(f"{FLEET}/api/1/users/region", json={"response": {"region": "eu", "fleet_api_base_url": "https://fleet-api.prd.eu.vn.cloud.tesla.com"}})
    responses.get(f"{FLEET}/api/1/products", json=products_with_one_site())
    outcome = connections.call_tesla(alice(app_urls), lambda c: c.energy_sites(), clock())
    assert len(outcome.value) == 1
    assert alice(app_urls).settings.tesla_region == "eu"


@responses.activate
def test_chosen_path_failing_auth_falls_back_to_the_other_and_says_so(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock())
    household = alice(app_urls)
    apply_settings(household, teslemetry_token="tslm-secret-token", tesla_site_id="123456")
    responses.get(f"{TESLEMETRY}/api/1/products", status=401, json={"error": "invalid bearer token"})
    responses.get(f"{FLEET}/api/1/products", json=products_with_one_site())
    responses.get(SITE_INFO_URL.format(base=TESLEMETRY, site=123456), status=401, json={"error": "invalid bearer token"})
    responses.get(SITE_INFO_URL.format(base=FLEET, site=123456), json=site_info())
    status = connections.check_tesla(household, clock())
    assert status.state == "connected" and status.via == "fleet"
    assert "Your chosen path failed" in status.message and "Using the Tesla Fleet API instead" in status.message


@responses.activate
def test_non_auth_errors_do_not_fall_back(app_urls, db, household_id, clock):
    configure_fleet(app_urls, clock())
    household = alice(app_urls)
    apply_settings(household, teslemetry_token="tslm-secret-token")
    responses.get(f"{TESLEMETRY}/api/1/products", status=408, json={"error": "device offline"})
    with pytest.raises(Exception) as info:
        connections.call_tesla(household, lambda c: c.energy_sites(), clock())
    assert "offline" in info.value.user_message
    assert all("fleet.test" not in c.request.url for c in responses.calls)


def test_choosing_fleet_needs_a_fleet_connection(app_urls, db, household_id):
    from app.credentials import SettingsError

    with pytest.raises(SettingsError, match="Connect Tesla through the Fleet API"):
        apply_settings(alice(app_urls), tesla_path="fleet")


@responses.activate
def test_test_connection_button_shows_both_services(app_urls, user_client):
    responses.get(f"{AMBER}/sites", json=fixture("amber_sites.json"))
    responses.get(f"{TESLEMETRY}/api/1/products", json=products_with_one_site())
    responses.get(SITE_INFO_URL.format(base=TESLEMETRY, site=123456), json=site_info())
    token = csrf_token(user_client, "/settings")
    user_client.post("/settings/amber", data={"token": "psk_0123456789abcdef0123456789abcdef", "site_id": "", "csrf_token": token})
    user_client.post("/settings/tesla", data={"token": "tslm-secret-token", "site_id": "", "path": "teslemetry", "csrf_token": token})
    response = user_client.post("/settings/test", data={"csrf_token": token})
    assert response.status_code == 302
    page = user_client.get("/settings").get_data(as_text=True)
    assert page.count("badge-connected") == 2
    assert "Amber: connected" in page and "Tesla: connected" in page
    assert '<option value="01JCX8Q4V6M2R9T3ZKD5HB7WNE" selected>' in page  # the only active site, chosen
    assert '<option value="123456" selected>' in page
    assert "Tesla reports Australia/Sydney" in page
    assert "tslm-secret-token" not in page
    with app_urls.app_context():
        assert _db.session.scalar(select(ServiceStatus).where(ServiceStatus.service == "tesla")).state == "connected"


def test_status_rows_belong_to_their_user(app_urls, user_client, admin_client):
    token = csrf_token(user_client, "/settings")
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        user_client.post("/settings/test", data={"token": "", "csrf_token": token})
    page = admin_client.get("/settings").get_data(as_text=True)
    assert "Not checked yet" in page


def test_the_http_session_reads_proxies_from_the_environment_once_per_host(monkeypatch):
    """Proxies (and no_proxy) from the environment still apply; they are read once per host, not per call."""
    import requests

    from app.connections import _Session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.lan:3128")
    monkeypatch.setenv("NO_PROXY", "amber.lan")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/our-ca.pem")
    session = _Session()
    lookups = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(requests.utils, "get_environ_proxies", lambda url, no_proxy=None: lookups.append(url) or real(url, no_proxy))
    for _ in range(3):
        far = session.merge_environment_settings("https://api.amber.com.au/v1/sites", {}, None, None, None)
        near = session.merge_environment_settings("https://amber.lan/v1/sites", {}, None, None, None)
    assert far["proxies"].get("https") == "http://proxy.lan:3128" and far["verify"] == "/etc/ssl/our-ca.pem"
    assert "https" not in near["proxies"]
    assert len(lookups) == 2  # one per host
    assert session.trust_env is False  # so requests itself neither walks the environment nor adds ~/.netrc
