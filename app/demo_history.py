"""A lived-in demo: a simulated week of history written before the demo serves, in seconds.

The prices are the simulator's own (so the week joins the live demo without a seam), pushed tariffs are
built by the real tariff builder and chosen by the real push rule, and the week includes a force charge,
an evening spike and negative-price afternoons with export protection. Demo only: nothing here runs for a
real household."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from app.clients.amber import parse_price_interval, parse_usage_interval
from app.extensions import db
from app.households import record_event
from app.models import ControlEvent, ForceSession, Household, SyncRun, TariffPush
from app.simulator import identity
from app.simulator.powerwall import Powerwall
from app.simulator.prices import nem_date, price_interval, usage_between
from app.simulator.state import DEFAULT_SEED
from app.sync.engine import store_prices
from app.sync.rules import decide_push, tariff_hash
from app.tariff import SlotFlag, TariffPolicy, build_tariff

UTC = timezone.utc
STEP = timedelta(minutes=5)
SPIKE_C = 1250.0  # one evening's half hour, as Amber would price a spike


def _intervals(start: datetime, end: datetime, minutes: int, now: datetime, tz: ZoneInfo, spike_at: datetime | None):
    out = []
    cursor = start
    while cursor < end:
        for channel in ("general", "feedIn"):
            raw = price_interval(DEFAULT_SEED, cursor, minutes, channel, now, tz, 0.0)
            if spike_at is not None and spike_at <= cursor < spike_at + timedelta(minutes=30):
                raw = {**raw, "perKwh": SPIKE_C if channel == "general" else -SPIKE_C * 0.9, "spikeStatus": "spike",
                       "descriptor": "spike"}
            out.append(parse_price_interval(raw))
        cursor += timedelta(minutes=minutes)
    return out


def already_lived_in(household: Household, now: datetime) -> bool:
    """Whether the household already has a week behind it (the backfill runs once)."""
    oldest = db.session.scalar(select(func.min(SyncRun.started_at)).where(SyncRun.household_id == household.id))
    return oldest is not None and oldest <= now - timedelta(days=5)


def backfill_week(household: Household, now: datetime, days: int = 7) -> dict[str, int]:
    """Write `days` days of prices, syncs, pushes, a force charge, a spike and export protection; commit."""
    settings = household.settings
    tz = ZoneInfo(settings.site_timezone or identity.SITE_TIME_ZONE)
    site = settings.amber_site_id or identity.AMBER_SITE_ID
    tesla_site = settings.tesla_site_id or str(identity.TESLA_ENERGY_SITE_ID)
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    end -= timedelta(minutes=end.minute % 5)
    start = end - timedelta(days=days)
    yesterday = (end - timedelta(days=1)).astimezone(tz)
    spike_at = yesterday.replace(hour=18, minute=30, second=0, microsecond=0).astimezone(UTC)
    force_at = yesterday.replace(hour=11, minute=0, second=0, microsecond=0).astimezone(UTC)

    # The week's settled prices (the spike included) and, as the live tick stores them, the current
    # interval and the forecast ahead, so the dashboard has a price now even before the first live tick.
    store_prices(site, _intervals(start, end + timedelta(hours=1), 5, now, tz, spike_at)
                 + _intervals(start, end + timedelta(hours=24), 30, now, tz, spike_at), now)

    runs: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    # The simulator's own Powerwall model lives through the week under the pushed tariffs, so the Money
    # page's meter readings and energy history are what that battery would have done.
    powerwall = Powerwall(seed=DEFAULT_SEED, tz=tz)
    powerwall.last_update = start
    policy = TariffPolicy(estimate=settings.forecast_estimate or "predicted")
    counts = {"pushes": 0, "runs": 0}
    t = start
    decision_reason = ""
    while t < end:
        if t.minute % 30 == 0:
            horizon = _intervals(t - timedelta(minutes=30), t + timedelta(hours=24), 30, t, tz, spike_at)
            tariff, explanation = build_tariff(horizon, tz, t + timedelta(seconds=40), policy)
            forced = force_at <= t < force_at + timedelta(minutes=30)
            decision = decide_push(
                tariff, explanation.slots[0].period, last["tariff"] if last else None, last["at"] if last else None,
                "normal", t, threshold_cents=settings.change_threshold_cents, refresh_age=timedelta(hours=1),
            )
            decision_reason = decision.reason
            powerwall.advance(t)
            powerwall.mode = "backup" if forced else "autonomous"  # backup mode charges at full power
            powerwall.export_rule = "never" if explanation.slots[0].has(SlotFlag.EXPORT_COSTS_MONEY) else "battery_ok"
            if decision.push and not forced:
                powerwall.set_tariff(tariff, owned=False)
                push = db.session.scalar(insert(TariffPush).returning(TariffPush.id), [{
                    "household_id": household.id, "tesla_site_id": tesla_site, "created_at": t + timedelta(seconds=42),
                    "kind": "normal", "tariff": tariff, "tariff_hash": tariff_hash(tariff),
                    "explanation": explanation.to_dict(), "accepted": True,
                }])
                last = {"tariff": tariff, "at": t, "id": push}
                counts["pushes"] += 1
                outcome, push_id = "pushed", push
            else:
                outcome, push_id = "unchanged", None
            if forced:
                outcome, decision_reason = "skipped", "Force charge is running; prices were recorded and the forced settings are left in place."
            exporting_costs = explanation.slots[0].has(SlotFlag.EXPORT_COSTS_MONEY)
            reason = decision_reason + (" Export protection is on: exporting costs money now, so exports are stopped." if exporting_costs else "")
        else:
            outcome, push_id, reason = ("skipped" if force_at <= t < force_at + timedelta(minutes=30) else "unchanged"), None, (
                "Force charge is running; prices were recorded and the forced settings are left in place."
                if force_at <= t < force_at + timedelta(minutes=30) else "No price changed enough to be worth a push."
            )
        runs.append({
            "household_id": household.id, "tick_at": t, "started_at": t + timedelta(seconds=3), "finished_at": t + timedelta(seconds=5),
            "outcome": outcome, "reason": reason, "amber_calls": 2, "tesla_calls": 1 if push_id else 0, "pushed": bool(push_id),
            "push_latency_ms": 850 if push_id else None, "tariff_push_id": push_id, "triggered_by": "schedule",
        })
        t += STEP
    for chunk in range(0, len(runs), 1000):
        db.session.execute(insert(SyncRun), runs[chunk:chunk + 1000])
    counts["runs"] = len(runs)
    powerwall.advance(end)
    counts["usage"] = _backfill_money(household, site, powerwall, start, end, now, tz, spike_at)

    # A force charge by the demo owner yesterday morning, with every step and the restore.
    who = "demo@example.com"
    session = ForceSession(
        household_id=household.id, tesla_site_id=tesla_site, action="force_charge", state="ended", minutes=30,
        started_at=force_at, ends_at=force_at + timedelta(minutes=30), ended_at=force_at + timedelta(minutes=30),
        end_reason="Finished; the previous settings were put back.", saved_mode="autonomous", saved_reserve=20.0,
        saved_export_rule="battery_ok", saved_grid_charging=True, verification="responding",
        responded_at=force_at + timedelta(minutes=2), started_by=who, updated_at=force_at + timedelta(minutes=30),
    )
    db.session.add(session)
    db.session.flush()
    steps = [
        (0, "start", f"Force charge for 30 minutes requested by {who}; settings saved.", who),
        (0, "operation", "Set time-based control.", None), (0, "grid", "Allow charging from the grid.", None),
        (0, "tariff", "Push a tariff with the window as the cheapest time.", None), (0, "backup", "Raise the backup reserve to 100%.", None),
        (2, "verify", "The battery responded after 2 min 0 s (-4800 W).", None),
        (30, "restore_tariff", "Put the previous tariff back.", None), (30, "restore_operation", "Put the operation mode back (autonomous).", None),
        (30, "restore_backup", "Put the backup reserve back (20%).", None), (30, "restore_grid", "Put the export rule and grid charging back.", None),
        (30, "end", "Finished; the previous settings were put back.", None),
    ]
    for minutes, step, message, actor in steps:
        db.session.add(ControlEvent(household_id=household.id, session_id=session.id, at=force_at + timedelta(minutes=minutes),
                                    step=step, ok=True, message=message, actor=actor))
    record_event(household, who, "sync_now", "Sync now.", end - timedelta(days=2, hours=3))
    record_event(household, who, "settings", "Changed change threshold cents.", end - timedelta(days=4, hours=5))
    db.session.commit()
    return counts


def _backfill_money(household: Household, site: str, powerwall: Powerwall, start: datetime, end: datetime,
                    now: datetime, tz: ZoneInfo, spike_at: datetime) -> int:
    """The week's meter (Amber /usage, five-minute billing) and the Powerwall's energy history, both from
    the model that just lived the week, stored as an import would store them. Returns usage rows written."""
    from app.models import MoneyImport
    from app.money.importer import parse_energy_rows, store_energy, store_usage, usage_row

    raw = usage_between(
        DEFAULT_SEED, end, tz, first=nem_date(start) + timedelta(days=1), last=nem_date(end), duration=5,
        metered=powerwall.metered_kwh,
    )
    rows = []
    for item in raw:
        interval = parse_usage_interval(item)
        if spike_at <= interval.start < spike_at + timedelta(minutes=30):  # the evening's spike, as priced above
            per_kwh = SPIKE_C if interval.channel.value == "general" else -SPIKE_C * 0.9
            interval = parse_usage_interval({**item, "perKwh": per_kwh, "cost": round(interval.kwh * per_kwh, 4)})
        rows.append(usage_row(interval))
    written = store_usage(household.id, site, rows, now)
    # Tesla's day history as the simulator answers it, stored by the import's own parser and writer.
    energy = parse_energy_rows(powerwall.energy_between(end - timedelta(seconds=1), "day", start))
    store_energy(household.id, energy, now)
    # The daily import would replace this simulated week with the live simulator's (which has not lived
    # it): it waits a day, as after any import.
    db.session.merge(MoneyImport(household_id=household.id, last_run_at=now, last_success_at=now,
                                 usage_rows=written, energy_rows=len(energy)))
    return written
