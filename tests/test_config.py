"""Configuration by environment."""
from __future__ import annotations

import pytest

import config as config_module
from config import ConfigError, DevelopmentConfig, ProductionConfig, config_for, normalise_database_url

VARIABLES = [
    "APP_ENV", "DATA_DIR", "DATABASE_URL", "SECRET_KEY", "FERNET_ENCRYPTION_KEY", "AMBER_API_URL",
    "TESLEMETRY_API_URL", "TESLA_FLEET_API_URL", "TESLA_AUTH_URL", "TESLA_TOKEN_URL", "TESLA_CLIENT_ID",
    "TESLA_CLIENT_SECRET", "TESLA_REDIRECT_URI", "APP_DOMAIN", "SCHEDULER", "REGISTRATION", "LOG_LEVEL",
    "SESSION_COOKIE_SECURE", "SYNC_MAX_WORKERS", "PRICE_RETENTION_DAYS", "SYNC_RUN_RETENTION_DAYS",
    "TARIFF_PUSH_RETENTION_DAYS", "SCHEDULER_TICK_SECONDS", "SCHEDULER_TICK_DELAY_SECONDS",
    "SCHEDULER_LEASE_TTL_SECONDS", "SCHEDULER_LEASE_RENEW_SECONDS", "SCHEDULER_TICK_JOB",
    "LOG_FORMAT", "TRUST_PROXY", "METRICS_TOKEN",  # observability and proxy
    "DB_WAIT_SECONDS", "RUN_MIGRATIONS", "POSTGRES_PASSWORD",  # Docker entrypoint and compose
    "GC_THRESHOLD",
]


@pytest.fixture()
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    config = config_for()
    assert isinstance(config, ProductionConfig) and not config.DEBUG
    assert config.DATA_DIR.endswith("/data")
    assert config.SQLALCHEMY_DATABASE_URI == f"sqlite:///{config.DATA_DIR}/tesla_amber_sync.db"
    assert config.AMBER_API_URL == "https://api.amber.com.au/v1"
    assert config.TESLEMETRY_API_URL == "https://api.teslemetry.com"
    assert config.TESLA_FLEET_API_URL is None
    assert config.TESLA_AUTH_URL == "https://auth.tesla.com"
    assert config.TESLA_TOKEN_URL == "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
    assert config.SCHEDULER == "embedded" and config.REGISTRATION == "first-user"
    assert config.SECRET_KEY is None and config.FERNET_ENCRYPTION_KEY is None


def test_environment_overrides(clean_env, tmp_path):
    clean_env.setenv("DATA_DIR", str(tmp_path))
    clean_env.setenv("AMBER_API_URL", "http://127.0.0.1:5055/amber/v1/")
    clean_env.setenv("TESLA_FLEET_API_URL", "http://127.0.0.1:5055/tesla")
    clean_env.setenv("SCHEDULER", "OFF")
    clean_env.setenv("REGISTRATION", "open")
    clean_env.setenv("DATABASE_URL", "postgresql://u:p@db:5432/tas")
    config = config_for("development")
    assert isinstance(config, DevelopmentConfig) and config.DEBUG
    assert config.DATA_DIR == str(tmp_path)
    assert config.AMBER_API_URL == "http://127.0.0.1:5055/amber/v1"
    assert config.TESLA_FLEET_API_URL == "http://127.0.0.1:5055/tesla"
    assert config.SCHEDULER == "off" and config.REGISTRATION == "open"
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u:p@db:5432/tas"


@pytest.mark.parametrize(("name", "value"), [("SCHEDULER", "twice"), ("REGISTRATION", "maybe"), ("APP_ENV", "staging")])
def test_invalid_values_fail_fast_naming_the_variable(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        config_for()


def test_testing_config_never_runs_the_scheduler(clean_env):
    clean_env.setenv("SCHEDULER", "embedded")
    assert config_module.TestingConfig().SCHEDULER == "off"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////data/x.db", "sqlite:////data/x.db"),
    ],
)
def test_database_url_uses_psycopg3(url, expected):
    assert normalise_database_url(url) == expected


def test_env_example_documents_every_variable():
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines()
    for name in VARIABLES:
        index = next((i for i, line in enumerate(lines) if line.startswith(f"{name}=")), None)
        assert index is not None, f"{name} is not in .env.example"
        assert lines[index - 1].startswith("# "), f"{name} has no comment line above it"


DB_TIMEOUTS = ["DB_CONNECT_TIMEOUT_SECONDS", "DB_STATEMENT_TIMEOUT_SECONDS", "DB_BUSY_TIMEOUT_SECONDS"]


def test_database_timeouts_default_to_failing_fast(clean_env):
    for name in DB_TIMEOUTS:
        clean_env.delenv(name, raising=False)
    config = config_for()
    assert (config.DB_CONNECT_TIMEOUT_SECONDS, config.DB_STATEMENT_TIMEOUT_SECONDS, config.DB_BUSY_TIMEOUT_SECONDS) == (5, 15, 30)
    clean_env.setenv("DB_STATEMENT_TIMEOUT_SECONDS", "2.5")
    assert config_for().DB_STATEMENT_TIMEOUT_SECONDS == 2.5


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DB_CONNECT_TIMEOUT_SECONDS", "0", "at least 2"),
        ("DB_CONNECT_TIMEOUT_SECONDS", "1", "at least 2"),  # the driver would wait 2 s anyway
        ("DB_CONNECT_TIMEOUT_SECONDS", "2.5", "integer"),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "-1", "at least 1"),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "nan", "finite"),  # would pass "at least 1" and crash the app later
        ("DB_STATEMENT_TIMEOUT_SECONDS", "inf", "finite"),
        ("DB_STATEMENT_TIMEOUT_SECONDS", "1e12", "at most 3600"),  # beyond what PostgreSQL accepts
        ("DB_BUSY_TIMEOUT_SECONDS", "soon", "number"),
        ("DB_BUSY_TIMEOUT_SECONDS", "0", "at least 1"),
        ("PRICE_MIN_CENTS", "nan", "finite"),  # a NaN bound would let every price through
        ("GC_THRESHOLD", "-1", "at least 0"),
        ("GC_THRESHOLD", "1e4", "integer"),
    ],
)
def test_invalid_numbers_fail_fast_naming_the_variable(clean_env, name, value, says):
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name} must be .*{says}"):
        config_for()


@pytest.mark.parametrize(("setting", "expected_young"), [(25_000, 25_000), (0, 1234)])
def test_the_app_lets_the_young_generation_grow_before_collecting(tmp_path, setting, expected_young):
    # With Python's default of 700 a sync tick ran a full collection over the whole heap every few dozen
    # households; the app sets GC_THRESHOLD (default 50,000) for its process, and 0 leaves Python's alone.
    import gc

    from app import create_app
    from tests.conftest import make_config

    before = gc.get_threshold()
    gc.set_threshold(1234, 7, 9)
    try:
        create_app(make_config(tmp_path, "sqlite://", GC_THRESHOLD=setting))
        assert gc.get_threshold() == (expected_young, 7, 9)  # the older generations keep their ratios
    finally:
        gc.set_threshold(*before)


def test_the_garbage_collector_setting_defaults_to_a_large_young_generation(clean_env):
    assert config_for().GC_THRESHOLD == 50_000
    clean_env.setenv("GC_THRESHOLD", "0")
    assert config_for().GC_THRESHOLD == 0
