"""Storing prices writes only what is new or changed: a tick that sees the same prices rewrites nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.extensions import db as _db
from app.models import StoredPrice
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval
from app.sync.engine import store_prices

T = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
SITE = "01JCX8Q4V6M2R9T3ZKD5HB7WNE"


def forecast(start, price, advanced=None):
    return PriceInterval(Channel.GENERAL, IntervalKind.FORECAST, start, start + timedelta(minutes=30), price,
                         advanced_price=advanced or AdvancedPrice(price - 1, price, price + 1), descriptor="neutral")


def stored(app):
    with app.app_context():
        return {(r.start_at, r.per_kwh, r.kind, r.updated_at) for r in _db.session.scalars(select(StoredPrice))}


def test_only_new_or_changed_intervals_are_written(app):
    first = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(4)]
    with app.app_context():
        store_prices(SITE, first, T)
        _db.session.commit()
    # Five minutes later Amber repeats three intervals, changes one and adds one.
    later = T + timedelta(minutes=5)
    second = first[:2] + [forecast(first[2].start, 99.0), first[3], forecast(T + timedelta(hours=2), 50.0)]
    with app.app_context():
        store_prices(SITE, second, later)
        _db.session.commit()
    rows = stored(app)
    assert {(start, per_kwh, updated) for start, per_kwh, _, updated in rows} == {
        (T, 30.0, T), (T + timedelta(minutes=30), 31.0, T),  # untouched: same values
        (T + timedelta(minutes=60), 99.0, later),  # changed
        (T + timedelta(minutes=90), 33.0, T),
        (T + timedelta(hours=2), 50.0, later),  # new
    }


def test_a_change_in_any_stored_value_counts(app):
    interval = forecast(T, 30.0)
    with app.app_context():
        store_prices(SITE, [interval], T)
        store_prices(SITE, [forecast(T, 30.0, AdvancedPrice(20.0, 30.0, 45.0))], T + timedelta(minutes=5))  # only the range moved
        _db.session.commit()
        row = _db.session.scalar(select(StoredPrice))
        assert (row.advanced_high, row.updated_at) == (45.0, T + timedelta(minutes=5))
        actual = PriceInterval(Channel.GENERAL, IntervalKind.ACTUAL, T, T + timedelta(minutes=30), 30.0, descriptor="neutral")
        store_prices(SITE, [actual], T + timedelta(minutes=35))  # the forecast became the actual at the same price
        _db.session.commit()
        row = _db.session.scalar(select(StoredPrice))
        assert (row.kind, row.advanced_high, row.updated_at) == ("actual", None, T + timedelta(minutes=35))


def five_minute(start, price):
    return PriceInterval(Channel.GENERAL, IntervalKind.ACTUAL, start, start + timedelta(minutes=5), price, descriptor="neutral")


def test_a_fetch_amber_repeats_is_not_sent_at_all(app):
    """The tick's store compares each resolution with the digest of what it stored last: a resolution Amber
    repeats costs one primary-key read, not a round of row comparisons in the database."""
    from app.models import PriceDigest
    from app.sync.engine import store_fetched_prices

    near = [five_minute(T + timedelta(minutes=5 * i), 20.0 + i) for i in range(6)]
    far = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(4)]
    with app.app_context():
        assert store_fetched_prices(SITE, near + far, T) == 10
        _db.session.commit()
        assert store_fetched_prices(SITE, near + far, T + timedelta(minutes=1)) == 0  # the same answer again
        _db.session.commit()
        moved = near[1:] + [five_minute(T + timedelta(minutes=30), 99.0)]  # the 5-minute window moved on
        assert store_fetched_prices(SITE, moved + far, T + timedelta(minutes=5)) == 6  # the forecast is not sent
        _db.session.commit()
        assert set(_db.session.get(PriceDigest, SITE).digests) == {"5", "30"}
    rows = stored(app)
    assert len(rows) == 11
    assert {updated for start, per_kwh, kind, updated in rows if per_kwh == 99.0} == {T + timedelta(minutes=5)}
    assert all(updated == T for start, per_kwh, kind, updated in rows if kind == "forecast")  # never rewritten
