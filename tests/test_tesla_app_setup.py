"""This installation's Tesla app (administrators only): which settings are present, the EC P-256 key
pair (private key encrypted, public key served at Tesla's well-known path), and partner registration
per region. Tesla is faked with `responses`."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, text

from app.clients.tesla import FLEET_API_HOSTS
from app.crypto import get_crypto
from app.extensions import db as _db
from app.models import PartnerRegistration, TeslaAppKey
from tests.conftest import csrf_token

CLIENT_ID = "tesla-client-id-0f3c"
CLIENT_SECRET = "ta-secret.CLIENT-SECRET-never-shown-77"
TOKEN_URL = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
PARTNER_TOKEN = "partner-access-token-SECRET-123"
KEY_PATH = "/.well-known/appspecific/com.tesla.3p.public-key.pem"
NA, EU = FLEET_API_HOSTS["na"], FLEET_API_HOSTS["eu"]


@pytest.fixture()
def fleet(app):
    app.config.update(
        TESLA_CLIENT_ID=CLIENT_ID,
        TESLA_CLIENT_SECRET=CLIENT_SECRET,
        TESLA_REDIRECT_URI="https://sync.example.com/tesla-fleet/callback",
        TESLA_TOKEN_URL=TOKEN_URL,
        TESLA_FLEET_API_URL=None,
        APP_DOMAIN="https://Sync.Example.com:443/",
    )
    return app


@pytest.fixture()
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def post(client, path: str):
    return client.post(path, data={"csrf_token": csrf_token(client, "/settings")})


def generate(client) -> str:
    assert post(client, "/admin/tesla-app/key").status_code == 302
    response = client.get(KEY_PATH)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def mock_partner(rsps, host: str = NA, token_status: int = 200, register_status: int = 200, register_body=None) -> None:
    token_body = {"access_token": PARTNER_TOKEN, "expires_in": 28800, "token_type": "Bearer"} if token_status == 200 else {"error": "invalid_client"}
    rsps.add(responses.POST, TOKEN_URL, json=token_body, status=token_status)
    body = register_body if register_body is not None else {"response": {"domain": "sync.example.com"}}
    rsps.add(responses.POST, f"{host}/api/1/partner_accounts", json=body, status=register_status)


def registration(app, region: str = "na") -> PartnerRegistration | None:
    with app.app_context():
        row = _db.session.get(PartnerRegistration, region)
        _db.session.expunge_all()
        return row


# -- access -----------------------------------------------------------------------------------------------


def test_the_tesla_app_page_and_actions_are_for_administrators_only(fleet, user_client, rsps):
    assert user_client.get("/admin/tesla-app").status_code == 403
    for path in ("/admin/tesla-app/key", "/admin/tesla-app/key/replace", "/admin/tesla-app/register/na"):
        assert post(user_client, path).status_code == 403, path
    assert len(rsps.calls) == 0
    with fleet.app_context():
        assert _db.session.scalar(select(TeslaAppKey)) is None
    assert "/admin/tesla-app" not in user_client.get("/settings").get_data(as_text=True)


def test_administrators_see_the_page_in_the_navigation(fleet, admin_client):
    assert 'href="/admin/tesla-app"' in admin_client.get("/settings").get_data(as_text=True)


def test_the_page_says_which_settings_are_set_and_never_shows_the_id_or_secret(fleet, admin_client):
    page = admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert page.count(">set<") == 4
    assert CLIENT_ID not in page and CLIENT_SECRET not in page
    assert "sync.example.com" in page  # the bare domain is public
    assert "https://sync.example.com/.well-known/appspecific/com.tesla.3p.public-key.pem" in page
    assert "public HTTPS domain" in page and "Teslemetry is the easy path" in page


def test_missing_settings_are_shown_as_not_set(app, admin_client):
    page = admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert page.count(">not set<") == 4
    assert "cannot yet" in page


def test_a_redirect_uri_to_another_path_is_flagged(fleet, admin_client):
    fleet.config["TESLA_REDIRECT_URI"] = "https://sync.example.com/oauth/callback"
    assert "It should end in" in admin_client.get("/admin/tesla-app").get_data(as_text=True)


# -- key pair and public key ------------------------------------------------------------------------------


def test_without_a_key_the_public_key_route_is_a_plain_404(fleet, client):
    response = client.get(KEY_PATH)
    assert response.status_code == 404
    assert response.mimetype == "text/plain"
    assert "No public key has been generated" in response.get_data(as_text=True)


def test_generating_a_key_pair_serves_a_p256_public_key_publicly(fleet, admin_client, client, clock):
    assert post(admin_client, "/admin/tesla-app/key").status_code == 302
    response = client.get(KEY_PATH)  # anonymous: Tesla fetches it
    assert response.status_code == 200
    assert response.mimetype == "application/x-pem-file"
    pem = response.get_data()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    public_key = serialization.load_pem_public_key(pem)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    page = admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert "BEGIN PUBLIC KEY" in page and "Generated 2026-11-24 03:00 UTC" in page
    assert "Replace key pair" in page and 'data-confirm="Replace the key pair?' in page


def test_the_private_key_is_encrypted_at_rest_and_matches_the_public_key(fleet, admin_client):
    pem = generate(admin_client)
    with fleet.app_context():
        stored = _db.session.execute(text("SELECT private_key_enc, public_key_pem FROM tesla_app_keys")).one()
        assert "PRIVATE KEY" not in stored[0] and "PRIVATE KEY" not in stored[1]
        private_pem = get_crypto().decrypt(stored[0])
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    derived = private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert derived.decode() == pem
    assert "PRIVATE KEY" not in admin_client.get("/admin/tesla-app").get_data(as_text=True)


def test_the_key_column_is_rotated_with_the_other_secrets(fleet, admin_client):
    generate(admin_client)
    from app.credentials import rotate_stored_secrets

    with fleet.app_context():
        result = rotate_stored_secrets()
        assert result.rotated >= 1 and result.unreadable == 0


def test_generating_again_is_refused_and_replace_makes_a_new_key(fleet, admin_client, clock, rsps):
    first = generate(admin_client)
    mock_partner(rsps)
    assert post(admin_client, "/admin/tesla-app/register/na").status_code == 302
    assert registration(fleet).ok

    response = admin_client.post("/admin/tesla-app/key", data={"csrf_token": csrf_token(admin_client, "/admin/tesla-app")}, follow_redirects=True)
    assert "A key pair already exists" in response.get_data(as_text=True)
    assert admin_client.get(KEY_PATH).get_data(as_text=True) == first

    clock.advance(minutes=1)
    assert post(admin_client, "/admin/tesla-app/key/replace").status_code == 302
    second = admin_client.get(KEY_PATH).get_data(as_text=True)
    assert second != first
    with fleet.app_context():
        assert _db.session.scalar(select(text("count(*)")).select_from(TeslaAppKey)) == 1
    row = registration(fleet)
    assert not row.ok and "register this region again" in row.message


# -- partner registration ---------------------------------------------------------------------------------


def test_registration_sends_the_bare_domain_with_a_partner_token(fleet, admin_client, clock, rsps):
    generate(admin_client)
    mock_partner(rsps)
    response = post(admin_client, "/admin/tesla-app/register/na")
    assert response.status_code == 302

    token_form = parse_qs(rsps.calls[0].request.body)
    assert token_form["grant_type"] == ["client_credentials"]
    assert token_form["client_id"] == [CLIENT_ID] and token_form["client_secret"] == [CLIENT_SECRET]
    assert token_form["audience"] == [NA]
    register = rsps.calls[1].request
    assert register.url == f"{NA}/api/1/partner_accounts"
    assert register.headers["Authorization"] == f"Bearer {PARTNER_TOKEN}"
    assert json.loads(register.body) == {"domain": "sync.example.com"}

    row = registration(fleet)
    assert row.ok and row.domain == "sync.example.com" and row.attempted_at == clock()
    page = admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert "Registered sync.example.com with Tesla for North America" in page
    assert "Register again" in page


def test_registration_for_europe_uses_the_european_host(fleet, admin_client, rsps):
    generate(admin_client)
    mock_partner(rsps, EU)
    post(admin_client, "/admin/tesla-app/register/eu")
    assert parse_qs(rsps.calls[0].request.body)["audience"] == [EU]
    assert registration(fleet, "eu").ok and registration(fleet, "na") is None


def test_registration_uses_the_fleet_api_override(fleet, admin_client, rsps):
    fleet.config["TESLA_FLEET_API_URL"] = "http://127.0.0.1:5055/tesla"
    generate(admin_client)
    mock_partner(rsps, "http://127.0.0.1:5055/tesla")
    post(admin_client, "/admin/tesla-app/register/na")
    assert registration(fleet).ok


def test_a_refused_registration_is_recorded_and_shown(fleet, admin_client, clock, rsps, caplog):
    caplog.set_level(logging.DEBUG)
    generate(admin_client)
    mock_partner(rsps, register_status=400, register_body={"error": "invalid_domain", "error_description": f"bad {PARTNER_TOKEN}"})
    post(admin_client, "/admin/tesla-app/register/na")
    row = registration(fleet)
    assert row.ok is False and "refused to register sync.example.com (HTTP 400)" in row.message
    page = admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert "Failed" in page and "refused to register sync.example.com" in page
    assert PARTNER_TOKEN not in page and PARTNER_TOKEN not in caplog.text and CLIENT_SECRET not in caplog.text

    clock.advance(minutes=5)  # a later success replaces the outcome
    rsps.replace(responses.POST, f"{NA}/api/1/partner_accounts", json={"response": {}}, status=200)
    post(admin_client, "/admin/tesla-app/register/na")
    row = registration(fleet)
    assert row.ok and row.attempted_at == clock()


def test_a_refused_partner_token_names_the_client_credentials(fleet, admin_client, rsps):
    generate(admin_client)
    mock_partner(rsps, token_status=401)
    post(admin_client, "/admin/tesla-app/register/na")
    row = registration(fleet)
    assert row.ok is False and "TESLA_CLIENT_ID, TESLA_CLIENT_SECRET" in row.message
    assert len(rsps.calls) == 1  # never reached partner_accounts


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"APP_DOMAIN": None}, "Set APP_DOMAIN"),
        ({"TESLA_CLIENT_SECRET": None}, "Set TESLA_CLIENT_ID and TESLA_CLIENT_SECRET"),
        ({}, "Generate the key pair first"),
    ],
)
def test_registration_is_not_attempted_until_ready(fleet, admin_client, rsps, change, expected):
    if change:
        generate(admin_client)
        fleet.config.update(change)
    response = admin_client.post(
        "/admin/tesla-app/register/na", data={"csrf_token": csrf_token(admin_client, "/settings")}, follow_redirects=True
    )
    assert expected in response.get_data(as_text=True)
    assert len(rsps.calls) == 0 and registration(fleet) is None


def test_unknown_regions_are_404(fleet, admin_client, rsps):
    assert post(admin_client, "/admin/tesla-app/register/xx").status_code == 404


def test_old_registration_times_are_shown(fleet, admin_client, clock, rsps):
    generate(admin_client)
    mock_partner(rsps)
    post(admin_client, "/admin/tesla-app/register/na")
    clock.advance(days=2)
    assert "2026-11-24 03:00 UTC (sync.example.com)" in admin_client.get("/admin/tesla-app").get_data(as_text=True)
    assert clock() - registration(fleet).attempted_at == timedelta(days=2)
