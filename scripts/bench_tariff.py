"""Benchmark the tariff engine: build a tariff from two days of 5-minute Amber data.

Run from the repository root:  .venv/bin/python scripts/bench_tariff.py [--runs N]
Prints the median and p95 build time; the target is well under 5 ms per build.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval  # noqa: E402
from app.tariff import TariffPolicy, build_tariff, validate_tariff  # noqa: E402

UTC = timezone.utc
SITE_TZ = "Australia/Sydney"
NOW = datetime(2026, 11, 24, 3, 12, 30, tzinfo=UTC)  # 14:12 AEDT
TARGET_MS = 5.0


def two_days_of_five_minute_data(now: datetime) -> list[PriceInterval]:
    """2 x 576 intervals (general + feed-in, 48 h at 5 minutes): 24 h of past, 24 h of forecast."""
    start = now.replace(minute=now.minute // 5 * 5, second=0, microsecond=0) - timedelta(hours=24)
    intervals: list[PriceInterval] = []
    for step in range(576):
        begin = start + timedelta(minutes=5 * step)
        end = begin + timedelta(minutes=5)
        kind = IntervalKind.ACTUAL if end <= now else IntervalKind.CURRENT if begin <= now else IntervalKind.FORECAST
        hour = (begin.hour + 11) % 24
        general = 18.0 + 30.0 * math.exp(-((hour - 18.5) ** 2) / 4) - 12.0 * math.exp(-((hour - 12.5) ** 2) / 6)
        feed_in = -(general - 9.0)
        for channel, price in ((Channel.GENERAL, general), (Channel.FEED_IN, feed_in)):
            advanced = None
            if kind is IntervalKind.FORECAST:
                advanced = AdvancedPrice(price * 0.9, price * 0.97, price * 1.1)
            intervals.append(
                PriceInterval(
                    channel=channel,
                    kind=kind,
                    start=begin,
                    end=end,
                    per_kwh=round(price, 5),
                    advanced_price=advanced,
                )
            )
    return intervals


def main() -> int:
    """Time repeated builds and print median and p95 in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()

    intervals = two_days_of_five_minute_data(NOW)
    policy = TariffPolicy()
    tariff, explanation = build_tariff(intervals, SITE_TZ, NOW, policy)
    problems = validate_tariff(tariff)
    if problems:
        print("built tariff does not validate:", problems)
        return 1

    for _ in range(20):  # warm-up
        build_tariff(intervals, SITE_TZ, NOW, policy)
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        build_tariff(intervals, SITE_TZ, NOW, policy)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    median = statistics.median(timings)
    p95 = timings[min(len(timings) - 1, math.ceil(0.95 * len(timings)) - 1)]

    started = time.perf_counter()
    for _ in range(50):
        validate_tariff(tariff)
    validate_ms = (time.perf_counter() - started) * 1000 / 50

    print(f"build_tariff: {len(intervals)} intervals (2 x 576 five-minute), {args.runs} runs")
    print(f"  median {median:.3f} ms   p95 {p95:.3f} ms   min {timings[0]:.3f} ms   max {timings[-1]:.3f} ms")
    print(f"  target < {TARGET_MS:.1f} ms: {'OK' if p95 < TARGET_MS else 'SLOW'}")
    print(f"validate_tariff: {validate_ms:.3f} ms per call")
    print(f"slots with intervals: {sum(1 for s in explanation.slots if s.intervals)} of {len(explanation.slots)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
