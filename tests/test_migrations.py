"""Migrations: `flask db upgrade` on an empty database gives exactly the models' schema, and
downgrade to base removes it, on every backend."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

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
