"""The tariff engine: Amber price intervals -> a Tesla `tariff_content_v2` plus a per-slot explanation.

Pure: no I/O, no clock (`now` is a parameter), no Flask, no models. The rules are written for users in
`docs/tariff.md`; the numbers in comments below refer to them.

Vocabulary used throughout:
* *label*: a wall-clock half hour of the daily template, as minutes after midnight (0, 30, ..., 1410).
* *run*: one real, contiguous stretch of time during which the local clock shows one label on one
  date. Usually 30 minutes; on the day clocks go back the repeated labels have two runs each.
* *slot*: one of the 48 labels of the tariff together with the run whose prices it carries.
"""
from __future__ import annotations

import bisect
import enum
import functools
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.prices import Channel, IntervalKind, PriceInterval

__all__ = [
    "ESTIMATES",
    "MIN_KNOWN_FORECAST_SLOTS",
    "PERIOD_NAMES",
    "SEASON",
    "Adjustment",
    "IntervalUse",
    "SlotExplanation",
    "SlotFlag",
    "TariffBuildError",
    "TariffExplanation",
    "TariffPolicy",
    "build_tariff",
    "period_name",
    "tariff_from_rates",
    "tariff_rates",
    "validate_tariff",
]

UTC = timezone.utc
SLOT_MINUTES = 30
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
ESTIMATES = ("low", "predicted", "high")
MIN_KNOWN_FORECAST_SLOTS = 4
# One all-year season. The name is what the original project and our Tesla reference example use;
# Tesla treats season names as free text and the range (1 Jan - 31 Dec) is what matters.
SEASON = "Summer"
DECIMALS = 4

# How far around `now` we map the local clock. The wall-clock day after the current slot lasts 23-25
# real hours (DST); 27 h ahead leaves room for that plus a DST-gap neighbour.
_WALK_BEFORE = timedelta(hours=1)
_WALK_AFTER = timedelta(hours=27)
# Every zone in use today has offsets and transitions on a 15-minute grid, so sampling the timeline
# every 15 minutes (on the UTC quarter hours) finds every boundary between local half hours exactly.
_WALK_STEP = timedelta(minutes=15)
_MAX_GAP_SEARCH_MINUTES = 180

_PERIOD_NAMES = tuple(f"PERIOD_{m // 60:02d}_{m % 60:02d}" for m in range(0, 1440, SLOT_MINUTES))
PERIOD_NAMES = _PERIOD_NAMES  # public: the 48 period names in wall-clock order
# Enum members bound once: attribute lookups on Enum classes are slow enough to show in the benchmark.
_GENERAL, _FEED_IN = Channel.GENERAL, Channel.FEED_IN
_FORECAST = IntervalKind.FORECAST
_KIND_PRIORITY = {IntervalKind.ACTUAL: 0, IntervalKind.CURRENT: 1, IntervalKind.FORECAST: 2}

_Day = tuple[date, int]  # (local date, label minutes)


class TariffBuildError(Exception):
    """Raised when no trustworthy tariff can be built; the sync keeps the last good tariff."""

    def __init__(self, message: str, *, known_slots: int = 0, channel: str = "general") -> None:
        super().__init__(message)
        self.message = message
        self.known_slots = known_slots
        self.channel = channel


class SlotFlag(str, enum.Enum):
    """Markers the explanation attaches to a slot."""

    FILLED = "filled"  # at least one side had no Amber data and took the median (rule 7)
    DST_GAP = "dst_gap"  # wall-clock time that does not exist that day; price of the nearest real slot
    PARTIAL = "partial"  # Amber data covered less than the whole half hour
    NO_FEED_IN = "no_feed_in"  # the site has no feed-in channel: sell is 0
    BUY_CLAMPED_NEGATIVE = "buy_clamped_negative"
    SELL_CLAMPED_NEGATIVE = "sell_clamped_negative"
    EXPORT_COSTS_MONEY = "export_costs_money"
    SELL_LOWERED_TO_BUY = "sell_lowered_to_buy"
    SPIKE = "spike"
    POTENTIAL_SPIKE = "potential_spike"


# Bound once, like the Enum members above: build_tariff reads them for every slot.
_FILLED, _DST_GAP, _PARTIAL, _NO_FEED_IN = SlotFlag.FILLED, SlotFlag.DST_GAP, SlotFlag.PARTIAL, SlotFlag.NO_FEED_IN
_BUY_CLAMPED_NEGATIVE, _SELL_CLAMPED_NEGATIVE = SlotFlag.BUY_CLAMPED_NEGATIVE, SlotFlag.SELL_CLAMPED_NEGATIVE
_EXPORT_COSTS_MONEY, _SELL_LOWERED_TO_BUY = SlotFlag.EXPORT_COSTS_MONEY, SlotFlag.SELL_LOWERED_TO_BUY
_SPIKE, _POTENTIAL_SPIKE = SlotFlag.SPIKE, SlotFlag.POTENTIAL_SPIKE
_CHANNEL_VALUES = {channel: channel.value for channel in Channel}
_KIND_VALUES = {kind: kind.value for kind in IntervalKind}


@dataclass(frozen=True)
class TariffPolicy:
    """User and product choices that shape the tariff; validated on construction."""

    estimate: str = "predicted"
    code: str = "AMBER:SYNC"
    name: str = "Amber Electric (synced)"
    sell_name: str = "Amber Electric feed-in (synced)"
    utility: str = "Amber Electric"
    # A slot whose buy price reaches this ($/kWh) is flagged as a spike even if Amber did not say so.
    spike_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.estimate not in ESTIMATES:
            raise ValueError(f"estimate must be one of {', '.join(ESTIMATES)}, not {self.estimate!r}")
        for attribute in ("code", "name", "sell_name", "utility"):
            value = getattr(self, attribute)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{attribute} must be a non-empty string")
        threshold = self.spike_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError("spike_threshold must be a number")
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError("spike_threshold must be a positive finite number of $/kWh")


@dataclass(frozen=True)
class IntervalUse:
    """One Amber interval that contributed to a slot, with the price field that was read."""

    channel: str
    kind: str
    start: datetime  # UTC, exact (endTime - duration)
    duration_minutes: float
    raw_c_per_kwh: float  # Amber convention: what the user pays, c/kWh
    field: str  # "perKwh" or "advancedPrice.<estimate>"
    spike_status: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "channel": self.channel,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "duration_minutes": self.duration_minutes,
            "raw_c_per_kwh": self.raw_c_per_kwh,
            "field": self.field,
            "spike_status": self.spike_status,
        }


@dataclass(frozen=True)
class Adjustment:
    """One change rule 6 made to a price, with the value before and after."""

    side: str  # "buy" or "sell"
    reason: str  # a SlotFlag value
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"side": self.side, "reason": self.reason, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class SlotExplanation:
    """Why one tariff period holds the buy and sell prices it holds."""

    period: str
    wall_from: str  # "HH:MM" local wall clock, as in the tariff
    wall_to: str
    # The real time whose prices the slot carries (for a DST-gap slot: the neighbour it borrowed from).
    # UTC on purpose: Python compares and subtracts datetimes that share a tzinfo by wall clock,
    # which is wrong across a DST change. `local_start`/`local_end` are the same instants for display.
    start: datetime
    end: datetime
    local_start: str  # ISO 8601 with the site's offset, e.g. "2025-11-20T14:00:00+11:00"
    local_end: str
    current: bool
    intervals: tuple[IntervalUse, ...]
    buy_source: str  # "intervals", "filled" or "dst_gap"
    sell_source: str  # "intervals", "filled", "dst_gap" or "no_feed_in"
    source_period: str | None  # the period borrowed from, for DST-gap slots
    buy_before: float  # $/kWh after conversion and rounding, before rule 6
    sell_before: float
    buy: float  # what the tariff holds
    sell: float
    adjustments: tuple[Adjustment, ...]
    flags: tuple[SlotFlag, ...]

    def has(self, flag: SlotFlag) -> bool:
        """Whether the slot carries `flag`."""
        return flag in self.flags

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "period": self.period,
            "wall_from": self.wall_from,
            "wall_to": self.wall_to,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "local_start": self.local_start,
            "local_end": self.local_end,
            "current": self.current,
            "intervals": [use.to_dict() for use in self.intervals],
            "buy_source": self.buy_source,
            "sell_source": self.sell_source,
            "source_period": self.source_period,
            "buy_before": self.buy_before,
            "sell_before": self.sell_before,
            "buy": self.buy,
            "sell": self.sell,
            "adjustments": [adjustment.to_dict() for adjustment in self.adjustments],
            "flags": [flag.value for flag in self.flags],
        }


@dataclass(frozen=True)
class TariffExplanation:
    """The whole build: inputs that mattered and one explanation per slot, current slot first."""

    site_tz: str
    now: datetime
    estimate: str
    window_start: datetime  # UTC start of the current slot
    slots: tuple[SlotExplanation, ...]
    has_feed_in: bool
    known_forecast_slots_buy: int
    known_forecast_slots_sell: int
    fill_buy: float | None  # median used for missing buy slots (rule 7), None if not needed
    fill_sell: float | None
    ignored_intervals: tuple[tuple[str, int], ...]  # (reason, count), reasons in a fixed order

    def slot(self, period: str) -> SlotExplanation:
        """The explanation of one period, e.g. `slot("PERIOD_18_00")`."""
        for slot in self.slots:
            if slot.period == period:
                return slot
        raise KeyError(period)

    def periods_flagged(self, flag: SlotFlag) -> tuple[str, ...]:
        """Periods carrying `flag`, in rolling order (current slot first)."""
        return tuple(slot.period for slot in self.slots if flag in slot.flags)

    @property
    def export_costs_money_periods(self) -> tuple[str, ...]:
        """Periods in which exporting would cost the user money (for the export-stopping feature)."""
        return self.periods_flagged(SlotFlag.EXPORT_COSTS_MONEY)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, suitable for storing with a sync record and for the dashboard."""
        return {
            "site_tz": self.site_tz,
            "now": self.now.isoformat(),
            "estimate": self.estimate,
            "window_start": self.window_start.isoformat(),
            "has_feed_in": self.has_feed_in,
            "known_forecast_slots_buy": self.known_forecast_slots_buy,
            "known_forecast_slots_sell": self.known_forecast_slots_sell,
            "fill_buy": self.fill_buy,
            "fill_sell": self.fill_sell,
            "ignored_intervals": dict(self.ignored_intervals),
            "slots": [slot.to_dict() for slot in self.slots],
        }


def _fast_constructor(cls: type) -> Any:
    """A keyword-argument constructor for a frozen dataclass that fills the instance's __dict__ in one
    step instead of running the generated __init__ (one object.__setattr__ per field: 2.5 us for a
    SlotExplanation, 48 of them per build). The instance is the same as one made by __init__ (==, hash,
    repr, pickle); only for classes without __post_init__ or defaults, which this checks. Callers must
    pass every field, in field order."""
    defaults = any(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls))
    if defaults or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} needs its own __init__")
    new = object.__new__

    def construct(**values: Any) -> Any:
        instance = new(cls)
        instance.__dict__.update(values)
        return instance

    return construct


_new_slot_explanation = _fast_constructor(SlotExplanation)
_new_interval_use = _fast_constructor(IntervalUse)


def period_name(label_minutes: int) -> str:
    """Tesla period name of the half hour starting `label_minutes` after midnight."""
    return f"PERIOD_{label_minutes // 60:02d}_{label_minutes % 60:02d}"


def _wall(label_minutes: int) -> str:
    return f"{label_minutes // 60 % 24:02d}:{label_minutes % 60:02d}"




def _dollars(c_per_kwh: float) -> float:
    # "+ 0.0" turns -0.0 into 0.0 so that a tiny negative never shows up as "-0.0" in JSON.
    return round(c_per_kwh / 100.0, DECIMALS) + 0.0


def _resolve_zone(site_tz: str | ZoneInfo) -> tuple[ZoneInfo, str]:
    if isinstance(site_tz, ZoneInfo):
        return site_tz, site_tz.key
    if not isinstance(site_tz, str) or not site_tz:
        raise ValueError("site_tz must be an IANA time-zone name such as 'Australia/Sydney'")
    try:
        return ZoneInfo(site_tz), site_tz
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {site_tz!r}") from error


@dataclass(frozen=True)
class _Run:
    day: date
    label: int
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive


@dataclass(frozen=True)
class _SlotPlan:
    label: int
    run: _Run | None  # None: DST gap with no real neighbour found
    gap_from: int | None  # label of the neighbour a DST-gap slot borrows from


def _runs(quarter: datetime, tz: ZoneInfo) -> list[_Run]:
    """The local clock around `quarter` (a UTC quarter hour) as consecutive runs of one (date, label,
    UTC offset)."""
    origin = quarter - _WALK_BEFORE
    steps = int((_WALK_BEFORE + _WALK_AFTER) / _WALK_STEP)
    runs: list[_Run] = []
    previous: tuple[date, int, timedelta | None] | None = None
    run_start = origin
    for step in range(steps + 1):
        instant = origin + step * _WALK_STEP
        local = instant.astimezone(tz)
        # The offset is part of the identity so that a label repeated right after a clock change
        # (Lord Howe's 30-minute change) starts a new run instead of stretching the old one.
        identity = (local.date(), local.hour * 60 + local.minute // SLOT_MINUTES * SLOT_MINUTES, local.utcoffset())
        if identity != previous:
            if previous is not None:
                runs.append(_Run(previous[0], previous[1], run_start, instant))
            previous, run_start = identity, instant
    return runs


def _plan_slots(runs: list[_Run], current: int) -> list[_SlotPlan]:
    """Rules 2 and 3: which run each of the 48 labels carries, current slot first."""
    first_run: dict[_Day, _Run] = {}
    for run in runs[current:]:
        # The first run at or after the current slot is the next occurrence; on the day clocks go
        # back this is the repeated hour's first pass.
        first_run.setdefault((run.day, run.label), run)
    today, current_label = runs[current].day, runs[current].label
    plans: list[_SlotPlan] = []
    for index in range(SLOTS_PER_DAY):
        minutes = current_label + index * SLOT_MINUTES
        day = today + timedelta(days=minutes // 1440)
        label = minutes % 1440
        run = first_run.get((day, label))
        if run is not None:
            plans.append(_SlotPlan(label, run, None))
            continue
        # The wall-clock time does not exist on that day (clocks went forward): take the nearest
        # real slot by wall-clock distance, the earlier one on a tie.
        neighbour: _Run | None = None
        base = datetime.combine(day, datetime.min.time()) + timedelta(minutes=label)
        for distance in range(SLOT_MINUTES, _MAX_GAP_SEARCH_MINUTES + 1, SLOT_MINUTES):
            for candidate in (base - timedelta(minutes=distance), base + timedelta(minutes=distance)):
                neighbour = first_run.get((candidate.date(), candidate.hour * 60 + candidate.minute))
                if neighbour is not None:
                    break
            if neighbour is not None:
                break
        plans.append(_SlotPlan(label, neighbour, neighbour.label if neighbour else label))
    return plans


class _SlotLayout(NamedTuple):
    """Everything about one of the 48 slots that depends only on the zone and the time, not on prices."""

    run: int | None  # index into _Layout.run_starts of the run whose prices the slot carries
    dst_gap: bool
    label: int
    period: str
    wall_from: str
    wall_to: str
    start: datetime  # UTC
    end: datetime
    local_start: str
    local_end: str
    run_seconds: float  # length of the run, for the "partial" flag
    source_period: str | None


class _Layout(NamedTuple):
    run_starts: tuple[datetime, ...]  # UTC start of every run of the walk, for bisect
    window_start: datetime  # UTC start of the current slot
    walk_end: datetime
    wanted: frozenset[int]  # indexes of the runs some slot carries
    slots: tuple[_SlotLayout, ...]  # current slot first


# Cached: the layout depends only on (UTC quarter hour of `now`, zone), and building it (about 115
# zone conversions in `_runs`, 96 isoformat calls) was a quarter of a build. Everything in it is
# immutable (tuples, frozensets, datetimes, strings), so sharing it between builds is safe. A ZoneInfo
# is hashed by identity; ZoneInfo(key) returns the same object for the same key.
@functools.lru_cache(maxsize=256)
def _layout(quarter: datetime, tz: ZoneInfo) -> _Layout:
    runs = _runs(quarter, tz)
    run_starts = tuple(run.start for run in runs)
    # Run starts lie on the 15-minute grid through `quarter`, so for any `now` in
    # [quarter, quarter + 15 min) "run start <= now" is "run start <= quarter": the current run, and
    # so everything below, is the same for all of them.
    current = bisect.bisect_right(run_starts, quarter) - 1
    window_start = runs[current].start
    index_of = {id(run): index for index, run in enumerate(runs)}
    slots: list[_SlotLayout] = []
    for plan in _plan_slots(runs, current):
        run = plan.run
        if run is not None:
            start, end = run.start, run.end
        else:
            # Only reachable in zones with an implausibly long DST gap; the slot is filled anyway.
            start = end = window_start
        slots.append(
            _SlotLayout(
                run=index_of[id(run)] if run is not None else None,
                dst_gap=plan.gap_from is not None,
                label=plan.label,
                period=_PERIOD_NAMES[plan.label // SLOT_MINUTES],
                wall_from=_wall(plan.label),
                wall_to=_wall(plan.label + SLOT_MINUTES),
                start=start,
                end=end,
                local_start=start.astimezone(tz).isoformat(),
                local_end=end.astimezone(tz).isoformat(),
                run_seconds=(run.end - run.start).total_seconds() if run is not None else 0.0,
                source_period=(
                    period_name(plan.gap_from)
                    if plan.gap_from is not None and plan.gap_from != plan.label
                    else None
                ),
            )
        )
    return _Layout(
        run_starts=run_starts,
        window_start=window_start,
        walk_end=runs[-1].end,
        wanted=frozenset(slot.run for slot in slots if slot.run is not None),
        slots=tuple(slots),
    )


def _price_of(interval: PriceInterval, estimate: str) -> tuple[float, str] | None:
    """Rule 4: the c/kWh value and the field it came from, or None if unusable."""
    if interval.kind is _FORECAST and interval.advanced_price is not None:
        value = getattr(interval.advanced_price, estimate)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value), f"advancedPrice.{estimate}"
    value = interval.per_kwh
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value), "perKwh"
    return None


# A usable interval in a slot: (start, end, seconds, c/kWh value, field read, the interval).
_Candidate = tuple[datetime, datetime, float, float, str, PriceInterval]


def _candidate_start(candidate: _Candidate) -> datetime:
    return candidate[0]


def _choose_non_overlapping(candidates: list[_Candidate]) -> tuple[list[_Candidate], int]:
    """Keep finer and more settled data when intervals overlap; return (kept, dropped count)."""
    if len(candidates) <= 1:
        return candidates, 0
    by_start = sorted(candidates, key=_candidate_start)
    if all(a[1] <= b[0] for a, b in zip(by_start, by_start[1:])):
        return by_start, 0  # the usual case: consecutive 5-minute intervals
    ordered = sorted(candidates, key=lambda c: (c[2], _KIND_PRIORITY.get(c[5].kind, 3), c[0]))
    kept: list[_Candidate] = []
    for candidate in ordered:
        start, end = candidate[0], candidate[1]
        if all(end <= other[0] or start >= other[1] for other in kept):
            kept.append(candidate)
    kept.sort(key=_candidate_start)
    return kept, len(candidates) - len(kept)


# One channel's prices for one run, what a slot carrying that run reads (a plain tuple: 96 per build):
# ($/kWh before rule 6: what the user pays (general) or earns (feed-in), seconds of the run with data,
#  the IntervalUse of each interval kept, their spike statuses).
_Side = tuple[float, float, tuple[IntervalUse, ...], frozenset[str]]


def build_tariff(
    intervals: Iterable[PriceInterval],
    site_tz: str | ZoneInfo,
    now: datetime,
    policy: TariffPolicy | None = None,
) -> tuple[dict[str, Any], TariffExplanation]:
    """Build the rolling-24-hour Tesla tariff_content_v2 for `site_tz` at `now`, with its explanation."""
    policy = policy if policy is not None else TariffPolicy()
    tz, tz_name = _resolve_zone(site_tz)
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")

    now_utc = now.astimezone(UTC)
    layout = _layout(now_utc.replace(minute=now_utc.minute // 15 * 15, second=0, microsecond=0), tz)
    run_starts, window_start, walk_end = layout.run_starts, layout.window_start, layout.walk_end
    wanted = layout.wanted
    estimate = policy.estimate
    bisect_right = bisect.bisect_right

    past = outside_window = other_channel = invalid = overlap = 0
    # Usable intervals by run index, one dict per channel.
    general_groups: dict[int, list[_Candidate]] = {}
    feed_in_groups: dict[int, list[_Candidate]] = {}
    has_feed_in = False
    for interval in intervals:
        start = interval.start
        if start.tzinfo is None or interval.end.tzinfo is None:
            raise ValueError("PriceInterval start and end must be timezone-aware")
        channel = interval.channel
        if channel is _FEED_IN:
            has_feed_in = True
            groups = feed_in_groups
        elif channel is _GENERAL:
            groups = general_groups
        else:
            other_channel += 1
            continue
        if start < window_start:
            past += 1
            continue
        if start >= walk_end:
            outside_window += 1
            continue
        end = interval.end
        seconds = (end - start).total_seconds()
        priced = _price_of(interval, estimate)
        if seconds <= 0 or priced is None:
            invalid += 1
            continue
        # Rule 3: the interval belongs to the local half hour (run) that contains its start.
        run = bisect_right(run_starts, start) - 1
        if run not in wanted:
            # Later than the slot's next occurrence (tomorrow's repeat of today's slot), or the
            # second pass through the repeated hour on the day clocks go back.
            outside_window += 1
            continue
        candidate = (start, end, seconds, priced[0], priced[1], interval)
        group = groups.get(run)
        if group is None:
            groups[run] = [candidate]
        else:
            group.append(candidate)

    # Per-run raw prices (before rule 6) for each channel; a DST-gap slot reads its neighbour's.
    general_sides: dict[int, _Side] = {}
    feed_in_sides: dict[int, _Side] = {}
    for groups, sides, negate, channel_value in (
        (general_groups, general_sides, False, _CHANNEL_VALUES[_GENERAL]),
        (feed_in_groups, feed_in_sides, True, _CHANNEL_VALUES[_FEED_IN]),
    ):
        for run, kept in groups.items():
            if len(kept) > 1:
                kept, dropped = _choose_non_overlapping(kept)
                overlap += dropped
            covered = sum([c[2] for c in kept])
            mean = sum([c[3] * c[2] for c in kept]) / covered
            uses = []
            for start, _, seconds, value, field, interval in kept:
                kind = interval.kind
                uses.append(
                    _new_interval_use(
                        channel=channel_value,
                        kind=_KIND_VALUES[kind] if type(kind) is IntervalKind else kind.value,
                        start=start.astimezone(UTC),
                        duration_minutes=seconds / 60,
                        raw_c_per_kwh=value,
                        field=field,
                        spike_status=interval.spike_status,
                    )
                )
            sides[run] = (
                _dollars(-mean if negate else mean),  # feed-in: Amber's sign is what the user pays
                covered,
                tuple(uses),
                frozenset([use.spike_status for use in uses]),
            )

    buy_known: list[float] = []
    sell_known: list[float] = []
    raw: list[tuple[_Side | None, _Side | None]] = []
    for index, slot in enumerate(layout.slots):
        general = general_sides.get(slot.run)  # slot.run is None: no run, no side
        feed_in = feed_in_sides.get(slot.run)
        raw.append((general, feed_in))
        # Rule 7's basis: forecast slots with their own data, not the current slot (it mixes in
        # actual prices) and not DST-gap slots (they repeat a neighbour and would count it twice).
        if index > 0 and not slot.dst_gap:
            if general is not None:
                buy_known.append(general[0])
            if feed_in is not None:
                sell_known.append(feed_in[0])

    if len(buy_known) < MIN_KNOWN_FORECAST_SLOTS:
        raise TariffBuildError(
            f"Amber's price forecast covers only {len(buy_known)} of the next 47 half hours "
            f"(at least {MIN_KNOWN_FORECAST_SLOTS} are needed); keeping the previous tariff.",
            known_slots=len(buy_known),
            channel=_CHANNEL_VALUES[_GENERAL],
        )
    if has_feed_in and len(sell_known) < MIN_KNOWN_FORECAST_SLOTS:
        raise TariffBuildError(
            f"Amber's feed-in forecast covers only {len(sell_known)} of the next 47 half hours "
            f"(at least {MIN_KNOWN_FORECAST_SLOTS} are needed); keeping the previous tariff.",
            known_slots=len(sell_known),
            channel=_CHANNEL_VALUES[_FEED_IN],
        )
    fill_buy = round(statistics.median(buy_known), DECIMALS) + 0.0
    fill_sell = round(statistics.median(sell_known), DECIMALS) + 0.0 if has_feed_in else None
    buy_fill_used = False
    sell_fill_used = False
    spike_threshold = policy.spike_threshold

    slots: list[SlotExplanation] = []
    buy_rates: list[float] = [0.0] * SLOTS_PER_DAY  # in wall-clock order, indexed by label
    sell_rates: list[float] = [0.0] * SLOTS_PER_DAY
    for index, (slot, (general, feed_in)) in enumerate(zip(layout.slots, raw)):
        # Flags are appended in SlotFlag order, the order the explanation lists them in.
        flags: list[SlotFlag] = []
        sources_ok = not slot.dst_gap
        if general is not None:
            buy_before = general[0]
            buy_source = "intervals" if sources_ok else "dst_gap"
        else:
            buy_before = fill_buy
            buy_source = "filled"
            buy_fill_used = True

        if not has_feed_in:
            sell_before = 0.0
            sell_source = "no_feed_in"
        elif feed_in is not None:
            sell_before = feed_in[0]
            sell_source = "intervals" if sources_ok else "dst_gap"
        else:
            assert fill_sell is not None
            sell_before = fill_sell
            sell_source = "filled"
            sell_fill_used = True

        if buy_source == "filled" or sell_source == "filled":
            flags.append(_FILLED)
        if not sources_ok:
            flags.append(_DST_GAP)
        if general is not None and general[1] < slot.run_seconds:
            flags.append(_PARTIAL)
        if not has_feed_in:
            flags.append(_NO_FEED_IN)

        # Rule 6, in this order: negative buy, negative sell, then sell above buy.
        adjustments: list[Adjustment] = []
        buy, sell = buy_before, sell_before
        if buy < 0:
            adjustments.append(Adjustment("buy", _BUY_CLAMPED_NEGATIVE.value, buy, 0.0))
            flags.append(_BUY_CLAMPED_NEGATIVE)
            buy = 0.0
        if sell < 0:
            adjustments.append(Adjustment("sell", _SELL_CLAMPED_NEGATIVE.value, sell, 0.0))
            flags.append(_SELL_CLAMPED_NEGATIVE)
            flags.append(_EXPORT_COSTS_MONEY)
            sell = 0.0
        if sell > buy:
            adjustments.append(Adjustment("sell", _SELL_LOWERED_TO_BUY.value, sell, buy))
            flags.append(_SELL_LOWERED_TO_BUY)
            sell = buy

        # Within a side the uses are in start order (kept intervals never share a start), general
        # before feed-in: the order the explanation lists them in.
        if general is None:
            uses, spike_statuses = (feed_in[2], feed_in[3]) if feed_in is not None else ((), frozenset())
        elif feed_in is None:
            uses, spike_statuses = general[2], general[3]
        else:
            uses, spike_statuses = general[2] + feed_in[2], general[3] | feed_in[3]
        if "spike" in spike_statuses or buy_before >= spike_threshold:
            flags.append(_SPIKE)
        elif "potential" in spike_statuses:
            flags.append(_POTENTIAL_SPIKE)

        position = slot.label // SLOT_MINUTES
        buy_rates[position] = buy
        sell_rates[position] = sell
        slots.append(
            _new_slot_explanation(
                period=slot.period,
                wall_from=slot.wall_from,
                wall_to=slot.wall_to,
                start=slot.start,
                end=slot.end,
                local_start=slot.local_start,
                local_end=slot.local_end,
                current=index == 0,
                intervals=uses,
                buy_source=buy_source,
                sell_source=sell_source,
                source_period=slot.source_period,
                buy_before=buy_before,
                sell_before=sell_before,
                buy=buy,
                sell=sell,
                adjustments=tuple(adjustments),
                flags=tuple(flags),
            )
        )

    tariff = _tariff_document(policy, dict(zip(_PERIOD_NAMES, buy_rates)), dict(zip(_PERIOD_NAMES, sell_rates)))
    explanation = TariffExplanation(
        site_tz=tz_name,
        now=now_utc,
        estimate=estimate,
        window_start=window_start,
        slots=tuple(slots),
        has_feed_in=has_feed_in,
        known_forecast_slots_buy=len(buy_known),
        known_forecast_slots_sell=len(sell_known),
        fill_buy=fill_buy if buy_fill_used else None,
        fill_sell=fill_sell if sell_fill_used else None,
        ignored_intervals=(
            ("past", past),
            ("outside_window", outside_window),
            ("other_channel", other_channel),
            ("invalid", invalid),
            ("overlap", overlap),
        ),
    )
    return tariff, explanation


# (name, fromHour, fromMinute, toHour, toMinute) of the 48 periods; the last one ends at 0:00, as in
# Tesla's own sample.
_TOU_SPANS = tuple(
    (period_name(label), label // 60, label % 60, (label + SLOT_MINUTES) % 1440 // 60, (label + SLOT_MINUTES) % 60)
    for label in range(0, 1440, SLOT_MINUTES)
)


def _tou_periods() -> dict[str, Any]:
    return {
        name: {
            "periods": [
                {
                    "fromDayOfWeek": 0,
                    "toDayOfWeek": 6,
                    "fromHour": from_hour,
                    "fromMinute": from_minute,
                    "toHour": to_hour,
                    "toMinute": to_minute,
                }
            ]
        }
        for name, from_hour, from_minute, to_hour, to_minute in _TOU_SPANS
    }


def _side(rates: Mapping[str, float]) -> dict[str, Any]:
    # Built afresh for each side so that the buy and sell documents share no mutable objects.
    return {
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}, SEASON: {}},
        "energy_charges": {
            "ALL": {"rates": {"ALL": 0}},
            SEASON: {"rates": {name: rates[name] for name in _PERIOD_NAMES}},
        },
        "seasons": _seasons(),
    }


def _seasons() -> dict[str, Any]:
    return {SEASON: {"fromMonth": 1, "fromDay": 1, "toMonth": 12, "toDay": 31, "tou_periods": _tou_periods()}}


def _tariff_document(
    policy: TariffPolicy, buy: Mapping[str, float], sell: Mapping[str, float]
) -> dict[str, Any]:
    buy_side = _side(buy)
    sell_side = _side(sell)
    return {
        "version": 1,
        "code": policy.code,
        "name": policy.name,
        "utility": policy.utility,
        "currency": "AUD",
        **buy_side,
        "sell_tariff": {"name": policy.sell_name, "utility": policy.utility, **sell_side},
    }


def tariff_from_rates(policy: TariffPolicy, buy: Mapping[str, float], sell: Mapping[str, float]) -> dict[str, Any]:
    """A tariff document with the given per-period rates ($/kWh), e.g. the sync's flat fallback."""
    missing = [name for name in _PERIOD_NAMES if name not in buy or name not in sell]
    if missing:
        raise ValueError(f"rates missing for {len(missing)} periods, e.g. {missing[0]}")
    return _tariff_document(policy, buy, sell)


def tariff_rates(tariff: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """The per-period buy and sell rates of a tariff (ours, or one read back from Tesla, whose season
    name and formatting may differ); empty dicts where the document has none."""

    def side_rates(side: Any) -> dict[str, float]:
        if not isinstance(side, Mapping):
            return {}
        charges = side.get("energy_charges")
        if not isinstance(charges, Mapping):
            return {}
        rates: dict[str, float] = {}
        for season, body in charges.items():
            if season == "ALL" or not isinstance(body, Mapping) or not isinstance(body.get("rates"), Mapping):
                continue
            for name, value in body["rates"].items():
                if _is_rate(value):
                    rates[str(name)] = float(value)
        return rates

    return side_rates(tariff), side_rates(tariff.get("sell_tariff") if isinstance(tariff, Mapping) else None)


# ---------------------------------------------------------------------------------------------------
# Validation (rule 10)
# ---------------------------------------------------------------------------------------------------

_PERIOD_FIELDS = ("fromDayOfWeek", "toDayOfWeek", "fromHour", "fromMinute", "toHour", "toMinute")
_FIELD_RANGES = {
    "fromDayOfWeek": (0, 6),
    "toDayOfWeek": (0, 6),
    "fromHour": (0, 23),
    "fromMinute": (0, 59),
    "toHour": (0, 24),
    "toMinute": (0, 59),
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # a leap year, so 29 Feb is covered


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_rate(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_tariff(tariff: object) -> list[str]:
    """Problems that would make Tesla reject or silently alter `tariff`; empty when it is valid."""
    problems: list[str] = []
    if not isinstance(tariff, Mapping):
        return ["tariff must be a JSON object"]
    if tariff.get("version") != 1:
        problems.append("version must be 1")
    for key in ("code", "name", "utility", "currency"):
        if not isinstance(tariff.get(key), str) or not tariff.get(key):
            problems.append(f"{key} must be a non-empty string")
    buy = _validate_side("buy", tariff, problems)
    sell_doc = tariff.get("sell_tariff")
    if not isinstance(sell_doc, Mapping):
        problems.append("sell_tariff is missing")
        return problems
    for key in ("name", "utility"):
        if not isinstance(sell_doc.get(key), str) or not sell_doc.get(key):
            problems.append(f"sell_tariff.{key} must be a non-empty string")
    sell = _validate_side("sell", sell_doc, problems)
    if buy is not None and sell is not None:
        buy_times, buy_rates = buy
        sell_times, sell_rates = sell
        if buy_times != sell_times:
            problems.append("buy and sell periods must cover the same times")
        for period, sell_rate in sell_rates.items():
            buy_rate = buy_rates.get(period)
            if buy_rate is not None and sell_rate > buy_rate:
                problems.append(f"{period}: sell {sell_rate} is above buy {buy_rate}")
    return problems


def _validate_side(
    side: str, document: Mapping[str, Any], problems: list[str]
) -> tuple[dict[str, tuple[tuple[int, int, int], ...]], dict[str, float]] | None:
    """Check one side; return (period -> covered week minutes as ranges, period -> rate) if usable."""
    prefix = "" if side == "buy" else "sell_tariff."
    before = len(problems)
    daily = document.get("daily_charges")
    if not isinstance(daily, list):
        problems.append(f"{prefix}daily_charges must be a list")
    if not isinstance(document.get("demand_charges"), Mapping):
        problems.append(f"{prefix}demand_charges must be an object")
    seasons = document.get("seasons")
    energy = document.get("energy_charges")
    if not isinstance(seasons, Mapping) or not seasons:
        problems.append(f"{prefix}seasons must be a non-empty object")
        return None
    if not isinstance(energy, Mapping):
        problems.append(f"{prefix}energy_charges must be an object")
        return None

    year = [0] * sum(_MONTH_DAYS)
    times: dict[str, tuple[tuple[int, int, int], ...]] = {}
    rates: dict[str, float] = {}
    for season_name, season in seasons.items():
        where = f"{prefix}seasons.{season_name}"
        if not isinstance(season, Mapping):
            problems.append(f"{where} must be an object")
            continue
        if not _mark_season(season, year):
            problems.append(f"{where} has an invalid month/day range")
        periods = season.get("tou_periods")
        charges = energy.get(season_name)
        season_rates = charges.get("rates") if isinstance(charges, Mapping) else None
        if not isinstance(periods, Mapping) or not periods:
            problems.append(f"{where}.tou_periods must be a non-empty object")
            continue
        if not isinstance(season_rates, Mapping):
            problems.append(f"{prefix}energy_charges.{season_name}.rates is missing")
            season_rates = {}
        if len(periods) != SLOTS_PER_DAY:
            problems.append(f"{where} has {len(periods)} periods, expected {SLOTS_PER_DAY}")
        week: list[tuple[int, int, int]] = []
        for period, spec in periods.items():
            ranges = _period_ranges(f"{where}.{period}", spec, problems)
            times[str(period)] = tuple(ranges)
            week.extend(ranges)
            rate = season_rates.get(period)
            if period not in season_rates:
                problems.append(f"{prefix}{period} has no rate")
            elif not _is_rate(rate):
                problems.append(f"{prefix}{period}: rate {rate!r} is not a number")
            elif rate < 0:
                problems.append(f"{prefix}{period}: rate {rate} is negative")
            elif round(rate, DECIMALS) != rate:
                problems.append(f"{prefix}{period}: rate {rate} has more than {DECIMALS} decimals")
            else:
                rates[str(period)] = float(rate)
        for period in season_rates:
            if period not in periods:
                problems.append(f"{prefix}{period} has a rate but no time period")
        problems.extend(_coverage_problems(where, week))
    if any(count != 1 for count in year):
        problems.append(f"{prefix}seasons must cover every day of the year exactly once")
    return (times, rates) if len(problems) == before else None


def _mark_season(season: Mapping[str, Any], year: list[int]) -> bool:
    fields = [season.get(name) for name in ("fromMonth", "fromDay", "toMonth", "toDay")]
    if not all(_is_int(value) for value in fields):
        return False
    from_month, from_day, to_month, to_day = fields
    if not (1 <= from_month <= 12 and 1 <= to_month <= 12):
        return False
    if not (1 <= from_day <= _MONTH_DAYS[from_month - 1] and 1 <= to_day <= _MONTH_DAYS[to_month - 1]):
        return False
    start = sum(_MONTH_DAYS[: from_month - 1]) + from_day - 1
    end = sum(_MONTH_DAYS[: to_month - 1]) + to_day - 1
    index = start
    while True:  # inclusive range that may wrap the year end
        year[index] += 1
        if index == end:
            return True
        index = (index + 1) % len(year)


def _period_ranges(
    where: str, spec: object, problems: list[str]
) -> list[tuple[int, int, int]]:
    """Covered (day, start minute, end minute) pieces of one tou_periods entry."""
    pieces: list[tuple[int, int, int]] = []
    entries = spec.get("periods") if isinstance(spec, Mapping) else None
    if not isinstance(entries, list) or not entries:
        problems.append(f"{where} must hold a non-empty 'periods' list")
        return pieces
    for entry in entries:
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: a period must be an object")
            continue
        missing = [name for name in _PERIOD_FIELDS if name not in entry]
        if missing:
            # Tesla's app flagged a schedule without an explicit toHour as invalid: demand all six.
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        bad = [
            name
            for name in _PERIOD_FIELDS
            if not _is_int(entry[name]) or not _FIELD_RANGES[name][0] <= entry[name] <= _FIELD_RANGES[name][1]
        ]
        if bad or (entry["toHour"] == 24 and entry["toMinute"] != 0):
            problems.append(f"{where}: out-of-range {', '.join(bad) or 'toHour/toMinute'}")
            continue
        start = entry["fromHour"] * 60 + entry["fromMinute"]
        end = entry["toHour"] * 60 + entry["toMinute"]
        first, last = entry["fromDayOfWeek"], entry["toDayOfWeek"]
        days = [(first + offset) % 7 for offset in range((last - first) % 7 + 1)]
        for day in days:
            if end > start:
                pieces.append((day, start, end))
            else:  # wraps past midnight into the next day; from == to is a whole day
                pieces.append((day, start, 1440))
                if end:
                    pieces.append(((day + 1) % 7, 0, end))
    return pieces


def _coverage_problems(where: str, week: list[tuple[int, int, int]]) -> list[str]:
    """A gap and an overlap message (first of each) for (day, start, end) pieces of a week."""
    problems: list[str] = []
    gap: int | None = None
    overlap: int | None = None
    for day in range(7):
        reached = 0  # minutes of the day covered so far, scanning pieces in start order
        for _, start, end in sorted(piece for piece in week if piece[0] == day):
            if start > reached and gap is None:
                gap = day * 1440 + reached
            if start < reached and overlap is None:
                overlap = day * 1440 + start
            reached = max(reached, end)
        if reached < 1440 and gap is None:
            gap = day * 1440 + reached
    for kind, minute in (("gap", gap), ("overlap", overlap)):
        if minute is not None:
            day, rest = divmod(minute, 1440)
            problems.append(
                f"{where}: {kind} at {_DAYS[day]} {rest // 60:02d}:{rest % 60:02d}"
                " (periods must cover exactly 24 hours every day)"
            )
    return problems
