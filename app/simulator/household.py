"""Pure daily curves of rooftop solar production and home consumption, in W, from (seed, time)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from .randomness import unit

SOLAR_PEAK_W = 7200.0  # a ~8 kW array on a clear summer day
SUNRISE_HOUR = 5.75
SUNSET_HOUR = 19.75


def _local_hour(instant: datetime, tz: ZoneInfo) -> tuple[float, str]:
    local = instant.astimezone(tz)
    return local.hour + local.minute / 60 + local.second / 3600, local.date().isoformat()


def _bucket(instant: datetime) -> int:
    # 5-minute buckets so the "cloud flicker" and load noise hold still within a metering interval.
    return int(instant.timestamp()) // 300


def solar_w(seed: int, instant: datetime, tz: ZoneInfo) -> float:
    """Solar production at `instant`: a sine-shaped day, scaled by the day's cloudiness."""
    hour, day = _local_hour(instant, tz)
    if not SUNRISE_HOUR < hour < SUNSET_HOUR:
        return 0.0
    shape = math.sin(math.pi * (hour - SUNRISE_HOUR) / (SUNSET_HOUR - SUNRISE_HOUR)) ** 1.5
    clear_sky = 0.35 + 0.65 * math.sqrt(unit(seed, "cloud", day))
    flicker = 0.85 + 0.15 * unit(seed, "flicker", _bucket(instant))
    return SOLAR_PEAK_W * shape * clear_sky * flicker


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


def load_w(seed: int, instant: datetime, tz: ZoneInfo) -> float:
    """Home consumption at `instant`: base load, a morning and a larger evening peak, some noise."""
    hour, _ = _local_hour(instant, tz)
    shape = 350 + 1200 * _bump(hour, 7.5, 1.0) + 2200 * _bump(hour, 19.0, 1.8) + 300 * _bump(hour, 13.0, 3.0)
    return shape + 250 * unit(seed, "load", _bucket(instant))


Curve = Callable[[int, datetime, ZoneInfo], float]


def mean_over(curve: Curve, seed: int, start: datetime, minutes: int, tz: ZoneInfo) -> float:
    """Mean of `curve` over `minutes` from `start`, sampled each minute (for metered energy)."""
    samples = [curve(seed, start + timedelta(minutes=m, seconds=30), tz) for m in range(minutes)]
    return sum(samples) / len(samples)
