"""The fast paths of `parse_prices` / `parse_price_interval` (app/clients/amber.py) and `screen_prices`
(app/price_sanity.py) give exactly what the straightforward implementation gave: the same intervals
(values and types), the same MalformedInterval messages, skipped counts and log lines, and the same
refusals. The reference is the careful path each fast path falls back to; many generated inputs, common
and odd, go through both."""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import pickle
import random
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from app.clients.amber import _parse_each, _parse_price_careful, parse_price_interval, parse_prices
from app.price_sanity import PriceBounds, Refusal, _price_problem, _without_conflicts, screen_prices
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval

# -- reference: the careful paths, which the fast paths must agree with ------------------------------------
# Parsing: `_parse_price_careful` is the implementation from before the fast path, kept in the app for every
# item the fast path does not take. Screening: the loop from before, around the app's `_price_problem`.

ref_parse_price_interval = _parse_price_careful


def ref_parse_prices(items: list[Any]) -> tuple[list[PriceInterval], int]:
    return _parse_each(items, _parse_price_careful, "price")  # every item through the careful path


def ref_screen_prices(intervals: Iterable[PriceInterval], bounds: PriceBounds) -> tuple[list[PriceInterval], list[Refusal]]:
    """Every interval through `_price_problem` (no fast path), then the app's own conflict stage."""
    candidates: list[PriceInterval] = []
    keys: list[tuple] = []
    refused: list[Refusal] = []
    prices_by_key: dict[tuple, set[float]] = defaultdict(set)
    for interval in intervals:
        problem = _price_problem(interval, bounds)
        if problem is not None:
            refused.append(Refusal(interval.channel.value, interval.start, interval.end, problem[0], problem[1]))
            continue
        key = (interval.channel, interval.start, interval.duration_minutes)
        candidates.append(interval)
        keys.append(key)
        prices_by_key[key].add(interval.per_kwh)
    return _without_conflicts(candidates, keys, prices_by_key, refused)


# -- generated inputs -------------------------------------------------------------------------------------

SEED = 20261204
ENDS = [
    "2026-12-04T07:00:00Z", "2026-12-04T07:05:00Z", "2026-12-04T07:30:00Z", "2026-12-04T17:00:00+10:00",
    "2026-12-04T07:00:00+00:00", "2026-12-04T02:00:00-05:00", "2026-12-04T12:30:00+05:30", "2026-12-04T07:00:00.5Z",
    "2026-12-04T07:00:00", "2026-12-04", "20261204T070000Z", "not a time", "", "2026-13-04T07:00:00Z",
    "0001-01-01T00:10:00Z", "0001-01-01T00:10:00+05:00", "9999-12-31T23:59:59-05:00",
]


class Text(str):
    """A str subclass (the careful path takes it)."""


class Whole(int):
    """An int subclass."""


def number(rng: random.Random) -> Any:
    return rng.choice([
        lambda: round(rng.uniform(-60, 120), 5), lambda: round(rng.uniform(-3000, 3000), 3), lambda: rng.randint(-200, 300),
        lambda: 0.0, lambda: -0.0, lambda: 1e9, lambda: -1e12, lambda: 2500.0, lambda: -150.0, lambda: 2500.0000001,
        lambda: float("nan"), lambda: float("inf"), lambda: float("-inf"), lambda: True, lambda: False, lambda: None,
        lambda: "30.5", lambda: 10**400, lambda: Whole(7), lambda: [1.0],
    ])()


def common_number(rng: random.Random) -> Any:
    return round(rng.uniform(-60, 120), 5) if rng.random() < 0.8 else number(rng)


def advanced(rng: random.Random, per_kwh: Any) -> Any:
    if rng.random() < 0.75 and isinstance(per_kwh, float):
        values = {"low": per_kwh * 0.9, "predicted": per_kwh, "high": per_kwh * 1.1}
    else:
        values = {"low": common_number(rng), "predicted": common_number(rng), "high": common_number(rng)}
    roll = rng.random()
    if roll < 0.08:
        values.pop(rng.choice(list(values)))
    elif roll < 0.12:
        return MappingProxyType(values)
    elif roll < 0.16:
        return rng.choice([None, "x", [1.0, 2.0, 3.0], 5])
    return values


def raw_interval(rng: random.Random, odd: float) -> Any:
    """One price interval as Amber sends it; with probability `odd` per field, something unusual."""
    def pick(common: Any, unusual: list[Any]) -> Any:
        return rng.choice(unusual) if rng.random() < odd else common

    minutes = rng.choice([5, 30])
    item: dict[str, Any] = {
        "type": pick(rng.choice(["ActualInterval", "CurrentInterval", "ForecastInterval"]),
                     ["Interval", None, 3, Text("ForecastInterval"), "forecast"]),
        "date": "2026-12-04",
        "duration": pick(minutes, [15, 60, 1, 7, 30.0, 30.5, 0, -5, True, None, "30", float("nan"), float("inf"),
                                   Whole(30), 10**30]),
        "startTime": "2026-12-04T06:30:01Z",
        "endTime": pick(rng.choice(ENDS[:3]), ENDS + [None, 5, Text(ENDS[0])]),
        "perKwh": pick(round(rng.uniform(-60, 120), 5), [number(rng) for _ in range(3)]),
        "renewables": pick(round(rng.uniform(0, 100), 3), [number(rng), 100]),
        "spotPerKwh": pick(round(rng.uniform(-20, 80), 5), [number(rng), 12]),
        "channelType": pick(rng.choice(["general", "feedIn", "controlledLoad"]),
                            ["GENERAL", None, 1, Channel.FEED_IN, Text("general"), ""]),
        "spikeStatus": pick(rng.choice(["none", "potential", "spike"]), ["", None, 5, Text("spike")]),
        "descriptor": pick(rng.choice(["low", "high", "neutral", "extremelyLow"]), [None, 3, Text("low")]),
        "tariffInformation": pick({"period": "peak", "season": "summer"},
                                  [None, "x", [1], MappingProxyType({"period": "offPeak"}), {}]),
    }
    if item["type"] == "ForecastInterval" or rng.random() < odd:
        item["advancedPrice"] = advanced(rng, item["perKwh"])
    roll = rng.random()
    if roll < 0.3:
        item.pop("estimate", None)
    else:
        item["estimate"] = pick(roll < 0.65, [None, 1, 0, "true"])
    for key in list(item):
        if rng.random() < odd / 4:
            del item[key]
    if rng.random() < odd / 3:
        return rng.choice([None, 5, "item", [item], MappingProxyType(item), OrderedDict(item)])
    return item


def raw_list(rng: random.Random, odd: float) -> list[Any]:
    items = [raw_interval(rng, odd) for _ in range(rng.randint(1, 60))]
    for _ in range(rng.randint(0, 4)):  # repeats, some with another price
        twin = rng.choice(items)
        if isinstance(twin, dict) and rng.random() < 0.5:
            twin = dict(twin)
            twin["perKwh"] = common_number(rng)
        items.append(twin)
    rng.shuffle(items)
    return items


def parseable(items: list[Any]) -> list[Any]:
    """Without the items that raise something else than MalformedInterval (e.g. OverflowError), which stops
    the whole list in both implementations (test_exceptions_other_than_malformed_are_the_same covers them)."""
    return [raw for raw in items if outcome(ref_parse_price_interval, raw)[0] in ("ok", "MalformedInterval")]


# -- comparing --------------------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down; floats by repr (NaN, -0.0); datetimes with the same zone."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo and a.fold == b.fold
    if isinstance(a, (PriceInterval, AdvancedPrice, Refusal)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def outcome(parse: Any, raw: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(raw)
    except Exception as exc:  # noqa: BLE001 - every exception must match, not only MalformedInterval
        return type(exc).__name__, str(exc)


def check_interval(new: PriceInterval, old: PriceInterval, raw: Any) -> None:
    assert same(new, old), (raw, new, old)
    assert new == old and repr(new) == repr(old)
    assert new.duration_minutes == old.duration_minutes and type(new.duration_minutes) is int
    info = raw.get("tariffInformation") if isinstance(raw, Mapping) else None
    assert info is None or new.tariff_information is not info  # a copy, never the caller's mapping


# -- tests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("odd", [0.0, 0.05, 0.3, 0.8])
def test_parse_price_interval_matches_the_reference(odd: float) -> None:
    rng = random.Random(SEED + int(odd * 100))
    for _ in range(1500):
        raw = raw_interval(rng, odd)
        new, old = outcome(parse_price_interval, raw), outcome(ref_parse_price_interval, raw)
        assert new[0] == old[0], (raw, new, old)
        if new[0] == "ok":
            check_interval(new[1], old[1], raw)
        else:
            assert new[1] == old[1], raw


@pytest.mark.parametrize("odd", [0.0, 0.1, 0.4])
def test_parse_prices_matches_the_reference(odd: float, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(SEED * 7 + int(odd * 100))
    caplog.set_level(logging.WARNING)
    for _ in range(60):
        items = raw_list(rng, odd)
        items = parseable(items)
        caplog.clear()
        result = parse_prices(items)
        new_log = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
        caplog.clear()
        intervals, skipped = ref_parse_prices(items)
        old_log = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
        assert result.skipped == skipped and new_log == old_log
        assert len(result.intervals) == len(intervals)
        for raw, new, old in zip([r for r in items if outcome(ref_parse_price_interval, r)[0] == "ok"], result.intervals, intervals):
            check_interval(new, old, raw)


def test_exceptions_other_than_malformed_are_the_same() -> None:
    good = {"type": "ForecastInterval", "duration": 30, "endTime": "2026-12-04T07:00:00Z", "perKwh": 30.0,
            "channelType": "general"}
    for change in [{"endTime": "0001-01-01T00:10:00Z"}, {"endTime": "0001-01-01T00:10:00+05:00"}, {"perKwh": 10**400},
                   {"spotPerKwh": 10**400}, {"renewables": 10**400}, {"advancedPrice": {"low": 1.0, "predicted": 10**400, "high": 2.0}},
                   {"type": ["x"]}, {"duration": 10**30}]:
        raw = good | change
        old = outcome(ref_parse_price_interval, raw)
        assert old[0] not in ("ok", "MalformedInterval"), change
        assert outcome(parse_price_interval, raw) == old
        with pytest.raises(Exception) as caught:
            parse_prices([good, raw])
        assert (type(caught.value).__name__, str(caught.value)) == old


def odd_interval(rng: random.Random, start: datetime) -> PriceInterval:
    minutes = rng.choice([5, 30, 30, 1])
    adv = rng.choice([None, None, AdvancedPrice(number(rng), number(rng), number(rng)),
                      AdvancedPrice(common_number(rng), common_number(rng), common_number(rng))])
    end = start + timedelta(minutes=minutes, seconds=rng.choice([0, 0, 0, 20]))
    return PriceInterval(rng.choice(list(Channel)), rng.choice(list(IntervalKind)), start, end, number(rng),
                         advanced_price=adv)


class BoundlessFeedIn(PriceBounds):
    """Bounds that PriceBounds itself would refuse: the screen must still call infinity not finite."""

    def for_channel(self, channel: Channel) -> tuple[float, float]:
        return (-math.inf, math.inf) if channel is Channel.FEED_IN else super().for_channel(channel)


@pytest.mark.parametrize("bounds", [PriceBounds(), PriceBounds(-10.0, 10.0), PriceBounds(-150, 2500), PriceBounds(0.0, 0.5),
                                    BoundlessFeedIn()])
def test_screen_prices_matches_the_reference(bounds: PriceBounds) -> None:
    rng = random.Random(SEED + 99)
    starts = [datetime(2026, 12, 4, 7, 0, tzinfo=timezone.utc) + timedelta(minutes=5 * i) for i in range(8)]
    for _ in range(80):
        parsed = parse_prices(parseable(raw_list(rng, 0.03))).intervals
        manual = [odd_interval(rng, rng.choice(starts)) for _ in range(rng.randint(0, 30))]
        intervals = parsed + manual
        for _ in range(rng.randint(0, 6)):  # exact repeats and the same slot with another price
            twin = rng.choice(intervals)
            intervals.append(twin if rng.random() < 0.5 else dataclasses.replace(twin, per_kwh=common_number(rng)))
        rng.shuffle(intervals)
        new, old = outcome(lambda i: screen_prices(i, bounds), intervals), outcome(lambda i: ref_screen_prices(i, bounds), intervals)
        assert new[0] == old[0]
        if new[0] != "ok":
            assert new[1] == old[1]
            continue
        (kept, refused), (old_kept, old_refused) = new[1], old[1]
        assert [id(i) for i in kept] == [id(i) for i in old_kept]
        assert same(refused, old_refused), (refused, old_refused)


def test_screen_prices_takes_any_iterable_and_str_channels() -> None:
    start = datetime(2026, 12, 4, 7, 0, tzinfo=timezone.utc)
    for price in (-100.0, -1000.0):  # a str "feedIn" has the general bounds (and no .value for a refusal)
        items = [PriceInterval("feedIn", IntervalKind.ACTUAL, start, start + timedelta(minutes=30), price),  # type: ignore[arg-type]
                 PriceInterval(Channel.FEED_IN, IntervalKind.ACTUAL, start, start + timedelta(minutes=30), price)]
        new = outcome(lambda i: screen_prices(iter(i), PriceBounds()), items)
        old = outcome(lambda i: ref_screen_prices(iter(i), PriceBounds()), items)
        assert new[0] == old[0]
        if new[0] == "ok":
            assert [id(i) for i in new[1][0]] == [id(i) for i in old[1][0]] and same(new[1][1], old[1][1])
        else:
            assert new[1] == old[1]


def test_cached_duration_minutes_leaves_equality_hash_and_repr_alone() -> None:
    start = datetime(2026, 12, 4, 7, 0, tzinfo=timezone.utc)
    a = PriceInterval(Channel.GENERAL, IntervalKind.ACTUAL, start, start + timedelta(minutes=30), 30.0)
    b = PriceInterval(Channel.GENERAL, IntervalKind.ACTUAL, start, start + timedelta(minutes=30), 30.0)
    before = repr(a)
    assert a.duration_minutes == 30 and a.duration_minutes == 30
    assert a == b and repr(a) == before == repr(b) and dataclasses.astuple(a) == dataclasses.astuple(b)
    assert dataclasses.replace(a, end=start + timedelta(minutes=5)).duration_minutes == 5
    assert copy.copy(a) == a and pickle.loads(pickle.dumps(a)) == a
    raw = {"type": "ActualInterval", "duration": 30, "endTime": "2026-12-04T07:30:00Z", "perKwh": 30.0, "channelType": "general"}
    parsed = parse_price_interval(raw)
    assert parsed == b and repr(parsed) == repr(b) and parsed.duration_minutes == 30
