"""Read a household's money back: the bill per billing day, the battery's savings, the force sessions and
export-protection windows with their money, and the CSV rows. The page, GET /api/money, /money.csv and
`flask money report` all call `money_view` / `report`, so they cannot disagree."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import or_, select

from app.extensions import db
from app.models import EnergyInterval, ForceSession, Household, MeteredUsage, MoneyImport
from app.money.arithmetic import (
    NEM_TZ,
    ZERO,
    Bill,
    EnergyRow,
    FixedCosts,
    UsageRow,
    Window,
    WindowMoney,
    bill_by_day,
    dollars,
    export_protection_windows,
    from_micro,
    price_slots,
    report_json,
    savings,
    savings_by_day,
    total,
    window_money,
)

MAX_RANGE_DAYS = 366


def parse_range(raw_from: str | None, raw_to: str | None, today: date, default_days: int = 7) -> tuple[date, date]:
    """A from..to pair of YYYY-MM-DD dates (default: the last `default_days` days); ValueError with a message."""
    try:
        last = date.fromisoformat(raw_to) if raw_to else today
        first = date.fromisoformat(raw_from) if raw_from else last - timedelta(days=default_days - 1)
    except ValueError:
        raise ValueError("Dates must be written YYYY-MM-DD.") from None
    if first > last:
        raise ValueError("The start date is after the end date.")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"Choose at most {MAX_RANGE_DAYS} days.")
    return first, last


def fixed_costs(household: Household) -> FixedCosts | None:
    settings = household.settings
    if settings is None or (settings.supply_charge_micro is None and settings.membership_micro is None):
        return None
    return FixedCosts(
        supply_per_day=from_micro(settings.supply_charge_micro or 0),
        membership_per_month=from_micro(settings.membership_micro or 0),
    )


def usage_rows(household_id: int, first: date, last: date) -> list[UsageRow]:
    """The stored usage dated first..last, oldest first (plain rows: ORM objects cost more than the query)."""
    m = MeteredUsage
    stored = db.session.execute(
        select(m.billing_date, m.start_at, m.end_at, m.channel, m.identifier, m.kwh_micro, m.price_micro, m.cost_micro, m.quality)
        .where(m.household_id == household_id, m.billing_date >= first, m.billing_date <= last)
        .order_by(m.start_at, m.channel, m.identifier)
    )
    return [
        UsageRow(
            billing_date=r.billing_date, start=r.start_at, end=r.end_at, channel=r.channel, identifier=r.identifier,
            kwh=from_micro(r.kwh_micro), price=from_micro(r.price_micro), cost=from_micro(r.cost_micro), quality=r.quality,
        )
        for r in stored
    ]


def _span(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants the billing days first..last cover (NEM midnight to NEM midnight)."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=NEM_TZ)
    return start, datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=NEM_TZ)


def energy_rows(household_id: int, start: datetime, end: datetime) -> list[EnergyRow]:
    e = EnergyInterval
    stored = db.session.execute(
        select(e.start_at, e.end_at, e.grid_import_wh, e.grid_export_wh, e.battery_from_grid_wh, e.battery_from_solar_wh,
               e.battery_to_home_wh, e.battery_to_grid_wh, e.home_wh, e.solar_wh)
        .where(e.household_id == household_id, e.start_at >= start, e.start_at < end)
        .order_by(e.start_at)
    )
    return [EnergyRow(*row) for row in stored]


def force_windows(household_id: int, start: datetime, end: datetime, now: datetime) -> list[Window]:
    sessions = db.session.scalars(
        select(ForceSession)
        .where(ForceSession.household_id == household_id, ForceSession.started_at < end)
        .where(or_(ForceSession.ended_at.is_(None), ForceSession.ended_at > start))
        .order_by(ForceSession.started_at)
    )
    windows = []
    for s in sessions:
        stop = s.ended_at or min(s.ends_at, now)
        if stop > s.started_at:
            windows.append(Window(s.action, s.started_at, stop, label=s.started_by or ""))
    return windows


@dataclass
class MoneyView:
    first: date
    last: date
    days: dict[date, Bill]
    total: Bill
    saved_by_day: dict[date, Decimal]
    saved_total: Decimal | None  # None: no energy history at all in the range
    rows_without_prices: int
    windows: list[WindowMoney]
    usage: list[UsageRow]
    fixed: FixedCosts | None
    last_import: MoneyImport | None

    def json(self) -> dict:
        data = report_json(self.days)
        data["from"], data["to"] = self.first.isoformat(), self.last.isoformat()
        data["savings"] = None if self.saved_total is None else {
            "total": _dollars(self.saved_total),
            "days": [{"date": d.isoformat(), "saved": _dollars(v)} for d, v in self.saved_by_day.items()],
        }
        data["windows"] = [
            {
                "kind": w.window.kind, "start": w.window.start.isoformat(), "end": w.window.end.isoformat(),
                "battery": _dollars(w.battery), "grid_cost": _dollars(w.grid_cost), "has_energy_data": w.covered,
            }
            for w in self.windows
        ]
        return data


def _dollars(cents: Decimal) -> float:
    return float(dollars(cents))


@dataclass
class MoneyData:
    """What is stored for the billing days first..last: read once, then cut into views."""

    first: date
    last: date
    usage: list[UsageRow]
    energy: list[EnergyRow]
    force: list[Window]
    fixed: FixedCosts | None
    last_import: MoneyImport | None

    def covers(self, first: date, last: date) -> bool:
        return self.first <= first and last <= self.last


def load(household: Household, first: date, last: date, now: datetime) -> MoneyData:
    """Read the usage, energy history and force sessions of the billing days first..last."""
    start, end = _span(first, last)
    return MoneyData(
        first=first, last=last, usage=usage_rows(household.id, first, last), energy=energy_rows(household.id, start, end),
        force=force_windows(household.id, start, end, now), fixed=fixed_costs(household),
        last_import=db.session.get(MoneyImport, household.id),
    )


def view_of(data: MoneyData, first: date, last: date) -> MoneyView:
    """Everything the Money page shows for the billing days first..last (within what `data` holds)."""
    rows = [r for r in data.usage if first <= r.billing_date <= last]
    days = bill_by_day(rows, first, last, data.fixed)
    start, end = _span(first, last)
    energy = [e for e in data.energy if start <= e.start < end]
    saved_rows, missing = savings(energy, price_slots(rows))
    force = [w for w in data.force if w.start < end and w.end > start]
    windows = sorted(force + export_protection_windows(rows), key=lambda w: w.start)
    return MoneyView(
        first=first, last=last, days=days, total=total(days.values()),
        saved_by_day=savings_by_day(saved_rows), saved_total=sum((r.cents for r in saved_rows), ZERO) if energy else None,
        rows_without_prices=missing, windows=window_money(windows, saved_rows, rows), usage=rows,
        fixed=data.fixed, last_import=data.last_import,
    )


def money_view(household: Household, first: date, last: date, now: datetime) -> MoneyView:
    """Everything the Money page shows for the billing days first..last."""
    return view_of(load(household, first, last, now), first, last)


def report(household: Household, first: date, last: date, now: datetime) -> dict:
    """The report's JSON (the CLI's --json and GET /api/money)."""
    return money_view(household, first, last, now).json()


CSV_HEADER = ["billing_date", "start", "end", "channel", "meter", "kwh", "price_c_per_kwh", "cost_dollars", "quality"]


def csv_text(view: MoneyView, tz) -> str:
    """One row per metered interval; costs in dollars, exact (unrounded), so their sum is the page's."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in view.usage:
        writer.writerow([
            row.billing_date.isoformat(), row.start.astimezone(tz).isoformat(), row.end.astimezone(tz).isoformat(),
            row.channel, row.identifier, f"{row.kwh.normalize():f}", f"{row.price.normalize():f}",
            f"{(row.cost / 100).normalize():f}", row.quality,
        ])
    return out.getvalue()
