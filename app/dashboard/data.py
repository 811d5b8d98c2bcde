"""What the dashboard shows, assembled from the database (and, for the battery, a cached Tesla read).

Routes and the JSON API call these; templates only format. Money and time conventions: prices are
shown in c/kWh; `sell` is what the household earns per exported kWh (negative = exporting costs money);
every time is shown in the site's zone with the zone's abbreviation."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import defer

from app.connections import effective_timezone
from app.dashboard.charts import PricePoint, TariffSlot
from app.extensions import db
from app.models import (
    ApiCallCount, ControlEvent, ForceSession, ServiceStatus, StoredPrice, SyncRun, SyncState, TariffPush, Household,
)
from app.price_sanity import Refusal
from app.prices import LEVEL_WORDS, LEVELS, price_level
from app.readings import BatteryView, battery  # noqa: F401 - the dashboard's battery part
from app.tariff import period_name, tariff_rates

log = logging.getLogger(__name__)

DEFAULT_ZONE = "Australia/Sydney"
PRICES_STALE_AFTER = timedelta(minutes=10)
AMBER_BUDGET = 50
# Tesla's published Fleet API rates (USD), used only for the estimate shown to the household.
FLEET_RATE_COMMANDS = 1 / 1000
FLEET_RATE_DATA = 1 / 500
FLEET_COMMAND_KINDS = frozenset(
    {"time_of_use_settings", "operation", "backup", "grid_import_export", "storm_mode", "off_grid_vehicle_charging_reserve"}
)


def site_zone(household: Household) -> ZoneInfo:
    """The zone the household's tariff is laid out in (Sydney until one is known)."""
    return ZoneInfo(effective_timezone(household.settings) or DEFAULT_ZONE)


def slot_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The UTC start of the local half hour containing `now`."""
    local = now.astimezone(tz)
    floored = local.replace(minute=30 * (local.minute // 30), second=0, microsecond=0)
    return floored.astimezone(timezone.utc)


# -- prices -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceNow:
    """One price of the current interval or half hour, in c/kWh."""

    buy: float | None
    sell: float | None  # what exporting earns; negative means exporting costs money
    start: datetime
    end: datetime
    descriptor: str | None
    spike_status: str
    renewables: float | None
    estimate: bool
    kind: str


@dataclass(frozen=True)
class NowView:
    """The price now: the 5-minute interval and the 30-minute slot, and how fresh the data is."""

    five_minute: PriceNow | None
    half_hour: PriceNow | None
    updated_at: datetime | None
    stale: bool


# The columns the dashboard shows, fetched as plain rows: a day of 5-minute prices as ORM objects
# costs ten times the query itself.
_PRICE_COLUMNS = (
    StoredPrice.start_at,
    StoredPrice.duration_minutes,
    StoredPrice.channel,
    StoredPrice.kind,
    StoredPrice.per_kwh,
    StoredPrice.estimate,
    StoredPrice.spike_status,
    StoredPrice.descriptor,
    StoredPrice.renewables,
)


def _rows_between(site_id: str, start: datetime, end: datetime) -> list[Any]:
    return list(
        db.session.execute(
            select(*_PRICE_COLUMNS)
            .where(StoredPrice.amber_site_id == site_id, StoredPrice.start_at >= start, StoredPrice.start_at < end)
            .order_by(StoredPrice.start_at, StoredPrice.duration_minutes)
        )
    )


@dataclass(frozen=True)
class PriceRows:
    """The site's stored prices from a day back to a day ahead of the current half hour: what the
    price now, the forecast and the history show, read in one query per page view."""

    site_id: str | None
    rows: tuple[Any, ...]

    def between(self, start: datetime, end: datetime) -> list[Any]:
        return [r for r in self.rows if start <= r.start_at < end]


def price_rows(household: Household, now: datetime, tz: ZoneInfo) -> PriceRows:
    """Read the prices the dashboard shows (nothing when no Amber site is chosen); `tz` is the site's zone."""
    site_id = household.settings.amber_site_id if household.settings else None
    if not site_id:
        return PriceRows(None, ())
    end = slot_start(now, tz) + timedelta(hours=24)
    return PriceRows(site_id, tuple(_rows_between(site_id, now - timedelta(hours=24), end)))


def _pair(rows: list[StoredPrice]) -> PriceNow | None:
    general = next((r for r in rows if r.channel == "general"), None)
    feed_in = next((r for r in rows if r.channel == "feedIn"), None)
    base = general or feed_in
    if base is None:
        return None
    return PriceNow(
        buy=general.per_kwh if general else None,
        sell=-feed_in.per_kwh if feed_in else None,
        start=base.start_at,
        end=base.start_at + timedelta(minutes=base.duration_minutes),
        descriptor=general.descriptor if general else None,
        spike_status=(general.spike_status if general else "none") or "none",
        renewables=base.renewables,
        estimate=any(r.estimate for r in rows),
        kind=base.kind,
    )


def now_prices(prices: PriceRows, now: datetime) -> NowView:
    """The stored prices that contain `now`: the 5-minute interval and the 30-minute slot."""
    if not prices.site_id:
        return NowView(None, None, None, False)
    rows = [r for r in prices.between(now - timedelta(minutes=30), now + timedelta(seconds=1))
            if r.start_at <= now < r.start_at + timedelta(minutes=r.duration_minutes)]
    five = _pair([r for r in rows if r.duration_minutes == 5])
    half = _pair([r for r in rows if r.duration_minutes == 30])
    # When they were stored (not part of the rows: a day of timestamps costs more than this query).
    query = select(func.max(StoredPrice.updated_at)).where(StoredPrice.amber_site_id == prices.site_id)
    if rows:
        query = query.where(StoredPrice.start_at.in_({r.start_at for r in rows}))
    updated = db.session.scalar(query)
    stale = updated is None or now - updated > PRICES_STALE_AFTER
    return NowView(five, half, updated, stale)


def _points(rows: list[StoredPrice]) -> list[PricePoint]:
    """One point per interval, buy and sell together; 5-minute data wins where it overlaps 30-minute data."""
    by_key: dict[tuple[datetime, int], dict[str, StoredPrice]] = {}
    for row in rows:
        by_key.setdefault((row.start_at, row.duration_minutes), {})[row.channel] = row
    fine = [(start, start + timedelta(minutes=5)) for (start, minutes) in by_key if minutes == 5]
    points = []
    for (start, minutes), channels in sorted(by_key.items()):
        end = start + timedelta(minutes=minutes)
        if minutes == 30 and any(s >= start and e <= end for s, e in fine):
            covered = sum(1 for s, e in fine if s >= start and e <= end)
            if covered >= 6:
                continue  # fully shown by its 5-minute intervals
        general, feed_in = channels.get("general"), channels.get("feedIn")
        base = general or feed_in
        points.append(
            PricePoint(
                start=start,
                end=end,
                buy=general.per_kwh / 100 if general else None,
                sell=-feed_in.per_kwh / 100 if feed_in else None,
                kind=base.kind,
                spike=(general is not None and general.spike_status in ("spike", "potential")),
                estimate=any(r.estimate for r in channels.values()),
                descriptor=general.descriptor if general else None,
            )
        )
    return points


def forecast_points(prices: PriceRows, now: datetime, tz: ZoneInfo) -> list[PricePoint]:
    """Amber's prices from the current half hour to 24 hours ahead (latest forecast)."""
    start = slot_start(now, tz)
    return _points(prices.between(start, start + timedelta(hours=24)))


def history_points(prices: PriceRows, now: datetime) -> list[PricePoint]:
    """Settled prices of the last 24 hours; missing intervals stay missing."""
    return _points([r for r in prices.between(now - timedelta(hours=24), now) if r.kind in ("actual", "current")])


# -- the tariff on the Powerwall ----------------------------------------------------------------------------


def last_push(household: Household, *, before_id: int | None = None, explanation: bool = True) -> TariffPush | None:
    """The newest accepted push for the household's current Tesla site (or the one before `before_id`).

    `explanation=False` leaves the (large) per-slot explanation unloaded, for pages that do not show it."""
    site_id = household.settings.tesla_site_id if household.settings else None
    if not site_id:
        return None
    query = select(TariffPush).where(
        TariffPush.household_id == household.id, TariffPush.tesla_site_id == site_id, TariffPush.accepted.is_(True)
    )
    if not explanation:
        query = query.options(defer(TariffPush.explanation))
    if before_id is not None:
        query = query.where(TariffPush.id < before_id)
    return db.session.scalar(query.order_by(TariffPush.id.desc()).limit(1))


def tariff_timeline(tariff: dict[str, Any], now: datetime, tz: ZoneInfo) -> list[TariffSlot]:
    """The daily template laid on the real timeline from the current half hour, as Tesla applies it."""
    buy, sell = tariff_rates(tariff)
    start = slot_start(now, tz)
    slots = []
    for index in range(48):
        slot_from = start + timedelta(minutes=30 * index)
        local = slot_from.astimezone(tz)
        name = period_name(local.hour * 60 + 30 * (local.minute // 30))
        if name in buy:
            slots.append(TariffSlot(slot_from, slot_from + timedelta(minutes=30), buy[name], sell.get(name, 0.0)))
    return slots


@dataclass(frozen=True)
class SlotDiff:
    """How one period changed from the previous push, in c/kWh."""

    period: str
    buy_change: float
    sell_change: float


def push_diff(push: TariffPush, previous: TariffPush | None) -> dict[str, SlotDiff]:
    """Per period, the change from the previous accepted push (empty when there is none)."""
    if previous is None:
        return {}
    new_buy, new_sell = tariff_rates(push.tariff)
    old_buy, old_sell = tariff_rates(previous.tariff)
    return {
        period: SlotDiff(period, round((new_buy[period] - old_buy.get(period, 0)) * 100, 2),
                         round((new_sell.get(period, 0) - old_sell.get(period, 0)) * 100, 2))
        for period in new_buy
    }


def explained_slots(push: TariffPush, tz: ZoneInfo, site_id: str | None = None) -> list[dict[str, Any]]:
    """The push's per-slot explanations, with each Amber interval's start on the site's clock and, when the
    site's stored prices still have them, Amber's level of the slot's buy price (`level`)."""
    raw = (push.explanation or {}).get("slots", [])
    starts = {
        datetime.fromisoformat(use["start"]) for slot in raw for use in slot.get("intervals", []) if use.get("channel") == "general"
    }
    levels: dict[datetime, str] = {}
    if site_id and starts:
        for start, descriptor in db.session.execute(
            select(StoredPrice.start_at, StoredPrice.descriptor).where(
                StoredPrice.amber_site_id == site_id, StoredPrice.channel == "general",
                StoredPrice.start_at >= min(starts), StoredPrice.start_at <= max(starts),
            )
        ):
            level = price_level(descriptor)
            if level is not None and (start not in levels or LEVELS.index(level) > LEVELS.index(levels[start])):
                levels[start] = level
    slots = []
    for slot in raw:
        uses = []
        found = []
        for use in slot.get("intervals", []):
            start = datetime.fromisoformat(use["start"])
            uses.append({**use, "local_time": start.astimezone(tz).strftime("%H:%M")})
            if use.get("channel") == "general" and start in levels:
                found.append(levels[start])
        level = max(found, key=LEVELS.index) if found else None  # the dearest of the intervals it was built from
        slots.append({**slot, "intervals": uses, "level": level, "level_words": LEVEL_WORDS.get(level or "")})
    return slots


# -- battery ------------------------------------------------------------------------------------------------


# -- sync status, health and cost -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """Something the household should know, in plain words; level is "warning" or "info"."""

    level: str
    message: str


@dataclass
class SyncStatusView:
    """The last run, the last push, the next tick and anything that needs attention."""

    sync_enabled: bool
    last_run: SyncRun | None
    last_push: TariffPush | None
    last_push_latency_ms: int | None
    next_tick_at: datetime | None
    alerts: list[Alert] = field(default_factory=list)


OUTCOME_WORDS = {
    "pushed": "Sent a new tariff to the Powerwall",
    "unchanged": "Prices checked; the Powerwall's tariff was still right",
    "skipped": "Skipped",
    "failed": "Did not work",
}


def sync_status(
    household: Household, now: datetime, push: TariffPush | None, services: dict[str, ServiceStatus | None]
) -> SyncStatusView:
    """What the sync did last and what needs attention (`push`: the last accepted push, if any;
    `services`: the recorded connection statuses, from `connections.statuses`)."""
    from app.sync import scheduler

    settings = household.settings
    last_run = db.session.scalar(select(SyncRun).where(SyncRun.household_id == household.id).order_by(SyncRun.id.desc()).limit(1))
    latency = None
    if push is not None:
        latency = db.session.scalar(
            select(SyncRun.push_latency_ms).where(SyncRun.tariff_push_id == push.id).limit(1)
        )
    try:
        next_tick = scheduler.status(now).next_tick_at
    except Exception:  # the status is informative only; never break the page for it
        next_tick = None
    alerts: list[Alert] = []
    state = db.session.get(SyncState, household.id)
    enabled = bool(settings and settings.sync_enabled)
    if not enabled:
        alerts.append(Alert("info", "Sync is off: the Powerwall's tariff is not being updated. Turn it on in Settings."))
    if state is not None:
        if state.fallback_active:
            alerts.append(Alert("warning", "Prices could not be refreshed for a while, so the Powerwall has a safe flat tariff until they return."))
        if state.tesla_blocked_reason:
            alerts.append(Alert("warning", f"Reconnect needed: {state.tesla_blocked_reason} "
                                           "(the app checks once an hour whether it works again)"))
        if state.export_protection_active:
            alerts.append(Alert("info", "Export protection is on: exporting costs money right now, so exports are stopped."))
    if last_run is not None and last_run.refused_prices:
        tz = site_zone(household)
        alerts.append(Alert("warning", _refusal_words(last_run.refused_prices, tz)))
    for service, row in services.items():
        if row is not None and row.state == "attention" and not (state and state.tesla_blocked_reason and service == "tesla"):
            alerts.append(Alert("warning", f"{'Amber' if service == 'amber' else 'Tesla'}: {row.message}"))
    return SyncStatusView(enabled, last_run, push, latency, next_tick, alerts)


def _refusal_words(refused: list[dict[str, Any]], tz: ZoneInfo) -> str:
    """The last sync's refused Amber prices, as a sentence for the dashboard."""
    items = []
    for row in refused[:3]:
        try:
            refusal = Refusal(row["channel"], datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"]),
                              None, row["reason"])
            items.append(refusal.describe(tz))
        except (KeyError, TypeError, ValueError):
            items.append(str(row.get("reason", "unreadable")) if isinstance(row, dict) else "unreadable")
    more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
    return ("The last sync refused Amber prices that cannot be real and treated them as missing, so they were "
            f"not pushed: {'; '.join(items)}{more}.")


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    state: str  # connected | attention | not_configured | unknown
    message: str


@dataclass(frozen=True)
class CostView:
    """API calls today and this month, and the estimated Fleet API cost (Tesla's published rates)."""

    tesla_today: int
    tesla_month: int
    teslemetry_today: int
    teslemetry_month: int
    fleet_commands_month: int
    fleet_data_month: int
    fleet_cost_month: float
    amber_budget_left: int


def health(household: Household, services: dict[str, ServiceStatus | None]) -> list[ServiceHealth]:
    """Per service: connected / needs attention / not configured (`services` as for `sync_status`)."""
    settings = household.settings
    rows = services
    result = []
    for service, name, configured in (
        ("amber", "Amber Electric", bool(settings and settings.amber_token_enc)),
        ("tesla", "Tesla", bool(settings and (settings.teslemetry_token_enc or settings.tesla_refresh_token_enc))),
    ):
        row = rows[service]
        if not configured:
            result.append(ServiceHealth(name, "not_configured", "Not set up yet."))
        elif row is None:
            result.append(ServiceHealth(name, "unknown", "Not checked yet."))
        else:
            result.append(ServiceHealth(name, row.state, row.message or ""))
    return result


def costs(household: Household, now: datetime) -> CostView:
    """Calls counted by the sync and the dashboard, per local day of the site."""
    today = now.astimezone(site_zone(household)).date()
    month_start = today.replace(day=1)
    rows = db.session.scalars(
        select(ApiCallCount).where(ApiCallCount.household_id == household.id, ApiCallCount.day >= month_start)
    ).all()

    def total(service: str, since: date) -> int:
        return sum(r.calls for r in rows if r.service == service and r.day >= since)

    commands = sum(r.billable for r in rows if r.service == "tesla" and r.kind in FLEET_COMMAND_KINDS)
    data = sum(r.billable for r in rows if r.service == "tesla" and r.kind not in FLEET_COMMAND_KINDS)
    recent_amber = db.session.scalar(
        select(func.coalesce(func.sum(SyncRun.amber_calls), 0)).where(
            SyncRun.household_id == household.id, SyncRun.started_at >= now - timedelta(minutes=5)
        )
    ) or 0
    return CostView(
        tesla_today=total("tesla", today),
        tesla_month=total("tesla", month_start),
        teslemetry_today=total("teslemetry", today),
        teslemetry_month=total("teslemetry", month_start),
        fleet_commands_month=commands,
        fleet_data_month=data,
        fleet_cost_month=round(commands * FLEET_RATE_COMMANDS + data * FLEET_RATE_DATA, 2),
        amber_budget_left=max(0, AMBER_BUDGET - int(recent_amber)),
    )


# -- force control ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlView:
    """The running force session (if any) and what the start form offers."""

    session: ForceSession | None
    minutes_left: int
    floor: int
    presets: tuple[int, ...]
    words: dict[str, str]
    last_problem: str | None


def control_view(household: Household, now: datetime) -> ControlView:
    """What the battery-control card shows."""
    from app import control

    session = control.live_session(household)
    left = max(0, int((session.ends_at - now).total_seconds() // 60)) if session else 0
    problem = db.session.scalar(
        select(ControlEvent.message)
        .where(ControlEvent.household_id == household.id, ControlEvent.ok.is_(False), ControlEvent.at >= now - timedelta(hours=1))
        .order_by(ControlEvent.id.desc())
        .limit(1)
    )
    floor = household.settings.discharge_floor_percent if household.settings else 20
    return ControlView(session, left, floor, control.PRESET_MINUTES, control.ACTION_WORDS, problem)


def control_events(household: Household, limit: int = 50) -> list[ControlEvent]:
    """The newest steps of force control (audit trail)."""
    return list(
        db.session.scalars(
            select(ControlEvent).where(ControlEvent.household_id == household.id).order_by(ControlEvent.id.desc()).limit(limit)
        )
    )


def force_sessions(household: Household, limit: int = 20) -> list[ForceSession]:
    """The household's latest force sessions, newest first (who started each, and how it ended)."""
    return list(db.session.scalars(
        select(ForceSession).where(ForceSession.household_id == household.id)
        .order_by(ForceSession.started_at.desc(), ForceSession.id.desc()).limit(limit)
    ))
