"""A backup before every SQLite upgrade (`flask db upgrade`, hence `make run` and the container start), kept
five deep, 0600; and the SQLite files are private whoever creates them."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.extensions import db
from tests.conftest import make_config

BEFORE = "0011_price_refusals"


def app_at(tmp_path: Path, revision: str | None):
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'live.db'}"))
    if revision:
        with app.app_context():
            upgrade(revision=revision)
            db.session.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, is_disabled, session_nonce, created_at) "
                "VALUES ('kept@example.com', 'x', true, false, 'n', '2026-11-24 00:00:00')"
            ))
            db.session.commit()
            db.engine.dispose()
    return app


def cli_upgrade(app):
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    with app.app_context():
        db.engine.dispose()
    return result


def backups(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "data" / "backups").glob("app-*.db"))


def revision_of(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        conn.close()


def test_an_upgrade_first_copies_the_database_and_says_where(tmp_path):
    app = app_at(tmp_path, BEFORE)
    result = cli_upgrade(app)
    assert result.exit_code == 0, result.output
    [copy] = backups(tmp_path)
    assert copy.name.startswith(f"app-{BEFORE}-") and copy.name.endswith("Z.db")
    assert str(copy) in result.output
    assert copy.stat().st_mode & 0o777 == 0o600
    assert revision_of(copy) == BEFORE  # the copy is the database as it was before
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT email FROM users").fetchall() == [("kept@example.com",)]
    conn.close()
    assert revision_of(tmp_path / "live.db") != BEFORE  # and the live one was upgraded


def test_the_newest_five_upgrade_backups_are_kept(tmp_path):
    app = app_at(tmp_path, BEFORE)
    folder = tmp_path / "data" / "backups"
    folder.mkdir(parents=True)
    for day in range(1, 7):
        (folder / f"app-0001_accounts-202601{day:02d}T000000Z.db").write_bytes(b"old")
    assert cli_upgrade(app).exit_code == 0
    names = [p.name for p in backups(tmp_path)]
    assert len(names) == 5
    assert any(n.startswith(f"app-{BEFORE}-") for n in names)
    assert "app-0001_accounts-20260101T000000Z.db" not in names and "app-0001_accounts-20260102T000000Z.db" not in names


def test_no_backup_for_a_new_database_or_one_already_at_head(tmp_path):
    app = app_at(tmp_path, None)
    result = cli_upgrade(app)
    assert result.exit_code == 0 and "nothing to back up" in result.output
    result = cli_upgrade(app)
    assert result.exit_code == 0 and "no backup needed" in result.output
    assert backups(tmp_path) == []


def test_a_database_with_tables_but_no_revision_is_copied_too(tmp_path):
    # Not made by these migrations (or by hand): the upgrade may well fail on it, so keep it as it was.
    conn = sqlite3.connect(tmp_path / "live.db")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'live.db'}"))
    result = cli_upgrade(app)
    [copy] = backups(tmp_path)
    assert copy.name.startswith("app-unversioned-") and str(copy) in result.output
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
    conn.close()


def test_a_failed_backup_stops_the_upgrade(tmp_path):
    app = app_at(tmp_path, BEFORE)
    (tmp_path / "data" / "backups").write_text("a file where the folder should be")
    result = cli_upgrade(app)
    assert result.exit_code != 0
    assert "The upgrade did not run" in result.output and "Traceback" not in result.output
    assert revision_of(tmp_path / "live.db") == BEFORE


def test_postgresql_is_told_to_use_pg_dump(tmp_path, monkeypatch):
    from app import cli

    app = create_app(make_config(tmp_path, "postgresql+psycopg://tas:secret-pw@127.0.0.1:1/tas"))
    with app.test_request_context():
        from click.testing import CliRunner

        runner = CliRunner()
        import click

        @click.command()
        def probe():
            cli._backup_before_upgrade(None, False, "head")

        result = runner.invoke(probe)
    assert "pg_dump" in result.output and "secret-pw" not in result.output


def test_sqlite_files_are_private_whoever_creates_them(tmp_path):
    old = os.umask(0o022)
    try:
        app = app_at(tmp_path, "0001_accounts")
        with app.app_context():
            db.session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            db.session.execute(text("INSERT INTO scratch VALUES (1)"))
            db.session.commit()
            live = tmp_path / "live.db"
            files = [live, live.with_name("live.db-wal"), live.with_name("live.db-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
            db.engine.dispose()
        # a database an older version left world-readable is tightened when the app starts
        for f in files:
            if f.exists():
                f.chmod(0o644)
        create_app(make_config(tmp_path, f"sqlite:///{live}"))
        assert all(f.stat().st_mode & 0o777 == 0o600 for f in files if f.exists())
    finally:
        os.umask(old)


def test_sqlite_opens_a_new_database_file_that_is_already_private(tmp_path):
    # SQLite creates a missing file 0644 (less the umask); tightened afterwards, it would be readable by any
    # account for a moment, and a descriptor opened then stays open. So the file exists, 0600, first.
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    modes: list[int | None] = []

    def look(dialect, connection_record, cargs, cparams):  # runs after the app's, just before SQLite opens
        path = Path(cargs[0])
        modes.append(path.stat().st_mode & 0o777 if path.exists() else None)

    event.listen(Engine, "do_connect", look)
    old = os.umask(0o022)
    try:
        app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'new.db'}"))
        assert not (tmp_path / "new.db").exists()  # creating the app alone makes no database
        with app.app_context():
            db.session.execute(text("CREATE TABLE scratch (x INTEGER)"))
            db.session.commit()
            db.engine.dispose()
    finally:
        event.remove(Engine, "do_connect", look)
        os.umask(old)
    assert modes and modes[0] == 0o600
    assert (tmp_path / "new.db").stat().st_mode & 0o777 == 0o600
