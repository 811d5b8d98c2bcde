"""The money arithmetic, pure: Amber usage rows -> the bill per billing day, Tesla energy rows + prices ->
what the battery saved, and the money of a window (a force session, an export-protection stretch).

Nothing here imports Flask, the database or a client. Money is `Decimal` in cents until it is shown; it
is rounded (half up, to the cent) only when a figure is shown, from the unrounded sum: so a day's net is
the rounded difference of its unrounded import cost and export earnings, as Amber's bill does it.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

# Amber's billing day is the NEM date: Australian Eastern Standard Time all year, no daylight saving.
NEM_TZ = timezone(timedelta(hours=10))
IMPORT_CHANNELS = ("general", "controlledLoad")
EXPORT_CHANNEL = "feedIn"
CHANNELS = (*IMPORT_CHANNELS, EXPORT_CHANNEL)
QUALITIES = ("estimated", "billable")
MICRO = Decimal(1_000_000)
CENT = Decimal("0.01")
ZERO = Decimal(0)


class MalformedUsage(ValueError):
    """A usage row the bill cannot use (unknown channel, no price and no cost, ...)."""


def nem_date(instant: datetime) -> date:
    """The NEM (billing) date of the interval starting at `instant`."""
    return instant.astimezone(NEM_TZ).date()


def decimal(value: float | int | str | Decimal) -> Decimal:
    """A JSON number as the decimal it was written as (floats go through their shortest repr)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def to_micro(value: Decimal) -> int:
    """Store a value as an integer number of millionths (exact for Amber's figures, which have fewer decimals)."""
    return int((value * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_micro(value: int) -> Decimal:
    return Decimal(value) / MICRO


def dollars(cents: Decimal) -> Decimal:
    """Cents -> dollars rounded to the cent (half up, as a bill rounds)."""
    return (cents / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def kwh3(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


# --- metered usage ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    """One metered interval of one channel, normalised.

    `kwh` is positive for both directions (feed-in kWh come back with either sign from Amber: both are
    accepted). `price` is Amber's "what you pay" in c/kWh (a negative feed-in price is an earning). `cost`
    is what the household pays in cents: negative when it earns. Amber's own `cost` keeps its rounding;
    only its sign is set from the price, because the sign of feed-in `kwh` (and so of `cost`) is unconfirmed."""

    billing_date: date
    start: datetime
    end: datetime
    channel: str
    identifier: str
    kwh: Decimal
    price: Decimal
    cost: Decimal
    quality: str


def normalise_usage(
    *,
    channel: str,
    identifier: str | None,
    start: datetime,
    end: datetime,
    kwh: float | Decimal,
    price: float | Decimal | None,
    cost: float | Decimal | None,
    quality: str | None,
    billing_date: date | None,
) -> UsageRow:
    """One Amber usage interval as a `UsageRow` (raises MalformedUsage when it cannot be billed)."""
    if channel not in CHANNELS:
        raise MalformedUsage(f"unknown channel {channel!r}")
    if start.tzinfo is None or end <= start:
        raise MalformedUsage("bad interval times")
    energy = decimal(kwh)
    if not energy.is_finite():
        raise MalformedUsage("kwh is not a number")
    if price is None and cost is None:
        raise MalformedUsage("neither perKwh nor cost")
    if price is None:
        if channel == EXPORT_CHANNEL or energy == 0:
            raise MalformedUsage("feed-in row without perKwh: the sign of its cost is unknown")
        price_d = decimal(cost) / energy
    else:
        price_d = decimal(price)
    if channel == EXPORT_CHANNEL:
        energy = abs(energy)
        magnitude = abs(decimal(cost)) if cost is not None else energy * abs(price_d)
        cost_d = magnitude if price_d > 0 else -magnitude if price_d < 0 else ZERO
    else:
        cost_d = decimal(cost) if cost is not None else energy * price_d
    if not (price_d.is_finite() and cost_d.is_finite()):
        raise MalformedUsage("price or cost is not a number")
    return UsageRow(
        billing_date=billing_date or nem_date(start),
        start=start.astimezone(timezone.utc),
        end=end.astimezone(timezone.utc),
        channel=channel,
        identifier=identifier or channel,
        kwh=energy,
        price=price_d,
        cost=cost_d,
        quality=quality if quality in QUALITIES else "estimated",
    )


def replaces(existing_quality: str | None, new_quality: str) -> bool:
    """Whether an imported row may overwrite the stored one: never a billable row with an estimated one."""
    return not (existing_quality == "billable" and new_quality != "billable")


# --- the bill ---------------------------------------------------------------------------------------------


@dataclass
class Bill:
    """Sums of one billing day (or a range), unrounded: kWh and cents."""

    import_kwh: Decimal = ZERO
    import_cost: Decimal = ZERO  # cents paid for imports (general + controlled load)
    export_kwh: Decimal = ZERO
    export_earnings: Decimal = ZERO  # cents earned for exports (negative when exporting cost money)
    fixed: Decimal = ZERO  # cents of fixed costs (supply charge, membership), kept apart
    intervals: int = 0
    estimated: int = 0  # rows still estimated: the day may change when Amber bills it

    @property
    def net(self) -> Decimal:
        """Energy cost less earnings, in cents, without the fixed costs."""
        return self.import_cost - self.export_earnings

    def add(self, row: UsageRow) -> None:
        if row.channel == EXPORT_CHANNEL:
            self.export_kwh += row.kwh
            self.export_earnings -= row.cost
        else:
            self.import_kwh += row.kwh
            self.import_cost += row.cost
        self.intervals += 1
        if row.quality != "billable":
            self.estimated += 1

    def merge(self, other: Bill) -> None:
        self.import_kwh += other.import_kwh
        self.import_cost += other.import_cost
        self.export_kwh += other.export_kwh
        self.export_earnings += other.export_earnings
        self.fixed += other.fixed
        self.intervals += other.intervals
        self.estimated += other.estimated

    def as_json(self) -> dict[str, float | int]:
        """Money in dollars (rounded to the cent) and kWh (to the Wh), as JSON numbers."""
        return {
            "import_kwh": float(kwh3(self.import_kwh)),
            "import_cost": float(dollars(self.import_cost)),
            "export_kwh": float(kwh3(self.export_kwh)),
            "export_earnings": float(dollars(self.export_earnings)),
            "net": float(dollars(self.net)),
            "fixed_costs": float(dollars(self.fixed)),
            "net_with_fixed": float(dollars(self.net + self.fixed)),
            "estimated_intervals": self.estimated,
        }


@dataclass(frozen=True)
class FixedCosts:
    """A household's fixed costs in cents: the daily supply charge and Amber's monthly membership."""

    supply_per_day: Decimal = ZERO
    membership_per_month: Decimal = ZERO

    def per_day(self) -> Decimal:
        # A month of membership spread evenly over the year's days (12 months / 365 days).
        return self.supply_per_day + self.membership_per_month * 12 / 365


def bill_by_day(rows: Iterable[UsageRow], first: date, last: date, fixed: FixedCosts | None = None) -> dict[date, Bill]:
    """A `Bill` for each billing day first..last that has rows (Amber's `date`, not the local date)."""
    days: dict[date, Bill] = {}
    for row in rows:
        if first <= row.billing_date <= last:
            days.setdefault(row.billing_date, Bill()).add(row)
    if fixed is not None:
        for bill in days.values():
            bill.fixed = fixed.per_day()
    return dict(sorted(days.items()))


def total(days: Iterable[Bill]) -> Bill:
    """The sum of several days (rounded only when shown, from the unrounded sums)."""
    result = Bill()
    for bill in days:
        result.merge(bill)
    return result


def report_json(days: dict[date, Bill]) -> dict:
    """The report's JSON: `{"days": [{"date", "import_kwh", ...}], "total": {...}}`, money in dollars."""
    return {
        "days": [{"date": day.isoformat(), **bill.as_json()} for day, bill in days.items()],
        "total": total(days.values()).as_json(),
    }


# --- what the battery saved -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyRow:
    """One Tesla `calendar_history` row: energy (Wh) moved in [start, end)."""

    start: datetime
    end: datetime
    grid_import: float = 0.0
    grid_export: float = 0.0
    battery_from_grid: float = 0.0
    battery_from_solar: float = 0.0
    battery_to_home: float = 0.0
    battery_to_grid: float = 0.0
    home: float = 0.0
    solar: float = 0.0


@dataclass(frozen=True)
class PriceSlot:
    """The prices billed for one interval: buy (general) and feed-in, both "what you pay", c/kWh."""

    start: datetime
    end: datetime
    buy: Decimal | None
    sell: Decimal | None


def price_slots(rows: Iterable[UsageRow]) -> list[PriceSlot]:
    """The billed buy and feed-in price of each metered interval (general channel for buying)."""
    slots: dict[datetime, dict] = {}
    for row in rows:
        slot = slots.setdefault(row.start, {"end": row.end, "buy": None, "sell": None})
        if row.channel == "general":
            slot["buy"] = row.price
        elif row.channel == EXPORT_CHANNEL:
            slot["sell"] = row.price
    return [PriceSlot(start, v["end"], v["buy"], v["sell"]) for start, v in sorted(slots.items())]


@dataclass(frozen=True)
class RowSaving:
    """What the battery saved in one energy row: cents (positive = the battery saved money)."""

    start: datetime
    end: datetime
    cents: Decimal


def _prices_over(slots: Sequence[PriceSlot], starts: list[datetime], start: datetime, end: datetime) -> tuple[Decimal, Decimal] | None:
    """Time-weighted buy and sell prices over [start, end); None if any part of it has no price."""
    i = max(bisect_right(starts, start) - 1, 0)
    covered = 0.0
    buy = sell = ZERO
    span = (end - start).total_seconds()
    while i < len(slots) and slots[i].start < end:
        slot = slots[i]
        overlap = (min(slot.end, end) - max(slot.start, start)).total_seconds()
        if overlap > 0:
            if slot.buy is None or slot.sell is None:
                return None
            weight = Decimal(overlap) / Decimal(span)
            buy += slot.buy * weight
            sell += slot.sell * weight
            covered += overlap
        i += 1
    if abs(covered - span) > 0.5:
        return None
    return buy, sell


def battery_saving(row: EnergyRow, buy: Decimal, sell: Decimal) -> Decimal:
    """Cents the battery saved in one row, against the same home and solar with no battery.

    With no battery, what it gave the home would have been bought (at `buy`) and what it sent out would
    not have been exported (earning `-sell` per kWh); what it charged from the grid would not have been
    bought, and what it charged from solar would have been exported instead."""
    kwh = Decimal("0.001")
    bought_instead = Decimal(repr(row.battery_to_home - row.battery_from_grid)) * kwh
    exported_instead = Decimal(repr(row.battery_from_solar - row.battery_to_grid)) * kwh
    return buy * bought_instead + sell * exported_instead


def savings(energy: Iterable[EnergyRow], slots: Sequence[PriceSlot]) -> tuple[list[RowSaving], int]:
    """The battery's saving per energy row, and how many rows had no billed prices (left out)."""
    starts = [slot.start for slot in slots]
    result: list[RowSaving] = []
    missing = 0
    for row in energy:
        prices = _prices_over(slots, starts, row.start, row.end)
        if prices is None:
            missing += 1
            continue
        result.append(RowSaving(row.start, row.end, battery_saving(row, *prices)))
    return result, missing


def savings_by_day(rows: Iterable[RowSaving]) -> dict[date, Decimal]:
    """Savings summed per billing day (the NEM date of each row's start)."""
    days: dict[date, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        days[nem_date(row.start)] += row.cents
    return dict(sorted(days.items()))


# --- windows: force sessions and export protection ---------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of time money is attributed to."""

    kind: str  # "force_charge", "force_discharge", "export_protection"
    start: datetime
    end: datetime
    label: str = ""


@dataclass
class WindowMoney:
    """The money of one window, from its own intervals only (cents)."""

    window: Window
    battery: Decimal = ZERO  # what the battery's flows saved (negative: cost) in the window
    grid_cost: Decimal = ZERO  # what the household paid the grid in the window (negative: earned)
    grid_kwh_in: Decimal = ZERO
    grid_kwh_out: Decimal = ZERO
    covered: bool = field(default=False)  # some energy data fell in the window


def _overlap_fraction(start: datetime, end: datetime, w_start: datetime, w_end: datetime) -> Decimal:
    overlap = (min(end, w_end) - max(start, w_start)).total_seconds()
    span = (end - start).total_seconds()
    if overlap <= 0 or span <= 0:
        return ZERO
    return Decimal(overlap) / Decimal(span)


def _near(rows: Sequence, starts: list[datetime], window: Window, longest: timedelta) -> Iterable:
    """The rows (sorted by start) that may overlap the window: those starting from `longest` before it."""
    i = bisect_left(starts, window.start - longest)
    while i < len(rows) and rows[i].start < window.end:
        yield rows[i]
        i += 1


def window_money(windows: Iterable[Window], saved: Sequence[RowSaving], usage: Sequence[UsageRow]) -> list[WindowMoney]:
    """Attribute the battery's saving and the grid money of each row to the windows it overlaps
    (in proportion to the overlap, for rows that straddle a window's edge)."""
    saved = sorted(saved, key=lambda r: r.start)
    usage = sorted(usage, key=lambda r: r.start)
    saved_starts, usage_starts = [r.start for r in saved], [r.start for r in usage]
    longest = max((r.end - r.start for r in (*saved, *usage)), default=timedelta(0))
    result = []
    for window in windows:
        money = WindowMoney(window)
        for row in _near(saved, saved_starts, window, longest):
            part = _overlap_fraction(row.start, row.end, window.start, window.end)
            if part:
                money.battery += row.cents * part
                money.covered = True
        for row in _near(usage, usage_starts, window, longest):
            part = _overlap_fraction(row.start, row.end, window.start, window.end)
            if part:
                money.grid_cost += row.cost * part
                if row.channel == EXPORT_CHANNEL:
                    money.grid_kwh_out += row.kwh * part
                else:
                    money.grid_kwh_in += row.kwh * part
        result.append(money)
    return result


def export_protection_windows(usage: Iterable[UsageRow]) -> list[Window]:
    """Stretches where exporting cost money (feed-in "what you pay" above zero), consecutive intervals merged."""
    paying = sorted({(r.start, r.end) for r in usage if r.channel == EXPORT_CHANNEL and r.price > 0})
    windows: list[Window] = []
    for start, end in paying:
        if windows and windows[-1].end == start:
            windows[-1] = Window("export_protection", windows[-1].start, end)
        else:
            windows.append(Window("export_protection", start, end))
    return windows
