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


def store_fetched_prices(site, intervals, now):
    """What a sync does with its fetch: compare with the site's signatures, send the changed intervals."""
    from app.models import PriceDigest
    from app.sync.engine import price_changes, write_price_changes

    stored = _db.session.get(PriceDigest, site)
    changes = price_changes(site, intervals, now, stored)
    write_price_changes(changes, now)
    if stored is not None:
        _db.session.expire(stored)  # written around the ORM
    return len(changes.rows)


def five_minute(start, price):
    return PriceInterval(Channel.GENERAL, IntervalKind.ACTUAL, start, start + timedelta(minutes=5), price, descriptor="neutral")


def test_a_fetch_sends_only_the_intervals_whose_values_changed(app):
    """The tick's store compares each interval with the signature of what it stored last: an interval Amber
    repeats is not sent at all, whatever else in the fetch changed."""
    from app.models import PriceDigest

    near = [five_minute(T + timedelta(minutes=5 * i), 20.0 + i) for i in range(6)]
    far = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(4)]
    with app.app_context():
        assert store_fetched_prices(SITE, near + far, T) == 10
        _db.session.commit()
        assert store_fetched_prices(SITE, near + far, T + timedelta(minutes=1)) == 0  # the same answer again
        _db.session.commit()
        moved = near[1:] + [five_minute(T + timedelta(minutes=30), 99.0)]  # the 5-minute window moved on
        assert store_fetched_prices(SITE, moved + far, T + timedelta(minutes=5)) == 1  # only the new interval
        _db.session.commit()
        changed = moved + far[:3] + [forecast(far[3].start, 77.0)]  # one forecast changed
        assert store_fetched_prices(SITE, changed, T + timedelta(minutes=6)) == 1
        _db.session.commit()
        assert len(_db.session.get(PriceDigest, SITE).digests["rows"]) == 10  # this fetch's intervals
    rows = stored(app)
    assert len(rows) == 11
    assert {updated for start, per_kwh, kind, updated in rows if per_kwh == 99.0} == {T + timedelta(minutes=5)}
    assert {updated for start, per_kwh, kind, updated in rows if per_kwh == 77.0} == {T + timedelta(minutes=6)}
    assert all(updated == T for start, per_kwh, kind, updated in rows if kind == "forecast" and per_kwh != 77.0)


def test_signatures_in_the_older_per_resolution_format_send_every_interval_once(app):
    """A database upgraded from the per-resolution digests: the first fetch sends every interval (the
    database still writes only the changed ones) and leaves per-interval signatures."""
    from app.models import PriceDigest

    far = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(4)]
    with app.app_context():
        store_prices(SITE, far, T)
        _db.session.add(PriceDigest(amber_site_id=SITE, digests={"30": "0123abcd"}, stored_at=T))
        _db.session.commit()
        assert store_fetched_prices(SITE, far, T + timedelta(minutes=5)) == 4
        _db.session.commit()
        assert store_fetched_prices(SITE, far, T + timedelta(minutes=10)) == 0
    assert all(updated == T for *_, updated in stored(app))  # sent, compared, not rewritten


def test_a_store_by_someone_else_meanwhile_drops_the_signatures(app):
    """Two processes whose batches share a site both compare with the signatures they read: the second to
    write finds them replaced, drops them, and the next fetch sends every interval for the database to compare."""
    from app.models import PriceDigest
    from app.sync.engine import price_changes, write_price_changes

    far = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(4)]
    with app.app_context():
        write_price_changes(price_changes(SITE, far, T, None), T)
        _db.session.commit()
        read = _db.session.get(PriceDigest, SITE)
        # Theirs saw the last forecast move to 50 c; mine, fetched a moment before, saw the first one move to
        # 40 c and the last still at 33 c (as stored).
        theirs = price_changes(SITE, far[:3] + [forecast(far[3].start, 50.0)], T + timedelta(minutes=1), read)
        mine = price_changes(SITE, [forecast(far[0].start, 40.0)] + far[1:], T + timedelta(minutes=2), read)
        assert (len(theirs.rows), len(mine.rows)) == (1, 1)
        write_price_changes(theirs, T + timedelta(minutes=1))
        _db.session.commit()
        write_price_changes(mine, T + timedelta(minutes=2))
        _db.session.commit()
        _db.session.expire_all()
        assert _db.session.get(PriceDigest, SITE) is None  # mine would have said "33 c is stored"
        # Amber says 33 c again: with mine's signatures it would not be sent and the 50 c row would stay.
        assert store_fetched_prices(SITE, far, T + timedelta(minutes=3)) == 4
        _db.session.commit()
    assert {per_kwh for _, per_kwh, _, _ in stored(app)} == {30.0, 31.0, 32.0, 33.0}


def test_storing_prices_outside_the_tick_drops_the_signatures(app):
    from app.models import PriceDigest

    far = [forecast(T + timedelta(minutes=30 * i), 30.0 + i) for i in range(2)]
    with app.app_context():
        store_fetched_prices(SITE, far, T)
        _db.session.commit()
        store_prices(SITE, [forecast(far[0].start, 45.0)], T + timedelta(minutes=1))  # e.g. the demo's history
        _db.session.commit()
        assert _db.session.get(PriceDigest, SITE) is None
        assert store_fetched_prices(SITE, far, T + timedelta(minutes=2)) == 2  # compared again in the database
        _db.session.commit()
    assert {per_kwh for _, per_kwh, _, _ in stored(app)} == {30.0, 31.0}


SIGNATURES_ELSEWHERE = """
import json, sys
from datetime import datetime, timedelta, timezone
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval
from app.sync.engine import price_changes
T = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
word = "".join(["neu", "tral"])  # equal to the test's "neutral", not the same object
intervals = [PriceInterval(Channel.GENERAL, IntervalKind.FORECAST, T + timedelta(minutes=30 * i),
                           T + timedelta(minutes=30 * i + 30), 30.0 + i / 3,
                           advanced_price=AdvancedPrice(29.0 + i / 3, 30.0 + i / 3, 31.0 + i / 3), descriptor=word)
             for i in range(4)]
print(json.dumps(price_changes("site", intervals, T, None).signatures))
"""


def test_price_signatures_are_the_same_in_every_process(tmp_path):
    """Worker processes compare the signatures other processes stored: the same prices must give the same
    signatures in another process (another hash seed), or every tick would rewrite every interval."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from app.sync.engine import price_changes

    intervals = [PriceInterval(Channel.GENERAL, IntervalKind.FORECAST, T + timedelta(minutes=30 * i),
                               T + timedelta(minutes=30 * i + 30), 30.0 + i / 3,
                               advanced_price=AdvancedPrice(29.0 + i / 3, 30.0 + i / 3, 31.0 + i / 3), descriptor="neutral")
                 for i in range(4)]
    here = price_changes("site", intervals, T, None).signatures
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", SIGNATURES_ELSEWHERE], cwd=root, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == here
    assert len(set(here.values())) == 4  # and different prices give different signatures
