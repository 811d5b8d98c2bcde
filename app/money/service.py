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
    """The stored usage dated first..last, oldest first."""
    stored = db.session.scalars(
        select(MeteredUsage)
        .where(MeteredUsage.household_id == household_id, MeteredUsage.billing_date >= first, MeteredUsage.billing_date <= last)
        .order_by(MeteredUsage.start_at, MeteredUsage.channel, MeteredUsage.identifier)
    )
    return [
        UsageRow(
            billing_date=m.billing_date, start=m.start_at, end=m.end_at, channel=m.channel, identifier=m.identifier,
            kwh=from_micro(m.kwh_micro), price=from_micro(m.price_micro), cost=from_micro(m.cost_micro), quality=m.quality,
        )
        for m in stored
    ]


def _span(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants the billing days first..last cover (NEM midnight to NEM midnight)."""
    start = datetime.combine(first, datetime.min.time(), tzinfo=NEM_TZ)
    return start, datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=NEM_TZ)


def energy_rows(household_id: int, start: datetime, end: datetime) -> list[EnergyRow]:
    stored = db.session.scalars(
        select(EnergyInterval)
        .where(EnergyInterval.household_id == household_id, EnergyInterval.start_at >= start, EnergyInterval.start_at < end)
        .order_by(EnergyInterval.start_at)
    )
    return [
        EnergyRow(
            start=e.start_at, end=e.end_at, grid_import=e.grid_import_wh, grid_export=e.grid_export_wh,
            battery_from_grid=e.battery_from_grid_wh, battery_from_solar=e.battery_from_solar_wh,
            battery_to_home=e.battery_to_home_wh, battery_to_grid=e.battery_to_grid_wh, home=e.home_wh, solar=e.solar_wh,
        )
        for e in stored
    ]


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
    from app.money.arithmetic import dollars

    return float(dollars(cents))


def money_view(household: Household, first: date, last: date, now: datetime) -> MoneyView:
    """Everything the Money page shows for the billing days first..last."""
    rows = usage_rows(household.id, first, last)
    days = bill_by_day(rows, first, last, fixed_costs(household))
    start, end = _span(first, last)
    energy = energy_rows(household.id, start, end)
    saved_rows, missing = savings(energy, price_slots(rows))
    windows = sorted(
        force_windows(household.id, start, end, now) + export_protection_windows(rows), key=lambda w: w.start
    )
    return MoneyView(
        first=first, last=last, days=days, total=total(days.values()),
        saved_by_day=savings_by_day(saved_rows), saved_total=sum((r.cents for r in saved_rows), ZERO) if energy else None,
        rows_without_prices=missing, windows=window_money(windows, saved_rows, rows), usage=rows,
        fixed=fixed_costs(household), last_import=db.session.get(MoneyImport, household.id),
    )


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
