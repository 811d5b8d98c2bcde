"""`flask db backup PATH`: SQLite's online backup while the app writes, restore from the copy, refusals
and clear errors; PostgreSQL gets the pg_dump command instead (the command never runs pg_dump itself)."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, text

from app import create_app
from app.extensions import db
from config import BASE_DIR
from tests.conftest import make_config

BATCH = 25  # rows per writer transaction: a copy holding a part of one was not consistent

scratch = MetaData()
writes = Table("backup_test_writes", scratch, Column("id", Integer, primary_key=True), Column("batch", Integer, nullable=False))


def sqlite_app(tmp_path: Path, *, migrate: bool = False) -> Flask:
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'live.db'}"))
    with app.app_context():
        if migrate:
            result = app.test_cli_runner().invoke(args=["db", "upgrade"])
            assert result.exit_code == 0, result.output
        else:
            db.create_all()
        scratch.create_all(db.engine)
    return app


def backup(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["db", "backup", *args])


def count_rows(path: Path) -> tuple[int, int, str, str]:
    """(rows, distinct batches, integrity check, journal mode) of a copy, opened read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows, batches = conn.execute("SELECT count(*), count(DISTINCT batch) FROM backup_test_writes").fetchone()
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return rows, batches, check, mode


def test_sqlite_backup_is_a_consistent_copy_while_the_app_writes(tmp_path):
    app = sqlite_app(tmp_path)
    # Another connection pool, as another worker or the scheduler would be: whole batches, one per transaction.
    writer_engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    committed = [0]
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                with writer_engine.begin() as conn:
                    conn.execute(insert(writes), [{"batch": committed[0]} for _ in range(BATCH)])
                committed[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    with writer_engine.begin() as conn:  # some volume, so a backup takes a moment
        conn.execute(insert(writes), [{"batch": -1 - i // BATCH} for i in range(40 * BATCH)])
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    copies = []
    try:
        deadline = time.monotonic() + 10
        while committed[0] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        for n in range(5):
            before = committed[0]
            target = tmp_path / f"backup-{n}.db"
            result = backup(app, str(target))
            after = committed[0]
            assert result.exit_code == 0, result.output
            assert f"to {target}" in result.output and "fernet.key" in result.output
            copies.append((target, before, after))
    finally:
        stop.set()
        thread.join(timeout=10)
        writer_engine.dispose()
        with app.app_context():
            db.engine.dispose()
    assert not failures, failures
    assert copies[-1][2] > copies[0][1], "the writer made no progress during the backups"
    for target, before, after in copies:
        rows, batches, check, mode = count_rows(target)
        assert check == "ok" and mode == "delete"  # one self-contained file, no -wal needed
        assert rows % BATCH == 0 and rows == batches * BATCH  # only whole transactions
        assert 40 * BATCH + before * BATCH <= rows <= 40 * BATCH + (after + 1) * BATCH
        assert target.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.partial"))


def test_restore_is_the_copy_in_place_of_the_database(tmp_path):
    """What docs/deployment.md says: stop, put the copy where the database was, start; tokens still decrypt."""
    app = sqlite_app(tmp_path, migrate=True)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "create", "op@example.com", "--password", "operator secret"]).exit_code == 0
    result = runner.invoke(args=["users", "configure", "op@example.com", "--amber-token", "psk_" + "ab" * 16])
    assert result.exit_code == 0, result.output
    target = tmp_path / "backup.db"
    assert backup(app, str(target)).exit_code == 0
    with app.app_context():
        db.engine.dispose()

    restored = tmp_path / "restored"
    restored.mkdir()
    target.replace(restored / "live.db")
    config = make_config(tmp_path, f"sqlite:///{restored / 'live.db'}")  # same DATA_DIR, so the same fernet.key
    again = create_app(config)
    try:
        listing = again.test_cli_runner().invoke(args=["users", "list"])
        assert listing.exit_code == 0 and "op@example.com" in listing.output and "amber=saved" in listing.output
        assert "psk_" not in listing.output
        with again.app_context():
            version = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == ScriptDirectory(str(BASE_DIR / "migrations")).get_current_head()
    finally:
        with again.app_context():
            db.engine.dispose()


def test_backup_refuses_to_overwrite_unless_forced(tmp_path):
    app = sqlite_app(tmp_path)
    target = tmp_path / "backup.db"
    target.write_text("an older backup")
    result = backup(app, str(target))
    assert result.exit_code != 0
    assert "already exists; use --force" in result.output
    assert target.read_text() == "an older backup"

    result = backup(app, "--force", str(target))
    assert result.exit_code == 0, result.output
    assert count_rows(target)[2] == "ok"
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing-dir/backup.db", "does not exist"),
        ("live.db", "is the live database"),
        ("live.db-wal", "is the live database"),
        (".", "is a directory"),
    ],
)
def test_backup_errors_are_clear(tmp_path, path, message):
    app = sqlite_app(tmp_path)
    result = backup(app, str(tmp_path / path))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        db.engine.dispose()


def test_an_in_memory_database_has_nothing_to_back_up(tmp_path):
    app = create_app(make_config(tmp_path, "sqlite://"))
    result = backup(app, str(tmp_path / "backup.db"))
    assert result.exit_code != 0 and "in memory" in result.output
    assert not (tmp_path / "backup.db").exists()


def test_a_database_not_created_yet_is_named(tmp_path):
    app = create_app(make_config(tmp_path, f"sqlite:///{tmp_path / 'never.db'}"))
    result = backup(app, str(tmp_path / "backup.db"))
    assert result.exit_code != 0 and "flask db upgrade creates it" in result.output
    assert not (tmp_path / "never.db").exists()


def test_postgresql_gets_the_pg_dump_command_without_the_password(tmp_path):
    url = "postgresql+psycopg://tas:s3cret-pass@db.internal:5433/tas"
    app = create_app(make_config(tmp_path, url))
    result = backup(app, str(tmp_path / "tas.dump"))
    assert result.exit_code == 1
    assert "pg_dump --format=custom" in result.output
    assert "--host=db.internal --port=5433 --username=tas --dbname=tas" in result.output
    assert "docker compose exec -T postgres pg_dump" in result.output and "pg_restore" in result.output
    assert "s3cret-pass" not in result.output
    assert not (tmp_path / "tas.dump").exists()


def test_backup_is_listed_once_in_the_db_group(tmp_path):
    create_app(make_config(tmp_path, "sqlite://"))  # a second app must not register it again
    app = create_app(make_config(tmp_path, "sqlite://"))
    result = app.test_cli_runner().invoke(args=["db", "--help"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines() if line.strip().startswith("backup")] == ["backup"]
