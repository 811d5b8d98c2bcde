"""Every migration keeps every row: for each earlier revision, a database at that revision is filled with
realistic rows in every table, upgraded to head, and compared row by row, column by column, on SQLite and
PostgreSQL. A new migration is covered the day it is written (the revisions are read from the scripts);
one that changes values on purpose declares it in RENAMED / CHANGED below."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from config import BASE_DIR
from tests.conftest import make_config
from tests.db_backends import BACKENDS, fresh_database

SCRIPTS = ScriptDirectory(str(BASE_DIR / "migrations"))
HEAD = SCRIPTS.get_current_head()
REVISIONS = [r.revision for r in reversed(list(SCRIPTS.walk_revisions()))]  # oldest first
ROWS = 3
T0 = datetime(2026, 11, 20, 3, 0)

# Columns a later migration renames: {revision: {table: {old: new}}}.
PER_HOUSEHOLD = ("user_settings", "service_status", "sync_states", "sync_runs", "tariff_pushes", "api_call_counts",
                 "tesla_readings", "force_sessions", "control_events")
RENAMED = {"0012_households": {table: {"user_id": "household_id"} for table in PER_HOUSEHOLD}}
# Values a migration changes on purpose: {revision: {(table, column): expected value after}}.
CHANGED: dict[str, dict[tuple[str, str], Any]] = {}

# Values that satisfy the CHECK constraints and read like the real thing.
CHOICES = {
    "state": None, "action": "force_charge", "forecast_estimate": "predicted",
    "tesla_path": "teslemetry", "export_protection_rule": "never", "status_class": "2xx", "role": "owner",
    "kind": None, "verification": "responding", "channel": "general", "service": None, "spike_status": "none",
    "quality": "billable",
}
STATES = {"force_sessions": "ended", "service_status": "connected"}
SERVICES = ("amber", "tesla", "teslemetry")


def realistic(table: str, column: sa.Column, i: int) -> Any:
    """A value for row `i` of `column`: unique per row where it could be unique, plausible everywhere."""
    name, kind = column.name, column.type
    if name == "state":
        return STATES.get(table, "connected")
    if name == "outcome":
        return ("pushed", "unchanged", "skipped", "failed")[i % 4]
    if name == "service":
        return SERVICES[i % len(SERVICES)]
    if name == "kind":
        return {"tariff_pushes": "normal", "price_intervals": "actual"}.get(table, f"site_info_{i}")
    if name in CHOICES and CHOICES[name] is not None:
        return CHOICES[name]
    if name == "email":
        return f"person{i}@example.com"
    if name == "founder":
        return True if i == 0 else None
    if name.endswith("_enc") or name == "password_hash":
        return f"gAAAAABn{name}{i}" + "x" * 80
    if "timezone" in name:
        return "Australia/Sydney"
    if name.endswith("site_id"):
        return f"{1000 + i}" if "tesla" in name else f"01JCX8Q4V6M2R9T3ZKD5HB7W{i:02d}"
    if isinstance(kind, sa.JSON):
        return {"code": f"AMBER:{i}", "slots": [i, i + 1]}
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.DateTime):
        return T0 + timedelta(minutes=7 * i + len(name))
    if isinstance(kind, sa.Date):
        return date(2026, 11, 20) + timedelta(days=i)
    if isinstance(kind, sa.Float):
        return 12.5 + i
    if isinstance(kind, (sa.Integer, sa.SmallInteger, sa.BigInteger)):
        return 30 + i
    if name == "via":
        return "teslemetry"
    if name == "descriptor":
        return ("veryLow", "neutral", "high")[i % 3]
    text = f"{table}.{name} #{i}"
    length = getattr(kind, "length", None)
    return text if not length or len(text) <= length else f"{name[: length - 3]}#{i}"[-length:]


def fill(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    """Insert ROWS rows into every table (parents first); return them as inserted."""
    meta = sa.MetaData()
    meta.reflect(conn)
    inserted: dict[str, list[dict[str, Any]]] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = []
        for i in range(ROWS):
            row = {}
            for column in table.columns:
                fks = list(column.foreign_keys)
                if fks:
                    parent = fks[0].column
                    parents = inserted.get(parent.table.name) or []
                    row[column.name] = parents[i % len(parents)][parent.name] if parents else None
                elif column.primary_key and isinstance(column.type, sa.Integer):
                    row[column.name] = i + 1
                else:
                    row[column.name] = realistic(table.name, column, i)
            rows.append(row)
        conn.execute(table.insert(), rows)
        inserted[table.name] = rows
    if conn.dialect.name == "postgresql":  # rows were given ids: move the sequences past them
        for table in meta.sorted_tables:
            for column in table.primary_key.columns:
                if isinstance(column.type, sa.Integer) and column.autoincrement is not False and table.name in inserted:
                    seq = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}).scalar()
                    if seq:
                        conn.execute(sa.text(f"SELECT setval('{seq}', {ROWS})"))
    return inserted


def normal(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return value


def read_all(conn: sa.Connection, tables: dict[str, list[str]], renames: dict[str, dict[str, str]]) -> dict[str, list[tuple]]:
    """Every row of `tables` on the given (old) columns, read through their current names, sorted."""
    out = {}
    for table, columns in tables.items():
        names = [renames.get(table, {}).get(c, c) for c in columns]
        rows = conn.execute(sa.text(f"SELECT {', '.join(names)} FROM {table}")).all()
        out[table] = sorted((tuple(normal(v) for v in row) for row in rows), key=repr)
    return out


def renames_after(revision: str) -> dict[str, dict[str, str]]:
    later = REVISIONS[REVISIONS.index(revision) + 1:]
    merged: dict[str, dict[str, str]] = {}
    for rev in later:
        for table, columns in RENAMED.get(rev, {}).items():
            merged.setdefault(table, {}).update(columns)
    return merged


def expected_after(before: dict[str, list[tuple]], tables: dict[str, list[str]], revision: str) -> dict[str, list[tuple]]:
    """`before` with the values the migrations after `revision` change on purpose (CHANGED)."""
    expected = dict(before)
    for rev in REVISIONS[REVISIONS.index(revision) + 1:]:
        for (table, column), value in CHANGED.get(rev, {}).items():
            if column in tables.get(table, []):
                i = tables[table].index(column)
                expected[table] = sorted((row[:i] + (value,) + row[i + 1:] for row in expected[table]), key=repr)
    return expected


def test_the_revisions_are_one_chain_ending_at_head():
    assert REVISIONS[-1] == HEAD and len(set(REVISIONS)) == len(REVISIONS) >= 12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_upgrading_a_full_database_keeps_every_row(backend, revision, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        app = create_app(make_config(tmp_path, url))
        with app.app_context():
            upgrade(revision=revision)
            with db.engine.begin() as conn:
                inserted = fill(conn)
            tables = {name: list(rows[0]) for name, rows in inserted.items()}
            with db.engine.connect() as conn:
                before = read_all(conn, tables, {})
            assert all(len(rows) == ROWS for rows in before.values())
            upgrade()
            with db.engine.connect() as conn:
                after = read_all(conn, tables, renames_after(revision))
                if backend == "sqlite":  # the app's connections enforce foreign keys again
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            expected = expected_after(before, tables, revision)
            for table in tables:
                assert after[table] == expected[table], f"{table} changed when upgrading from {revision}"
            db.engine.dispose()


# A migration that goes wrong leaves the database exactly as it was: appended after head in a copy of the
# migrations folder, so the real chain (and whatever later revisions hold) is untouched.
BAD_REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "9999_goes_wrong"
down_revision = {head!r}


def upgrade():
    op.create_table("scratch_half_done", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("users") as batch_op:  # a table rebuild, as 0008 did
        batch_op.add_column(sa.Column("half_done", sa.Integer, nullable=True))
    {last_step}


def downgrade():
    pass
'''


def migrations_with_a_bad_revision(tmp_path, last_step: str) -> tuple[str, str]:
    """A copy of the migrations folder with a revision that goes wrong after head; (folder, head)."""
    import shutil

    folder = tmp_path / "migrations"
    shutil.copytree(BASE_DIR / "migrations", folder, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(folder)).get_current_head()
    (folder / "versions" / "9999_goes_wrong.py").write_text(BAD_REVISION.format(head=head, last_step=last_step))
    return str(folder), head


def upgrade_fails(directory: str) -> None:
    """Run the upgrade that must fail, as `flask db upgrade` would."""
    try:
        upgrade(directory=directory)
    except SystemExit as exc:  # Flask-Migrate logs the error and exits 1
        assert exc.code == 1
    except sa.exc.IntegrityError:  # PostgreSQL refused a statement
        pass
    else:
        raise AssertionError("the bad migration was applied")


def snapshot(conn: sa.Connection) -> tuple:
    inspector = sa.inspect(conn)
    tables = sorted(inspector.get_table_names())
    counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}
    version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return tables, [c["name"] for c in inspector.get_columns("users")], counts, version


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("last_step", [
    'raise RuntimeError("a step failed half way")',
    # Points a table's rows at accounts that do not exist: SQLite (foreign keys off while migrating) finds
    # them in the foreign key check before committing; PostgreSQL refuses the update itself.
    "inspector = sa.inspect(op.get_bind())\n"
    "    child, column = next((t, fk['constrained_columns'][0]) for t in inspector.get_table_names()\n"
    "                         for fk in inspector.get_foreign_keys(t) if fk['referred_table'] == 'users')\n"
    "    op.execute(f'UPDATE {child} SET {column} = {column} + 1000000')",
], ids=["fails-half-way", "orphans-rows"])
def test_a_migration_that_goes_wrong_changes_nothing(backend, last_step, tmp_path):
    directory, head = migrations_with_a_bad_revision(tmp_path, last_step)
    with fresh_database(backend, tmp_path) as url:
        app = create_app(make_config(tmp_path, url))
        with app.app_context():
            upgrade(directory=directory, revision=head)
            with db.engine.begin() as conn:
                fill(conn)
            with db.engine.connect() as conn:
                before = snapshot(conn)
            assert before[3] == head and all(n == ROWS for t, n in before[2].items() if t != "alembic_version")
            upgrade_fails(directory)
            with db.engine.connect() as conn:  # the connection the migration used, back in the pool
                assert snapshot(conn) == before  # no new table or column, every row, still at head
                if backend == "sqlite":
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            db.engine.dispose()
