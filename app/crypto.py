"""Encryption of stored credentials, and the app's generated keys. The only user of Fernet.

Keys come from the environment (`FERNET_ENCRYPTION_KEY`, several comma-separated, newest first) or,
when unset, from a key file generated once in DATA_DIR with mode 0600 and reused on every start.
"""
from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

log = logging.getLogger(__name__)

FERNET_KEY_FILE = "fernet.key"
SECRET_KEY_FILE = "secret_key"


class KeyConfigError(Exception):
    """A configured key is unusable; the message never contains the key."""


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key (key lost or changed)."""


def load_or_create_key_file(path: Path, generate: Callable[[], str]) -> str:
    """Return the key stored at `path`, creating it once (mode 0600) if it does not exist.

    Safe when several processes start at once: the file appears atomically via a hard link, so a
    reader never sees a half-written key and an existing key is never overwritten."""
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate() + "\n")
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return _read_key(path)  # another process won the race: use its key
    finally:
        os.unlink(tmp_name)
    log.warning("Generated a new %s in %s (kept for every later start; back it up)", path.name, path.parent)
    return _read_key(path)


def _read_key(path: Path) -> str:
    value = path.read_text(encoding="ascii").strip()
    if not value:
        raise KeyConfigError(f"Key file {path} is empty; restore it from a backup or remove it")
    return value


def generate_secret_key() -> str:
    """A new random Flask SECRET_KEY."""
    return secrets.token_urlsafe(48)


def generate_fernet_key() -> str:
    """A new random Fernet key."""
    return Fernet.generate_key().decode("ascii")


class Crypto:
    """Encrypts and decrypts stored secrets with the newest key; reads with any configured key."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise KeyConfigError("FERNET_ENCRYPTION_KEY holds no key")
        fernets = []
        for position, part in enumerate(parts, start=1):
            try:
                fernets.append(Fernet(part.encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                raise KeyConfigError(
                    f"FERNET_ENCRYPTION_KEY key #{position} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from exc
        self.key_count = len(fernets)
        self._fernet = MultiFernet(fernets)

    def encrypt(self, plaintext: str) -> str:
        """Encrypt with the newest key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt with whichever configured key fits; DecryptionError if none does."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise DecryptionError("stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a stored secret with the newest key; DecryptionError if no key fits."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise DecryptionError("stored secret cannot be decrypted with the configured keys") from exc


def init_app_keys(config: dict) -> Crypto:
    """Fill SECRET_KEY and FERNET_ENCRYPTION_KEY from DATA_DIR when unset; return the Crypto."""
    data_dir = Path(config["DATA_DIR"])
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = load_or_create_key_file(data_dir / SECRET_KEY_FILE, generate_secret_key)
    if not config.get("FERNET_ENCRYPTION_KEY"):
        config["FERNET_ENCRYPTION_KEY"] = load_or_create_key_file(
            data_dir / FERNET_KEY_FILE, generate_fernet_key
        )
    return Crypto(config["FERNET_ENCRYPTION_KEY"])


def get_crypto() -> Crypto:
    """The app's Crypto (set up by create_app)."""
    return current_app.extensions["crypto"]
