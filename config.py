"""Configuration by environment. Every variable is documented in `.env.example`.

Values are read when a config object is created (not at import), so tests and the CLI can set the
environment first. `.env` in the project root is loaded when present; real environment variables win.
"""
from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env", override=False)

REGISTRATION_POLICIES = ("first-user", "open", "closed")
SCHEDULER_MODES = ("embedded", "off")


class ConfigError(Exception):
    """A configuration value is invalid; the message names the variable, never a secret value."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (_env(name, default) or default).lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// and postgresql:// URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    """Settings shared by every environment."""

    TESTING = False
    DEBUG = False
    PASSWORD_HASH_METHOD = "scrypt"  # werkzeug's scrypt with its default cost

    def __init__(self) -> None:
        data_dir = Path(_env("DATA_DIR", str(BASE_DIR / "data")) or "").expanduser()
        if not data_dir.is_absolute():
            data_dir = (BASE_DIR / data_dir).resolve()
        self.DATA_DIR = str(data_dir)
        # None means "generate once into DATA_DIR and reuse" (app/crypto.py).
        self.SECRET_KEY = _env("SECRET_KEY")
        self.FERNET_ENCRYPTION_KEY = _env("FERNET_ENCRYPTION_KEY")
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            _env("DATABASE_URL", f"sqlite:///{data_dir / 'tesla_amber_sync.db'}") or ""
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

        self.AMBER_API_URL = (_env("AMBER_API_URL") or "https://api.amber.com.au/v1").rstrip("/")
        self.TESLEMETRY_API_URL = (_env("TESLEMETRY_API_URL") or "https://api.teslemetry.com").rstrip("/")
        fleet = _env("TESLA_FLEET_API_URL")
        self.TESLA_FLEET_API_URL = fleet.rstrip("/") if fleet else None
        self.TESLA_AUTH_URL = (_env("TESLA_AUTH_URL") or "https://auth.tesla.com").rstrip("/")
        self.TESLA_TOKEN_URL = (
            _env("TESLA_TOKEN_URL") or "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
        )
        self.TESLA_CLIENT_ID = _env("TESLA_CLIENT_ID")
        self.TESLA_CLIENT_SECRET = _env("TESLA_CLIENT_SECRET")
        self.TESLA_REDIRECT_URI = _env("TESLA_REDIRECT_URI")
        self.APP_DOMAIN = _env("APP_DOMAIN")

        self.SCHEDULER = _choice("SCHEDULER", "embedded", SCHEDULER_MODES)
        self.REGISTRATION = _choice("REGISTRATION", "first-user", REGISTRATION_POLICIES)
        self.LOG_LEVEL = (_env("LOG_LEVEL") or "INFO").upper()

        # Sessions: HttpOnly and SameSite=Lax always; Secure is added per request when it
        # arrived over HTTPS (app/__init__.py), or always when SESSION_COOKIE_SECURE=true.
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = (_env("SESSION_COOKIE_SECURE") or "false").lower() == "true"
        self.PERMANENT_SESSION_LIFETIME = 30 * 24 * 3600
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.MAX_CONTENT_LENGTH = 1024 * 1024

        # Failed-login throttling (per account and per client address, over a sliding window).
        self.LOGIN_WINDOW_SECONDS = 15 * 60
        self.LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
        self.LOGIN_MAX_FAILURES_PER_IP = 20


class DevelopmentConfig(Config):
    """Local development: debug pages on, otherwise like production."""

    DEBUG = True


class TestingConfig(Config):
    """The test suite: its own database, no scheduler, CSRF still on."""

    TESTING = True
    # The same scheme at a lower cost, so the suite stays fast; never used outside tests.
    PASSWORD_HASH_METHOD = "scrypt:1024:8:1"

    def __init__(self) -> None:
        super().__init__()
        self.SCHEDULER = "off"
        self.SQLALCHEMY_DATABASE_URI = "sqlite://"


class ProductionConfig(Config):
    """Self-hosted deployments (the default)."""


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_for(name: str | None = None) -> Config:
    """The config object for APP_ENV (or `name`): production unless told otherwise."""
    key = (name or _env("APP_ENV") or "production").lower()
    if key not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)} (got {key!r})")
    return CONFIGS[key]()
