"""Import a household's money data: Amber's metered usage and Tesla's calendar_history, into the database.

Amber's usage comes at most 7 days a request and 90 days back; each request prints a progress line (the
CLI) and keeps within Amber's rate budget (it waits for the window to reset rather than run it dry, since
the 5-minute sync shares the same token). An import is idempotent: a row is written only when it is new or
changed, and a billable row is never replaced by an estimated one. The daily job (`import_due`) imports
the last few days of every household with Amber connected, once a day each."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select

from app import clock
from app.clients.amber import UsageInterval
from app.clients.errors import ClientError, RateLimitedError
from app.connections import NotConfigured, resolve
from app.credentials import CredentialUnreadable
from app.extensions import db
from app.fault_points import fault_point
from app.models import EnergyInterval, Household, HouseholdSettings, MeteredUsage, MoneyImport
from app.money.arithmetic import MalformedUsage, UsageRow, nem_date, normalise_usage, replaces, to_micro

log = logging.getLogger(__name__)

MAX_DAYS = 90  # Amber keeps 90 days of usage
CHUNK_DAYS = 7  # and answers at most 7 days a request
DAILY_DAYS = 3  # the daily job re-imports this many days (estimated rows become billable within a day or two)
FIRST_DAYS = 14  # a household's first automatic import reaches this far back
DAILY_EVERY = timedelta(hours=20)
RETRY_AFTER_FAILURE = timedelta(hours=1)
RATE_RESERVE = 5  # requests left in Amber's window for the sync ticks; below it the import waits
MAX_RATE_WAIT_S = 300.0

Progress = Callable[[str], None]

ENERGY_KEYS = {
    "grid_import": ("grid_energy_imported",),
    "grid_export": ("total_grid_energy_exported",),
    "battery_from_grid": ("battery_energy_imported_from_grid",),
    "battery_from_solar": ("battery_energy_imported_from_solar",),
    "battery_to_home": ("consumer_energy_imported_from_battery",),
    "battery_to_grid": ("grid_energy_exported_from_battery",),
    "home": ("total_home_usage",),
    "solar": ("total_solar_generation", "solar_energy_exported"),
}


class ImportFailed(Exception):
    """An import could not run or stopped; the message is for the household (no secrets, no payloads)."""


@dataclass
class ImportResult:
    usage_written: int = 0
    usage_seen: int = 0
    usage_skipped: int = 0  # malformed rows left out
    energy_written: int = 0
    energy_note: str = ""
    requests: int = 0
    lines: list[str] = field(default_factory=list)


def billing_days(today: date, days: int) -> tuple[date, date]:
    """The `days` billing days ending today, clamped to Amber's 90 days."""
    days = max(1, min(days, MAX_DAYS))
    return today - timedelta(days=days - 1), today


def chunks(first: date, last: date, size: int = CHUNK_DAYS) -> list[tuple[date, date]]:
    """[first, last] cut into ranges of at most `size` days, oldest first."""
    out = []
    start = first
    while start <= last:
        end = min(start + timedelta(days=size - 1), last)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


# --- Amber usage ------------------------------------------------------------------------------------------


def _wait_for_budget(client: Any, sleep: Callable[[float], None], say: Progress) -> None:
    info = getattr(client, "rate_limit", None)
    if info is None or info.remaining is None or info.remaining > RATE_RESERVE:
        return
    wait = min(float(info.reset_s or 60), MAX_RATE_WAIT_S)
    say(f"  Amber's rate budget is nearly used ({info.remaining} left): waiting {wait:.0f} s")
    sleep(wait)


def _fetch_usage(client: Any, site_id: str, first: date, last: date, sleep: Callable[[float], None], say: Progress):
    try:
        return client.usage(site_id, first, last)
    except RateLimitedError as exc:
        wait = min(float(exc.retry_after or 60), MAX_RATE_WAIT_S)
        say(f"  Amber asked us to slow down: waiting {wait:.0f} s, then trying once more")
        sleep(wait)
        return client.usage(site_id, first, last)


def usage_row(interval: UsageInterval) -> UsageRow:
    """One parsed Amber usage interval as the bill's row (raises MalformedUsage when it cannot be billed)."""
    return normalise_usage(
        channel=interval.channel.value, identifier=interval.channel_identifier, start=interval.start, end=interval.end,
        kwh=interval.kwh, price=interval.per_kwh, cost=interval.cost, quality=interval.quality,
        billing_date=interval.billing_date,
    )


def store_usage(household_id: int, site_id: str, rows: list[UsageRow], now: datetime) -> int:
    """Write new and changed rows (billable never replaced by estimated); returns how many were written."""
    if not rows:
        return 0
    starts = [r.start for r in rows]
    existing = {
        (m.channel, m.identifier, m.start_at): m
        for m in db.session.scalars(
            select(MeteredUsage).where(
                MeteredUsage.household_id == household_id,
                MeteredUsage.start_at >= min(starts),
                MeteredUsage.start_at <= max(starts),
            )
        )
    }
    written = 0
    for row in rows:
        values = {
            "site_id": site_id,
            "end_at": row.end,
            "billing_date": row.billing_date,
            "kwh_micro": to_micro(row.kwh),
            "price_micro": to_micro(row.price),
            "cost_micro": to_micro(row.cost),
            "quality": row.quality,
        }
        stored = existing.get((row.channel, row.identifier, row.start))
        if stored is None:
            db.session.add(
                MeteredUsage(
                    household_id=household_id, channel=row.channel, identifier=row.identifier,
                    start_at=row.start, imported_at=now, **values,
                )
            )
            existing[(row.channel, row.identifier, row.start)] = values  # a duplicate in one answer is kept once
            written += 1
        elif isinstance(stored, MeteredUsage) and replaces(stored.quality, row.quality):
            written += _update_if_changed(stored, values, now)
    return written


def _update_if_changed(stored: Any, values: dict[str, Any], now: datetime) -> int:
    """Write `values` onto a stored row if any differs (1), else leave it alone (0): an unchanged re-import writes nothing."""
    if all(getattr(stored, key) == value for key, value in values.items()):
        return 0
    for key, value in values.items():
        setattr(stored, key, value)
    stored.imported_at = now
    return 1


def import_usage(
    household: Household, client: Any, first: date, last: date, now: datetime,
    say: Progress, sleep: Callable[[float], None], result: ImportResult,
) -> None:
    """Fetch and store Amber usage dated first..last, a week a request, committing after each."""
    site_id = household.settings.amber_site_id if household.settings else None
    if not site_id:
        raise ImportFailed("Choose your Amber site in Settings first.")
    for start, end in chunks(first, last):
        _wait_for_budget(client, sleep, say)
        answer = _fetch_usage(client, site_id, start, end, sleep, say)
        result.requests += 1
        rows: list[UsageRow] = []
        for interval in answer.intervals:
            try:
                rows.append(usage_row(interval))
            except MalformedUsage as exc:
                result.usage_skipped += 1
                log.warning("Household %s: usage row %s left out (%s)", household.id, interval.start.isoformat(), exc)
        skipped = answer.skipped
        result.usage_skipped += skipped
        written = store_usage(household.id, site_id, rows, now)
        db.session.commit()
        fault_point("money_after_usage_chunk")  # tests: a crash between two requests keeps what was committed
        result.usage_seen += len(rows)
        result.usage_written += written
        estimated = sum(1 for r in rows if r.quality != "billable")
        line = f"  Amber usage {start}..{end}: {len(rows)} rows ({estimated} estimated), {written} new or changed"
        if skipped or len(rows) < len(answer.intervals):
            line += f", {skipped + len(answer.intervals) - len(rows)} malformed left out"
        say(line)
        result.lines.append(line)


# --- Tesla energy -----------------------------------------------------------------------------------------


def _number(entry: Mapping[str, Any], names: tuple[str, ...]) -> float:
    for name in names:
        value = entry.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            return float(value)
    return 0.0


def parse_energy_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """calendar_history rows -> dicts with start, end and Wh per flow. A row lasts until the next one; the
    last lasts as long as the shortest gap seen (a lone row, whose length is unknown, is left out)."""
    stamped = []
    for entry in entries:
        raw = entry.get("timestamp")
        try:
            instant = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            continue
        if instant.tzinfo is None:
            continue
        stamped.append((instant.astimezone(timezone.utc), entry))
    stamped.sort(key=lambda pair: pair[0])
    if len(stamped) < 2:
        return []
    gaps = [b[0] - a[0] for a, b in zip(stamped, stamped[1:]) if b[0] > a[0]]
    if not gaps:
        return []
    step = min(gaps)
    rows = []
    for i, (start, entry) in enumerate(stamped):
        end = stamped[i + 1][0] if i + 1 < len(stamped) else start + step
        if end <= start:
            continue
        row = {"start": start, "end": min(end, start + max(step, timedelta(hours=1)))}
        for key, names in ENERGY_KEYS.items():
            row[key] = _number(entry, names)
        if not entry.get("total_grid_energy_exported"):
            row["grid_export"] = _number(entry, ("grid_energy_exported_from_solar",)) + _number(
                entry, ("grid_energy_exported_from_battery",)
            ) + _number(entry, ("grid_energy_exported_from_generator",))
        rows.append(row)
    return rows


def store_energy(household_id: int, rows: list[dict[str, Any]], now: datetime) -> int:
    """Insert or replace energy rows by start time; returns how many were written."""
    if not rows:
        return 0
    existing = {
        e.start_at: e
        for e in db.session.scalars(
            select(EnergyInterval).where(
                EnergyInterval.household_id == household_id,
                EnergyInterval.start_at >= rows[0]["start"],
                EnergyInterval.start_at <= rows[-1]["start"],
            )
        )
    }
    written = 0
    for row in rows:
        values = {f"{k}_wh": row[k] for k in ENERGY_KEYS}
        values["end_at"] = row["end"]
        stored = existing.get(row["start"])
        if stored is None:
            db.session.add(EnergyInterval(household_id=household_id, start_at=row["start"], imported_at=now, **values))
            written += 1
        else:
            written += _update_if_changed(stored, values, now)
    return written


def import_energy(conn: Any, first: date, last: date, now: datetime, say: Progress, result: ImportResult) -> None:
    """Fetch calendar_history a local day at a time for first..last (one Tesla call per day)."""
    site_id = conn.tesla_site_id
    if not site_id:
        result.energy_note = "Tesla is not connected: savings need the Powerwall's energy history."
        say(f"  {result.energy_note}")
        return
    zone = conn.zone
    day = first - timedelta(days=1)  # the NEM day starts at 00:00 +10:00, i.e. during the local day before
    while day <= last:
        start = datetime.combine(day, time.min, tzinfo=zone)
        end = datetime.combine(day, time(23, 59, 59), tzinfo=zone)
        if start > now:
            break
        history = conn.tesla(
            lambda c: c.calendar_history(
                site_id, kind="energy", period="day", start_date=start, end_date=min(end, now), time_zone=zone.key
            )
        )
        result.requests += 1
        rows = parse_energy_rows(history.entries)
        written = store_energy(conn.household.id, rows, now)
        db.session.commit()
        result.energy_written += written
        line = f"  Tesla energy {day}: {len(rows)} rows, {written} new or changed"
        say(line)
        result.lines.append(line)
        day += timedelta(days=1)


# --- one household, and the daily job ----------------------------------------------------------------------


def _record(household_id: int, now: datetime, error: str | None, result: ImportResult | None, *, success: bool = False) -> None:
    """Note the run; `error` is shown on the Money page (on a success, a note such as "Tesla is not connected")."""
    state = db.session.get(MoneyImport, household_id)
    if state is None:
        state = MoneyImport(household_id=household_id, usage_rows=0, energy_rows=0)
        db.session.add(state)
    state.last_run_at = now
    state.last_error = error
    if success:
        state.last_success_at = now
    if result is not None:
        state.usage_rows = (state.usage_rows or 0) + result.usage_written
        state.energy_rows = (state.energy_rows or 0) + result.energy_written
    db.session.commit()


def import_household(
    household: Household, days: int, now: datetime | None = None, say: Progress | None = None,
    sleep: Callable[[float], None] | None = None,
) -> ImportResult:
    """Import the last `days` billing days of usage and energy for one household (raises ImportFailed)."""
    now = now or clock.now()
    say = say or (lambda line: None)
    sleep = sleep or clock.sleeper()
    first, last = billing_days(nem_date(now), days)
    result = ImportResult()
    try:
        conn = resolve(household, now)
        try:
            client = conn.amber()
        except (NotConfigured, CredentialUnreadable) as exc:
            raise ImportFailed(str(exc) or "Add your Amber API token in Settings.") from exc
        say(f"Importing {first}..{last} for {household.name}")
        import_usage(household, client, first, last, now, say, sleep, result)
        try:
            import_energy(conn, first, last, now, say, result)
        except ClientError as exc:
            result.energy_note = f"Tesla's energy history could not be read: {exc.user_message}"
            say(f"  {result.energy_note}")
    except ClientError as exc:
        db.session.rollback()
        message = f"Amber's usage could not be read: {exc.user_message}"
        _record(household.id, now, message, result)
        raise ImportFailed(message) from exc
    except ImportFailed as exc:
        db.session.rollback()
        _record(household.id, now, str(exc), result)
        raise
    _record(household.id, now, result.energy_note or None, result, success=True)  # the bill is complete; savings may wait
    return result


# Imports per hourly run: 500 an hour covers 10,000 households in the 20 hours between a household's imports
# (about 5 outside calls each, half a second, so a run takes minutes in the leader's job thread).
IMPORTS_PER_RUN = 500


def households_due(now: datetime, limit: int = IMPORTS_PER_RUN) -> list[int]:
    """Households with Amber connected whose last import is a day old (or failed an hour ago), oldest first."""
    recent = now - DAILY_EVERY
    failed_recently = now - RETRY_AFTER_FAILURE
    query = (
        select(HouseholdSettings.household_id)
        .outerjoin(MoneyImport, MoneyImport.household_id == HouseholdSettings.household_id)
        .where(HouseholdSettings.amber_token_enc.is_not(None), HouseholdSettings.amber_site_id.is_not(None))
        .where(or_(MoneyImport.last_run_at.is_(None), MoneyImport.last_run_at < failed_recently))
        .where(or_(MoneyImport.last_success_at.is_(None), MoneyImport.last_success_at < recent))
        .order_by(MoneyImport.last_run_at.asc().nulls_first(), HouseholdSettings.household_id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def import_due(now: datetime) -> int:
    """The daily job (leader only, hourly): import the last few days for each household that is due."""
    done = 0
    for household_id in households_due(now):
        household = db.session.get(Household, household_id)
        if household is None:
            continue
        first_time = db.session.get(MoneyImport, household_id) is None
        try:
            import_household(household, FIRST_DAYS if first_time else DAILY_DAYS, now)
            done += 1
        except ImportFailed as exc:
            log.warning("Household %s: money import failed: %s", household_id, exc)
        except Exception:
            db.session.rollback()
            log.exception("Household %s: money import crashed", household_id)
            try:
                _record(household_id, now, "The import failed (details in the server log).", None)
            except Exception:
                db.session.rollback()
    return done
