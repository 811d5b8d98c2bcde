"""Validation of values a user or operator types, shared by the web forms and the CLI.

Each `clean_*` returns the normalised value or raises ValueError with a message fit to show."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from app.models import EXPORT_PROTECTION_RULES, FORECAST_ESTIMATES, TESLA_PATHS

EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 128
TOKEN_MAX = 4096

# The most common passwords of breach lists; a longer list adds little for a home app.
COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password12", "password123", "12345678", "123456789",
        "1234567890", "qwertyuiop", "qwerty123", "11111111", "00000000", "iloveyou",
        "sunshine1", "princess1", "football1", "baseball1", "welcome1", "admin123",
        "abc12345", "letmein1", "passw0rd", "p@ssw0rd", "changeme", "trustno1",
        "powerwall", "tesla123", "amber123",
    }
)

AUSTRALIAN_TIMEZONES = (
    "Australia/Sydney",
    "Australia/Melbourne",
    "Australia/Brisbane",
    "Australia/Adelaide",
    "Australia/Hobart",
    "Australia/Darwin",
    "Australia/Perth",
    "Australia/Lord_Howe",
    "Australia/Broken_Hill",
)

_AMBER_SITE_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")
_TESLA_SITE_ID = re.compile(r"^[0-9]{1,20}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def clean_email(value: str | None) -> str:
    """A syntactically valid email, lower-cased (emails are unique case-insensitively)."""
    value = (value or "").strip()
    if not value:
        raise ValueError("Enter your email address.")
    if len(value) > EMAIL_MAX:
        raise ValueError(f"An email address has at most {EMAIL_MAX} characters.")
    if "\ufffd" in value:  # what the form parser leaves where the bytes were not valid UTF-8
        raise ValueError("Enter a valid email address; part of what was sent could not be read.")
    try:
        # No DNS look-up (the app may run offline); .test addresses are allowed for demos and tests.
        result = validate_email(
            value, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        raise ValueError("Enter a valid email address, like name@example.com.") from exc
    return result.normalized.lower()


def password_problems(password: str | None, email: str | None = None) -> list[str]:
    """Why a new password is too weak (an empty list when it is acceptable)."""
    password = password or ""
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"Use at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        problems.append(f"Use at most {PASSWORD_MAX} characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or (password and len(set(password)) == 1):
        problems.append("That password is too easy to guess.")
    if email and lowered == email.lower():
        problems.append("Do not use your email address as your password.")
    return problems


def clean_password(password: str | None, email: str | None = None) -> str:
    """The password unchanged, or ValueError naming every problem."""
    problems = password_problems(password, email)
    if problems:
        raise ValueError(" ".join(problems))
    return password or ""


def clean_token(value: str | None, label: str) -> str:
    """An API token: surrounding spaces removed, printable ASCII without spaces inside."""
    value = (value or "").strip()
    if not value:
        raise ValueError(f"Enter the {label}.")
    if len(value) > TOKEN_MAX:
        raise ValueError(f"That {label} is too long to be real ({len(value)} characters).")
    if not _TOKEN.match(value):
        raise ValueError(f"A {label} has no spaces or special characters; check what you pasted.")
    return value


def clean_amber_site_id(value: str | None) -> str | None:
    """An Amber site id (26-character ULID in practice), or None when empty."""
    value = (value or "").strip()
    if not value:
        return None
    if not _AMBER_SITE_ID.match(value):
        raise ValueError("An Amber site id has only letters and digits, like 01F5A5CRKMZ5BCX9P1S4V990AM.")
    return value


def clean_tesla_site_id(value: str | int | None) -> str | None:
    """A Tesla energy site id (digits), or None when empty."""
    value = str(value).strip() if value is not None else ""
    if not value:
        return None
    if not _TESLA_SITE_ID.match(value):
        raise ValueError("A Tesla energy site id is a number, like 1234567890123.")
    return value


def clean_timezone(value: str | None) -> str | None:
    """An IANA time zone name, or None to use the one Tesla reports."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        if len(value) > 64:  # no zone name is this long; ZoneInfo would hit the file system's limit
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"Unknown time zone; choose one like {AUSTRALIAN_TIMEZONES[0]}.") from exc
    return value


def clean_estimate(value: str | None) -> str:
    """Which of Amber's forecasts to plan with: low, predicted or high."""
    value = (value or "predicted").strip().lower()
    if value not in FORECAST_ESTIMATES:
        raise ValueError("Choose low, predicted or high.")
    return value


def clean_tesla_path(value: str | None) -> str:
    """Which way Tesla calls go first: teslemetry or fleet."""
    value = (value or "teslemetry").strip().lower()
    if value not in TESLA_PATHS:
        raise ValueError("Choose Teslemetry or the Tesla Fleet API.")
    return value


def clean_threshold_cents(value: object) -> float:
    """The push threshold in c/kWh: a number from 0 to 100."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise ValueError("Enter the threshold as a number of cents per kWh, like 0.5.") from exc
    if not 0 <= number <= 100 or number != number:
        raise ValueError("The threshold must be between 0 and 100 c/kWh.")
    return round(number, 2)


def clean_export_protection_rule(value: str | None) -> str:
    """What export protection sets: never (no export at all) or pv_only (solar may still export)."""
    value = (value or "never").strip().lower()
    if value not in EXPORT_PROTECTION_RULES:
        raise ValueError("Choose whether to export nothing or solar only.")
    return value


def clean_percent(value: object) -> int:
    """A whole percentage from 0 to 100."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise ValueError("Enter a whole percentage from 0 to 100.")
    return int(text)
