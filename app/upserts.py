"""INSERT .. ON CONFLICT on both databases: PostgreSQL and SQLite each have it, under their own dialect's
construct. Statements are built once per table, dialect and columns: building one (its `excluded`
columns, its cache key) costs more than sending a few rows with it."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db


def conflict_insert(table: Table, dialect: str | None = None):
    """INSERT INTO `table` with the ON CONFLICT clauses of the database in use (or of `dialect`)."""
    return (pg_insert if (dialect or db.engine.dialect.name) == "postgresql" else sqlite_insert)(table)


def upsert(
    model: Any, rows: list[dict[str, Any]], key: Sequence[str], update: Sequence[str] = (), *,
    compare: Sequence[str] = (), add: Sequence[str] = (),
) -> None:
    """Insert `rows` into the model's table, or, for a row whose `key` is taken: set the `update` columns to
    the new values (with `compare`, only when one of those columns differs, so an unchanged row costs no
    write), and add the new values of the `add` columns to the stored ones (counters). In the caller's
    transaction; sent on the table, not the mapped class, as one executemany without the ORM's per-row
    bookkeeping."""
    if rows:
        statement = _statement(model.__table__, db.engine.dialect.name, tuple(key), tuple(update), tuple(compare), tuple(add))
        db.session.execute(statement, rows)


@functools.cache
def _statement(table: Table, dialect: str, key: tuple, update: tuple, compare: tuple, add: tuple):
    statement = conflict_insert(table, dialect)
    changed = or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in compare)) if compare else None
    values = {name: statement.excluded[name] for name in update}
    values.update({name: table.c[name] + statement.excluded[name] for name in add})
    return statement.on_conflict_do_update(index_elements=list(key), set_=values, where=changed)
