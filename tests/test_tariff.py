"""Table-driven golden tests for the pure tariff engine (app/tariff.py).

No app, database, HTTP or clock: every test passes `now` and builds its own intervals. Fixture JSON is
turned into PriceInterval values by a small helper here, not by the (separately developed) Amber client.
"""
from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval
from app.tariff import (
    SlotFlag,
    TariffBuildError,
    TariffExplanation,
    TariffPolicy,
    build_tariff,
    period_name,
    validate_tariff,
)

UTC = timezone.utc
GENERAL = Channel.GENERAL
FEED_IN = Channel.FEED_IN
ACTUAL, CURRENT, FORECAST = IntervalKind.ACTUAL, IntervalKind.CURRENT, IntervalKind.FORECAST
from tests.reference import FIXTURES  # noqa: E402
FIXTURE_NOW = datetime(2025, 11, 20, 3, 12, tzinfo=UTC)  # 14:12 AEDT, 13:12 NEM time
ALL_PERIODS = [period_name(minutes) for minutes in range(0, 1440, 30)]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def utc(text: str) -> datetime:
    """Parse an ISO instant ('Z' allowed) into an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def intervals_from_amber_json(items: Iterable[dict[str, Any]]) -> list[PriceInterval]:
    """Amber price JSON -> PriceInterval: start = endTime - duration; kind from `type`."""
    kinds = {"ActualInterval": ACTUAL, "CurrentInterval": CURRENT, "ForecastInterval": FORECAST}
    result = []
    for item in items:
        end = utc(item["endTime"])
        advanced = item.get("advancedPrice")
        result.append(
            PriceInterval(
                channel=Channel(item["channelType"]),
                kind=kinds[item["type"]],
                start=end - timedelta(minutes=item["duration"]),
                end=end,
                per_kwh=item["perKwh"],
                spot_per_kwh=item.get("spotPerKwh"),
                advanced_price=AdvancedPrice(**advanced) if advanced else None,
                estimate=item.get("estimate", False),
                spike_status=item.get("spikeStatus", "none"),
                descriptor=item.get("descriptor"),
                renewables=item.get("renewables"),
            )
        )
    return result


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def fixture_intervals(name: str) -> list[PriceInterval]:
    return intervals_from_amber_json(load_fixture(name))


def interval(
    start: datetime,
    per_kwh: float,
    *,
    channel: Channel = GENERAL,
    minutes: int = 30,
    kind: IntervalKind = FORECAST,
    advanced: AdvancedPrice | None = None,
    spike: str = "none",
) -> PriceInterval:
    return PriceInterval(
        channel=channel,
        kind=kind,
        start=start,
        end=start + timedelta(minutes=minutes),
        per_kwh=per_kwh,
        advanced_price=advanced,
        spike_status=spike,
    )


def series(
    start: datetime,
    end: datetime,
    now: datetime,
    general: Callable[[datetime], float],
    feed_in: Callable[[datetime], float] | None = None,
    *,
    minutes: int = 30,
) -> list[PriceInterval]:
    """Amber-shaped intervals from `start` to `end`: actual before now, current at now, forecast after."""
    result = []
    step = timedelta(minutes=minutes)
    t = start
    while t < end:
        kind = ACTUAL if t + step <= now else CURRENT if t <= now else FORECAST
        result.append(interval(t, general(t), minutes=minutes, kind=kind))
        if feed_in is not None:
            result.append(interval(t, feed_in(t), channel=FEED_IN, minutes=minutes, kind=kind))
        t += step
    return result


def coded_price(anchor: datetime) -> Callable[[datetime], float]:
    """A c/kWh price unique to each half hour after `anchor`, so a misaligned slot shows."""
    return lambda t: 10 + ((t - anchor) // timedelta(minutes=30)) * 0.5


def buy_rates(tariff: dict[str, Any]) -> dict[str, float]:
    return tariff["energy_charges"]["Summer"]["rates"]


def sell_rates(tariff: dict[str, Any]) -> dict[str, float]:
    return tariff["sell_tariff"]["energy_charges"]["Summer"]["rates"]


def dollars(c_per_kwh: float) -> float:
    return round(c_per_kwh / 100, 4) + 0.0


def build(
    intervals: Iterable[PriceInterval], tz: str, now: datetime, **policy: Any
) -> tuple[dict[str, Any], TariffExplanation]:
    tariff, explanation = build_tariff(list(intervals), tz, now, TariffPolicy(**policy))
    assert validate_tariff(tariff) == []
    assert len(explanation.slots) == 48
    assert sorted(slot.period for slot in explanation.slots) == ALL_PERIODS
    json.dumps(explanation.to_dict())  # must always be plain JSON
    return tariff, explanation


def day_of_data(
    tz: str, now: datetime, general: Callable[[datetime], float], feed_in: Callable[[datetime], float] | None = None,
    *, minutes: int = 30, hours: float = 26,
) -> list[PriceInterval]:
    """Data from 2 h before the current slot to `hours` after it (past actuals included on purpose)."""
    local = now.astimezone(ZoneInfo(tz))
    slot_start = now - timedelta(minutes=local.minute % 30, seconds=local.second, microseconds=local.microsecond)
    return series(slot_start - timedelta(hours=2), slot_start + timedelta(hours=hours), now, general, feed_in, minutes=minutes)


# --------------------------------------------------------------------------------------------------
# Golden: the reference fixtures
# --------------------------------------------------------------------------------------------------


def test_golden_fixture_matches_reference_tesla_request_exactly() -> None:
    expected = load_fixture("tesla_tou_settings_request.json")["tou_settings"]["tariff_content_v2"]
    tariff, explanation = build(fixture_intervals("amber_prices_current.json"), "Australia/Sydney", FIXTURE_NOW)
    assert tariff == expected
    # Same key order too, so a byte comparison of the pushed JSON is stable.
    assert json.dumps(tariff) == json.dumps(expected)
    # The reference example itself passes our validator.
    assert validate_tariff(expected) == []


def test_changing_a_built_tariff_does_not_change_the_next_build() -> None:
    """The builder keeps the local-clock layout of a zone and quarter hour for the next build: what a caller
    does to a tariff it was given must not reach the next household's."""
    intervals = fixture_intervals("amber_prices_current.json")
    first, first_explanation = build(intervals, "Australia/Sydney", FIXTURE_NOW)
    expected, expected_explanation = copy.deepcopy(first), copy.deepcopy(first_explanation)
    first["energy_charges"]["Summer"]["rates"].clear()
    first["seasons"]["Summer"]["tou_periods"].popitem()
    first["sell_tariff"]["energy_charges"]["Summer"]["rates"]["PERIOD_14_00"] = 99.0
    again, again_explanation = build(intervals, "Australia/Sydney", FIXTURE_NOW + timedelta(seconds=30))
    assert again == expected
    assert again_explanation.to_dict() == {**expected_explanation.to_dict(), "now": again_explanation.to_dict()["now"]}


def test_golden_fixture_explanation() -> None:
    _, explanation = build(fixture_intervals("amber_prices_current.json"), "Australia/Sydney", FIXTURE_NOW)
    current = explanation.slots[0]
    assert current.period == "PERIOD_14_00" and current.current
    assert (current.wall_from, current.wall_to) == ("14:00", "14:30")
    assert current.local_start == "2025-11-20T14:00:00+11:00"
    assert [(u.channel, u.kind, u.field, u.raw_c_per_kwh) for u in current.intervals] == [
        ("general", "current", "perKwh", 8.84314),
        ("feedIn", "current", "perKwh", 2.82288),
    ]
    assert (current.buy_before, current.sell_before, current.buy, current.sell) == (0.0884, -0.0282, 0.0884, 0.0)
    assert current.flags == (SlotFlag.SELL_CLAMPED_NEGATIVE, SlotFlag.EXPORT_COSTS_MONEY)
    # The 18:00 NEM forecast (potential spike) ends 18:00+10:00 = 19:00 AEDT, so it is the 18:30 slot.
    spike = explanation.slot("PERIOD_18_30")
    assert spike.intervals[0].start == utc("2025-11-20T07:30:00Z")
    assert spike.intervals[0].field == "advancedPrice.predicted"
    assert (spike.buy, spike.sell) == (0.9355, 0.6071)
    assert spike.flags == (SlotFlag.POTENTIAL_SPIKE,)
    # Slots before 14:00 carry tomorrow's prices, the last one being 13:30-14:00 tomorrow.
    last = explanation.slots[-1]
    assert last.period == "PERIOD_13_30" and last.intervals[0].start == utc("2025-11-21T02:30:00Z")
    assert explanation.export_costs_money_periods == (
        "PERIOD_14_00", "PERIOD_14_30", "PERIOD_15_00", "PERIOD_10_30", "PERIOD_11_00",
        "PERIOD_11_30", "PERIOD_12_00", "PERIOD_12_30", "PERIOD_13_00", "PERIOD_13_30",
    )
    # The 48th forecast (14:00 tomorrow) is the next-but-one occurrence of the current slot: unused.
    assert dict(explanation.ignored_intervals)["outside_window"] == 2
    assert explanation.fill_buy is None and explanation.fill_sell is None


def test_five_minute_fixture_alone_is_too_short_to_build() -> None:
    with pytest.raises(TariffBuildError) as caught:
        build_tariff(fixture_intervals("amber_prices_5min.json"), "Australia/Sydney", FIXTURE_NOW, TariffPolicy())
    assert caught.value.known_slots == 2  # 14:30 (full) and 15:00 (partial); 14:00 is current
    assert "keeping the previous tariff" in str(caught.value)


def test_mixed_five_minute_near_term_and_thirty_minute_beyond() -> None:
    five = [i for i in fixture_intervals("amber_prices_5min.json") if i.end <= utc("2025-11-20T04:00:00Z")]
    thirty = [i for i in fixture_intervals("amber_prices_current.json") if i.start >= utc("2025-11-20T04:00:00Z")]
    tariff, explanation = build(five + thirty, "Australia/Sydney", FIXTURE_NOW)
    golden = load_fixture("tesla_tou_settings_request.json")["tou_settings"]["tariff_content_v2"]

    # Current slot: 2 actual + 1 current (perKwh) + 3 forecast (advancedPrice.predicted), equal weights;
    # the 13:55 actual belongs to the past 13:30 slot and is ignored.
    current = explanation.slots[0]
    assert [(u.kind, u.field) for u in current.intervals if u.channel == "general"] == [
        ("actual", "perKwh"), ("actual", "perKwh"), ("current", "perKwh"),
        ("forecast", "advancedPrice.predicted"), ("forecast", "advancedPrice.predicted"),
        ("forecast", "advancedPrice.predicted"),
    ]
    assert buy_rates(tariff)["PERIOD_14_00"] == dollars((8.7046 + 8.75711 + 8.81193 + 8.60283 + 8.65998 + 8.71882) / 6)
    assert buy_rates(tariff)["PERIOD_14_30"] == dollars(
        (8.77915 + 8.84078 + 8.90348 + 8.96707 + 9.03131 + 9.09598) / 6
    )
    assert dict(explanation.ignored_intervals)["past"] == 2
    # From 15:00 on the 30-minute data rules and agrees with the golden request.
    for period in ALL_PERIODS:
        if period not in ("PERIOD_14_00", "PERIOD_14_30"):
            assert buy_rates(tariff)[period] == buy_rates(golden)[period], period
            assert sell_rates(tariff)[period] == sell_rates(golden)[period], period


def test_overlapping_five_and_thirty_minute_data_prefers_the_finer_intervals() -> None:
    everything = fixture_intervals("amber_prices_5min.json") + fixture_intervals("amber_prices_current.json")
    tariff, explanation = build(everything, "Australia/Sydney", FIXTURE_NOW)
    # 15:00 has three 5-minute forecasts and an overlapping 30-minute one: the 5-minute ones win.
    slot = explanation.slot("PERIOD_15_00")
    assert [u.duration_minutes for u in slot.intervals if u.channel == "general"] == [5, 5, 5]
    assert SlotFlag.PARTIAL in slot.flags
    assert buy_rates(tariff)["PERIOD_15_00"] == dollars((27.29444 + 27.64956 + 28.00468) / 3)
    assert dict(explanation.ignored_intervals)["overlap"] == 2 * 3  # 30-min 14:00, 14:30, 15:00 per channel


# --------------------------------------------------------------------------------------------------
# Realistic scenarios (table-driven)
# --------------------------------------------------------------------------------------------------

BRISBANE_NOW = datetime(2026, 11, 24, 2, 40, tzinfo=UTC)  # 12:40 AEST


def _normal_general(t: datetime) -> float:
    hour = t.astimezone(ZoneInfo("Australia/Brisbane")).hour
    return 35.0 if 16 <= hour < 21 else 12.0 if 10 <= hour < 15 else 22.0


def _normal_feed(t: datetime) -> float:
    return -(_normal_general(t) - 9.0)


SCENARIOS: list[tuple[str, Callable[[datetime], float], Callable[[datetime], float], dict[str, tuple[float, float]], dict[str, tuple[SlotFlag, ...]]]] = [
    (
        "normal day",
        _normal_general,
        _normal_feed,
        {"PERIOD_12_30": (0.12, 0.03), "PERIOD_17_00": (0.35, 0.26), "PERIOD_03_00": (0.22, 0.13)},
        {"PERIOD_17_00": ()},
    ),
    (
        "evening spike above $10/kWh",
        lambda t: 1500.0 if t.astimezone(ZoneInfo("Australia/Brisbane")).hour == 18 else 25.0,
        lambda t: -1420.0 if t.astimezone(ZoneInfo("Australia/Brisbane")).hour == 18 else -8.0,
        {"PERIOD_18_00": (15.0, 14.2), "PERIOD_18_30": (15.0, 14.2), "PERIOD_19_00": (0.25, 0.08)},
        {"PERIOD_18_00": (SlotFlag.SPIKE,), "PERIOD_19_00": ()},
    ),
    (
        "midday negative buy and feed-in",
        lambda t: -6.5 if 11 <= t.astimezone(ZoneInfo("Australia/Brisbane")).hour < 14 else 20.0,
        lambda t: 4.0 if 11 <= t.astimezone(ZoneInfo("Australia/Brisbane")).hour < 14 else -10.0,
        {"PERIOD_13_00": (0.0, 0.0), "PERIOD_14_00": (0.2, 0.1)},
        {
            "PERIOD_13_00": (SlotFlag.BUY_CLAMPED_NEGATIVE, SlotFlag.SELL_CLAMPED_NEGATIVE, SlotFlag.EXPORT_COSTS_MONEY),
            "PERIOD_14_00": (),
        },
    ),
    (
        "paid to import while earning on export: sell lowered to buy",
        lambda t: -3.0 if t.astimezone(ZoneInfo("Australia/Brisbane")).hour == 13 else 20.0,
        lambda t: -2.0 if t.astimezone(ZoneInfo("Australia/Brisbane")).hour == 13 else -10.0,
        {"PERIOD_13_30": (0.0, 0.0)},
        {"PERIOD_13_30": (SlotFlag.BUY_CLAMPED_NEGATIVE, SlotFlag.SELL_LOWERED_TO_BUY)},
    ),
    (
        "feed-in above buy",
        lambda t: 10.0,
        lambda t: -12.34567,
        {"PERIOD_20_00": (0.1, 0.1)},
        {"PERIOD_20_00": (SlotFlag.SELL_LOWERED_TO_BUY,)},
    ),
]


@pytest.mark.parametrize("minutes", [30, 5], ids=["30-minute", "5-minute"])
@pytest.mark.parametrize(("name", "general", "feed_in", "expected", "expected_flags"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenarios(
    name: str,
    general: Callable[[datetime], float],
    feed_in: Callable[[datetime], float],
    expected: dict[str, tuple[float, float]],
    expected_flags: dict[str, tuple[SlotFlag, ...]],
    minutes: int,
) -> None:
    tariff, explanation = build(day_of_data("Australia/Brisbane", BRISBANE_NOW, general, feed_in, minutes=minutes), "Australia/Brisbane", BRISBANE_NOW)
    for period, (buy, sell) in expected.items():
        assert (buy_rates(tariff)[period], sell_rates(tariff)[period]) == (buy, sell), period
    for period, flags in expected_flags.items():
        assert explanation.slot(period).flags == flags, period
    assert not any(slot.has(SlotFlag.FILLED) for slot in explanation.slots)
    if minutes == 5:
        assert all(len([u for u in slot.intervals if u.channel == "general"]) == 6 for slot in explanation.slots)


def test_adjustments_are_recorded_with_before_and_after() -> None:
    intervals = day_of_data("Australia/Brisbane", BRISBANE_NOW, lambda t: -3.0, lambda t: -2.0)
    _, explanation = build(intervals, "Australia/Brisbane", BRISBANE_NOW)
    slot = explanation.slots[5]
    assert [(a.side, a.reason, a.before, a.after) for a in slot.adjustments] == [
        ("buy", "buy_clamped_negative", -0.03, 0.0),
        ("sell", "sell_lowered_to_buy", 0.02, 0.0),
    ]
    assert (slot.buy_before, slot.sell_before, slot.buy, slot.sell) == (-0.03, 0.02, 0.0, 0.0)


def test_spike_flag_from_amber_spike_status_even_below_threshold() -> None:
    intervals = day_of_data("Australia/Brisbane", BRISBANE_NOW, lambda t: 30.0)
    target = utc("2026-11-24T08:00:00Z")  # 18:00 AEST
    intervals = [interval(i.start, 60.0, kind=i.kind, spike="spike") if i.start == target else i for i in intervals]
    _, explanation = build(intervals, "Australia/Brisbane", BRISBANE_NOW)
    assert explanation.slot("PERIOD_18_00").flags == (SlotFlag.NO_FEED_IN, SlotFlag.SPIKE)
    assert explanation.periods_flagged(SlotFlag.SPIKE) == ("PERIOD_18_00",)


def test_five_minute_slot_is_duration_weighted_mean() -> None:
    now = datetime(2026, 11, 24, 2, 40, tzinfo=UTC)
    base = day_of_data("Australia/Brisbane", now, lambda t: 20.0)
    slot = utc("2026-11-24T05:00:00Z")  # 15:00 AEST: a 15-minute interval and three 5-minute ones
    base = [i for i in base if not slot <= i.start < slot + timedelta(minutes=30)]
    base += [
        interval(slot, 10.0, minutes=15),
        interval(slot + timedelta(minutes=15), 40.0, minutes=5),
        interval(slot + timedelta(minutes=20), 40.0, minutes=5),
        interval(slot + timedelta(minutes=25), 70.0, minutes=5),
    ]
    tariff, explanation = build(base, "Australia/Brisbane", now)
    assert buy_rates(tariff)["PERIOD_15_00"] == dollars((10 * 15 + 40 * 10 + 70 * 5) / 30)  # 0.3
    assert buy_rates(tariff)["PERIOD_15_00"] == 0.3


def test_rounding_to_four_decimals() -> None:
    intervals = day_of_data("Australia/Brisbane", BRISBANE_NOW, lambda t: 12.345678, lambda t: -1.23456)
    tariff, _ = build(intervals, "Australia/Brisbane", BRISBANE_NOW)
    assert set(buy_rates(tariff).values()) == {0.1235}
    assert set(sell_rates(tariff).values()) == {0.0123}


# --------------------------------------------------------------------------------------------------
# Which price (rule 4)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("estimate", "buy", "sell"), [("low", 0.08, 0.03), ("predicted", 0.1, 0.05), ("high", 0.15, 0.07), (None, 0.1, 0.05)])
def test_forecast_uses_chosen_estimate_and_actual_current_use_per_kwh(estimate: str | None, buy: float, sell: float) -> None:
    now = BRISBANE_NOW
    start = utc("2026-11-24T02:30:00Z")
    data: list[PriceInterval] = [
        interval(start, 11.0, kind=CURRENT, advanced=AdvancedPrice(1.0, 2.0, 3.0)),
        interval(start, -6.0, channel=FEED_IN, kind=CURRENT, advanced=AdvancedPrice(-1.0, -2.0, -3.0)),
    ]
    for k in range(1, 48):
        t = start + timedelta(minutes=30 * k)
        # Feed-in low is numerically above high, as Amber sends it; we take the named field as is.
        data.append(interval(t, 99.0, advanced=AdvancedPrice(8.0, 10.0, 15.0)))
        data.append(interval(t, -99.0, channel=FEED_IN, advanced=AdvancedPrice(-3.0, -5.0, -7.0)))
    policy = {} if estimate is None else {"estimate": estimate}
    tariff, explanation = build(data, "Australia/Brisbane", now, **policy)
    assert (buy_rates(tariff)["PERIOD_12_30"], sell_rates(tariff)["PERIOD_12_30"]) == (0.11, 0.06)
    assert explanation.slots[0].intervals[0].field == "perKwh"
    assert (buy_rates(tariff)["PERIOD_13_00"], sell_rates(tariff)["PERIOD_13_00"]) == (buy, sell)
    assert explanation.slot("PERIOD_13_00").intervals[0].field == f"advancedPrice.{estimate or 'predicted'}"


def test_forecast_without_advanced_price_falls_back_to_per_kwh() -> None:
    intervals = day_of_data("Australia/Brisbane", BRISBANE_NOW, lambda t: 21.0)
    _, explanation = build(intervals, "Australia/Brisbane", BRISBANE_NOW, estimate="high")
    assert explanation.slots[3].intervals[0].field == "perKwh"
    assert explanation.slots[3].buy == 0.21


def test_controlled_load_past_and_far_future_are_ignored() -> None:
    now = BRISBANE_NOW
    data = day_of_data("Australia/Brisbane", now, lambda t: 20.0, lambda t: -5.0, hours=24)
    past = utc("2026-11-23T02:30:00Z")  # yesterday's 12:30 actual with an absurd price
    data += [
        interval(past, 999.0, kind=ACTUAL),
        interval(utc("2026-11-24T02:30:00Z"), 777.0, channel=Channel.CONTROLLED_LOAD, kind=CURRENT),
        interval(utc("2026-11-25T02:30:00Z"), 555.0),  # tomorrow's 12:30: the current slot's next-but-one
    ]
    tariff, explanation = build(data, "Australia/Brisbane", now)
    assert set(buy_rates(tariff).values()) == {0.2}
    ignored = dict(explanation.ignored_intervals)
    assert ignored["other_channel"] == 1
    assert ignored["past"] == 1 + 2 * 4  # plus the 2 h of actuals day_of_data adds per channel
    assert ignored["outside_window"] == 1


def test_input_order_does_not_matter() -> None:
    intervals = fixture_intervals("amber_prices_current.json") + fixture_intervals("amber_prices_5min.json")
    shuffled = intervals[:]
    random.Random(7).shuffle(shuffled)
    assert build(intervals, "Australia/Sydney", FIXTURE_NOW)[0] == build(shuffled, "Australia/Sydney", FIXTURE_NOW)[0]


def test_exact_duplicates_keep_the_settled_kind() -> None:
    now = BRISBANE_NOW
    data = day_of_data("Australia/Brisbane", now, lambda t: 20.0)
    slot = utc("2026-11-24T02:30:00Z")
    data = [i for i in data if i.start != slot]
    data += [interval(slot, 50.0, kind=FORECAST), interval(slot, 30.0, kind=ACTUAL)]
    _, explanation = build(data, "Australia/Brisbane", now)
    assert explanation.slots[0].buy == 0.3
    assert [u.kind for u in explanation.slots[0].intervals] == ["actual"]


# --------------------------------------------------------------------------------------------------
# Missing slots (rule 7)
# --------------------------------------------------------------------------------------------------


def _short_forecast(future_slots: int) -> list[PriceInterval]:
    # BRISBANE_NOW is 12:40, so the current slot is 12:30 = 02:30Z
    start = utc("2026-11-24T02:30:00Z")
    data = [
        interval(start, 500.0, kind=CURRENT),
        interval(start, -450.0, channel=FEED_IN, kind=CURRENT),
    ]
    # Yesterday's actuals at exactly the wall-clock times that will be missing: must never be copied.
    for k in range(48):
        t = start - timedelta(days=1) + timedelta(minutes=30 * k)
        data += [interval(t, 999.0, kind=ACTUAL), interval(t, -990.0, channel=FEED_IN, kind=ACTUAL)]
    prices = [20.0, 30.0, 10.0, 40.0, 25.0, 35.0]
    feed = [-5.0, -1.0, 2.0, -3.0, -4.0, -6.0]
    for k in range(1, future_slots + 1):
        t = start + timedelta(minutes=30 * k)
        data += [interval(t, prices[(k - 1) % 6]), interval(t, feed[(k - 1) % 6], channel=FEED_IN)]
    return data


def test_short_forecast_fills_with_median_of_forecast_slots() -> None:
    tariff, explanation = build(_short_forecast(6), "Australia/Brisbane", BRISBANE_NOW)
    # Buy median of 20, 30, 10, 40, 25, 35 (current 500 excluded) = 27.5 c; sell median of 5, 1, -2, 3, 4, 6 = 3.5 c.
    assert explanation.fill_buy == 0.275 and explanation.fill_sell == 0.035
    filled = [slot for slot in explanation.slots if slot.has(SlotFlag.FILLED)]
    assert len(filled) == 48 - 7
    assert all(s.buy_source == "filled" and s.sell_source == "filled" and not s.intervals for s in filled)
    assert {(s.buy, s.sell) for s in filled} == {(0.275, 0.035)}
    assert 9.99 not in buy_rates(tariff).values()  # no past actual copied forward
    assert 0.0 not in buy_rates(tariff).values()  # never 0
    assert (buy_rates(tariff)["PERIOD_12_30"], sell_rates(tariff)["PERIOD_12_30"]) == (5.0, 4.5)
    assert explanation.known_forecast_slots_buy == 6


def test_filled_sell_goes_through_rule_six() -> None:
    data = _short_forecast(5)
    # Make every known feed-in forecast a cost to export: the median sell is negative and becomes 0.
    data = [interval(i.start, 3.0, channel=FEED_IN) if i.channel is FEED_IN and i.kind is FORECAST else i for i in data]
    _, explanation = build(data, "Australia/Brisbane", BRISBANE_NOW)
    slot = explanation.slots[-1]
    assert slot.flags == (SlotFlag.FILLED, SlotFlag.SELL_CLAMPED_NEGATIVE, SlotFlag.EXPORT_COSTS_MONEY)
    assert (slot.sell_before, slot.sell) == (-0.03, 0.0)


@pytest.mark.parametrize("future_slots", [0, 1, 3])
def test_fewer_than_four_forecast_slots_refuses(future_slots: int) -> None:
    with pytest.raises(TariffBuildError) as caught:
        build_tariff(_short_forecast(future_slots), "Australia/Brisbane", BRISBANE_NOW, TariffPolicy())
    assert caught.value.known_slots == future_slots
    assert caught.value.channel == "general"


def test_four_forecast_slots_are_enough() -> None:
    _, explanation = build(_short_forecast(4), "Australia/Brisbane", BRISBANE_NOW)
    assert explanation.fill_buy == dollars((20 + 30) / 2)  # median of 10, 20, 30, 40


def test_feed_in_with_too_few_forecast_slots_refuses() -> None:
    data = [i for i in _short_forecast(10) if not (i.channel is FEED_IN and i.start >= utc("2026-11-24T04:30:00Z"))]
    with pytest.raises(TariffBuildError) as caught:
        build_tariff(data, "Australia/Brisbane", BRISBANE_NOW, TariffPolicy())
    assert caught.value.channel == "feedIn" and caught.value.known_slots == 3


def test_missing_current_slot_is_filled_not_copied() -> None:
    data = [i for i in _short_forecast(10) if i.kind is not CURRENT]
    _, explanation = build(data, "Australia/Brisbane", BRISBANE_NOW)
    assert explanation.slots[0].buy_source == "filled" and explanation.slots[0].buy != 9.99


def test_site_without_feed_in_sells_at_zero() -> None:
    data = [i for i in _short_forecast(48) if i.channel is GENERAL]
    tariff, explanation = build(data, "Australia/Brisbane", BRISBANE_NOW)
    assert set(sell_rates(tariff).values()) == {0.0}
    assert all(s.sell_source == "no_feed_in" and SlotFlag.NO_FEED_IN in s.flags for s in explanation.slots)
    assert not explanation.has_feed_in and explanation.fill_sell is None


# --------------------------------------------------------------------------------------------------
# Alignment across zones and daylight saving (rule 3). Prices are unique per UTC half hour, so a slot
# that is an hour (DST), 30 minutes (end vs start, Adelaide) or 10 hours (server UTC) off shows.
# --------------------------------------------------------------------------------------------------

ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)
CODE = coded_price(ANCHOR)


def _aligned(tz: str, now: datetime, **kwargs: Any) -> tuple[dict[str, Any], TariffExplanation]:
    return build(day_of_data(tz, now, CODE, lambda t: -CODE(t) / 2, **kwargs), tz, now)


# (zone, now, {period: UTC start of the interval whose price it must hold}, {period: flags subset})
ALIGNMENT_CASES = [
    # Sydney-like zones, clocks go back 2026-04-05 03:00 AEDT -> 02:00 AEST (16:00Z).
    *[
        (zone, "2026-04-04T13:10:00Z",  # 00:10 AEDT on the change day
         {"PERIOD_00_00": "2026-04-04T13:00Z", "PERIOD_01_30": "2026-04-04T14:30Z",
          "PERIOD_02_00": "2026-04-04T15:00Z", "PERIOD_02_30": "2026-04-04T15:30Z",  # first occurrence
          "PERIOD_03_00": "2026-04-04T17:00Z", "PERIOD_23_30": "2026-04-05T13:30Z"})
        for zone in ("Australia/Sydney", "Australia/Melbourne", "Australia/Hobart")
    ],
    ("Australia/Sydney", "2026-04-05T16:10:00Z",  # 02:10 AEST: inside the repeated hour, second pass
     {"PERIOD_02_00": "2026-04-05T16:00Z", "PERIOD_02_30": "2026-04-05T16:30Z",
      "PERIOD_01_30": "2026-04-06T15:30Z", "PERIOD_03_00": "2026-04-05T17:00Z"}),
    ("Australia/Sydney", "2026-04-04T01:00:00Z",  # noon the day before: the window crosses the change
     {"PERIOD_12_00": "2026-04-04T01:00Z", "PERIOD_23_30": "2026-04-04T12:30Z",
      "PERIOD_02_00": "2026-04-04T15:00Z", "PERIOD_11_30": "2026-04-05T01:30Z"}),
    # Clocks go forward 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00Z).
    *[
        (zone, "2026-10-03T14:10:00Z",  # 00:10 AEST on the change day
         {"PERIOD_00_00": "2026-10-03T14:00Z", "PERIOD_01_30": "2026-10-03T15:30Z",
          "PERIOD_02_00": "2026-10-03T15:30Z", "PERIOD_02_30": "2026-10-03T16:00Z",  # DST gap: neighbours
          "PERIOD_03_00": "2026-10-03T16:00Z", "PERIOD_23_30": "2026-10-04T12:30Z"})
        for zone in ("Australia/Sydney", "Australia/Melbourne", "Australia/Hobart")
    ],
    ("Australia/Sydney", "2026-10-03T02:00:00Z",  # noon the day before
     {"PERIOD_12_00": "2026-10-03T02:00Z", "PERIOD_01_30": "2026-10-03T15:30Z",
      "PERIOD_03_00": "2026-10-03T16:00Z", "PERIOD_11_30": "2026-10-04T00:30Z"}),
    # Adelaide: +10:30 -> +9:30 on 2026-04-05 (16:30Z), +9:30 -> +10:30 on 2026-10-04 (16:30Z).
    ("Australia/Adelaide", "2026-04-04T13:40:00Z",  # 00:10 ACDT
     {"PERIOD_00_00": "2026-04-04T13:30Z", "PERIOD_02_00": "2026-04-04T15:30Z",
      "PERIOD_02_30": "2026-04-04T16:00Z", "PERIOD_03_00": "2026-04-04T17:30Z",
      "PERIOD_12_00": "2026-04-05T02:30Z"}),
    ("Australia/Adelaide", "2026-10-03T14:40:00Z",  # 00:10 ACST
     {"PERIOD_00_00": "2026-10-03T14:30Z", "PERIOD_01_30": "2026-10-03T16:00Z",
      "PERIOD_02_00": "2026-10-03T16:00Z", "PERIOD_02_30": "2026-10-03T16:30Z",
      "PERIOD_03_00": "2026-10-03T16:30Z", "PERIOD_12_00": "2026-10-04T01:30Z"}),
    ("Australia/Adelaide", "2025-11-20T03:12:00Z",  # 13:42 ACDT: half-hour offset vs NEM time
     {"PERIOD_13_30": "2025-11-20T03:00Z", "PERIOD_14_00": "2025-11-20T03:30Z", "PERIOD_13_00": "2025-11-21T02:30Z"}),
    # Brisbane: no DST, local = NEM time, nothing special on the NSW change days.
    ("Australia/Brisbane", "2026-10-03T14:10:00Z",
     {"PERIOD_00_00": "2026-10-03T14:00Z", "PERIOD_02_00": "2026-10-03T16:00Z",
      "PERIOD_02_30": "2026-10-03T16:30Z", "PERIOD_03_00": "2026-10-03T17:00Z"}),
    ("Australia/Brisbane", "2026-04-04T13:10:00Z",
     {"PERIOD_23_00": "2026-04-04T13:00Z", "PERIOD_02_00": "2026-04-04T16:00Z", "PERIOD_22_30": "2026-04-05T12:30Z"}),
    # Sydney in summer with the fixture's instant (local = NEM + 1 h).
    ("Australia/Sydney", "2025-11-20T03:12:00Z",
     {"PERIOD_14_00": "2025-11-20T03:00Z", "PERIOD_18_30": "2025-11-20T07:30Z", "PERIOD_13_30": "2025-11-21T02:30Z"}),
]


@pytest.mark.parametrize("minutes", [30, 5])
@pytest.mark.parametrize(("zone", "now", "expected"), ALIGNMENT_CASES, ids=[f"{c[0]}@{c[1]}" for c in ALIGNMENT_CASES])
def test_alignment(zone: str, now: str, expected: dict[str, str], minutes: int) -> None:
    tariff, explanation = _aligned(zone, utc(now), minutes=minutes)
    for period, start in expected.items():
        source = utc(start)
        want = dollars(CODE(source))  # with 5-minute data: six intervals sharing the half hour's price
        assert buy_rates(tariff)[period] == want, (period, buy_rates(tariff)[period], want)
        assert sell_rates(tariff)[period] == dollars(CODE(source) / 2), period
        slot = explanation.slot(period)
        assert slot.intervals and all(source <= u.start < source + timedelta(minutes=30) for u in slot.intervals)
    assert not any(slot.has(SlotFlag.FILLED) for slot in explanation.slots)


def test_spring_forward_gap_slots_are_explained() -> None:
    _, explanation = _aligned("Australia/Sydney", utc("2026-10-03T14:10:00Z"))
    early, late = explanation.slot("PERIOD_02_00"), explanation.slot("PERIOD_02_30")
    assert early.flags[0] is SlotFlag.DST_GAP and early.source_period == "PERIOD_01_30"
    assert late.flags[0] is SlotFlag.DST_GAP and late.source_period == "PERIOD_03_00"
    assert early.buy_source == "dst_gap" and (early.wall_from, early.wall_to) == ("02:00", "02:30")
    assert early.local_start == "2026-10-04T01:30:00+10:00"
    assert late.local_start == "2026-10-04T03:00:00+11:00"
    # Gap slots repeat a neighbour, so they are not counted again in the median basis.
    assert explanation.known_forecast_slots_buy == 45


def test_fall_back_day_ignores_second_pass_through_repeated_hour() -> None:
    _, explanation = _aligned("Australia/Sydney", utc("2026-04-04T13:10:00Z"))
    slot = explanation.slot("PERIOD_02_00")
    assert slot.local_start == "2026-04-05T02:00:00+11:00"
    assert slot.local_end == "2026-04-05T02:30:00+11:00"
    # 2 h of past actuals per channel are "past"; the repeated hour's second pass (2 slots) and
    # everything after the window are "outside_window".
    assert slot.start == utc("2026-04-04T15:00:00Z")
    # The wall-clock day from 00:00 to 24:00 lasts 25 real hours that day.
    assert explanation.slots[-1].end - explanation.slots[0].start == timedelta(hours=25)
    ignored = dict(explanation.ignored_intervals)
    assert ignored["past"] == 2 * 4


# --------------------------------------------------------------------------------------------------
# `now` at slot boundaries
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "current", "checks"),
    [
        ("2026-11-24T02:59:59Z", "PERIOD_12_30", {"PERIOD_12_30": "2026-11-24T02:30Z", "PERIOD_12_00": "2026-11-25T02:00Z"}),
        ("2026-11-24T03:00:00Z", "PERIOD_13_00", {"PERIOD_13_00": "2026-11-24T03:00Z", "PERIOD_12_30": "2026-11-25T02:30Z"}),
        ("2026-11-24T03:29:59Z", "PERIOD_13_00", {"PERIOD_13_00": "2026-11-24T03:00Z", "PERIOD_13_30": "2026-11-24T03:30Z"}),
        ("2026-11-24T03:29:59.999999Z", "PERIOD_13_00", {"PERIOD_13_00": "2026-11-24T03:00Z"}),
        ("2026-11-24T03:30:00Z", "PERIOD_13_30", {"PERIOD_13_30": "2026-11-24T03:30Z", "PERIOD_13_00": "2026-11-25T03:00Z"}),
        ("2026-11-24T13:59:00Z", "PERIOD_23_30", {"PERIOD_23_30": "2026-11-24T13:30Z", "PERIOD_00_00": "2026-11-24T14:00Z", "PERIOD_23_00": "2026-11-25T13:00Z"}),
        ("2026-11-24T14:00:00Z", "PERIOD_00_00", {"PERIOD_00_00": "2026-11-24T14:00Z", "PERIOD_23_30": "2026-11-25T13:30Z"}),
    ],
    ids=["12:59:59", "13:00:00", "13:29:59", "13:29:59.999999", "13:30:00", "23:59", "00:00"],
)
def test_now_at_slot_boundaries(now: str, current: str, checks: dict[str, str]) -> None:
    tariff, explanation = _aligned("Australia/Brisbane", utc(now))
    assert explanation.slots[0].period == current and explanation.slots[0].current
    for period, start in checks.items():
        assert buy_rates(tariff)[period] == dollars(CODE(utc(start))), period


def test_now_at_23_59_in_sydney_daylight_time() -> None:
    # 23:59 AEDT = 12:59Z: current slot 23:30 today (12:30Z); 00:00 is tomorrow's (13:00Z), and the
    # slot before the current one, 23:00, is tomorrow's 23:00 (12:00Z the next day).
    tariff, explanation = _aligned("Australia/Sydney", utc("2026-11-24T12:59:00Z"))
    assert explanation.slots[0].period == "PERIOD_23_30"
    for period, start in {"PERIOD_23_30": "2026-11-24T12:30Z", "PERIOD_00_00": "2026-11-24T13:00Z", "PERIOD_23_00": "2026-11-25T12:00Z"}.items():
        assert buy_rates(tariff)[period] == dollars(CODE(utc(start))), period


def test_now_in_another_zone_is_the_same_instant() -> None:
    now = utc("2026-11-24T02:40:00Z")
    a = _aligned("Australia/Sydney", now)[0]
    b = _aligned("Australia/Sydney", now.astimezone(ZoneInfo("America/New_York")))[0]
    assert a == b


def test_rolling_window_has_no_past_prices_across_midnight() -> None:
    # At 23:59 the 00:00 slot is tomorrow's, not the one 24 h ago.
    tariff, explanation = _aligned("Australia/Sydney", utc("2026-11-24T12:59:00Z"))
    starts = [slot.start for slot in explanation.slots]
    assert starts == sorted(starts)
    assert starts[0] <= utc("2026-11-24T12:59:00Z") < starts[1]
    assert starts[-1] - starts[0] == timedelta(hours=23, minutes=30)


# --------------------------------------------------------------------------------------------------
# Identity (rule 8) and policy
# --------------------------------------------------------------------------------------------------


def test_identity_and_structure() -> None:
    tariff, _ = build(
        fixture_intervals("amber_prices_current.json"), "Australia/Sydney", FIXTURE_NOW,
        code="X:1", name="My plan", sell_name="My export", utility="Amber Electric",
    )
    assert (tariff["code"], tariff["name"], tariff["utility"], tariff["currency"]) == ("X:1", "My plan", "Amber Electric", "AUD")
    assert tariff["daily_charges"] == [{"name": "Charge", "amount": 0}]
    assert tariff["demand_charges"] == {"ALL": {"rates": {"ALL": 0}}, "Summer": {}}
    assert tariff["energy_charges"]["ALL"] == {"rates": {"ALL": 0}}
    assert tariff["sell_tariff"]["name"] == "My export"
    assert tariff["seasons"] == tariff["sell_tariff"]["seasons"]
    assert tariff["seasons"] is not tariff["sell_tariff"]["seasons"]
    season = tariff["seasons"]["Summer"]
    assert (season["fromMonth"], season["fromDay"], season["toMonth"], season["toDay"]) == (1, 1, 12, 31)
    periods = season["tou_periods"]
    assert list(periods) == ALL_PERIODS
    assert periods["PERIOD_00_00"]["periods"] == [
        {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 0, "fromMinute": 0, "toHour": 0, "toMinute": 30}
    ]
    assert periods["PERIOD_23_30"]["periods"][0] == {
        "fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 23, "fromMinute": 30, "toHour": 0, "toMinute": 0
    }
    assert all(type(rate) is float for rate in [*buy_rates(tariff).values(), *sell_rates(tariff).values()])


@pytest.mark.parametrize(
    "kwargs",
    [{"estimate": "median"}, {"estimate": "Predicted"}, {"code": ""}, {"name": "  "}, {"utility": None},
     {"spike_threshold": 0}, {"spike_threshold": float("nan")}, {"spike_threshold": True}],
)
def test_policy_rejects_invalid_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TariffPolicy(**kwargs)


def test_policy_is_frozen() -> None:
    policy = TariffPolicy()
    with pytest.raises(AttributeError):
        policy.estimate = "high"  # type: ignore[misc]


def test_bad_inputs_raise_value_error() -> None:
    data = fixture_intervals("amber_prices_current.json")
    with pytest.raises(ValueError):
        build_tariff(data, "Australia/Sydney", datetime(2025, 11, 20, 14, 12), TariffPolicy())
    with pytest.raises(ValueError):
        build_tariff(data, "Australia/Nowhere", FIXTURE_NOW, TariffPolicy())
    naive = [interval(datetime(2025, 11, 20, 3, 30), 10.0)]
    with pytest.raises(ValueError):
        build_tariff(naive, "Australia/Sydney", FIXTURE_NOW, TariffPolicy())


def test_non_finite_prices_are_ignored_or_fall_back() -> None:
    data = day_of_data("Australia/Brisbane", BRISBANE_NOW, lambda t: 20.0)
    target = utc("2026-11-24T05:00:00Z")
    data = [i for i in data if i.start != target] + [
        interval(target, 20.0, advanced=AdvancedPrice(float("nan"), float("nan"), float("nan"))),
        interval(target + timedelta(minutes=30), float("inf")),
    ]
    data = [i for i in data if not (i.start == target + timedelta(minutes=30) and i.per_kwh == 20.0)]
    tariff, explanation = build(data, "Australia/Brisbane", BRISBANE_NOW)
    assert explanation.slot("PERIOD_15_00").intervals[0].field == "perKwh"
    assert explanation.slot("PERIOD_15_30").buy_source == "filled"
    assert dict(explanation.ignored_intervals)["invalid"] == 1


def test_explanation_to_dict_is_plain_json() -> None:
    _, explanation = build(fixture_intervals("amber_prices_current.json"), "Australia/Sydney", FIXTURE_NOW)
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["site_tz"] == "Australia/Sydney" and data["estimate"] == "predicted"
    assert len(data["slots"]) == 48
    first = data["slots"][0]
    assert first["flags"] == ["sell_clamped_negative", "export_costs_money"]
    assert first["intervals"][0]["start"] == "2025-11-20T03:00:00+00:00"
    assert first["adjustments"] == [{"side": "sell", "reason": "sell_clamped_negative", "before": -0.0282, "after": 0.0}]


# --------------------------------------------------------------------------------------------------
# validate_tariff (rule 10)
# --------------------------------------------------------------------------------------------------


def _good() -> dict[str, Any]:
    return build(fixture_intervals("amber_prices_current.json"), "Australia/Sydney", FIXTURE_NOW)[0]


def _periods(t: dict[str, Any]) -> dict[str, Any]:
    return t["seasons"]["Summer"]["tou_periods"]


def _break_gap(t: dict[str, Any]) -> None:
    _periods(t)["PERIOD_10_00"]["periods"][0]["toMinute"] = 15


def _break_overlap(t: dict[str, Any]) -> None:
    _periods(t)["PERIOD_10_00"]["periods"][0]["toHour"] = 11


def _break_missing_to_hour(t: dict[str, Any]) -> None:
    del _periods(t)["PERIOD_23_30"]["periods"][0]["toHour"]


def _break_weekday(t: dict[str, Any]) -> None:
    _periods(t)["PERIOD_08_00"]["periods"][0]["toDayOfWeek"] = 5


def _break_negative(t: dict[str, Any]) -> None:
    buy_rates(t)["PERIOD_01_00"] = -0.01


def _break_decimals(t: dict[str, Any]) -> None:
    buy_rates(t)["PERIOD_01_00"] = 0.12345


def _break_string_rate(t: dict[str, Any]) -> None:
    sell_rates(t)["PERIOD_01_00"] = "0.1"


def _break_bool_rate(t: dict[str, Any]) -> None:
    sell_rates(t)["PERIOD_01_00"] = True


def _break_sell_above_buy(t: dict[str, Any]) -> None:
    sell_rates(t)["PERIOD_19_00"] = round(buy_rates(t)["PERIOD_19_00"] + 0.0001, 4)


def _break_47_periods(t: dict[str, Any]) -> None:
    del _periods(t)["PERIOD_05_00"]
    del buy_rates(t)["PERIOD_05_00"]


def _break_rate_without_period(t: dict[str, Any]) -> None:
    buy_rates(t)["PERIOD_25_00"] = 0.1


def _break_no_sell(t: dict[str, Any]) -> None:
    del t["sell_tariff"]


def _break_season(t: dict[str, Any]) -> None:
    t["seasons"]["Summer"]["toMonth"] = 11


def _break_sell_times(t: dict[str, Any]) -> None:
    periods = t["sell_tariff"]["seasons"]["Summer"]["tou_periods"]
    periods["PERIOD_00_00"], periods["PERIOD_00_30"] = periods["PERIOD_00_30"], periods["PERIOD_00_00"]


BREAKERS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_break_gap, "gap at Mon 10:15"),
    (_break_overlap, "overlap at Mon 10:30"),
    (_break_missing_to_hour, "missing toHour"),
    (_break_weekday, "gap at Sun 08:00"),
    (_break_negative, "negative"),
    (_break_decimals, "more than 4 decimals"),
    (_break_string_rate, "is not a number"),
    (_break_bool_rate, "is not a number"),
    (_break_sell_above_buy, "PERIOD_19_00: sell"),
    (_break_47_periods, "has 47 periods"),
    (_break_rate_without_period, "PERIOD_25_00 has a rate but no time period"),
    (_break_no_sell, "sell_tariff is missing"),
    (_break_season, "every day of the year"),
    (_break_sell_times, "same times"),
]


@pytest.mark.parametrize(("breaker", "message"), BREAKERS, ids=[b[0].__name__ for b in BREAKERS])
def test_validate_tariff_reports_problems(breaker: Callable[[dict[str, Any]], None], message: str) -> None:
    tariff = copy.deepcopy(_good())
    breaker(tariff)
    problems = validate_tariff(tariff)
    assert any(message in problem for problem in problems), problems


def test_validate_tariff_accepts_reference_tariffs() -> None:
    site_info = load_fixture("tesla_site_info_au.json")
    tariff = site_info.get("response", site_info)["tariff_content_v2"]
    assert validate_tariff(tariff) == []
    # toHour 24 for midnight (as the original project sends it) is accepted too.
    variant = copy.deepcopy(_good())
    _periods(variant)["PERIOD_23_30"]["periods"][0]["toHour"] = 24
    assert validate_tariff(variant) == []


@pytest.mark.parametrize("value", [None, [], "tariff", 42])
def test_validate_tariff_never_raises_on_garbage(value: object) -> None:
    assert validate_tariff(value) != []
    assert validate_tariff({"version": 1, "seasons": "x", "sell_tariff": {"seasons": {"S": {"tou_periods": {"P": 1}}}}})
