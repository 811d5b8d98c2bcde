"""Plain value types for Amber price intervals, shared by the Amber client (which parses them)
and the tariff builder (which consumes them). Pure: no Flask, no I/O."""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class Channel(str, enum.Enum):
    """Amber channel (`channelType`)."""

    GENERAL = "general"
    CONTROLLED_LOAD = "controlledLoad"
    FEED_IN = "feedIn"


class IntervalKind(str, enum.Enum):
    """Amber interval `type`, without the `Interval` suffix."""

    ACTUAL = "actual"
    CURRENT = "current"
    FORECAST = "forecast"


# Amber's price descriptors from cheapest to dearest, and how the app says them ("negative" is Amber's old
# name for extremely low).
LEVELS = ("extremelyLow", "veryLow", "low", "neutral", "high", "spike")
LEVEL_WORDS = {"extremelyLow": "extremely low", "veryLow": "very low", "low": "low", "neutral": "neutral",
               "high": "high", "spike": "spike"}


def price_level(descriptor: object) -> str | None:
    """One of LEVELS for an Amber descriptor, None for anything else (so no unknown text reaches a page)."""
    if descriptor == "negative":
        return "extremelyLow"
    return descriptor if descriptor in LEVEL_WORDS else None


@dataclass(frozen=True)
class AdvancedPrice:
    """Amber's own forecast in c/kWh, same sign convention as `perKwh`.

    For feed-in, `low` is numerically greater than `high`: never assume numeric order."""

    low: float
    predicted: float
    high: float


@dataclass(frozen=True)
class PriceInterval:
    """One Amber price interval. `start` is exact (`endTime - duration`), both ends timezone-aware UTC.

    Prices are c/kWh incl. GST in Amber's convention: `per_kwh` is what the user pays, so feed-in is
    negative when the user earns."""

    channel: Channel
    kind: IntervalKind
    start: datetime
    end: datetime
    per_kwh: float
    spot_per_kwh: float | None = None
    advanced_price: AdvancedPrice | None = None
    estimate: bool = False
    spike_status: str = "none"
    descriptor: str | None = None
    renewables: float | None = None
    tariff_information: dict[str, object] = field(default_factory=dict)

    @property
    def duration(self) -> timedelta:
        """Length of the interval."""
        return self.end - self.start

    @functools.cached_property
    def duration_minutes(self) -> int:
        """Length of the interval in whole minutes (5 or 30 in practice)."""
        # Asked for often (screening, storing): worked out once. cached_property keeps it in the instance's
        # __dict__ beside the fields (the class is frozen but has no __slots__), not as a field, so ==, hash,
        # repr and replace() are unchanged. The Amber parser fills it in when it builds an interval.
        return int(self.duration.total_seconds() // 60)
