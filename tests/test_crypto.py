"""Generated keys and encryption of stored secrets."""
from __future__ import annotations

import logging
import stat
import threading

import pytest
from cryptography.fernet import Fernet

from app import create_app
from app.crypto import (
    Crypto,
    DecryptionError,
    KeyConfigError,
    generate_fernet_key,
    load_or_create_key_file,
)
from tests.conftest import make_config


def test_first_start_generates_keys_once_with_mode_0600_and_logs_without_the_value(tmp_path, caplog):
    config = make_config(tmp_path, "sqlite://")
    with caplog.at_level(logging.WARNING):
        app = create_app(config)
    data = tmp_path / "data"
    for name in ("secret_key", "fernet.key"):
        path = data / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() not in caplog.text
        assert f"Generated a new {name}" in caplog.text
    secret, fernet = app.config["SECRET_KEY"], app.config["FERNET_ENCRYPTION_KEY"]
    again = create_app(make_config(tmp_path, "sqlite://"))
    assert again.config["SECRET_KEY"] == secret and again.config["FERNET_ENCRYPTION_KEY"] == fernet
    assert (data / "fernet.key").read_text().strip() == fernet


def test_keys_from_the_environment_win_and_no_file_is_written(tmp_path):
    key = Fernet.generate_key().decode()
    app = create_app(make_config(tmp_path, "sqlite://", SECRET_KEY="s" * 40, FERNET_ENCRYPTION_KEY=key))
    assert app.config["SECRET_KEY"] == "s" * 40
    assert not (tmp_path / "data" / "fernet.key").exists()
    assert not (tmp_path / "data" / "secret_key").exists()


def test_an_existing_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "fernet.key"
    path.write_text("existing-key\n")
    assert load_or_create_key_file(path, lambda: "new-key") == "existing-key"
    assert path.read_text() == "existing-key\n"


def test_concurrent_first_starts_agree_on_one_key(tmp_path):
    path = tmp_path / "fernet.key"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(load_or_create_key_file(path, generate_fernet_key)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and results[0] == path.read_text().strip()
    assert [p.name for p in tmp_path.iterdir()] == ["fernet.key"]  # no temp files left


def test_empty_key_file_is_an_error_not_a_silent_new_key(tmp_path):
    path = tmp_path / "fernet.key"
    path.write_text("")
    with pytest.raises(KeyConfigError, match="empty"):
        load_or_create_key_file(path, generate_fernet_key)


def test_several_keys_newest_first_decrypt_old_secrets_and_encrypt_with_the_newest():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Crypto(old).encrypt("psk_secret")
    both = Crypto(f"{new}, {old}")
    assert both.key_count == 2
    assert both.decrypt(token) == "psk_secret"
    assert Crypto(new).decrypt(both.encrypt("x")) == "x"
    assert Crypto(new).decrypt(both.rotate(token)) == "psk_secret"


def test_wrong_key_raises_decryption_error_without_the_secret():
    token = Crypto(Fernet.generate_key().decode()).encrypt("psk_topsecret")
    with pytest.raises(DecryptionError) as info:
        Crypto(Fernet.generate_key().decode()).decrypt(token)
    assert "topsecret" not in str(info.value)
    with pytest.raises(DecryptionError):
        Crypto(Fernet.generate_key().decode()).decrypt("not a token at all")


def test_invalid_configured_key_is_a_clear_error_that_does_not_echo_it():
    with pytest.raises(KeyConfigError) as info:
        Crypto(f"{Fernet.generate_key().decode()},not-a-valid-key-XYZ")
    assert "key #2" in str(info.value) and "not-a-valid-key-XYZ" not in str(info.value)
    with pytest.raises(KeyConfigError):
        Crypto(" , ")
