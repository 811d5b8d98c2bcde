"""Price sanity (pure): Amber intervals that cannot be real are refused before they are stored or pushed.

An interval is refused when a price the tariff could use (perKwh, or a forecast's advanced low /
predicted / high) is NaN or infinite, lies outside the bounds of its channel, or when Amber sent two
different prices for the same channel and interval (a feed-in series labelled `general` looks like that).
A refused interval is treated as missing: the tariff builder fills its slot as it does for missing data,
and the stored price (if any) stays the last good one. Imports nothing of Flask or the database."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.prices import Channel, PriceInterval

# The NEM market price cap for 2025-26 is 20,300 $/MWh (2,030 c/kWh) and the floor -1,000 $/MWh
# (-100 c/kWh). Amber adds network charges (up to ~60 c/kWh on peak demand tariffs), fees and 10 % GST,
# so a real general price stays inside about -110 ... 2,300 c/kWh: the defaults leave a margin on both.
DEFAULT_MIN_CENTS = -150.0
DEFAULT_MAX_CENTS = 2500.0
CHANNEL_WORDS = {Channel.GENERAL: "general", Channel.CONTROLLED_LOAD: "controlled load", Channel.FEED_IN: "feed-in"}


@dataclass(frozen=True)
class PriceBounds:
    """The plausible range of a general price in c/kWh; feed-in is its mirror (Amber's feed-in sign)."""

    min_cents: float = DEFAULT_MIN_CENTS
    max_cents: float = DEFAULT_MAX_CENTS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_cents) and math.isfinite(self.max_cents)) or self.min_cents >= self.max_cents:
            raise ValueError("the lowest plausible price must be below the highest")

    def for_channel(self, channel: Channel) -> tuple[float, float]:
        """(lowest, highest) plausible c/kWh on `channel`: feed-in prices are negative when the household earns."""
        if channel is Channel.FEED_IN:
            return -self.max_cents, -self.min_cents
        return self.min_cents, self.max_cents


@dataclass(frozen=True)
class Refusal:
    """One interval that was not used, and why, in words a person understands."""

    channel: str
    start: datetime
    end: datetime
    value: float | None
    reason: str

    def describe(self, tz: ZoneInfo | None = None) -> str:
        """'general 14:30–14:35: 1,000,000,000.0 c/kWh is above the limit of 2,500 c/kWh'."""
        start, end = (self.start.astimezone(tz), self.end.astimezone(tz)) if tz else (self.start, self.end)
        return f"{CHANNEL_WORDS.get(Channel(self.channel), self.channel)} {start:%d %b %H:%M}–{end:%H:%M}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel, "start": self.start.isoformat(), "end": self.end.isoformat(),
            "value": self.value if self.value is None or math.isfinite(self.value) else str(self.value),
            "reason": self.reason,
        }


def _cents(value: float) -> str:
    return f"{value:,.1f} c/kWh"


def _price_problem(interval: PriceInterval, bounds: PriceBounds) -> tuple[float | None, str] | None:
    """(offending value, reason) for the first unusable price of the interval, or None when all are fine."""
    low, high = bounds.for_channel(interval.channel)
    advanced = interval.advanced_price
    fields = [("price", interval.per_kwh)]
    if advanced is not None:
        fields += [("low forecast", advanced.low), ("predicted forecast", advanced.predicted), ("high forecast", advanced.high)]
    for name, value in fields:
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None, f"the {name} is not a finite number ({value!r})"
        if value > high:
            return float(value), f"{_cents(value)} ({name}) is above the limit of {_cents(high)}"
        if value < low:
            return float(value), f"{_cents(value)} ({name}) is below the limit of {_cents(low)}"
    return None


def _plain_limits(bounds: PriceBounds, channel: Channel) -> tuple[float, float]:
    """The channel's bounds for the quick check in `screen_prices`: a float between finite bounds is finite
    and fine. (PriceBounds refuses infinite bounds; should any reach here, NaN makes every check careful.)"""
    low, high = bounds.for_channel(channel)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else (math.nan, math.nan)


def screen_prices(intervals: Iterable[PriceInterval], bounds: PriceBounds) -> tuple[list[PriceInterval], list[Refusal]]:
    """Split Amber's intervals into the ones fit to use (in Amber's order, exact repeats once) and the
    refused ones (each with its reason)."""
    # Runs on every sync for ~140 intervals per site, so the common case is cheap: the bounds are looked up
    # once per channel, and an interval whose prices are all floats inside them needs no closer look.
    # Anything else goes through `_price_problem`, which finds and words the reason exactly as before.
    limits = {channel: _plain_limits(bounds, channel) for channel in Channel}
    candidates: list[PriceInterval] = []
    keys: list[tuple] = []
    refused: list[Refusal] = []
    prices_by_key: dict[tuple, set[float]] = defaultdict(set)
    for interval in intervals:
        channel = interval.channel
        low, high = limits[channel] if type(channel) is Channel else _plain_limits(bounds, channel)
        per_kwh = interval.per_kwh
        advanced = interval.advanced_price
        plain = type(per_kwh) is float and low <= per_kwh <= high and (
            advanced is None or (
                type(advanced.low) is float and type(advanced.predicted) is float and type(advanced.high) is float
                and low <= advanced.low <= high and low <= advanced.predicted <= high and low <= advanced.high <= high))
        if not plain:
            problem = _price_problem(interval, bounds)
            if problem is not None:
                refused.append(Refusal(channel.value, interval.start, interval.end, problem[0], problem[1]))
                continue
        key = (channel, interval.start, interval.duration_minutes)
        candidates.append(interval)
        keys.append(key)
        prices_by_key[key].add(per_kwh)
    return _without_conflicts(candidates, keys, prices_by_key, refused)


def _without_conflicts(
    candidates: list[PriceInterval], keys: list[tuple], prices_by_key: dict[tuple, set[float]], refused: list[Refusal]
) -> tuple[list[PriceInterval], list[Refusal]]:
    """The usable intervals (each key `(channel, start, duration)` once) and every refusal in time order:
    a key Amber gave different prices for is refused, every copy of it."""
    kept: list[PriceInterval] = []
    seen: set[tuple] = set()
    for interval, key in zip(candidates, keys):
        prices = prices_by_key[key]
        if len(prices) > 1:
            words = " and ".join(_cents(p) for p in sorted(prices))
            refused.append(Refusal(
                interval.channel.value, interval.start, interval.end, interval.per_kwh,
                f"Amber sent {len(prices)} different {CHANNEL_WORDS[interval.channel]} prices for this interval ({words}); "
                "another channel's prices may be labelled as this one",
            ))
        elif key not in seen:
            seen.add(key)
            kept.append(interval)
    refused.sort(key=lambda r: (r.start, r.channel))
    return kept, refused
