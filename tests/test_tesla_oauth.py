"""Tesla Fleet sign-in: connect (state + PKCE), callback (state checks, code exchange, region discovery,
site listing, path choice), disconnect, the settings panel, token refresh through the connections
service, and that no secret reaches a page or a log line. Tesla is faked with `responses`."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import select, text

from app.clients.tesla import FLEET_API_HOSTS
from app.clients.tesla_auth import TokenSet
from app.connections import check_connections, fleet_access_token, save_fleet_tokens
from app.credentials import get_secret, set_secret, settings_for
from app.crypto import get_crypto
from app.extensions import db as _db
from app.models import OAuthState, ServiceStatus, User, HouseholdSettings
from tests.conftest import csrf_token, owned_household

CLIENT_ID = "tesla-client-id-0f3c"
CLIENT_SECRET = "ta-secret.CLIENT-SECRET-never-shown-77"
REDIRECT_URI = "https://sync.example.com/tesla-fleet/callback"
AUTH_URL = "https://auth.tesla.com"
TOKEN_URL = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
NA, EU, CN = FLEET_API_HOSTS["na"], FLEET_API_HOSTS["eu"], FLEET_API_HOSTS["cn"]
CODE = "NA_authcode0123456789abcdefSECRETCODE"
ACCESS = "eyJhbGciOiJSUzI1NiJ9.access-token-SECRET.sig1"
REFRESH = "NA_refresh-token-SECRET-0123456789"
SITE_ID = 1234567890123456
SCOPES = "openid offline_access energy_device_data energy_cmds"


# -- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture()
def fleet(app):
    """The app with a Tesla Fleet app configured (Tesla's real hosts, faked by `responses`)."""
    app.config.update(
        TESLA_CLIENT_ID=CLIENT_ID,
        TESLA_CLIENT_SECRET=CLIENT_SECRET,
        TESLA_REDIRECT_URI=REDIRECT_URI,
        TESLA_AUTH_URL=AUTH_URL,
        TESLA_TOKEN_URL=TOKEN_URL,
        TESLA_FLEET_API_URL=None,
        APP_DOMAIN="sync.example.com",
    )
    return app


@pytest.fixture()
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def token_body(access: str = ACCESS, refresh: str | None = REFRESH, expires_in: int = 28800) -> dict:
    body = {"access_token": access, "expires_in": expires_in, "token_type": "Bearer", "id_token": "id.token.x"}
    if refresh:
        body["refresh_token"] = refresh
    return body


def mock_token(rsps, status: int = 200, body: dict | None = None) -> None:
    rsps.add(responses.POST, TOKEN_URL, json=body if body is not None else token_body(), status=status)


def mock_region(rsps, host: str = NA, status: int = 200, region: str = "na") -> None:
    body = {"response": {"region": region, "fleet_api_base_url": host}} if status == 200 else {"error": f"status {status}"}
    rsps.add(responses.GET, f"{host}/api/1/users/region", json=body, status=status)


def mock_sites(rsps, host: str = NA) -> None:
    products = {"response": [{"energy_site_id": SITE_ID, "resource_type": "battery", "site_name": "Home", "components": {"battery": True}}], "count": 1}
    rsps.add(responses.GET, f"{host}/api/1/products", json=products)
    info = {"response": {"id": "STE1", "site_name": "Home", "installation_time_zone": "Australia/Sydney"}}
    rsps.add(responses.GET, f"{host}/api/1/energy_sites/{SITE_ID}/site_info", json=info)


def start(client) -> tuple[str, dict[str, str]]:
    """POST connect; return (state, authorize query parameters)."""
    response = client.post("/tesla-fleet/connect", data={"csrf_token": csrf_token(client, "/settings")})
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    return params["state"], params


def callback(client, state: str | None, code: str | None = CODE, **extra: str):
    query = {k: v for k, v in {"code": code, "state": state, **extra}.items() if v is not None}
    return client.get("/tesla-fleet/callback", query_string=query)


def settings_of(app, email: str = "alice@example.com") -> HouseholdSettings | None:
    with app.app_context():
        user = _db.session.scalar(select(User).where(User.email == email))
        household = owned_household(user.id)
        _db.session.commit()
        row = household.settings
        _db.session.refresh(row)
        _db.session.expunge_all()
        return row


def secret_of(app, row: HouseholdSettings | None, name: str) -> str | None:
    with app.app_context():
        return get_secret(row, name)


def tesla_status(app, user_id: int) -> ServiceStatus | None:
    with app.app_context():
        row = _db.session.scalar(select(ServiceStatus).where(ServiceStatus.household_id == owned_household(user_id).id, ServiceStatus.service == "tesla"))
        _db.session.expunge_all()
        return row


def flashes(client) -> str:
    return client.get("/settings").get_data(as_text=True)


def assert_nothing_stored(app) -> None:
    row = settings_of(app)
    assert row is None or (row.tesla_access_token_enc is None and row.tesla_refresh_token_enc is None)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# -- connect ----------------------------------------------------------------------------------------------


def test_connect_redirects_to_tesla_with_pkce_and_a_stored_state(fleet, user_client, user_id, clock):
    response = user_client.post("/tesla-fleet/connect", data={"csrf_token": csrf_token(user_client, "/settings")})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{AUTH_URL}/oauth2/v3/authorize"
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["scope"] == SCOPES
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32 and len(params["code_challenge"]) == 43
    with user_client.session_transaction() as session:
        assert session["tesla_oauth_state"] == params["state"]
    with fleet.app_context():
        row = _db.session.scalar(select(OAuthState))
        assert row.user_id == user_id and row.used_at is None and row.created_at == clock()
        assert row.state_hash == hashlib.sha256(params["state"].encode()).hexdigest()  # only the hash is kept
        verifier = get_crypto().decrypt(row.code_verifier_enc)
        assert verifier not in row.code_verifier_enc
        assert s256(verifier) == params["code_challenge"]


def test_each_connect_gets_a_fresh_state_and_old_states_are_purged(fleet, user_client, clock):
    first, _ = start(user_client)
    clock.advance(minutes=11)
    second, _ = start(user_client)
    assert first != second
    with fleet.app_context():
        hashes = _db.session.scalars(select(OAuthState.state_hash)).all()
    assert hashes == [hashlib.sha256(second.encode()).hexdigest()]


def test_connect_needs_post_with_csrf(fleet, user_client):
    page = user_client.get("/tesla-fleet/connect")
    assert page.status_code == 200 and "Continue to Tesla" in page.get_data(as_text=True)
    assert user_client.post("/tesla-fleet/connect", data={}).status_code == 400
    with fleet.app_context():
        assert _db.session.scalar(select(OAuthState)) is None


def test_without_a_fleet_app_the_settings_explain_and_recommend_teslemetry(app, user_client):
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Tesla Fleet is not set up on this installation" in page
    assert "public HTTPS domain" in page and "developer.tesla.com" in page and "TESLA_CLIENT_ID" in page
    assert "Teslemetry is the easy path" in page
    assert "Connect Tesla account" not in page
    response = user_client.post("/tesla-fleet/connect", data={"csrf_token": csrf_token(user_client, "/settings")})
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings")
    with app.app_context():
        assert _db.session.scalar(select(OAuthState)) is None


def test_with_a_fleet_app_the_settings_offer_to_connect(fleet, user_client):
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Connect Tesla account" in page
    assert 'action="/tesla-fleet/connect"' in page and 'method="post"' in page


# -- callback: happy path ---------------------------------------------------------------------------------


def test_callback_stores_encrypted_tokens_region_sites_and_chooses_fleet(fleet, user_client, user_id, clock, rsps):
    state, params = start(user_client)
    mock_token(rsps)
    mock_region(rsps)
    mock_sites(rsps)
    response = callback(user_client, state)
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings")

    exchange = parse_qs(rsps.calls[0].request.body)
    assert exchange["grant_type"] == ["authorization_code"]
    assert exchange["code"] == [CODE]
    assert exchange["client_id"] == [CLIENT_ID] and exchange["client_secret"] == [CLIENT_SECRET]
    assert exchange["redirect_uri"] == [REDIRECT_URI]
    assert exchange["audience"] == [NA]
    assert s256(exchange["code_verifier"][0]) == params["code_challenge"]
    assert rsps.calls[1].request.headers["Authorization"] == f"Bearer {ACCESS}"

    row = settings_of(fleet)
    assert ACCESS not in row.tesla_access_token_enc and REFRESH not in row.tesla_refresh_token_enc
    assert secret_of(fleet, row, "tesla_access_token") == ACCESS
    assert secret_of(fleet, row, "tesla_refresh_token") == REFRESH
    assert row.tesla_token_expires_at == clock() + timedelta(seconds=28800)
    assert row.tesla_region == "na" and row.tesla_path == "fleet"
    assert row.tesla_site_id == str(SITE_ID) and row.tesla_reported_timezone == "Australia/Sydney"

    status = tesla_status(fleet, user_id)
    assert status.state == "connected" and status.via == "fleet"
    assert status.details["sites"] == [{"id": str(SITE_ID), "name": "Home"}]
    with fleet.app_context():
        assert _db.session.scalar(select(OAuthState)).used_at == clock()

    page = flashes(user_client)
    assert "Tesla account connected through the Fleet API (region NA)" in page
    assert "valid until 2026-11-24 11:00 UTC" in page
    assert "Energy sites found: Home." in page and "Tesla calls now go through the Fleet API." in page
    assert "Tesla Fleet: connected" in page and "North America" in page
    assert 'data-confirm="Disconnect Tesla Fleet?' in page


def test_callback_keeps_a_teslemetry_users_choice_and_says_they_can_switch(fleet, user_client, user_id, rsps):
    with fleet.app_context():
        user = owned_household(user_id)
        set_secret(settings_for(user), "teslemetry_token", "teslemetry-token-abcdef123456")
        _db.session.commit()
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps)
    mock_sites(rsps, fleet.config["TESLEMETRY_API_URL"])
    assert callback(user_client, state).status_code == 302
    row = settings_of(fleet)
    assert row.tesla_path == "teslemetry" and row.tesla_refresh_token_enc is not None
    assert tesla_status(fleet, user_id).via == "teslemetry"
    assert "you can switch to the Fleet API" in flashes(user_client)


def test_callback_retries_region_discovery_on_the_next_host_after_421(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps, NA, status=421)
    mock_region(rsps, EU, region="eu")
    mock_sites(rsps, EU)
    assert callback(user_client, state).status_code == 302
    row = settings_of(fleet)
    assert row.tesla_region == "eu" and row.tesla_site_id == str(SITE_ID)
    assert "region EU" in flashes(user_client)


def test_callback_412_says_the_administrator_must_register_the_region(fleet, user_client, user_id, rsps):
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps, NA, status=412)
    mock_region(rsps, EU, status=421)
    mock_region(rsps, CN, status=421)
    rsps.add(responses.GET, f"{NA}/api/1/products", json={"error": "Account must be registered"}, status=412)
    assert callback(user_client, state).status_code == 302
    page = flashes(user_client)
    assert "not registered for your region" in page and "administrator must register the app" in page
    assert "flash-error" in page
    row = settings_of(fleet)  # the code is spent; the tokens are kept for when the region is registered
    assert row.tesla_refresh_token_enc is not None and row.tesla_region == "na"
    assert tesla_status(fleet, user_id).state == "attention"


# -- callback: rejected -----------------------------------------------------------------------------------


def _other_users_state(fleet, user_client, admin_client) -> str:
    state, _ = start(admin_client)
    with user_client.session_transaction() as session:
        session["tesla_oauth_state"] = state
    return state


@pytest.mark.parametrize("case", ["missing", "wrong", "not_in_session", "expired", "other_user"])
def test_callback_rejects_a_bad_state_and_stores_nothing(fleet, user_client, admin_client, clock, rsps, case):
    mock_token(rsps)
    state, _ = start(user_client)
    if case == "missing":
        response = callback(user_client, None)
    elif case == "wrong":
        response = callback(user_client, state + "x")
    elif case == "not_in_session":
        with user_client.session_transaction() as session:
            session.pop("tesla_oauth_state")
        response = callback(user_client, state)
    elif case == "expired":
        clock.advance(minutes=11)
        response = callback(user_client, state)
    else:
        response = callback(user_client, _other_users_state(fleet, user_client, admin_client))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Tesla was not connected" in page and ("start again" in page.lower() or "connect again" in page.lower())
    assert len(rsps.calls) == 0  # the code was never sent to Tesla
    assert_nothing_stored(fleet)


def test_a_state_works_only_once(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps)
    mock_sites(rsps)
    assert callback(user_client, state).status_code == 302
    calls = len(rsps.calls)
    with user_client.session_transaction() as session:
        session["tesla_oauth_state"] = state  # even with the state back in the session
    response = callback(user_client, state, code="NA_another-code")
    assert response.status_code == 400 and "already been used" in response.get_data(as_text=True)
    assert len(rsps.calls) == calls


def test_the_state_is_spent_even_when_the_exchange_fails(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps, 400, {"error": "invalid_auth_code", "error_description": "expired"})
    assert callback(user_client, state).status_code == 502
    with fleet.app_context():
        assert _db.session.scalar(select(OAuthState)).used_at is not None


def test_tesla_error_callback_shows_a_plain_message(fleet, user_client, rsps):
    state, _ = start(user_client)
    response = callback(user_client, state, code=None, error="access_denied", error_description="<b>Injected</b> text")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "You did not allow access at Tesla" in page
    assert "Injected" not in page
    assert len(rsps.calls) == 0
    assert_nothing_stored(fleet)
    with fleet.app_context():
        assert _db.session.scalar(select(OAuthState)).used_at is not None  # spent


def test_unknown_tesla_error_codes_are_not_echoed_verbatim(fleet, user_client):
    state, _ = start(user_client)
    page = callback(user_client, state, code=None, error="<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "unknown error" in page


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, "invalid_auth_code", "did not accept the sign-in code"),
        (401, "login_required", "did not accept the sign-in code"),
        (401, None, "Tesla refused the sign-in"),
        (400, "unauthorized_client", "check TESLA_CLIENT_ID and TESLA_CLIENT_SECRET"),
        (400, "invalid_redirect_url", "check TESLA_REDIRECT_URI"),
        (503, None, "temporarily unavailable"),
    ],
)
def test_a_failed_code_exchange_shows_a_message_and_stores_nothing(fleet, user_client, rsps, status, error, expected):
    state, _ = start(user_client)
    body = {"error": error, "error_description": f"detail with {CLIENT_SECRET}"} if error else {}
    mock_token(rsps, status, body)
    response = callback(user_client, state)
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert expected in page and CLIENT_SECRET not in page and CODE not in page
    assert "Connect Tesla account" in page  # a way to try again
    assert_nothing_stored(fleet)


def test_a_refused_new_token_at_discovery_is_not_kept(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps, NA, status=401)
    response = callback(user_client, state)
    assert response.status_code == 502 and "refused the new token" in response.get_data(as_text=True)
    assert_nothing_stored(fleet)


def test_a_token_set_without_a_refresh_token_is_refused(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps, body=token_body(refresh=None))
    response = callback(user_client, state)
    assert response.status_code == 502 and "did not allow offline access" in response.get_data(as_text=True)
    assert_nothing_stored(fleet)


def test_an_unknown_region_name_falls_back_to_the_host_that_answered(fleet, user_client, rsps):
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps, NA, status=421)
    mock_region(rsps, EU, region="emea-unknown")
    mock_sites(rsps, EU)
    assert callback(user_client, state).status_code == 302
    assert settings_of(fleet).tesla_region == "eu"


def test_callback_requires_sign_in(fleet, client):
    response = callback(client, "some-state")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- disconnect and the settings panel --------------------------------------------------------------------


def connect_directly(app, user_id: int, now, *, region: str = "na", expires_in: int = 28800) -> None:
    with app.app_context():
        user = owned_household(user_id)
        save_fleet_tokens(user, TokenSet(ACCESS, REFRESH, expires_in), now, region)
        user.settings.tesla_path = "fleet"
        _db.session.commit()


def test_disconnect_is_post_only_and_clears_the_tokens(fleet, user_client, user_id, clock):
    connect_directly(fleet, user_id, clock())
    assert user_client.get("/tesla-fleet/disconnect").status_code == 405
    assert user_client.post("/tesla-fleet/disconnect", data={}).status_code == 400
    assert settings_of(fleet).tesla_refresh_token_enc is not None
    response = user_client.post("/tesla-fleet/disconnect", data={"csrf_token": csrf_token(user_client, "/settings")})
    assert response.status_code == 302
    row = settings_of(fleet)
    assert row.tesla_access_token_enc is None and row.tesla_refresh_token_enc is None
    assert row.tesla_token_expires_at is None and row.tesla_region is None and row.tesla_path == "teslemetry"
    assert tesla_status(fleet, user_id).state == "not_configured"
    page = flashes(user_client)
    assert "Tesla Fleet disconnected" in page and "Connect Tesla account" in page


def test_unreadable_fleet_tokens_are_reported_with_a_way_to_connect_again(fleet, user_client, user_id, clock):
    connect_directly(fleet, user_id, clock())
    with fleet.app_context():
        _db.session.execute(text("UPDATE user_settings SET tesla_refresh_token_enc = 'gAAAAAnot-a-valid-token'"))
        _db.session.commit()
    page = user_client.get("/settings").get_data(as_text=True)
    assert "can no longer be read" in page and "Connect Tesla account again" in page


def test_saved_tokens_without_a_fleet_app_can_still_be_removed(fleet, user_client, user_id, clock):
    connect_directly(fleet, user_id, clock())
    fleet.config["TESLA_CLIENT_ID"] = None
    page = user_client.get("/settings").get_data(as_text=True)
    assert "no longer has a Fleet app" in page and "Connect Tesla account" not in page
    assert 'action="/tesla-fleet/disconnect"' in page


def test_an_expired_access_token_is_shown_as_renewed_on_next_call(fleet, user_client, user_id, clock):
    connect_directly(fleet, user_id, clock(), expires_in=60)
    clock.advance(minutes=5)
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Access token expired 2026-11-24 03:01 UTC" in page and "renewed automatically" in page


# -- refresh through the connections service --------------------------------------------------------------


def test_a_rotated_refresh_token_is_committed_before_the_new_access_token_is_used(fleet, db, user_id, clock, rsps):
    connect_directly(fleet, user_id, clock(), expires_in=60)
    clock.advance(minutes=10)
    mock_token(rsps, body=token_body("new-access-SECRET", "NA_new-refresh-SECRET", 28800))
    seen: dict[str, str] = {}

    def products(request):
        # Read through a separate connection: only committed data is visible there.
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT tesla_refresh_token_enc FROM user_settings")).scalar_one()
        seen["refresh"] = get_crypto().decrypt(stored)
        seen["auth"] = request.headers["Authorization"]
        body = {"response": [{"energy_site_id": SITE_ID, "resource_type": "battery", "components": {"battery": True}}]}
        return 200, {}, json.dumps(body)

    rsps.add_callback(responses.GET, f"{NA}/api/1/products", callback=products)
    rsps.add(responses.GET, f"{NA}/api/1/energy_sites/{SITE_ID}/site_info", json={"response": {"installation_time_zone": "Australia/Sydney"}})
    user = owned_household(user_id)
    result = check_connections(user, clock())
    db.session.commit()
    assert seen == {"refresh": "NA_new-refresh-SECRET", "auth": "Bearer new-access-SECRET"}
    assert result["tesla"].state == "connected"
    refresh_form = parse_qs(rsps.calls[0].request.body)
    assert refresh_form["grant_type"] == ["refresh_token"] and refresh_form["refresh_token"] == [REFRESH]
    assert user.settings.tesla_token_expires_at == clock() + timedelta(seconds=28800)


def test_an_access_token_is_refreshed_shortly_before_it_expires(fleet, db, user_id, clock, rsps):
    connect_directly(fleet, user_id, clock(), expires_in=600)
    user = owned_household(user_id)
    assert fleet_access_token(user, clock()) == ACCESS and len(rsps.calls) == 0
    clock.advance(minutes=6)  # 4 minutes left: inside the margin
    mock_token(rsps, body=token_body("fresh-access", "NA_fresh-refresh"))
    assert fleet_access_token(user, clock()) == "fresh-access"
    assert get_secret(user.settings, "tesla_refresh_token") == "NA_fresh-refresh"


def test_a_401_refreshes_once_and_retries_with_the_new_token(fleet, db, user_id, clock, rsps):
    connect_directly(fleet, user_id, clock())
    mock_token(rsps, body=token_body("after-401-access", "NA_after-401-refresh"))
    rsps.add(responses.GET, f"{NA}/api/1/products", json={"error": "token expired (401)"}, status=401)
    mock_sites(rsps)
    user = owned_household(user_id)
    result = check_connections(user, clock())
    db.session.commit()
    assert result["tesla"].state == "connected"
    product_calls = [c for c in rsps.calls if c.request.url.endswith("/api/1/products")]
    assert [c.request.headers["Authorization"] for c in product_calls] == [f"Bearer {ACCESS}", "Bearer after-401-access"]
    assert get_secret(user.settings, "tesla_refresh_token") == "NA_after-401-refresh"


def test_a_second_401_after_the_refresh_is_not_retried_again(fleet, db, user_id, clock, rsps):
    connect_directly(fleet, user_id, clock())
    mock_token(rsps, body=token_body("after-401-access", "NA_after-401-refresh"))
    rsps.add(responses.GET, f"{NA}/api/1/products", json={"error": "token expired (401)"}, status=401)
    user = owned_household(user_id)
    result = check_connections(user, clock())
    db.session.commit()
    assert result["tesla"].state == "attention"
    assert len([c for c in rsps.calls if c.request.url.endswith("/api/1/products")]) == 2
    assert len([c for c in rsps.calls if c.request.url == TOKEN_URL]) == 1


def test_a_refused_refresh_asks_the_user_to_connect_tesla_again(fleet, db, user_client, user_id, clock, rsps):
    connect_directly(fleet, user_id, clock(), expires_in=60)
    clock.advance(minutes=10)
    mock_token(rsps, 401, {"error": "login_required", "error_description": "The refresh_token is invalid"})
    user = owned_household(user_id)
    result = check_connections(user, clock())
    db.session.commit()
    assert result["tesla"].state == "attention"
    assert "connect Tesla again" in result["tesla"].message
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Needs attention" in page and "connect Tesla again" in page and "Connect again" in page


# -- secrets ----------------------------------------------------------------------------------------------


def test_no_secret_reaches_a_page_or_a_log_line(fleet, user_client, admin_client, caplog, rsps):
    caplog.set_level(logging.DEBUG)
    state, _ = start(user_client)
    mock_token(rsps)
    mock_region(rsps)
    mock_sites(rsps)
    pages = [callback(user_client, state).get_data(as_text=True)]
    verifier = parse_qs(rsps.calls[0].request.body)["code_verifier"][0]
    pages += [user_client.get(p).get_data(as_text=True) for p in ("/settings", "/tesla-fleet/connect", "/")]
    # A failed exchange whose error text carries the secret and the code.
    state, _ = start(user_client)
    rsps.replace(responses.POST, TOKEN_URL, json={"error": "invalid_auth_code", "error_description": f"{CODE} {CLIENT_SECRET}"}, status=400)
    pages.append(callback(user_client, state).get_data(as_text=True))
    pages.append(admin_client.get("/admin/tesla-app").get_data(as_text=True))
    logs = caplog.text
    for secret in (CLIENT_SECRET, CODE, verifier, ACCESS, REFRESH, state):
        assert secret not in logs, secret
        for page in pages:
            assert secret not in page, secret


# -- end to end against the local simulator (real sockets, no `responses`) --------------------------------


@pytest.fixture(scope="module")
def simulator_base():
    from app.simulator.server import start_simulator_thread

    base, stop = start_simulator_thread()
    yield base
    stop()


@pytest.fixture()
def simulated(app, simulator_base):
    import requests

    from app.simulator import identity

    requests.post(f"{simulator_base}/_sim/reset", timeout=5).raise_for_status()
    app.config.update(identity.app_settings(simulator_base))
    app.config.update(TESLA_REDIRECT_URI="http://localhost/tesla-fleet/callback", APP_DOMAIN="sync.example.com")
    return simulator_base


def _sign_in_at_simulator(user_client) -> str:
    """Connect, let the simulator's authorize page approve, and return the callback path it sends back."""
    import requests

    response = user_client.post("/tesla-fleet/connect", data={"csrf_token": csrf_token(user_client, "/settings")})
    approved = requests.get(response.headers["Location"], allow_redirects=False, timeout=5)
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["Location"])
    assert back.path == "/tesla-fleet/callback"
    return f"{back.path}?{back.query}"


def test_connect_end_to_end_against_the_simulator(app, simulated, user_client, user_id):
    from app.simulator import identity

    response = user_client.get(_sign_in_at_simulator(user_client))
    assert response.status_code == 302, response.get_data(as_text=True)
    row = settings_of(app)
    assert row.tesla_region == "na" and row.tesla_path == "fleet"
    assert row.tesla_site_id == str(identity.TESLA_ENERGY_SITE_ID)
    status = tesla_status(app, user_id)
    assert status.state == "connected" and status.via == "fleet", status.message


def test_unregistered_region_then_admin_registers_then_test_connection_works(app, simulated, user_client, admin_client, user_id):
    import requests

    requests.post(f"{simulated}/_sim/config", json={"fleet_region": "unregistered"}, timeout=5).raise_for_status()
    assert user_client.get(_sign_in_at_simulator(user_client)).status_code == 302
    assert "administrator must register the app" in user_client.get("/settings").get_data(as_text=True)
    assert tesla_status(app, user_id).state == "attention"

    token = csrf_token(admin_client, "/admin/tesla-app")
    assert admin_client.post("/admin/tesla-app/key", data={"csrf_token": token}).status_code == 302
    assert admin_client.post("/admin/tesla-app/register/na", data={"csrf_token": token}).status_code == 302
    assert requests.get(f"{simulated}/_sim/state", timeout=5).json()["partner_registered"] is True
    assert "Registered sync.example.com" in admin_client.get("/admin/tesla-app").get_data(as_text=True)

    user_client.post("/settings/test", data={"csrf_token": csrf_token(user_client, "/settings")})
    assert tesla_status(app, user_id).state == "connected"


def test_access_logs_do_not_keep_the_callback_code_or_state(app):
    from app.tesla_oauth.log_redaction import OAuthQueryRedactor

    werkzeug_style = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '%s - - [%s] "%s" %s -',
        ("127.0.0.1", "24/Nov/2026 03:34:16", f"GET /tesla-fleet/callback?code={CODE}&state=abc123 HTTP/1.1", "302"), None,
    )
    gunicorn_style = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(r)s" %(s)s',
        ({"h": "10.0.0.1", "r": f"GET /tesla-fleet/callback?state=abc123&code={CODE} HTTP/1.1", "s": "302"},), None,
    )
    for record in (werkzeug_style, gunicorn_style):
        assert OAuthQueryRedactor().filter(record) is True
        message = record.getMessage()
        assert CODE not in message and "abc123" not in message
        assert "/tesla-fleet/callback?" in message and "code=***" in message and "state=***" in message
    plain = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, "GET %s", ("/settings?site=1",), None)
    OAuthQueryRedactor().filter(plain)
    assert plain.getMessage() == "GET /settings?site=1"
    for name in ("werkzeug", "gunicorn.access"):
        assert sum(isinstance(f, OAuthQueryRedactor) for f in logging.getLogger(name).filters) == 1
