"""Credentials and preferences: encrypted at rest, write-only on the page, per user."""
from __future__ import annotations

import re
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select, text

from app import create_app
from app.credentials import get_secret
from app.extensions import db as _db
from app.models import User, HouseholdSettings
from tests.conftest import csrf_token, make_config, owned_household

AMBER_TOKEN = "psk_0123456789abcdef0123456789aba1b2"
TESLEMETRY_TOKEN = "tslm-eyJhbGciOiJIUzI1NiJ9.secretpart.c3d4"


def post(client, path, data):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/settings")})


def save_tokens(client):
    assert post(client, "/settings/amber", {"token": AMBER_TOKEN, "site_id": "01JCX8Q4V6M2R9T3ZKD5HB7WNE"}).status_code == 302
    assert post(client, "/settings/tesla", {"token": TESLEMETRY_TOKEN, "site_id": "1234567890"}).status_code == 302


def settings_row(app, email="alice@example.com") -> HouseholdSettings:
    with app.app_context():
        user = _db.session.scalar(select(User).where(User.email == email))
        household = owned_household(user.id)
        _db.session.commit()
        row = household.settings
        _db.session.refresh(row)
        _db.session.expunge_all()
        return row


def test_saved_tokens_are_masked_and_never_rendered(app, user_client):
    save_tokens(user_client)
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Amber API token: saved, ends in …a1b2" in page
    assert "Teslemetry token: saved, ends in …c3d4" in page
    assert AMBER_TOKEN not in page and TESLEMETRY_TOKEN not in page
    assert AMBER_TOKEN[:-4] not in page
    assert "01JCX8Q4V6M2R9T3ZKD5HB7WNE" in page  # site ids are not secrets
    home = user_client.get("/").get_data(as_text=True)
    assert AMBER_TOKEN not in home


def test_tokens_are_encrypted_at_rest(app, user_client, database_url):
    save_tokens(user_client)
    with app.app_context():
        raw = _db.session.execute(text("SELECT amber_token_enc, teslemetry_token_enc FROM user_settings")).one()
        assert AMBER_TOKEN not in raw[0] and TESLEMETRY_TOKEN not in raw[1]
        row = _db.session.scalar(select(HouseholdSettings))
        assert get_secret(row, "amber_token") == AMBER_TOKEN
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        with app.app_context():
            _db.engine.dispose()  # flush everything to the file
        blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert b"user_settings" in blob  # it is the right file
        assert AMBER_TOKEN.encode() not in blob and TESLEMETRY_TOKEN.encode() not in blob


def test_empty_token_field_keeps_the_saved_token(app, user_client):
    save_tokens(user_client)
    response = post(user_client, "/settings/amber", {"token": "", "site_id": "01JCX8Q4V6M2R9T3ZKD5HB7WNE"})
    assert response.status_code == 302
    with app.app_context():
        assert get_secret(_db.session.scalar(select(HouseholdSettings)), "amber_token") == AMBER_TOKEN


def test_first_amber_save_needs_a_token(user_client):
    response = post(user_client, "/settings/amber", {"token": "", "site_id": ""})
    assert response.status_code == 400
    assert "Enter the Amber API token." in response.get_data(as_text=True)


def test_replace_and_remove_a_token(app, user_client):
    save_tokens(user_client)
    post(user_client, "/settings/amber", {"token": "psk_ffffffffffffffffffffffffffffzzzz", "site_id": ""})
    assert "ends in …zzzz" in user_client.get("/settings").get_data(as_text=True)
    response = post(user_client, "/settings/remove/amber_token", {})
    assert response.status_code == 302
    page = user_client.get("/settings").get_data(as_text=True)
    assert "Amber API token: not saved." in page
    assert "Teslemetry token: saved" in page
    assert post(user_client, "/settings/remove/tesla_refresh_token", {}).status_code == 404


def test_bad_values_are_refused_next_to_their_field_and_nothing_changes(app, user_client):
    save_tokens(user_client)
    cases = [
        ("/settings/amber", {"token": "psk_with space inside", "site_id": ""}, "no spaces"),
        ("/settings/amber", {"token": "x" * 5000, "site_id": ""}, "Field cannot be longer"),
        ("/settings/amber", {"token": "", "site_id": "not a site!"}, "only letters and digits"),
        ("/settings/tesla", {"token": "", "site_id": "12ab"}, "is a number"),
        ("/settings/preferences", {"site_timezone": "Mars/Olympus", "forecast_estimate": "predicted", "change_threshold_cents": "0.5", "discharge_floor_percent": "20"}, "Unknown time zone"),
        ("/settings/preferences", {"site_timezone": "", "forecast_estimate": "wild", "change_threshold_cents": "0.5", "discharge_floor_percent": "20"}, "Choose low, predicted or high"),
        ("/settings/preferences", {"forecast_estimate": "low", "change_threshold_cents": "lots", "discharge_floor_percent": "20"}, "as a number of cents"),
        ("/settings/preferences", {"forecast_estimate": "low", "change_threshold_cents": "-1", "discharge_floor_percent": "20"}, "between 0 and 100"),
        ("/settings/preferences", {"forecast_estimate": "low", "change_threshold_cents": "0.5", "discharge_floor_percent": "120"}, "whole percentage from 0 to 100"),
        ("/settings/preferences", {"forecast_estimate": "low", "change_threshold_cents": "0.5", "discharge_floor_percent": "20", "export_protection_rule": "sometimes"}, "export nothing or solar only"),
    ]
    for path, data, message in cases:
        response = post(user_client, path, data)
        assert response.status_code == 400, (path, data)
        assert message in response.get_data(as_text=True), (path, message)
    with app.app_context():
        row = _db.session.scalar(select(HouseholdSettings))
        assert get_secret(row, "amber_token") == AMBER_TOKEN
        assert row.amber_site_id == "01JCX8Q4V6M2R9T3ZKD5HB7WNE" and row.tesla_site_id == "1234567890"
        assert row.forecast_estimate == "predicted" and row.site_timezone is None


def test_preferences_are_saved(app, user_client):
    page = user_client.get("/settings").get_data(as_text=True)
    assert 'name="change_threshold_cents" type="text" value="0.5"' in page
    assert re.search(r"<input [^>]*checked id=\"prefs-export_protection\"", page)
    response = post(
        user_client,
        "/settings/preferences",
        {"site_timezone": "Australia/Adelaide", "forecast_estimate": "high", "sync_enabled": "y",
         "change_threshold_cents": "1.25", "export_protection": "y", "export_protection_rule": "pv_only",
         "discharge_floor_percent": "35"},
    )
    assert response.status_code == 302
    row = settings_row(app)
    assert (row.site_timezone, row.forecast_estimate, row.sync_enabled) == ("Australia/Adelaide", "high", True)
    assert (row.change_threshold_cents, row.export_protection, row.export_protection_rule) == (1.25, True, "pv_only")
    assert row.discharge_floor_percent == 35
    post(user_client, "/settings/preferences", {"site_timezone": "", "forecast_estimate": "low", "change_threshold_cents": "0", "discharge_floor_percent": "20"})
    row = settings_row(app)
    assert (row.site_timezone, row.forecast_estimate, row.sync_enabled) == (None, "low", False)
    assert (row.change_threshold_cents, row.export_protection, row.export_protection_rule) == (0.0, False, "never")


def test_sync_is_off_until_the_user_turns_it_on(app, user_client):
    save_tokens(user_client)
    assert settings_row(app).sync_enabled is False
    assert "Turn the sync on: not yet" in " ".join(user_client.get("/").get_data(as_text=True).split())


def test_lost_key_keeps_the_secret_and_asks_to_re_enter(app, user_client, tmp_path, database_url, clock):
    save_tokens(user_client)
    before = settings_row(app).amber_token_enc
    # Same database, a different encryption key: as if the key file was lost.
    other = create_app(make_config(tmp_path / "other", database_url, FERNET_ENCRYPTION_KEY=Fernet.generate_key().decode()))
    other.extensions["clock"] = clock
    c = other.test_client()
    from tests.conftest import login

    assert login(c, "alice@example.com").status_code == 302
    page = c.get("/settings").get_data(as_text=True)
    assert page.count("can no longer be read") == 2
    assert "Please enter it again" in page
    home = c.get("/").get_data(as_text=True)
    assert "please enter it again" in home
    assert settings_row(other).amber_token_enc == before  # never dropped
    response = c.post("/settings/amber", data={"token": AMBER_TOKEN, "site_id": "", "csrf_token": csrf_token(c, "/settings")})
    assert response.status_code == 302
    assert "ends in …a1b2" in c.get("/settings").get_data(as_text=True)
    with other.app_context():
        _db.engine.dispose()


def test_one_user_never_sees_another_users_settings(app, user_client, admin_client):
    save_tokens(user_client)
    page = admin_client.get("/settings").get_data(as_text=True)
    assert "Amber API token: not saved." in page
    assert "01JCX8Q4V6M2R9T3ZKD5HB7WNE" not in page and "1234567890" not in page
    post(admin_client, "/settings/remove/amber_token", {})
    post(admin_client, "/settings/amber", {"token": "psk_adminadminadminadminadminadmi9999", "site_id": "ADMINSITE"})
    assert "ends in …a1b2" in user_client.get("/settings").get_data(as_text=True)
    assert settings_row(app).amber_site_id == "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
