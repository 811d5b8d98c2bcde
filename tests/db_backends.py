"""Test databases: SQLite always, PostgreSQL too when TEST_DATABASE_URL is set.

Each PostgreSQL test database is created fresh (and dropped afterwards) on the server that
TEST_DATABASE_URL names, so runs never see each other's rows and the named database stays clean."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from config import normalise_database_url

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "").strip() or None
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def _admin_connect():
    import psycopg

    url = make_url(normalise_database_url(POSTGRES_URL or ""))
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
        connect_timeout=5,
    )


@contextmanager
def fresh_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database on `backend`; remove it afterwards."""
    if backend == "sqlite":
        path = tmp_dir / f"test-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    name = f"tas_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_database_url(POSTGRES_URL or "")).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
