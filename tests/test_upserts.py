"""INSERT .. ON CONFLICT through app/upserts.py on SQLite and PostgreSQL: counters add up, a compared update
writes only what changed, "do nothing" leaves the stored row, and the statement is compiled once."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.models import ApiCallCount, PriceDigest, SyncRunTotal
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


def test_rows_that_leave_out_a_column_are_refused_before_anything_is_sent(app, household_id):
    row = count_row(household_id, 1)
    del row["billable"]  # has a default: the statement would need a value the rows do not give
    with app.app_context(), pytest.raises(ValueError, match="billable"):
        upsert(ApiCallCount, [row], KEY, add=["calls"])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_statement_is_one_sqlalchemy_caches(dialect):
    # SQLAlchemy's own ON CONFLICT constructs have no cache key, so they were compiled at every execution.
    columns = tuple(count_row(1, 1))
    statement = _statement(ApiCallCount.__table__, dialect, columns, tuple(KEY), (), (), ("calls", "billable"))
    assert statement._generate_cache_key() is not None
    assert _statement(ApiCallCount.__table__, dialect, columns, tuple(KEY), (), (), ("calls", "billable")) is statement
