"""The faster build_tariff and tariff_hash give exactly what the previous implementation gave.

tests/tariff_reference.py is app/tariff.py as it was before the speed work (the commit that added this
test), kept unchanged as the reference. Inputs are random with a fixed seed: the four zones with
different DST rules, `now` over a year and densely around every clock change and slot boundary, random
prices and gaps, 5- and 30-minute intervals mixed, overlaps, invalid and foreign intervals, feed-in on
and off, and every estimate."""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app import tariff as new
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval
from app.sync.rules import tariff_hash
from tests import tariff_reference as ref

UTC = timezone.utc
ZONES = ("Australia/Sydney", "Australia/Adelaide", "Australia/Brisbane", "Australia/Lord_Howe")
# Clock changes in 2025 (UTC): Sydney and Adelaide at 16:00 / 16:30, Lord Howe at 15:00 / 15:30.
CHANGES = (
    datetime(2025, 4, 5, 15, 0, tzinfo=UTC),
    datetime(2025, 4, 5, 16, 0, tzinfo=UTC),
    datetime(2025, 4, 5, 16, 30, tzinfo=UTC),
    datetime(2025, 10, 4, 15, 30, tzinfo=UTC),
    datetime(2025, 10, 4, 16, 0, tzinfo=UTC),
    datetime(2025, 10, 4, 16, 30, tzinfo=UTC),
)
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)


def reference_hash(tariff: object) -> str:
    return hashlib.sha256(json.dumps(tariff, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


_ATOMS = (str, float, int, bool, type(None), datetime)


def plain(value: object) -> object:
    """A structure whose repr shows every field, type and value (so -0.0 != 0.0 and 1 != 1.0 != True);
    enum members become (class name, value) because the reference has its own SlotFlag class."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if isinstance(value, enum.Enum):
        return (kind.__name__, value.value)
    if hasattr(kind, "__dataclass_fields__"):
        return (kind.__name__, tuple((name, plain(getattr(value, name))) for name in kind.__dataclass_fields__))
    if kind in (tuple, list):
        return (kind.__name__, tuple(plain(item) for item in value))
    if kind is dict:
        return ("dict", tuple((plain(k), plain(v)) for k, v in value.items()))
    raise AssertionError(f"unexpected {kind!r} in a build result")


def outcome(module, intervals, zone, now, policy_fields):
    try:
        policy = module.TariffPolicy(**policy_fields)
        tariff, explanation = module.build_tariff(intervals, zone, now, policy)
    except (module.TariffBuildError, ValueError) as error:
        extra = (error.known_slots, error.channel) if isinstance(error, module.TariffBuildError) else None
        return ("error", type(error).__name__, str(error), extra)
    return ("ok", tariff, explanation)


def assert_same(intervals, zone, now, policy_fields):
    expected = outcome(ref, intervals, zone, now, policy_fields)
    actual = outcome(new, intervals, zone, now, policy_fields)
    assert actual[0] == expected[0], (actual, expected)
    if expected[0] == "error":
        assert actual == expected
        return None
    _, tariff, explanation = actual
    _, ref_tariff, ref_explanation = expected
    assert tariff == ref_tariff
    assert json.dumps(tariff) == json.dumps(ref_tariff)  # key order and types (1, 1.0, True, -0.0) too
    assert json.dumps(tariff, sort_keys=True) == json.dumps(ref_tariff, sort_keys=True)
    assert json.dumps(explanation.to_dict()) == json.dumps(ref_explanation.to_dict())
    assert repr(plain(explanation)) == repr(plain(ref_explanation))
    assert explanation.export_costs_money_periods == ref_explanation.export_costs_money_periods
    assert tariff_hash(tariff) == reference_hash(ref_tariff)
    return tariff, explanation


def random_nows(rng: random.Random) -> list[datetime]:
    nows: list[datetime] = []
    for _ in range(36):  # anywhere in the year, any second
        offset = timedelta(seconds=rng.randrange(366 * 86400), microseconds=rng.randrange(10**6))
        nows.append(YEAR_START + offset)
    for change in CHANGES:
        for _ in range(8):  # the day before to the day after, on and off the quarter hours
            base = change + timedelta(minutes=15 * rng.randrange(-104, 105))
            nows.append(base + rng.choice([timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1),
                                           timedelta(minutes=rng.randrange(15)), timedelta(seconds=rng.randrange(900))]))
        nows.append(change)
        nows.append(change - timedelta(microseconds=1))
    return nows


def local_forms(rng: random.Random, now: datetime) -> datetime:
    """`now` as given to build_tariff: in UTC, another fixed offset, or a zone (fold 0 or 1 in a repeat)."""
    form = rng.randrange(4)
    if form == 0:
        return now
    if form == 1:
        return now.astimezone(timezone(timedelta(hours=rng.choice([-5, 0, 10, 10.5]))))
    local = now.astimezone(ZoneInfo(rng.choice(ZONES)))
    return local if form == 2 else local.replace(fold=1 - local.fold)


def random_price(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.15:
        return rng.choice([0.0, -0.0, 10.0, 25.5, -3.2])  # equal prices, ties, signed zeros
    if kind < 0.25:
        return rng.uniform(100.0, 1500.0)  # spikes
    if kind < 0.40:
        return rng.uniform(-60.0, 0.0)
    return round(rng.uniform(-5.0, 60.0), rng.choice([2, 5, 9]))


def random_intervals(rng: random.Random, now: datetime) -> list[PriceInterval]:
    feed_in = rng.random() < 0.6
    drop = rng.choice([0.0, 0.05, 0.3, 0.9])
    channels = [Channel.GENERAL] + ([Channel.FEED_IN] if feed_in else [])
    if rng.random() < 0.2:
        channels.append(Channel.CONTROLLED_LOAD)
    grid = now.replace(minute=now.minute // 30 * 30, second=0, microsecond=0)
    pieces: list[tuple[datetime, int]] = []
    for step in range(rng.choice([-6, -2, 0]), rng.choice([20, 50, 60])):
        pieces.append((grid + timedelta(minutes=30 * step), 30))
    near = now.replace(minute=now.minute // 5 * 5, second=0, microsecond=0)
    for step in range(rng.choice([-12, -3]), rng.choice([0, 12, 40])):
        pieces.append((near + timedelta(minutes=5 * step), 5))
    if rng.random() < 0.15:  # odd alignments and lengths
        for _ in range(6):
            pieces.append((grid + timedelta(minutes=rng.randrange(-60, 1500)), rng.choice([0, 7, 15, 45, 60])))
    intervals: list[PriceInterval] = []
    for begin, minutes in pieces:
        for channel in channels:
            if rng.random() < drop:
                continue
            end = begin + timedelta(minutes=minutes)
            if rng.random() < 0.02:
                end = begin - timedelta(minutes=5)  # negative length
            kind = (IntervalKind.ACTUAL if end <= now else IntervalKind.CURRENT if begin <= now
                    else IntervalKind.FORECAST)
            if rng.random() < 0.05:
                kind = rng.choice(list(IntervalKind))
            price = random_price(rng)
            if channel is Channel.FEED_IN:
                price = -price if rng.random() < 0.9 else price
            if rng.random() < 0.02:
                price = rng.choice([math.nan, math.inf])
            advanced = None
            if kind is IntervalKind.FORECAST and rng.random() < 0.7:
                values = [price * rng.uniform(0.5, 1.5) for _ in range(3)]
                if rng.random() < 0.05:
                    values[rng.randrange(3)] = math.nan
                advanced = AdvancedPrice(*values)
            intervals.append(
                PriceInterval(
                    channel=channel,
                    kind=kind,
                    start=begin.astimezone(rng.choice([UTC, ZoneInfo("Australia/Brisbane")])),
                    end=end,
                    per_kwh=price,
                    advanced_price=advanced,
                    spike_status=rng.choice(["none", "none", "none", "potential", "spike"]),
                )
            )
    if rng.random() < 0.3:
        rng.shuffle(intervals)
    return intervals


def random_policy(rng: random.Random) -> dict[str, object]:
    fields: dict[str, object] = {"estimate": rng.choice(["low", "predicted", "high"])}
    if rng.random() < 0.3:
        fields["spike_threshold"] = rng.choice([0.05, 0.3, 1, 2.5])
    if rng.random() < 0.2:
        fields.update(code="X:Y", name="N", sell_name="S", utility="U")
    return fields


def test_build_tariff_matches_the_reference_on_random_inputs():
    rng = random.Random(20251005)
    built = 0
    for now in random_nows(rng):
        zone_name = rng.choice(ZONES)
        zone = ZoneInfo(zone_name) if rng.random() < 0.8 else zone_name
        intervals = random_intervals(rng, now)
        policy = random_policy(rng)
        result = assert_same(intervals, zone, local_forms(rng, now), policy)
        built += result is not None
        # The same quarter hour again (the cached clock walk), another zone, another estimate.
        later = now + timedelta(seconds=rng.randrange(60))
        assert_same(intervals, zone, later, dict(policy, estimate=rng.choice(["low", "predicted", "high"])))
        if result is not None:
            tariff, _ = result
            tariff["energy_charges"]["Summer"]["rates"].clear()  # a caller's mutation must not leak
            tariff["seasons"]["Summer"]["tou_periods"].popitem()
            assert_same(intervals, rng.choice(ZONES), later, policy)
    assert built > 60  # many inputs build, not just fail


@pytest.mark.parametrize("zone", ZONES)
def test_every_quarter_hour_around_the_clock_changes(zone):
    rng = random.Random(zone)
    for change in CHANGES[:: 2 if zone != "Australia/Lord_Howe" else 1]:
        intervals = random_intervals(random.Random(7), change)
        for quarter in range(-4, 5):
            now = change + timedelta(minutes=15 * quarter)
            assert_same(intervals, ZoneInfo(zone), now, {"estimate": rng.choice(["low", "predicted", "high"])})


def test_errors_match_the_reference():
    rng = random.Random(3)
    now = datetime(2025, 10, 4, 16, 10, tzinfo=UTC)
    intervals = random_intervals(rng, now)
    naive = dataclasses.replace(intervals[len(intervals) // 2], start=datetime(2025, 10, 4, 17, 0))
    cases = [
        (intervals, "Australia/Sydney", now.replace(tzinfo=None), {}),  # naive now
        (intervals, "Mars/Olympus", now, {}),  # unknown zone
        (intervals, "", now, {}),
        (intervals, "Australia/Sydney", now, {"estimate": "best"}),  # policy errors
        (intervals, "Australia/Sydney", now, {"spike_threshold": 0}),
        (intervals, "Australia/Sydney", now, {"code": " "}),
        (intervals[:len(intervals) // 2] + [naive] + intervals[len(intervals) // 2:], "Australia/Sydney", now, {}),
        ([], "Australia/Sydney", now, {}),  # nothing: TariffBuildError for the general channel
        ([i for i in intervals if i.channel is Channel.GENERAL][:3], "Australia/Sydney", now, {}),
        ([i for i in intervals if i.channel is not Channel.FEED_IN or i.start < now + timedelta(hours=1)],
         "Australia/Sydney", now, {}),  # feed-in too thin
    ]
    for case in cases:
        assert assert_same(*case) is None


def test_tariff_hash_is_the_old_hash():
    rng = random.Random(11)
    now = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
    tariff, _ = new.build_tariff(random_intervals(rng, now), "Australia/Sydney", now)
    flat = new.tariff_from_rates(new.TariffPolicy(), dict.fromkeys(new.PERIOD_NAMES, 0.25),
                                 dict.fromkeys(new.PERIOD_NAMES, 0.05))
    variants: list[object] = [tariff, flat, json.loads(json.dumps(tariff)), {}, [], "x", 1.5, None]

    def changed(edit):
        copy = json.loads(json.dumps(tariff))
        edit(copy)
        variants.append(copy)

    period = lambda doc: doc["seasons"]["Summer"]["tou_periods"]["PERIOD_10_30"]["periods"][0]  # noqa: E731
    changed(lambda doc: period(doc).update(fromHour=10.0))  # equal, but encodes differently
    changed(lambda doc: period(doc).update(fromDayOfWeek=False))
    changed(lambda doc: period(doc).update(toMinute=True))
    changed(lambda doc: doc["sell_tariff"]["seasons"]["Summer"].update(fromMonth=1.0))
    changed(lambda doc: doc["seasons"]["Summer"].update(toDay=30))
    changed(lambda doc: doc["seasons"].update(Winter={}))
    changed(lambda doc: doc.update(seasons=dict(reversed(list(doc["seasons"]["Summer"]["tou_periods"].items())))))
    changed(lambda doc: doc["seasons"]["Summer"].update(tou_periods=dict(
        reversed(list(doc["seasons"]["Summer"]["tou_periods"].items())))))  # same content, other order
    changed(lambda doc: doc.update({"é": "ünïcode", "\u2028": [1, 2.5, None, True]}))
    changed(lambda doc: doc["sell_tariff"].update({"zzz": {"b": 1, "a": -0.0}}))
    changed(lambda doc: doc.update(sell_tariff=[doc["sell_tariff"]]))
    changed(lambda doc: doc["energy_charges"]["Summer"]["rates"].update(PERIOD_00_00=float("nan")))

    class Text(str):
        pass

    class Number(int):
        pass

    changed(lambda doc: doc.update(code=Text("AMBER:SYNC")))
    changed(lambda doc: period(doc).update(fromHour=Number(10)))
    changed(lambda doc: doc["seasons"].update(Summer={Text(k): v for k, v in doc["seasons"]["Summer"].items()}))
    variants.append({5: "five", 10: [], -1: 0})  # non-string keys, converted by json
    shared = new.build_tariff(random_intervals(rng, now), "Australia/Sydney", now)[0]
    shared["sell_tariff"]["seasons"] = shared["seasons"]  # the same object twice is not a cycle
    variants.append(shared)
    for variant in variants:
        assert tariff_hash(variant) == reference_hash(variant)
        assert new.canonical_tariff_json(variant) == json.dumps(variant, sort_keys=True, separators=(",", ":"))

    for unhashable in ({**tariff, 5: "five"}, {"x": object()}, {"sell_tariff": {"seasons": {"Summer": {1, 2}}}}):
        with pytest.raises(TypeError) as expected:
            reference_hash(unhashable)
        with pytest.raises(TypeError) as actual:
            tariff_hash(unhashable)
        assert str(actual.value) == str(expected.value)
    cycle = json.loads(json.dumps(tariff))
    cycle["sell_tariff"]["loop"] = cycle
    with pytest.raises(ValueError, match="Circular reference detected"):
        reference_hash(cycle)
    with pytest.raises(ValueError, match="Circular reference detected"):
        tariff_hash(cycle)
