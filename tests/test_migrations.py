"""Migrations: `flask db upgrade` on an empty database gives exactly the models' schema, and
downgrade to base removes it, on every backend."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.extensions import db
from tests.conftest import make_config
from tests.db_backends import BACKENDS, fresh_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_matches_models_and_downgrade_removes_everything(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        app = create_app(make_config(tmp_path, url))
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(context, db.metadata) == []
                tables = set(inspect(conn).get_table_names())
            assert {t.name for t in db.metadata.sorted_tables} <= tables

            downgrade(revision="base")
            with db.engine.connect() as conn:
                assert set(inspect(conn).get_table_names()) <= {"alembic_version"}

            upgrade()  # and back again, as an operator recovering would
            with db.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(context, db.metadata) == []
            db.engine.dispose()


def test_every_constraint_is_named():
    for table in db.metadata.sorted_tables:
        for constraint in table.constraints:
            assert constraint.name, f"unnamed constraint on {table.name}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_constraints_exist_after_upgrade(backend, tmp_path):
    # compare_metadata does not compare CHECK constraints, so check them by name.
    with fresh_database(backend, tmp_path) as url:
        app = create_app(make_config(tmp_path, url))
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                inspector = inspect(conn)
                for table in db.metadata.sorted_tables:
                    expected = {
                        c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"
                    }
                    found = {c["name"] for c in inspector.get_check_constraints(table.name)}
                    assert expected <= found, (table.name, expected - found)
            db.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0007_marks_old_call_counts_unknown_and_downgrade_merges_the_classes(backend, tmp_path):
    # Rows counted before 0007 did not record how calls ended: they become 'unknown', never a guess.
    with fresh_database(backend, tmp_path) as url:
        app = create_app(make_config(tmp_path, url))
        with app.app_context():
            upgrade(revision="0006_sync_runs_push_index")
            with db.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO users (id, email, password_hash, is_admin, is_disabled, session_nonce, created_at) "
                    "VALUES (1, 'a@example.com', 'x', false, false, 'n', '2026-11-24 00:00:00')"
                ))
                conn.execute(text(
                    "INSERT INTO api_call_counts (user_id, day, service, kind, calls, billable) VALUES "
                    "(1, '2026-11-24', 'tesla', 'site_info', 7, 7), (1, '2026-11-24', 'amber', 'prices_current', 5, 0)"
                ))
            upgrade(revision="0007_status_class_retention")
            with db.engine.begin() as conn:
                rows = conn.execute(text("SELECT service, status_class, calls FROM api_call_counts ORDER BY service")).all()
                assert [tuple(r) for r in rows] == [("amber", "unknown", 5), ("tesla", "unknown", 7)]
                # The same key with another class is a new row now.
                conn.execute(text(
                    "INSERT INTO api_call_counts (user_id, day, service, kind, status_class, calls, billable) "
                    "VALUES (1, '2026-11-24', 'tesla', 'site_info', '4xx', 2, 2)"
                ))
                with pytest.raises(IntegrityError):
                    with conn.begin_nested():
                        conn.execute(text(
                            "INSERT INTO api_call_counts (user_id, day, service, kind, status_class, calls, billable) "
                            "VALUES (1, '2026-11-24', 'tesla', 'site_info', '4xx', 1, 1)"
                        ))
                with pytest.raises(IntegrityError):
                    with conn.begin_nested():
                        conn.execute(text(
                            "INSERT INTO api_call_counts (user_id, day, service, kind, status_class, calls, billable) "
                            "VALUES (1, '2026-11-24', 'tesla', 'site_info', '429', 1, 1)"
                        ))
            downgrade(revision="0006_sync_runs_push_index")
            with db.engine.connect() as conn:
                rows = conn.execute(text("SELECT service, calls, billable FROM api_call_counts ORDER BY service")).all()
                assert [tuple(r) for r in rows] == [("amber", 5, 0), ("tesla", 9, 9)]  # no call lost
            upgrade()
            db.engine.dispose()
