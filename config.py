"""Configuration by environment. Every variable is documented in `.env.example`.

Values are read when a config object is created (not at import), so tests and the CLI can set the
environment first. `.env` in the project root is loaded when present; real environment variables win.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env", override=False)

REGISTRATION_POLICIES = ("first-user", "open", "closed")
SCHEDULER_MODES = ("embedded", "off")
SYNC_MODES = ("leader", "claims")
LOG_FORMATS = ("text", "json")
METRICS_TOKEN_MIN_LENGTH = 16
MAX_RETENTION_DAYS = 36500  # a century: beyond it the cutoff date would overflow


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


def _number(
    name: str, default: float, *, minimum: float, maximum: float | None = None, integer: bool = False
) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a{'n integer' if integer else ' number'} (got {raw!r})") from None
    # NaN compares false with every bound and "inf" passes a minimum: neither is a setting.
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number (got {raw!r})")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g} (got {raw!r})")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g} (got {raw!r})")
    return value


def _days(name: str, default: int) -> int:
    """A retention period in whole days, from 1 to MAX_RETENTION_DAYS."""
    days = int(_number(name, default, minimum=1, integer=True))
    if days > MAX_RETENTION_DAYS:
        raise ConfigError(f"{name} must be at most {MAX_RETENTION_DAYS} days (got {days})")
    return days


def _proxy_hops(raw: str | None) -> int:
    """TRUST_PROXY: off/false/0 (default) -> 0, on/true/yes -> 1, or a number of proxies in front."""
    value = (raw or "0").lower()
    if value in ("0", "false", "no", "off"):
        return 0
    if value in ("true", "yes", "on"):
        return 1
    if value.isdigit() and int(value) <= 10:
        return int(value)
    raise ConfigError(f"TRUST_PROXY must be true/false or a number of proxies from 0 to 10 (got {raw!r})")


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgres:// and postgresql:// URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class MqttBroker:
    """Where MQTT_URL points; `repr` and `where` leave the password out (it must never reach a log)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The broker as logs and messages name it: scheme, host and port, no credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttBroker:
    """mqtt://user:pass@host:1883 or mqtts://… (TLS, port 8883 by default) -> MqttBroker, else ConfigError.

    The error messages never quote the URL: it holds the broker's password."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError("MQTT_URL has an invalid port; use mqtt://user:password@host:1883") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError("MQTT_URL must start with mqtt:// or mqtts:// (TLS), e.g. mqtt://user:password@host:1883")
    if not parts.hostname:
        raise ConfigError("MQTT_URL has no host; use mqtt://user:password@host:1883")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("MQTT_URL must be only mqtt(s)://[user:password@]host[:port]")
    tls = parts.scheme == "mqtts"
    return MqttBroker(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


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
        self._scheduler_timing()
        self.REGISTRATION = _choice("REGISTRATION", "first-user", REGISTRATION_POLICIES)
        self.LOG_LEVEL = (_env("LOG_LEVEL") or "INFO").upper()
        self.LOG_FORMAT = _choice("LOG_FORMAT", "text", LOG_FORMATS)
        self.TRUST_PROXY = _proxy_hops(_env("TRUST_PROXY"))
        self.METRICS_TOKEN = _env("METRICS_TOKEN")
        if self.METRICS_TOKEN is not None and len(self.METRICS_TOKEN) < METRICS_TOKEN_MIN_LENGTH:
            raise ConfigError(f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters")

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

        # Python's cyclic garbage collector: collect the youngest generation after this many new container
        # objects (Python's default is 700). A sync allocates tens of thousands per household, so the default
        # ran a full collection over the whole heap every few dozen households (about 14 % of a tick's CPU in
        # scripts/bench_sync.py); reference counting still frees almost everything at once. 0 keeps Python's.
        self.GC_THRESHOLD = int(_number("GC_THRESHOLD", 50_000, minimum=0, maximum=10_000_000, integer=True))

        # The sync (app/sync/engine.py).
        # I/O-bound (each user waits on Amber and Tesla): measured, PostgreSQL needs 32 for 1,000 users a tick.
        self.SYNC_MAX_WORKERS = int(_number("SYNC_MAX_WORKERS", 32, minimum=1, integer=True))
        # More sync workers on PostgreSQL (app/sync/claims.py, `flask sync worker`): "leader" (the default,
        # and always on SQLite) syncs every household in the scheduler's leader; "claims" lets worker
        # processes claim households in batches and share each tick.
        self.SYNC_MODE = _choice("SYNC_MODE", "leader", SYNC_MODES)
        self.SYNC_CLAIM_BATCH = int(_number("SYNC_CLAIM_BATCH", self.SYNC_MAX_WORKERS, minimum=1, maximum=10_000, integer=True))
        # A dead worker's claims expire after this and another worker takes its households over (within a tick).
        self.SYNC_CLAIM_TTL_SECONDS = _number("SYNC_CLAIM_TTL_SECONDS", 150, minimum=1, maximum=3600)
        self.SYNC_WORKER_POLL_SECONDS = _number("SYNC_WORKER_POLL_SECONDS", 5, minimum=0.05, maximum=300)
        self.SYNC_WORKER_BATCH_JOB = _env("SYNC_WORKER_BATCH_JOB")  # tests only: "module:function"
        self.SQLALCHEMY_ENGINE_OPTIONS = {}  # stale connections: app.ping_idle_connections
        # Database trouble fails fast instead of hanging a page or a sync: connecting gives up after
        # DB_CONNECT_TIMEOUT_SECONDS, a PostgreSQL statement after DB_STATEMENT_TIMEOUT_SECONDS, and a
        # SQLite writer waits DB_BUSY_TIMEOUT_SECONDS for another writer to finish.
        # libpq and psycopg wait at least 2 s whatever is asked; an hour is no longer "failing fast".
        self.DB_CONNECT_TIMEOUT_SECONDS = _number("DB_CONNECT_TIMEOUT_SECONDS", 5, minimum=2, maximum=3600, integer=True)
        self.DB_STATEMENT_TIMEOUT_SECONDS = _number("DB_STATEMENT_TIMEOUT_SECONDS", 15, minimum=1, maximum=3600)
        self.DB_BUSY_TIMEOUT_SECONDS = _number("DB_BUSY_TIMEOUT_SECONDS", 30, minimum=1, maximum=3600)
        # Retention (app/retention.py, hourly): rows older than this many days are deleted.
        self.PRICE_RETENTION_DAYS = _days("PRICE_RETENTION_DAYS", 400)
        self.SYNC_RUN_RETENTION_DAYS = _days("SYNC_RUN_RETENTION_DAYS", 90)
        # A user's newest pushes are kept whatever their age (the dashboard and the sync compare with them).
        self.TARIFF_PUSH_RETENTION_DAYS = _days("TARIFF_PUSH_RETENTION_DAYS", 365)
        # The Money page's metered usage and energy history (about 320,000 rows a year per household).
        self.MONEY_RETENTION_DAYS = _days("MONEY_RETENTION_DAYS", 1100)
        self.RETENTION_BATCH_SIZE = 5000  # rows per DELETE, committed one by one so SQLite writers wait briefly
        self.SYNC_USER_DEADLINE_SECONDS = 90  # one user's sync stops before its next call after this
        self.SYNC_REFRESH_MINUTES = 60  # push an unchanged tariff again after this long
        self.SYNC_STALE_MINUTES = 45  # after this long without fresh prices, push the flat fallback
        self.SYNC_READBACK_HOURS = 6  # compare with the tariff read back from Tesla this often
        # Seconds to wait before each re-poll for the confirmed 5-minute price: 2 calls + 4 re-polls
        # stay within 6 Amber calls per interval, and with the tick 3 s after the boundary the polls
        # land about 13, 23, 38 and 53 s in, so a price confirmed 10-53 s in is seen within 15 s.
        self.AMBER_CONFIRM_POLL_WAITS = (10.0, 10.0, 15.0, 15.0)
        self.EXPORT_PROTECTION_HOLD_MINUTES = 10  # hysteresis before exports are allowed again
        # Price sanity (app/price_sanity.py): a general price outside these c/kWh (feed-in: the mirror) is
        # refused as impossible. Defaults: the NEM cap and floor plus network charges, GST and a margin.
        self.PRICE_MIN_CENTS = _number("PRICE_MIN_CENTS", -150.0, minimum=-100000)
        self.PRICE_MAX_CENTS = _number("PRICE_MAX_CENTS", 2500.0, minimum=-100000)
        if self.PRICE_MIN_CENTS >= self.PRICE_MAX_CENTS:
            raise ConfigError("PRICE_MIN_CENTS must be below PRICE_MAX_CENTS")
        # A heartbeat monitor (healthchecks.io, Uptime Kuma push) pinged after every tick; off when empty.
        self.HEALTHCHECK_PING_URL = _env("HEALTHCHECK_PING_URL")
        if self.HEALTHCHECK_PING_URL and not self.HEALTHCHECK_PING_URL.startswith(("http://", "https://")):
            raise ConfigError("HEALTHCHECK_PING_URL must be an http(s) URL")
        # Home Assistant over MQTT (app/mqtt/): off unless MQTT_URL is set. The URL holds the broker's password,
        # so errors name the variable and never the value.
        self.MQTT_URL = _env("MQTT_URL")
        if self.MQTT_URL is not None:
            parse_mqtt_url(self.MQTT_URL)  # a clear ConfigError now, not a failed connection at the first tick
        self.MQTT_DISCOVERY_PREFIX = (_env("MQTT_DISCOVERY_PREFIX") or "homeassistant").strip("/")
        if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", self.MQTT_DISCOVERY_PREFIX):
            raise ConfigError("MQTT_DISCOVERY_PREFIX must be an MQTT topic of letters, digits, _ and - (e.g. homeassistant)")
        # Households: how long an invitation link can be used.
        self.INVITATION_DAYS = int(_number("INVITATION_DAYS", 7, minimum=1, integer=True))

    def _scheduler_timing(self) -> None:
        # Ticks follow Amber's 5-minute intervals; the knobs exist so tests can run ticks every second.
        tick = int(_number("SCHEDULER_TICK_SECONDS", 300, minimum=1, integer=True))
        if 3600 % tick:
            raise ConfigError(f"SCHEDULER_TICK_SECONDS must divide an hour (got {tick})")
        delay = _number("SCHEDULER_TICK_DELAY_SECONDS", 3, minimum=0)
        if delay >= tick:
            raise ConfigError("SCHEDULER_TICK_DELAY_SECONDS must be shorter than SCHEDULER_TICK_SECONDS")
        ttl = _number("SCHEDULER_LEASE_TTL_SECONDS", 60, minimum=0.1)
        renew = _number("SCHEDULER_LEASE_RENEW_SECONDS", 15, minimum=0.05)
        if renew >= ttl:
            raise ConfigError("SCHEDULER_LEASE_RENEW_SECONDS must be shorter than SCHEDULER_LEASE_TTL_SECONDS")
        self.SCHEDULER_TICK_SECONDS = tick
        self.SCHEDULER_TICK_DELAY_SECONDS = delay
        self.SCHEDULER_LEASE_TTL_SECONDS = ttl
        self.SCHEDULER_LEASE_RENEW_SECONDS = renew
        # Tests only: "module:function" called instead of app.sync.run_tick.
        self.SCHEDULER_TICK_JOB = _env("SCHEDULER_TICK_JOB")


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
