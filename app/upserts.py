"""INSERT .. ON CONFLICT on both databases: PostgreSQL and SQLite each have it, under their own dialect's
construct.

SQLAlchemy never caches the compiled form of those constructs (their Insert says `inherit_cache = False`: the
ON CONFLICT clauses have no cache key), so each execution compiled the statement anew, about half a
millisecond each, twice a household a tick. Here each statement (per table, dialect, columns) is compiled once
into a `text()` with typed parameters, which SQLAlchemy does cache, and whose parameters still go through each
column's type (the UTC datetimes, for one).

Many rows on PostgreSQL (a pushing sync sends a site's changed price intervals, about 120) go as one parameter:
the rows as a JSON array that `json_to_recordset` turns back into typed columns inside the same INSERT .. ON
CONFLICT. psycopg's executemany adapts every value of every row in Python and pipelines one statement per row;
one JSON text written by orjson is several times cheaper, and PostgreSQL parses it in C. Only where that
cannot change what is stored: columns of plain types (text, integers, floats, booleans, dates, UTC datetimes),
each value in the Python type its column takes as it is, finite floats (JSON has no NaN), and no key twice
(one INSERT may not update a row twice; executemany would apply both rows one after the other). Anything
else goes the executemany way."""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Date, Float, Integer, String, Table, bindparam, literal_column, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter, TextClause

from app import json_codec
from app.extensions import db
from app.models import UTCDateTime

_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


def upsert(
    model: Any, rows: list[dict[str, Any]], key: Sequence[str], update: Sequence[str] = (), *,
    compare: Sequence[str] = (), add: Sequence[str] = (),
) -> int:
    """Insert `rows` into the model's table, or, for a row whose `key` is taken: set the `update` columns to
    the new values (with `compare`, only when one of those columns differs, so an unchanged row costs no
    write), and add the new values of the `add` columns to the stored ones (counters); with neither, leave
    the stored row alone. In the caller's transaction; sent on the table, not the mapped class, as one
    statement (an executemany, or on PostgreSQL the rows as one JSON parameter) without the ORM's per-row
    bookkeeping. Every row gives the same columns. Returns the number of rows inserted or changed (as
    the database counts them)."""
    if not rows:
        return 0
    table, dialect_name, columns = model.__table__, db.engine.dialect.name, tuple(rows[0])
    shape = (tuple(key), tuple(update), tuple(compare), tuple(add))
    allowed = _json_columns(table, columns) if len(rows) > 1 and dialect_name == "postgresql" else None
    if allowed is not None:
        encoded = _json_rows(rows, allowed, key)
        if encoded is not None:
            return db.session.execute(_recordset_statement(table, columns, *shape), {"rows": encoded}).rowcount
    return db.session.execute(_statement(table, dialect_name, columns, *shape), rows).rowcount


@functools.cache
def _statement(
    table: Table, dialect_name: str, columns: tuple, key: tuple, update: tuple, compare: tuple, add: tuple
) -> TextClause:
    statement = _on_conflict(_DIALECTS[dialect_name].insert(table), table, key, update, compare, add)
    return _compiled_text(statement, table, dialect_name, columns, [bindparam(name, type_=table.c[name].type) for name in columns])


def _on_conflict(statement: Any, table: Table, key: tuple, update: tuple, compare: tuple, add: tuple) -> Any:
    if update or add:
        changed = or_(*(table.c[name].is_distinct_from(statement.excluded[name]) for name in compare)) if compare else None
        values = {name: statement.excluded[name] for name in update}
        values.update({name: table.c[name] + statement.excluded[name] for name in add})
        return statement.on_conflict_do_update(index_elements=list(key), set_=values, where=changed)
    return statement.on_conflict_do_nothing(index_elements=list(key))


def _compiled_text(statement: Any, table: Table, dialect_name: str, columns: tuple, binds: list[BindParameter]) -> TextClause:
    # Named parameters (":column") whatever the driver's style: text() translates them when it runs.
    compiled = statement.compile(dialect=_DIALECTS[dialect_name].dialect(paramstyle="named"), column_keys=list(columns),
                                 for_executemany=True)
    # E.g. a column with a default the rows leave out (in an INSERT .. SELECT too: the default becomes a parameter).
    if set(compiled.bind_names.values()) != {bind.key for bind in binds}:
        raise ValueError(f"upsert into {table.name}: the rows must give exactly the columns {sorted(compiled.bind_names.values())}")
    sql = str(compiled).replace("::", r"\:\:")  # a PostgreSQL cast (":digests::JSON"), not a parameter
    return text(sql).bindparams(*binds)


# -- many rows on PostgreSQL: one JSON parameter ------------------------------------------------------------

# Column types whose values orjson writes as PostgreSQL reads them back unchanged, with the Python types
# taken as they are (floats in their shortest exact form; UTC datetimes through `_utc_text`, as UTCDateTime
# binds them). Anything else, e.g. 2.0 for an integer column (which executemany would cast and JSON's
# integer input refuses), sends the rows the executemany way. Checked in this order: Boolean before Integer.
_JSON_TYPES = (
    (UTCDateTime, frozenset({datetime})),
    (Boolean, frozenset({bool})),
    (Float, frozenset({float, int})),
    (Integer, frozenset({int})),
    (String, frozenset({str})),
    (Date, frozenset({date})),
)
_NONE = type(None)


@functools.cache
def _json_columns(table: Table, columns: tuple) -> tuple[tuple[str, frozenset], ...] | None:
    """Per column, the Python types its values may have to go as JSON; None if a column's type cannot."""
    allowed = []
    for name in columns:
        column_type = table.c[name].type
        types = next((kinds for sql_type, kinds in _JSON_TYPES if isinstance(column_type, sql_type)), None)
        if types is None:
            return None
        allowed.append((name, types | {_NONE}))
    return tuple(allowed)


_UTC = UTCDateTime()


def _utc_text(value: Any) -> str:
    """orjson's hook for datetimes (OPT_PASSTHROUGH_DATETIME): what UTCDateTime binds (naive UTC; a naive
    datetime refused), as text."""
    if isinstance(value, datetime):
        return _UTC.process_bind_param(value, None).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_rows(rows: list[dict[str, Any]], allowed: tuple[tuple[str, frozenset], ...], key: Sequence[str]) -> str | None:
    """The rows as one JSON array, or None where that could store something else than executemany would: a
    value of another Python type than its column takes as it is, a float that is not finite, a key given
    twice, a row with other columns than the first.

    Datetimes whose zone is `timezone.utc` itself (what the app's clock and parsers give) are written by
    orjson as `2026-11-24T08:10:00+00:00`, which PostgreSQL reads into a `timestamp` column as that UTC wall
    time (it ignores the offset there): the same as UTCDateTime binds, without a Python call per value (two a
    price row). Only when a datetime in the rows has another zone, or none, are they all passed through to
    `_utc_text`, which converts to UTC, or refuses a naive one as UTCDateTime does."""
    names = rows[0].keys()
    keys = set()
    convert = False
    for row in rows:
        if row.keys() != names:
            return None
        for name, types in allowed:
            value = row[name]
            kind = type(value)
            if kind not in types or (kind is float and not math.isfinite(value)):
                return None
            if kind is datetime and value.tzinfo is not timezone.utc:
                convert = True
        keys.add(tuple(row[name] for name in key))
    if len(keys) != len(rows):
        return None
    return json_codec.dumps_bytes(rows, default=_utc_text, passthrough_datetime=convert).decode()


@functools.cache
def _recordset_statement(table: Table, columns: tuple, key: tuple, update: tuple, compare: tuple, add: tuple) -> TextClause:
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote
    definitions = ", ".join(f"{quote(name)} {table.c[name].type.compile(dialect=dialect)}" for name in columns)
    source = select(*(literal_column(f"r.{quote(name)}") for name in columns)).select_from(
        text(f"json_to_recordset(CAST(:rows AS JSON)) AS r({definitions})")
    )
    statement = _on_conflict(postgresql.insert(table).from_select(list(columns), source), table, key, update, compare, add)
    return _compiled_text(statement, table, "postgresql", columns, [bindparam("rows", type_=String())])
