"""The simulator's Tesla auth server: authorize redirect, PKCE code exchange, refresh rotation, expiry."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from app.simulator import create_simulator_app, identity
from tests.simulator_support import ManualClock

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
REDIRECT = "http://127.0.0.1:5000/tesla/callback"
SITE_INFO = f"/tesla/api/1/energy_sites/{identity.TESLA_ENERGY_SITE_ID}/site_info"
VERIFIER = "a" * 43 + "-verifier_with.allowed~chars"




@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def sim(sim_clock):
    return create_simulator_app(clock=sim_clock, seed=7, access_token_ttl=600).test_client()


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize(sim, **overrides: str):
    params = {
        "response_type": "code",
        "client_id": identity.FLEET_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid offline_access energy_device_data energy_cmds",
        "state": "st4te",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
        **overrides,
    }
    return sim.get("/oauth2/v3/authorize", query_string=params)


def code_from(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


def exchange(sim, code: str, **overrides: str):
    form = {
        "grant_type": "authorization_code",
        "client_id": identity.FLEET_CLIENT_ID,
        "code": code,
        "code_verifier": VERIFIER,
        "redirect_uri": REDIRECT,
        "audience": "http://localhost/tesla",
        **overrides,
    }
    return sim.post("/oauth2/v3/token", data={k: v for k, v in form.items() if v is not None})


def refresh(sim, token: str):
    return sim.post(
        "/oauth2/v3/token",
        data={"grant_type": "refresh_token", "client_id": identity.FLEET_CLIENT_ID, "refresh_token": token},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_authorize_redirects_back_with_a_region_prefixed_code_and_the_state(sim):
    response = authorize(sim)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st4te"]
    assert query["code"][0].startswith("NA_")


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"client_id": "someone-else"}, "unauthorized_client"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"redirect_uri": ""}, "invalid_redirect_url"),
        ({"state": ""}, "invalid_request"),
    ],
)
def test_authorize_rejects_bad_requests(sim, override, error):
    response = authorize(sim, **override)
    assert response.status_code == 400
    assert response.get_json()["error"] == error


def test_pkce_code_exchange_returns_tesla_token_json(sim):
    response = exchange(sim, code_from(authorize(sim)))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "id_token", "expires_in", "state", "token_type"}
    assert body["expires_in"] == 600
    assert body["token_type"] == "Bearer"
    assert body["state"] == "st4te"
    assert body["refresh_token"].startswith("NA_")
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert "energy_cmds" in claims["scp"]
    assert claims["exp"] - claims["iat"] == 600
    assert sim.get(SITE_INFO, headers=bearer(body["access_token"])).status_code == 200


def test_wrong_pkce_verifier_is_refused(sim):
    response = exchange(sim, code_from(authorize(sim)), code_verifier="b" * 50)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_code_is_single_use_and_expires(sim, sim_clock):
    code = code_from(authorize(sim))
    assert exchange(sim, code).status_code == 200
    reused = exchange(sim, code)
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_auth_code"
    late = code_from(authorize(sim))
    sim_clock.now += timedelta(minutes=11)
    assert exchange(sim, late).get_json()["error"] == "invalid_auth_code"


def test_redirect_uri_must_match_the_authorize_request(sim):
    response = exchange(sim, code_from(authorize(sim)), redirect_uri="http://127.0.0.1:5000/other")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_redirect_url"


def test_confidential_client_without_pkce(sim):
    code = code_from(authorize(sim, code_challenge="", code_challenge_method=""))
    without_secret = exchange(sim, code, code_verifier=None)
    assert without_secret.status_code == 400
    code = code_from(authorize(sim, code_challenge="", code_challenge_method=""))
    wrong_secret = exchange(sim, code, code_verifier=None, client_secret="nope")
    assert wrong_secret.get_json()["error"] == "unauthorized_client"
    code = code_from(authorize(sim, code_challenge="", code_challenge_method=""))
    assert exchange(sim, code, code_verifier=None, client_secret=identity.FLEET_CLIENT_SECRET).status_code == 200


def test_refresh_rotates_and_a_used_refresh_token_is_401_login_required(sim):
    first = exchange(sim, code_from(authorize(sim))).get_json()
    second = refresh(sim, first["refresh_token"])
    assert second.status_code == 200
    rotated = second.get_json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    reused = refresh(sim, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.get_json()["error"] == "login_required"
    assert refresh(sim, rotated["refresh_token"]).status_code == 200
    assert refresh(sim, "NA_unknown").status_code == 401


def test_demo_refresh_token_works_once(sim):
    assert refresh(sim, identity.DEMO_FLEET_REFRESH_TOKEN).status_code == 200
    assert refresh(sim, identity.DEMO_FLEET_REFRESH_TOKEN).status_code == 401
    sim.post("/_sim/reset")
    assert refresh(sim, identity.DEMO_FLEET_REFRESH_TOKEN).status_code == 200


def test_access_token_expires_and_refresh_recovers(sim, sim_clock):
    tokens = exchange(sim, code_from(authorize(sim))).get_json()
    sim_clock.now += timedelta(seconds=599)
    assert sim.get(SITE_INFO, headers=bearer(tokens["access_token"])).status_code == 200
    sim_clock.now += timedelta(seconds=1)
    expired = sim.get(SITE_INFO, headers=bearer(tokens["access_token"]))
    assert expired.status_code == 401
    assert expired.get_json() == {"response": None, "error": "token expired (401)", "error_description": ""}
    fresh = refresh(sim, tokens["refresh_token"]).get_json()
    assert sim.get(SITE_INFO, headers=bearer(fresh["access_token"])).status_code == 200


def test_expire_control_endpoint_expires_the_demo_token(sim):
    assert sim.get(SITE_INFO, headers=bearer(identity.DEMO_FLEET_ACCESS_TOKEN)).status_code == 200
    assert sim.post("/_sim/tokens/expire").get_json()["expired"] >= 1
    assert sim.get(SITE_INFO, headers=bearer(identity.DEMO_FLEET_ACCESS_TOKEN)).get_json()["error"] == "token expired (401)"


def test_client_credentials_partner_token(sim):
    form = {"grant_type": "client_credentials", "client_id": identity.FLEET_CLIENT_ID, "client_secret": identity.FLEET_CLIENT_SECRET}
    assert sim.post("/oauth2/v3/token", data=form).get_json()["error"] == "invalid_request"  # audience required
    wrong = sim.post("/oauth2/v3/token", data={**form, "client_secret": "x", "audience": "http://localhost/tesla"})
    assert wrong.get_json()["error"] == "unauthorized_client"
    body = sim.post("/oauth2/v3/token", data={**form, "audience": "http://localhost/tesla"}).get_json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert sim.get(SITE_INFO, headers=bearer(body["access_token"])).status_code == 401  # not a user token


def test_token_endpoint_wants_a_form_and_a_known_grant(sim):
    as_json = sim.post("/oauth2/v3/token", json={"grant_type": "refresh_token"})
    assert as_json.status_code == 400
    unknown = sim.post("/oauth2/v3/token", data={"grant_type": "password"})
    assert unknown.get_json()["error"] == "unsupported_grant_type"
