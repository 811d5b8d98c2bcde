"""A household's stored credentials and preferences, validated and applied in one place.

Secrets are write-only from a household's point of view: pages get a `SecretStatus` (saved, ends in …a1b2)
and never the value. A secret that no configured key can decrypt is kept as it is (never dropped) and
reported as unreadable, so the household is asked to enter it again."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from app.crypto import Crypto, DecryptionError, get_crypto
from app import clock
from app.extensions import db
from app.households.service import PowerwallTaken, claim_tesla_site, record_event
from app.models import ENCRYPTED_COLUMNS, SyncState, Household, HouseholdSettings
from app.validation import (
    clean_amber_site_id,
    clean_estimate,
    clean_export_protection_rule,
    clean_percent,
    clean_threshold_cents,
    clean_tesla_path,
    clean_tesla_site_id,
    clean_timezone,
    clean_token,
)

log = logging.getLogger(__name__)

# Secret name -> column on HouseholdSettings.
SECRET_COLUMNS = {
    "amber_token": "amber_token_enc",
    "teslemetry_token": "teslemetry_token_enc",
    "tesla_access_token": "tesla_access_token_enc",
    "tesla_refresh_token": "tesla_refresh_token_enc",
}
SECRET_LABELS = {
    "amber_token": "Amber API token",
    "teslemetry_token": "Teslemetry token",
    "tesla_access_token": "Tesla Fleet access token",
    "tesla_refresh_token": "Tesla Fleet refresh token",
}
HINT_LENGTH = 4


class CredentialUnreadable(Exception):
    """A stored secret exists but cannot be decrypted: the household must enter it again."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"The saved {SECRET_LABELS[name]} can no longer be read (the encryption key changed). "
            "Please enter it again in Settings."
        )


@dataclass(frozen=True)
class SecretStatus:
    """What a page may show about a secret: whether it is saved, readable, and its last characters."""

    name: str
    label: str
    state: str  # "missing" | "saved" | "unreadable"
    hint: str | None = None

    @property
    def saved(self) -> bool:
        return self.state != "missing"


def settings_for(household: Household) -> HouseholdSettings:
    """The household's settings row, created (unsaved until the caller commits) on first use."""
    if household.settings is None:
        household.settings = HouseholdSettings()
    return household.settings


def set_secret(settings: HouseholdSettings, name: str, value: str | None) -> None:
    """Store `value` encrypted with the newest key, or remove the secret when value is None."""
    column = SECRET_COLUMNS[name]
    setattr(settings, column, get_crypto().encrypt(value) if value is not None else None)


def get_secret(settings: HouseholdSettings | None, name: str) -> str | None:
    """The decrypted secret, None when not saved; CredentialUnreadable when the key no longer fits."""
    if settings is None:
        return None
    token = getattr(settings, SECRET_COLUMNS[name])
    if token is None:
        return None
    try:
        return get_crypto().decrypt(token)
    except DecryptionError as exc:
        log.warning("Household %s: stored %s cannot be decrypted with the configured keys", settings.household_id, name)
        raise CredentialUnreadable(name) from exc


def secret_status(settings: HouseholdSettings | None, name: str) -> SecretStatus:
    """Describe a secret for display without revealing it."""
    label = SECRET_LABELS[name]
    try:
        value = get_secret(settings, name)
    except CredentialUnreadable:
        return SecretStatus(name, label, "unreadable")
    if value is None:
        return SecretStatus(name, label, "missing")
    hint = value[-HINT_LENGTH:] if len(value) > 2 * HINT_LENGTH else None
    return SecretStatus(name, label, "saved", hint)


@dataclass(frozen=True)
class RotationResult:
    """How many stored secrets were re-encrypted, and how many no key could read (left unchanged)."""

    rotated: int
    unreadable: int


def rotate_stored_secrets(crypto: Crypto | None = None) -> RotationResult:
    """Re-encrypt every stored secret with the newest key. The caller commits."""
    crypto = crypto or get_crypto()
    rotated = unreadable = 0
    for model, columns in ENCRYPTED_COLUMNS.items():
        for row in db.session.scalars(select(model)):
            for column in columns:
                token = getattr(row, column)
                if token is None:
                    continue
                try:
                    setattr(row, column, crypto.rotate(token))
                    rotated += 1
                except DecryptionError:
                    unreadable += 1
                    log.warning("%s %s.%s cannot be decrypted; left unchanged", model.__name__, getattr(row, "id", "?"), column)
    return RotationResult(rotated, unreadable)


class SettingsError(ValueError):
    """A settings value was rejected; `field` names it, the message is fit to show."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _cleaners() -> dict[str, Callable[[object], object]]:
    return {
        "amber_token": lambda v: clean_token(v, "Amber API token"),
        "teslemetry_token": lambda v: clean_token(v, "Teslemetry token"),
        "amber_site_id": clean_amber_site_id,
        "tesla_site_id": clean_tesla_site_id,
        "tesla_path": clean_tesla_path,
        "site_timezone": clean_timezone,
        "forecast_estimate": clean_estimate,
        "sync_enabled": bool,
        "change_threshold_cents": clean_threshold_cents,
        "export_protection": bool,
        "export_protection_rule": clean_export_protection_rule,
        "discharge_floor_percent": clean_percent,
    }


def apply_settings(household: Household, *, by: str | None = None, **changes: object) -> list[str]:
    """Validate and apply changes to a household's settings; return the names changed. The caller commits.

    Secrets given as None are removed; every value is validated before anything is changed."""
    cleaners = _cleaners()
    cleaned: dict[str, object] = {}
    for name, value in changes.items():
        if name not in cleaners:
            raise SettingsError(name, f"Unknown setting {name}.")
        if value is None and name in SECRET_COLUMNS:
            cleaned[name] = None
            continue
        try:
            cleaned[name] = cleaners[name](value)
        except ValueError as exc:
            raise SettingsError(name, str(exc)) from exc
    settings = settings_for(household)
    if cleaned.get("tesla_path") == "fleet" and not settings.tesla_refresh_token_enc:
        raise SettingsError("tesla_path", "Connect Tesla through the Fleet API before choosing it.")
    if "tesla_site_id" in cleaned and cleaned["tesla_site_id"] != settings.tesla_site_id:
        try:
            claim_tesla_site(household, cleaned["tesla_site_id"])  # type: ignore[arg-type]
        except PowerwallTaken as exc:
            raise SettingsError("tesla_site_id", str(exc)) from exc
        settings.tesla_reported_timezone = None  # it described the previous site
    for name, value in cleaned.items():
        if name in SECRET_COLUMNS:
            set_secret(settings, name, value)  # type: ignore[arg-type]
        else:
            setattr(settings, name, value)
    if cleaned.keys() & {"teslemetry_token", "tesla_path"}:
        unblock_tesla(household)
    if cleaned:
        log.info("Household %s changed settings: %s", household.id, ", ".join(sorted(cleaned)))
        if by is not None:
            words = [f"{SECRET_LABELS[n]} {'removed' if cleaned[n] is None else 'saved'}" if n in SECRET_COLUMNS else n.replace("_", " ")
                     for n in sorted(cleaned)]
            record_event(household, by, "settings", "Changed " + ", ".join(words) + ".", clock.now())
    return sorted(cleaned)


def unblock_tesla(household: Household) -> None:
    """Let the sync call Tesla again after the household changed what it had refused."""
    state = db.session.get(SyncState, household.id) if household.id is not None else None
    if state is not None and state.tesla_blocked_reason:
        state.tesla_blocked_reason = None
        state.tesla_retry_after = None  # the hourly check's time: the new credentials are tried at once
        log.info("Household %s: Tesla credentials changed; the sync may call Tesla again", household.id)
