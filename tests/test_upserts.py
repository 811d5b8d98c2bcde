"""INSERT .. ON CONFLICT through app/upserts.py on SQLite and PostgreSQL: counters add up, a compared update
writes only what changed, "do nothing" leaves the stored row, and the statement is compiled once; many rows
on PostgreSQL go as one JSON parameter and are stored exactly as row-by-row statements store them."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from app.extensions import db as _db
from app.models import ApiCallCount, PriceDigest, StoredPrice, SyncRunTotal
from app.upserts import _statement, upsert

DAY = date(2026, 11, 24)
KEY = ["household_id", "day", "service", "kind", "status_class"]


def count_row(household_id: int, calls: int, billable: int = 0) -> dict:
    return {"household_id": household_id, "day": DAY, "service": "amber", "kind": "prices", "status_class": "2xx",
            "calls": calls, "billable": billable}


def test_counters_add_to_what_is_stored(app, household_id):
    with app.app_context():
        assert upsert(ApiCallCount, [count_row(household_id, 2, 1)], KEY, add=["calls", "billable"]) == 1
        upsert(ApiCallCount, [count_row(household_id, 3)], KEY, add=["calls", "billable"])
        upsert(SyncRunTotal, [{"outcome": "pushed", "purged": 5}, {"outcome": "failed", "purged": 1}], ["outcome"], add=["purged"])
        upsert(SyncRunTotal, [{"outcome": "pushed", "purged": 7}], ["outcome"], add=["purged"])
        _db.session.commit()
        row = _db.session.scalar(select(ApiCallCount))
        assert (row.day, row.calls, row.billable) == (DAY, 5, 1)
        assert dict(_db.session.execute(select(SyncRunTotal.outcome, SyncRunTotal.purged)).all()) == {"pushed": 12, "failed": 1}


def test_do_nothing_keeps_the_stored_row_and_says_nothing_was_written(app, clock):
    now = clock()
    with app.app_context():
        first = {"amber_site_id": "site", "digests": {"rows": {"general@1/5": 7}}, "stored_at": now}
        assert upsert(PriceDigest, [first], ["amber_site_id"]) == 1
        assert upsert(PriceDigest, [{**first, "digests": {"rows": {}}}], ["amber_site_id"]) == 0
        _db.session.commit()
        row = _db.session.get(PriceDigest, "site")
        assert row.digests == {"rows": {"general@1/5": 7}} and row.stored_at == now  # JSON and UTC kept


@pytest.mark.parametrize("rows", [1, 3])
def test_rows_that_leave_out_a_column_are_refused_before_anything_is_sent(app, household_id, rows):
    given = [{**count_row(household_id, 1), "kind": f"kind{n}"} for n in range(rows)]
    for row in given:
        del row["billable"]  # has a default: the statement would need a value the rows do not give
    with app.app_context(), pytest.raises(ValueError, match="billable"):
        upsert(ApiCallCount, given, KEY, add=["calls"])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_statement_is_one_sqlalchemy_caches(dialect):
    # SQLAlchemy's own ON CONFLICT constructs have no cache key, so they were compiled at every execution.
    columns = tuple(count_row(1, 1))
    statement = _statement(ApiCallCount.__table__, dialect, columns, tuple(KEY), (), (), ("calls", "billable"))
    assert statement._generate_cache_key() is not None
    assert _statement(ApiCallCount.__table__, dialect, columns, tuple(KEY), (), (), ("calls", "billable")) is statement


# -- many rows: on PostgreSQL one JSON parameter, stored exactly as row-by-row statements store them ---------

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
PRICE_KEY = ["amber_site_id", "channel", "start_at", "duration_minutes"]
PRICE_VALUES = ["kind", "per_kwh", "spot_per_kwh", "advanced_low", "advanced_predicted", "advanced_high", "estimate",
                "spike_status", "descriptor", "renewables"]


AEST = timezone(timedelta(hours=10))


def price_rows(site: str, shift: float = 0.0, zone: tzinfo = AEST) -> list[dict]:
    """Awkward but valid values: floats without a short decimal form, huge and tiny ones, an int in a float
    column, nulls, both booleans, quotes and non-ASCII text, a start given in `zone` (another than UTC by
    default), microseconds."""
    awkward = [0.1 + 0.2, 1e-7, -123.456789012345, 1e300, 5, -0.0, 2.5e-310]
    rows = []
    for i, per_kwh in enumerate(awkward):
        start = (T0 + timedelta(minutes=30 * i)).astimezone(zone)
        rows.append({
            "amber_site_id": site, "channel": "general" if i % 2 else "feedIn", "start_at": start, "duration_minutes": 30,
            "kind": "forecast", "per_kwh": per_kwh + shift, "spot_per_kwh": None if i % 3 == 0 else per_kwh / 3,
            "advanced_low": None, "advanced_predicted": -per_kwh, "advanced_high": 1.7976931348623157e308,
            "estimate": bool(i % 2), "spike_status": "none", "descriptor": 'caf\u00e9 "q" \'s' if i == 3 else None,
            "renewables": 33.3, "updated_at": T0 + timedelta(microseconds=123456 + i),
        })
    return rows


def stored_prices(site: str) -> list[tuple]:
    columns = [StoredPrice.__table__.c[name] for name in PRICE_KEY[1:] + PRICE_VALUES + ["updated_at"]]
    return [tuple(row) for row in _db.session.execute(
        select(*columns).where(StoredPrice.amber_site_id == site).order_by(StoredPrice.start_at, StoredPrice.channel)
    )]


def statements_of(engine, action) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0].upper(), executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def upsert_prices(rows: list[dict]) -> int:
    return upsert(StoredPrice, rows, PRICE_KEY, PRICE_VALUES + ["updated_at"], compare=PRICE_VALUES)


# The clock's and the parsers' UTC (written by orjson itself), UTC under another name, an Australian clock
# (both converted in Python first).
@pytest.mark.parametrize("zone", [timezone.utc, ZoneInfo("UTC"), AEST, ZoneInfo("Australia/Adelaide")],
                         ids=["utc", "zoneinfo-utc", "aest", "adelaide"])
def test_many_rows_at_once_store_exactly_what_one_row_at_a_time_stores(app, zone):
    with app.app_context():
        engine = _db.engine
        sent = statements_of(engine, lambda: upsert_prices(price_rows("together", zone=zone)))
        for row in price_rows("one-by-one", zone=zone):
            upsert_prices([row])  # a single row always goes as a plain statement
        _db.session.commit()
        together, one_by_one = stored_prices("together"), stored_prices("one-by-one")
        assert len(together) == 7 and together == one_by_one
        first = together[0]
        assert first[1] == T0 and first[-1] == T0 + timedelta(microseconds=123456)  # the start stored as UTC
        assert [row[1] for row in together] == [T0 + timedelta(minutes=30 * i) for i in range(7)]
        assert [row[4] for row in together][:4] == [0.1 + 0.2, 1e-7, -123.456789012345, 1e300]  # to the last bit
        assert together[3][11] == 'caf\u00e9 "q" \'s'
        # PostgreSQL gets the rows as one JSON parameter, SQLite as one executemany.
        if engine.dialect.name == "postgresql":
            assert sent == [("INSERT", False)]
        else:
            assert sent == [("INSERT", True)]


def test_many_rows_write_only_what_changed(app):
    with app.app_context():
        assert upsert_prices(price_rows("site")) == 7
        _db.session.commit()
        again = price_rows("site")
        for row in again[:3]:
            row["per_kwh"] += 1
        for row in again:
            row["updated_at"] = T0 + timedelta(minutes=5)
        assert upsert_prices(again) == 3  # the other four equal what is stored: no write, updated_at kept
        _db.session.commit()
        updated = [row[-1] for row in stored_prices("site")]
        assert sorted(updated).count(T0 + timedelta(minutes=5)) == 3


def test_a_key_given_twice_adds_both_as_statements_row_by_row_would(app, household_id):
    # One INSERT .. ON CONFLICT may not touch a row twice: such rows go the executemany way.
    with app.app_context():
        rows = [count_row(household_id, 2, 1), count_row(household_id, 3, 1), {**count_row(household_id, 1), "kind": "site"}]
        upsert(ApiCallCount, rows, KEY, add=["calls", "billable"])
        _db.session.commit()
        stored = dict(_db.session.execute(select(ApiCallCount.kind, ApiCallCount.calls)).all())
        assert stored == {"prices": 5, "site": 1}


def test_a_float_json_cannot_carry_is_stored_as_before(app):
    with app.app_context():
        engine = _db.engine
        rows = price_rows("site")
        rows[2]["spot_per_kwh"] = math.nan
        rows[4]["advanced_high"] = math.inf
        sent = statements_of(engine, lambda: upsert_prices(rows))
        _db.session.commit()
        stored = stored_prices("site")
        assert len(stored) == 7
        if engine.dialect.name == "postgresql":  # kept as the float it is, not turned into null
            assert sent == [("INSERT", True)]
            assert math.isnan(stored[2][5]) and stored[4][8] == math.inf


def test_a_naive_datetime_is_refused_on_every_path(app):
    with app.app_context():
        rows = price_rows("site")
        rows[1]["updated_at"] = datetime(2026, 11, 24, 3, 0)
        with pytest.raises(Exception, match="naive datetime given to a UTC column"):
            upsert_prices(rows)
        _db.session.rollback()
        assert stored_prices("site") == []


def test_a_value_of_another_type_than_its_column_is_stored_as_before(app):
    # 30.0 for an integer column: PostgreSQL casts it when it comes as a parameter, but refuses "30.0" as an
    # integer read from JSON, so such rows go the executemany way.
    with app.app_context():
        engine = _db.engine
        rows = price_rows("site")
        rows[3]["duration_minutes"] = 30.0
        sent = statements_of(engine, lambda: upsert_prices(rows))
        _db.session.commit()
        assert [row[2] for row in stored_prices("site")] == [30] * 7
        assert sent == [("INSERT", True)]
