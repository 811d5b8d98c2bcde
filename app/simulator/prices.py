"""The Amber price feed as a pure function of (seed, time): interval values and their wire JSON.

Every 5-minute interval's spot price comes from a daily shape (morning bump, midday solar trough that
goes negative, evening peak, an occasional spike) plus seeded noise. A 30-minute interval is the mean of
its six 5-minute intervals, so the two resolutions always agree."""
from __future__ import annotations

from collections.abc import Callable

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from .household import load_w, mean_over, solar_w
from .randomness import unit

NEM_TZ = timezone(timedelta(hours=10))  # NEM time: fixed UTC+10, never daylight saving
UTC = timezone.utc
CHANNELS = ("general", "feedIn")  # the demo site has no controlled load; order is Amber's
CHANNEL_IDENTIFIERS = {"general": "E1", "feedIn": "B1"}
GENERAL_LOSS_FACTOR = 1.04


@dataclass(frozen=True)
class IntervalValues:
    """Prices of one interval, c/kWh incl. GST, in Amber's convention (perKwh = what the user pays)."""

    spot: float
    general: float
    feed_in: float
    renewables: float


def floor_to(instant: datetime, minutes: int) -> datetime:
    """Start of the `minutes`-long interval containing `instant` (UTC)."""
    step = minutes * 60
    return datetime.fromtimestamp(int(instant.timestamp()) // step * step, UTC)


def nem_date(instant: datetime) -> date:
    """The NEM calendar date of `instant`."""
    return instant.astimezone(NEM_TZ).date()


def nem_midnight(day: date) -> datetime:
    """00:00 NEM time on `day`, as UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=NEM_TZ).astimezone(UTC)


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


def _spot_5min(seed: int, start: datetime) -> float:
    nem = start.astimezone(NEM_TZ) + timedelta(minutes=2.5)
    hour = nem.hour + nem.minute / 60
    day = nem.date().isoformat()
    level = 0.8 + 0.5 * unit(seed, "level", day)
    depth = 10 + 14 * unit(seed, "solar-depth", day) ** 2  # some days the midday trough runs deep
    trough = max(0.0, math.cos((hour - 12.0) / 4.5 * math.pi / 2)) if abs(hour - 12.0) < 4.5 else 0.0
    spot = level * (9 + 7 * _bump(hour, 7.5, 1.5) + 26 * _bump(hour, 18.5, 2.0)) - depth * trough
    spot += 3.0 * (unit(seed, "noise", start.timestamp()) - 0.5) * (1 + _bump(hour, 18.5, 2.0))
    if unit(seed, "spike-day", day) < 0.3:
        # One half hour between 17:00 and 20:00 NEM spikes hard on roughly 30 % of days.
        spike_start = 17.0 + 0.5 * int(unit(seed, "spike-slot", day) * 6)
        if spike_start <= hour < spike_start + 0.5:
            spot += 120 + 200 * unit(seed, "spike-size", day)
    return spot


def network_period(local: datetime) -> str:
    """Amber `tariffInformation.period` of a local wall-clock time (Ausgrid-like ToU network tariff)."""
    hour = local.hour
    if 15 <= hour < 21:
        return "peak"
    if 7 <= hour < 15 or 21 <= hour < 22:
        return "shoulder"
    return "offPeak"


def network_season(local: datetime) -> str:
    """Amber `tariffInformation.season` of a local date."""
    if local.month in (11, 12, 1, 2, 3):
        return "summer"
    if local.month in (6, 7, 8):
        return "winter"
    return "default"


NETWORK_CENTS = {"peak": 29.0, "shoulder": 11.7, "offPeak": 8.2}  # network + market fees, incl. GST


@lru_cache(maxsize=65536)
def five_minute_values(seed: int, start: datetime, tz: ZoneInfo, estimated: bool = False) -> IntervalValues:
    """Values of the 5-minute interval starting at `start` (UTC, on a boundary).

    `estimated` gives the provisional price published before AEMO's dispatch price: the spot is off
    by a few percent, so a client that keeps an estimate after it is confirmed shows a stale price."""
    spot = _spot_5min(seed, start)
    if estimated:
        spot += (unit(seed, "estimate-error", start.timestamp()) - 0.5) * 2 * max(1.0, 0.08 * abs(spot))
    network = NETWORK_CENTS[network_period(start.astimezone(tz))]
    nem = start.astimezone(NEM_TZ)
    day = nem.date().isoformat()
    loss = 0.97 + 0.02 * unit(seed, "feed-in-loss", day)
    peak = 55 + 50 * unit(seed, "renewables-peak", day)  # occasionally above 100 %, as observed
    hour = nem.hour + nem.minute / 60
    renewables = 25 + (peak - 25) * _bump(hour, 12.5, 3.5) + 2 * unit(seed, "renewables", start.timestamp())
    return IntervalValues(
        spot=round(spot, 5),
        general=round(spot * GENERAL_LOSS_FACTOR + network, 5),
        feed_in=round(-spot * loss, 5),
        renewables=round(renewables, 3),
    )


def interval_values(
    seed: int,
    start: datetime,
    duration: int,
    tz: ZoneInfo,
    now: datetime | None = None,
    estimate_seconds: float = 0.0,
) -> IntervalValues:
    """Values of a 5- or 30-minute interval as published at `now`; a 30-minute interval is the mean of
    its six 5-minute ones (the one in progress at its estimate while unconfirmed), so resolutions agree."""
    parts = []
    for i in range(duration // 5):
        part_start = start + timedelta(minutes=5 * i)
        estimated = now is not None and part_start <= now < part_start + timedelta(seconds=estimate_seconds)
        parts.append(five_minute_values(seed, part_start, tz, estimated))
    if duration == 5:
        return parts[0]

    def mean(values: list[float], digits: int) -> float:
        return round(sum(values) / len(values), digits)

    return IntervalValues(
        spot=mean([p.spot for p in parts], 5),
        general=mean([p.general for p in parts], 5),
        feed_in=mean([p.feed_in for p in parts], 5),
        renewables=mean([p.renewables for p in parts], 3),
    )


def _utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_fields(start: datetime, duration: int) -> dict[str, object]:
    """Amber's time fields of the interval starting at `start` (see amber-api.md §3.1)."""
    end = start + timedelta(minutes=duration)
    return {
        # The interval ending at NEM midnight belongs to the previous date: the date of its start.
        "date": nem_date(start).isoformat(),
        "duration": duration,
        "startTime": _utc_text(start + timedelta(seconds=1)),
        "endTime": _utc_text(end),
        "nemTime": end.astimezone(NEM_TZ).isoformat(),
    }


def interval_kind(start: datetime, duration: int, now: datetime) -> str:
    """'Actual', 'Current' or 'Forecast' for the interval starting at `start`, seen at `now`."""
    end = start + timedelta(minutes=duration)
    if end <= now:
        return "Actual"
    if start <= now:
        return "Current"
    return "Forecast"


def is_estimate(start: datetime, duration: int, now: datetime, estimate_seconds: float) -> bool:
    """Whether the current interval is still an estimate at `now`.

    A 5-minute price is confirmed `estimate_seconds` into the interval (AEMO publishes the dispatch
    price); a 30-minute price is final once its last 5-minute price is."""
    last_five_start = start + timedelta(minutes=duration - 5)
    return now < last_five_start + timedelta(seconds=estimate_seconds)


def _general_descriptor(per_kwh: float) -> str:
    for limit, name in ((0, "extremelyLow"), (12, "veryLow"), (20, "low"), (35, "neutral"), (60, "high")):
        if per_kwh < limit:
            return name
    return "spike"


def _feed_in_descriptor(per_kwh: float) -> str:
    earning = -per_kwh  # the feed-in descriptor describes the earning
    for limit, name in ((0, "extremelyLow"), (3, "veryLow"), (6, "low"), (10, "neutral"), (40, "high")):
        if earning < limit:
            return name
    return "spike"


def _spike_status(spot: float, kind: str) -> str:
    if spot >= 100:
        return "potential" if kind == "Forecast" else "spike"
    if spot >= 50:
        return "potential"
    return "none"


def _advanced_price(seed: int, start: datetime, channel: str, per_kwh: float, now: datetime) -> dict[str, float]:
    # Amber republishes its forecasts once per 5-minute dispatch interval, not continuously: two polls in
    # the same interval see the same range.
    hours_ahead = max(0.0, (start - floor_to(now, 5)).total_seconds() / 3600)
    width = max(abs(per_kwh), 5.0) * (0.05 + 0.1 * min(hours_ahead, 24.0) / 24)
    predicted = per_kwh + width * 0.6 * (unit(seed, "advanced", start.timestamp(), channel) - 0.5)
    if channel == "feedIn":
        # low/high follow the low/high market outcome: for feed-in that makes low numerically greater.
        low, high = predicted + width, predicted - width
    else:
        low, high = predicted - width, predicted + width
    return {"low": round(low, 5), "predicted": round(predicted, 5), "high": round(high, 5)}


def price_interval(
    seed: int,
    start: datetime,
    duration: int,
    channel: str,
    now: datetime,
    tz: ZoneInfo,
    estimate_seconds: float,
) -> dict[str, object]:
    """One price interval in Amber's wire format, typed relative to `now`."""
    values = interval_values(seed, start, duration, tz, now, estimate_seconds)
    kind = interval_kind(start, duration, now)
    per_kwh = values.general if channel == "general" else values.feed_in
    body: dict[str, object] = {"type": f"{kind}Interval", **time_fields(start, duration)}
    body.update(
        perKwh=per_kwh,
        renewables=values.renewables,
        spotPerKwh=values.spot,
        channelType=channel,
        spikeStatus=_spike_status(values.spot, kind),
    )
    if channel == "general":  # real feed-in intervals usually carry no tariffInformation
        local = start.astimezone(tz)
        body["tariffInformation"] = {"period": network_period(local), "season": network_season(local)}
    body["descriptor"] = _general_descriptor(per_kwh) if channel == "general" else _feed_in_descriptor(per_kwh)
    estimate = False
    if kind == "Current":
        estimate = is_estimate(start, duration, now, estimate_seconds)
        body["estimate"] = estimate
    if kind == "Forecast" or estimate:
        body["advancedPrice"] = _advanced_price(seed, start, channel, per_kwh, now)
    if kind == "Forecast" and values.spot >= 50:
        body["range"] = {"min": round(values.spot * 0.45, 2), "max": round(values.spot * 2.9, 2)}
    return body


def forecast_horizon(now: datetime, duration: int, five_minute_horizon_minutes: int) -> datetime:
    """Latest interval end the feed has forecasts for: 5-minute data is near term only, 30-minute
    data runs to the end of the next NEM day (pre-dispatch)."""
    if duration == 5:
        return floor_to(now, 5) + timedelta(minutes=5 + five_minute_horizon_minutes)
    return nem_midnight(nem_date(now) + timedelta(days=2))


def current_prices(
    seed: int,
    now: datetime,
    tz: ZoneInfo,
    *,
    previous: int,
    next_: int,
    duration: int,
    estimate_seconds: float,
    five_minute_horizon_minutes: int,
) -> list[dict[str, object]]:
    """`/prices/current`: per channel, `previous` actuals, the current interval, up to `next_` forecasts."""
    current = floor_to(now, duration)
    step = timedelta(minutes=duration)
    horizon = forecast_horizon(now, duration, five_minute_horizon_minutes)
    starts = [current - step * k for k in range(previous, 0, -1)] + [current]
    starts += [s for s in (current + step * k for k in range(1, next_ + 1)) if s + step <= horizon]
    return [
        price_interval(seed, s, duration, channel, now, tz, estimate_seconds) for channel in CHANNELS for s in starts
    ]


def interval_starts_for_dates(first: date, last: date, duration: int) -> list[datetime]:
    """Starts of every interval whose NEM `date` lies in [first, last]."""
    start, stop = nem_midnight(first), nem_midnight(last + timedelta(days=1))
    count = int((stop - start).total_seconds() // (duration * 60))
    return [start + timedelta(minutes=duration * i) for i in range(count)]


def prices_between(
    seed: int,
    now: datetime,
    tz: ZoneInfo,
    *,
    first: date,
    last: date,
    duration: int,
    estimate_seconds: float,
    five_minute_horizon_minutes: int,
) -> list[dict[str, object]]:
    """`/prices`: every interval dated first..last, actual/current/forecast relative to `now`."""
    horizon = forecast_horizon(now, duration, five_minute_horizon_minutes)
    step = timedelta(minutes=duration)
    starts = [s for s in interval_starts_for_dates(first, last, duration) if s + step <= horizon]
    return [
        price_interval(seed, s, duration, channel, now, tz, estimate_seconds) for channel in CHANNELS for s in starts
    ]


def usage_between(
    seed: int, now: datetime, tz: ZoneInfo, *, first: date, last: date, duration: int,
    metered: Callable[[datetime, int], tuple[float, float] | None] | None = None,
) -> list[dict[str, object]]:
    """`/usage`: metered grid import (E1) and export (B1) per completed interval dated first..last.

    Energy is what the Powerwall model sent through the grid meter (`metered(start, minutes)` -> import
    and export kWh), so the bill agrees with Tesla's energy history; where the model has not run (before
    the simulator started) it comes from the household curves without the battery."""
    rows: list[dict[str, object]] = []
    billable_before = nem_date(now) - timedelta(days=1)
    starts = [s for s in interval_starts_for_dates(first, last, duration) if s + timedelta(minutes=duration) <= now]
    measured = {start: metered(start, duration) if metered else None for start in starts}
    for channel in CHANNELS:
        for start in starts:
            if measured[start] is not None:
                kwh = round(measured[start][0 if channel == "general" else 1], 3)
            else:
                net_w = mean_over(load_w, seed, start, duration, tz) - mean_over(solar_w, seed, start, duration, tz)
                flow_w = max(net_w, 0.0) if channel == "general" else max(-net_w, 0.0)
                kwh = round(flow_w / 1000 * duration / 60, 3)
            values = interval_values(seed, start, duration, tz)
            per_kwh = values.general if channel == "general" else values.feed_in
            time = time_fields(start, duration)
            row: dict[str, object] = {
                "type": "Usage",
                **time,
                "quality": "billable" if nem_date(start) < billable_before else "estimated",
                "kwh": kwh,
                "perKwh": per_kwh,
                "channelType": channel,
                "channelIdentifier": CHANNEL_IDENTIFIERS[channel],
                "cost": round(kwh * per_kwh, 4),
                "renewables": values.renewables,
                "spotPerKwh": values.spot,
                "spikeStatus": _spike_status(values.spot, "Actual"),
                "descriptor": _general_descriptor(per_kwh) if channel == "general" else _feed_in_descriptor(per_kwh),
            }
            if channel == "general":
                local = start.astimezone(tz)
                row["tariffInformation"] = {"period": network_period(local), "season": network_season(local)}
            rows.append(row)
    return rows


def _renewable_descriptor(percent: float) -> str:
    for limit, name in ((20, "worst"), (30, "notGreat"), (45, "ok"), (60, "great")):
        if percent < limit:
            return name
    return "best"


def renewables_current(
    seed: int, now: datetime, tz: ZoneInfo, *, previous: int, next_: int, duration: int
) -> list[dict[str, object]]:
    """`/state/{state}/renewables/current`: grid renewables share around `now`."""
    current = floor_to(now, duration)
    step = timedelta(minutes=duration)
    starts = [current + step * k for k in range(-previous, next_ + 1)]
    rows = []
    for start in starts:
        percent = interval_values(seed, start, duration, tz).renewables
        rows.append(
            {
                "type": f"{interval_kind(start, duration, now)}Renewable",
                **time_fields(start, duration),
                "renewables": percent,
                "descriptor": _renewable_descriptor(percent),
            }
        )
    return rows
