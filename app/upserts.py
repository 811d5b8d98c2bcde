"""INSERT .. ON CONFLICT on both databases: PostgreSQL and SQLite each have it, under their own dialect's
construct.

SQLAlchemy never caches the compiled form of those constructs (their Insert says `inherit_cache = False`: the
ON CONFLICT clauses have no cache key), so each execution compiled the statement anew, about half a
millisecond each, twice a household a tick. Here each statement (per table, dialect, columns) is compiled once
into a `text()` with typed parameters, which SQLAlchemy does cache, and whose parameters still go through each
column's type (the UTC datetimes, for one)."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, or_, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import TextClause

from app.extensions import db

_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


def upsert(
    model: Any, rows: list[dict[str, Any]], key: Sequence[str], update: Sequence[str] = (), *,
    compare: Sequence[str] = (), add: Sequence[str] = (),
) -> int:
    """Insert `rows` into the model's table, or, for a row whose `key` is taken: set the `update` columns to
    the new values (with `compare`, only when one of those columns differs, so an unchanged row costs no
    write), and add the new values of the `add` columns to the stored ones (counters); with neither, leave
    the stored row alone. In the caller's transaction; sent on the table, not the mapped class, as one
    executemany without the ORM's per-row bookkeeping. Returns the number of rows inserted or changed (as
    the database counts them)."""
    if not rows:
        return 0
    statement = _statement(
        model.__table__, db.engine.dialect.name, tuple(rows[0]), tuple(key), tuple(update), tuple(compare), tuple(add)
    )
    return db.session.execute(statement, rows).rowcount


@functools.cache
def _statement(
    table: Table, dialect_name: str, columns: tuple, key: tuple, update: tuple, compare: tuple, add: tuple
) -> TextClause:
    dialect = _DIALECTS[dialect_name]
    statement = dialect.insert(table)
    if update or add:
        changed = or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in compare)) if compare else None
        values = {name: statement.excluded[name] for name in update}
        values.update({name: table.c[name] + statement.excluded[name] for name in add})
        statement = statement.on_conflict_do_update(index_elements=list(key), set_=values, where=changed)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    # Named parameters (":column") whatever the driver's style: text() translates them when it runs.
    compiled = statement.compile(dialect=dialect.dialect(paramstyle="named"), column_keys=list(columns), for_executemany=True)
    if set(compiled.bind_names.values()) != set(columns):  # e.g. a column with a default the rows leave out
        raise ValueError(f"upsert into {table.name}: the rows must give exactly the columns {sorted(compiled.bind_names.values())}")
    sql = str(compiled).replace("::", r"\:\:")  # a PostgreSQL cast (":digests::JSON"), not a parameter
    return text(sql).bindparams(*(bindparam(name, type_=table.c[name].type) for name in columns))
