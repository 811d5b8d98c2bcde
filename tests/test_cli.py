"""Operator CLI: users and keys."""
from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select

from app.credentials import get_secret
from app.crypto import Crypto
from app.extensions import db as _db
from app.models import HouseholdSettings

TOKEN = "psk_0123456789abcdef0123456789abcdef"


def test_users_create_list_and_duplicate(app, runner):
    result = runner.invoke(args=["users", "create", "Op@Example.com", "--password", "operator secret"])
    assert result.exit_code == 0, result.output
    assert "Created op@example.com (administrator)" in result.output  # the first account
    result = runner.invoke(args=["users", "create", "second@example.com", "--password", "operator secret"])
    assert result.exit_code == 0 and "administrator" not in result.output
    result = runner.invoke(args=["users", "create", "OP@example.com", "--password", "operator secret"])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("op@example.com  admin  active")


def test_users_create_refuses_weak_password_and_bad_email(runner):
    result = runner.invoke(args=["users", "create", "a@example.com", "--password", "short"])
    assert result.exit_code != 0 and "at least 8 characters" in result.output
    result = runner.invoke(args=["users", "create", "not-an-email", "--password", "long enough pw"])
    assert result.exit_code != 0 and "valid email" in result.output


def test_users_configure_sets_encrypted_credentials(app, runner, user_id):
    result = runner.invoke(
        args=[
            "users", "configure", "alice@example.com", "--amber-token", TOKEN, "--amber-site-id",
            "01JCX8Q4V6M2R9T3ZKD5HB7WNE", "--teslemetry-token", "tslm-token-abcdef", "--tesla-site-id",
            "1234567890", "--timezone", "Australia/Hobart", "--sync",
        ]
    )
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    with app.app_context():
        row = _db.session.scalar(select(HouseholdSettings))
        assert TOKEN not in row.amber_token_enc
        assert get_secret(row, "amber_token") == TOKEN
        assert get_secret(row, "teslemetry_token") == "tslm-token-abcdef"
        assert (row.amber_site_id, row.tesla_site_id, row.site_timezone, row.sync_enabled) == (
            "01JCX8Q4V6M2R9T3ZKD5HB7WNE", "1234567890", "Australia/Hobart", True,
        )
    result = runner.invoke(args=["users", "configure", "alice@example.com", "--no-sync"])
    assert result.exit_code == 0
    with app.app_context():
        assert _db.session.scalar(select(HouseholdSettings)).sync_enabled is False


def test_users_configure_errors(runner, user_id):
    result = runner.invoke(args=["users", "configure", "ghost@example.com", "--sync"])
    assert result.exit_code != 0 and "No account with email 'ghost@example.com'" in result.output
    result = runner.invoke(args=["users", "configure", "alice@example.com", "--tesla-site-id", "abc"])
    assert result.exit_code != 0 and "tesla-site-id" in result.output
    result = runner.invoke(args=["users", "configure", "alice@example.com"])
    assert result.exit_code != 0 and "Nothing to change" in result.output


def test_users_set_password(app, runner, user_id):
    result = runner.invoke(args=["users", "set-password", "alice@example.com", "--password", "a fresh password"])
    assert result.exit_code == 0
    from tests.conftest import login

    assert login(app.test_client(), "alice@example.com", "a fresh password").status_code == 302
    result = runner.invoke(args=["users", "set-password", "nobody@example.com", "--password", "a fresh password"])
    assert result.exit_code != 0


def test_keys_rotate_re_encrypts_with_the_newest_key(app, runner, user_id):
    runner.invoke(args=["users", "configure", "alice@example.com", "--amber-token", TOKEN, "--teslemetry-token", "tslm-1"])
    old_key = app.config["FERNET_ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    app.extensions["crypto"] = Crypto(f"{new_key},{old_key}")
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 stored secret(s)" in result.output
    with app.app_context():
        row = _db.session.scalar(select(HouseholdSettings))
        app.extensions["crypto"] = Crypto(new_key)  # the old key can now be dropped
        assert get_secret(row, "amber_token") == TOKEN
        assert get_secret(row, "teslemetry_token") == "tslm-1"


def test_keys_rotate_reports_secrets_no_key_can_read_and_keeps_them(app, runner, user_id):
    runner.invoke(args=["users", "configure", "alice@example.com", "--amber-token", TOKEN])
    with app.app_context():
        before = _db.session.scalar(select(HouseholdSettings)).amber_token_enc
    app.extensions["crypto"] = Crypto(Fernet.generate_key().decode())
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code != 0
    assert "1 stored secret(s) could not be decrypted" in result.output
    with app.app_context():
        assert _db.session.scalar(select(HouseholdSettings)).amber_token_enc == before
