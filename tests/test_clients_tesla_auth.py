"""Tests for the Tesla OAuth helpers (app/clients/tesla_auth.py): PKCE, authorize URL, token calls, regions."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from app.clients.errors import (
    AppNotRegisteredError,
    AuthenticationError,
    BadResponseError,
    TransientError,
    WrongRegionError,
)
from app.clients.tesla import FLEET_API_HOSTS
from app.clients.tesla_auth import (
    TOKEN_URL,
    TeslaAuthClient,
    TokenSet,
    bare_domain,
    build_authorize_url,
    code_challenge_s256,
    discover_region,
    make_code_verifier,
    make_pkce_pair,
    make_state,
    region_from_token,
    register_partner_account,
)

from tests.reference import FIXTURES  # noqa: E402
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "ta-secret.CLIENT-SECRET-VALUE"
REDIRECT = "https://app.example.com/tesla/callback"
NA = FLEET_API_HOSTS["na"]
EU = FLEET_API_HOSTS["eu"]
CN = FLEET_API_HOSTS["cn"]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def form_of(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def auth() -> TeslaAuthClient:
    return TeslaAuthClient(CLIENT_ID, CLIENT_SECRET, requests.Session(), sleep=lambda s: None)


# -- PKCE and authorize URL -----------------------------------------------------------------------------


def test_code_challenge_matches_rfc7636_example() -> None:
    assert code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_and_state_are_random_and_well_formed() -> None:
    verifier = make_code_verifier()
    assert 43 <= len(verifier) <= 128
    assert re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)
    assert make_code_verifier() != verifier
    assert make_state() != make_state()
    v, challenge = make_pkce_pair()
    assert challenge == code_challenge_s256(v)


def test_authorize_url() -> None:
    url = build_authorize_url(CLIENT_ID, REDIRECT, "state-123", "challenge-abc", auth_url="https://auth.tesla.com/")

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.tesla.com", "/oauth2/v3/authorize")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT
    assert query["scope"] == "openid offline_access energy_device_data energy_cmds"
    assert query["state"] == "state-123"
    assert query["code_challenge"] == "challenge-abc"
    assert query["code_challenge_method"] == "S256"
    assert "client_secret" not in query


def test_region_from_token_prefix() -> None:
    assert region_from_token("NA_abc") == "na"
    assert region_from_token("EU_abc") == "eu"
    assert region_from_token("abc") is None
    assert region_from_token("XX_abc") is None


# -- token endpoint ---------------------------------------------------------------------------------------


def test_exchange_code(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    fixture = load("tesla_oauth_token_response.json")
    mocked.post(TOKEN_URL, json=fixture)

    tokens = auth.exchange_code("NA_code123", REDIRECT, NA, code_verifier="verifier-xyz")

    assert tokens.access_token == fixture["access_token"]
    assert tokens.refresh_token == fixture["refresh_token"]
    assert tokens.expires_in == 28800
    assert tokens.token_type == "Bearer"
    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    assert form_of(mocked.calls[0]) == {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": "NA_code123",
        "audience": NA,
        "redirect_uri": REDIRECT,
        "code_verifier": "verifier-xyz",
    }


def test_refresh_returns_the_rotated_refresh_token(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    old_refresh = "NA_old-refresh-token-0000"
    rotated = {**load("tesla_oauth_token_response.json"), "refresh_token": "NA_new-refresh-token-1111", "access_token": "new-access"}
    mocked.post(TOKEN_URL, json=rotated)

    tokens = auth.refresh(old_refresh)

    assert tokens.refresh_token == "NA_new-refresh-token-1111" != old_refresh
    assert tokens.access_token == "new-access"
    assert form_of(mocked.calls[0]) == {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": old_refresh}


def test_refresh_without_rotation_returns_none(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    mocked.post(TOKEN_URL, json={"access_token": "a", "expires_in": 60})
    assert auth.refresh("NA_r").refresh_token is None


def test_used_refresh_token_is_authentication_error(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    mocked.post(TOKEN_URL, status=401, json={"error": "login_required", "error_description": "refresh token already used"})
    with pytest.raises(AuthenticationError) as excinfo:
        auth.refresh("NA_r")
    assert excinfo.value.code == "login_required"
    assert excinfo.value.service == "tesla_auth"


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_auth_code", "unauthorized_client"])
def test_400_grant_errors_are_authentication_errors(mocked: responses.RequestsMock, auth: TeslaAuthClient, code: str) -> None:
    mocked.post(TOKEN_URL, status=400, json={"error": code})
    with pytest.raises(AuthenticationError) as excinfo:
        auth.exchange_code("NA_c", REDIRECT, NA)
    assert excinfo.value.status == 400 and excinfo.value.code == code


def test_token_post_is_never_retried(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    mocked.post(TOKEN_URL, status=502)
    mocked.post(TOKEN_URL, json=load("tesla_oauth_token_response.json"))
    with pytest.raises(TransientError):
        auth.refresh("NA_r")
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("body", [{"refresh_token": "x"}, {"access_token": ""}, ["access_token"]])
def test_token_response_without_access_token_is_bad(mocked: responses.RequestsMock, auth: TeslaAuthClient, body: Any) -> None:
    mocked.post(TOKEN_URL, json=body)
    with pytest.raises(BadResponseError):
        auth.refresh("NA_r")


def test_partner_token(mocked: responses.RequestsMock, auth: TeslaAuthClient) -> None:
    mocked.post(TOKEN_URL, json={"access_token": "partner-at", "expires_in": 28800, "token_type": "Bearer"})

    tokens = auth.partner_token(EU)

    assert tokens.access_token == "partner-at" and tokens.refresh_token is None
    assert form_of(mocked.calls[0]) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": EU,
        "scope": "openid energy_device_data energy_cmds",
    }


def test_partner_token_needs_a_secret(mocked: responses.RequestsMock) -> None:
    with pytest.raises(ValueError):
        TeslaAuthClient(CLIENT_ID, None, requests.Session()).partner_token(NA)
    assert len(mocked.calls) == 0


def test_token_set_hides_secrets_and_computes_expiry() -> None:
    tokens = TokenSet(access_token="AT-SECRET", refresh_token="RT-SECRET", expires_in=28800, id_token="ID-SECRET")
    text = repr(tokens)
    assert "AT-SECRET" not in text and "RT-SECRET" not in text and "ID-SECRET" not in text
    now = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    assert tokens.expires_at(now) == now + timedelta(hours=8)


def test_no_secret_in_logs_or_errors_on_token_failure(
    mocked: responses.RequestsMock, auth: TeslaAuthClient, caplog: pytest.LogCaptureFixture
) -> None:
    refresh = "NA_refresh-SECRET-9999"
    caplog.set_level(logging.DEBUG)
    # A server that echoes what it received, in both form and JSON style.
    echo = f"grant_type=refresh_token&refresh_token={refresh}&client_secret={CLIENT_SECRET}"
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_request", "error_description": echo})
    mocked.post(TOKEN_URL, status=500, body=f'{{"refresh_token": "{refresh}", "client_secret": "{CLIENT_SECRET}"}}')
    mocked.post(TOKEN_URL, json=load("tesla_oauth_token_response.json"))

    errors = []
    for _ in range(2):
        with pytest.raises(Exception) as excinfo:
            auth.refresh(refresh)
        errors.append(excinfo.value)
    tokens = auth.exchange_code("NA_code-SECRET", REDIRECT, NA, code_verifier="verifier-SECRET")

    secrets = [refresh, CLIENT_SECRET, "NA_code-SECRET", "verifier-SECRET", tokens.access_token, tokens.refresh_token]
    assert caplog.records
    for record in caplog.records:
        for secret in secrets:
            assert secret not in record.getMessage()
    for error in errors:
        for secret in secrets:
            assert secret not in str(error)
            assert secret not in error.user_message


# -- partner registration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("https://App.Example.com/", "app.example.com"), ("app.example.com", "app.example.com"), ("http://a.b:8443/x?y", "a.b")],
)
def test_bare_domain(given: str, expected: str) -> None:
    assert bare_domain(given) == expected


def test_bare_domain_rejects_empty() -> None:
    with pytest.raises(ValueError):
        bare_domain("https://")


def test_register_partner_account(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{NA}/api/1/partner_accounts", body="", status=200)

    result = register_partner_account(NA, "partner-token-XYZ", "https://app.example.com/", requests.Session())

    assert result is None  # success body is unconfirmed; any 2xx is success
    request = mocked.calls[0].request
    assert json.loads(request.body) == {"domain": "app.example.com"}
    assert request.headers["Authorization"] == "Bearer partner-token-XYZ"


def test_register_partner_account_with_user_token_fails(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{EU}/api/1/partner_accounts", status=403, json={"response": None, "error": "Expected partner account"})
    with pytest.raises(AuthenticationError):
        register_partner_account(EU, "user-token", "app.example.com", requests.Session())


# -- region discovery -------------------------------------------------------------------------------------


def test_discover_region_421_then_success(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{NA}/api/1/users/region", status=421, json=load("tesla_error_examples.json")["421_wrong_region"]["body"])
    mocked.get(f"{EU}/api/1/users/region", json={"response": {"region": "EU", "fleet_api_base_url": EU}})

    found = discover_region("user-at", {"na": NA, "eu": EU, "cn": CN}, requests.Session())

    assert (found.region, found.fleet_api_base_url, found.host) == ("eu", EU, EU)
    assert [urlsplit(c.request.url).netloc for c in mocked.calls] == [urlsplit(NA).netloc, urlsplit(EU).netloc]
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer user-at"


def test_discover_region_uses_fixture_and_default_hosts(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{NA}/api/1/users/region", json=load("tesla_users_region.json"))
    found = discover_region("user-at", session=requests.Session())
    assert found.region == "na" and found.host == NA


def test_discover_region_412_is_app_not_registered(mocked: responses.RequestsMock) -> None:
    body_412 = load("tesla_error_examples.json")["412_partner_not_registered"]["body"]
    mocked.get(f"{NA}/api/1/users/region", status=412, json=body_412)
    mocked.get(f"{EU}/api/1/users/region", status=421, json={"error": "user out of region"})

    with pytest.raises(AppNotRegisteredError) as excinfo:
        discover_region("user-at", [NA, EU], requests.Session())

    assert not isinstance(excinfo.value, WrongRegionError)
    assert len(mocked.calls) == 2  # 412 on one host does not stop the search


def test_discover_region_412_then_success(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{NA}/api/1/users/region", status=412, json={"error": "Account x must be registered"})
    mocked.get(f"{EU}/api/1/users/region", json={"response": {"region": "eu", "fleet_api_base_url": EU}})
    assert discover_region("user-at", [NA, EU], requests.Session()).region == "eu"


def test_discover_region_all_421_is_wrong_region(mocked: responses.RequestsMock) -> None:
    for host in (NA, EU, CN):
        mocked.get(f"{host}/api/1/users/region", status=421)
    with pytest.raises(WrongRegionError):
        discover_region("user-at", session=requests.Session())
    assert len(mocked.calls) == 3


def test_discover_region_stops_on_other_errors(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{NA}/api/1/users/region", status=401, json={"error": "token expired (401)"})
    mocked.get(f"{EU}/api/1/users/region", json={"response": {"region": "eu"}})
    with pytest.raises(AuthenticationError):
        discover_region("user-at", [NA, EU], requests.Session())
    assert len(mocked.calls) == 1


def test_discover_region_with_single_override_host(mocked: responses.RequestsMock) -> None:
    fake = "http://127.0.0.1:5055"
    mocked.get(f"{fake}/api/1/users/region", json={"response": {"region": "na", "fleet_api_base_url": NA}})
    found = discover_region("user-at", [fake], requests.Session())
    assert found.host == fake and found.region == "na"


def test_token_url_is_configurable(mocked: responses.RequestsMock) -> None:
    fake = "http://127.0.0.1:5055/oauth2/v3/token"
    mocked.post(fake, json={"access_token": "a", "refresh_token": "NA_r2", "expires_in": 60})
    auth = TeslaAuthClient(CLIENT_ID, CLIENT_SECRET, requests.Session(), token_url=fake)
    assert auth.refresh("NA_r1").refresh_token == "NA_r2"
    assert mocked.calls[0].request.url == fake
    with pytest.raises(ValueError):
        TeslaAuthClient(CLIENT_ID, token_url="/oauth2/v3/token")
