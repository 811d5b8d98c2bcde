"""Standard fixtures: app, db, client, CLI runner, users and a signed-in client.

Every test that uses `app` runs once per database backend (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db as _db
from config import TestingConfig
from tests.db_backends import BACKENDS, POSTGRES_URL, fresh_database

TEST_PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def pytest_report_header(config) -> str:
    if POSTGRES_URL:
        return "database backends: sqlite, postgresql (TEST_DATABASE_URL)"
    return "database backends: sqlite only (TEST_DATABASE_URL not set, PostgreSQL tests not run)"


def pytest_terminal_summary(terminalreporter) -> None:
    if not POSTGRES_URL:
        terminalreporter.write_line(
            "NOTE: ran on SQLite only; set TEST_DATABASE_URL=postgresql://... to run on PostgreSQL too."
        )


class FakeClock:
    """A settable clock for tests."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **kwargs) -> None:
        from datetime import timedelta

        self.current += timedelta(**kwargs)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """One database per backend for the whole run; tables are created once."""
    with fresh_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


def make_config(tmp_path, database_url: str, **overrides) -> TestingConfig:
    """A TestingConfig on `database_url` with DATA_DIR in `tmp_path`."""
    config = TestingConfig()
    config.DATA_DIR = str(tmp_path / "data")
    config.SQLALCHEMY_DATABASE_URI = database_url
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


_created: set[str] = set()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc))


@pytest.fixture()
def app(tmp_path, database_url, clock) -> Iterator[Flask]:
    """The app on a clean database with an injected clock."""
    application = create_app(make_config(tmp_path, database_url))
    application.extensions["clock"] = clock
    application.extensions["sleep"] = lambda seconds: clock.advance(seconds=seconds)
    with application.app_context():
        if database_url not in _created:
            _db.drop_all()
            _db.create_all()
            _created.add(database_url)
        for table in reversed(_db.metadata.sorted_tables):
            _db.session.execute(table.delete())
        _db.session.commit()
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture()
def db(app):
    """The database, inside an app context."""
    with app.app_context():
        yield _db


@pytest.fixture()
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def runner(app):
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the form on `path`."""
    response = client.get(path)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no csrf token on {path} (status {response.status_code})"
    return match.group(1) or match.group(2)


def create_user(app: Flask, email: str, password: str = TEST_PASSWORD, *, admin: bool = False) -> int:
    """Create an account directly through the accounts service; return its id."""
    from app import accounts

    with app.app_context():
        user = accounts.create_user(email, password, is_admin=admin)
        _db.session.commit()
        return user.id


def household_id_for(app: Flask, user_id: int) -> int:
    """The id of the household the account owns, made on first use (as the pages and `flask users configure` do)."""
    from app import clock
    from app.households import owned_or_new
    from app.models import User

    with app.app_context():
        household = owned_or_new(_db.session.get(User, user_id), clock.now())
        _db.session.commit()
        return household.id


def owned_household(user_id: int):
    """Inside an app context: the household the account owns (made on first use), as the pages see it."""
    from app import clock
    from app.households import owned_or_new
    from app.models import User

    return owned_or_new(_db.session.get(User, user_id), clock.now())


def login(client: FlaskClient, email: str, password: str = TEST_PASSWORD, **kwargs):
    """Sign in through the real form."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


@pytest.fixture()
def admin_id(app) -> int:
    """The first account (an administrator)."""
    return create_user(app, "admin@example.com")


@pytest.fixture()
def user_id(app, admin_id) -> int:
    """An ordinary account, created after the administrator."""
    return create_user(app, "alice@example.com")


@pytest.fixture()
def household_id(app, user_id) -> int:
    """The household alice@example.com owns."""
    return household_id_for(app, user_id)


@pytest.fixture()
def admin_household_id(app, admin_id) -> int:
    """The household the administrator owns."""
    return household_id_for(app, admin_id)


@pytest.fixture()
def user_client(client, user_id) -> FlaskClient:
    """A client signed in as the ordinary user alice@example.com."""
    response = login(client, "alice@example.com")
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture()
def admin_client(app, admin_id) -> FlaskClient:
    """A client signed in as the administrator."""
    c = app.test_client()
    assert login(c, "admin@example.com").status_code == 302
    return c
