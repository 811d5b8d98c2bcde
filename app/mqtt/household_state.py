"""What Home Assistant shows for a household, read from the database (and the cached Powerwall reading), and
what a button press does: force control as the household, with "Home Assistant" as the actor.

Called by the bridge inside an app context; commits only what the battery read stored."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app import control
from app.connections import effective_timezone
from app.extensions import db
from app.households.service import ACTOR_HOME_ASSISTANT
from app.models import ControlEvent, Household, HouseholdSettings, StoredPrice, SyncRun
from app.mqtt.messages import BUTTONS, HouseholdState, cents_to_dollars
from app.readings import battery

log = logging.getLogger(__name__)

DEFAULT_ZONE = "Australia/Sydney"


def synced_household_ids() -> list[int]:
    """The households with sync on: each is one device in Home Assistant."""
    return list(db.session.scalars(
        select(HouseholdSettings.household_id).where(HouseholdSettings.sync_enabled.is_(True)).order_by(HouseholdSettings.household_id)
    ))


def change_marks(household_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per household: its newest control event and sync run ids. When they move, something changed (a force
    session started, was cancelled or restored, or a sync ran) in whichever process did it."""
    marks = {hid: (0, 0) for hid in household_ids}
    if not household_ids:
        return marks
    for hid, newest in db.session.execute(
        select(ControlEvent.household_id, func.max(ControlEvent.id))
        .where(ControlEvent.household_id.in_(household_ids)).group_by(ControlEvent.household_id)
    ):
        marks[hid] = (newest, marks[hid][1])
    for hid, newest in db.session.execute(
        select(SyncRun.household_id, func.max(SyncRun.id)).where(SyncRun.household_id.in_(household_ids)).group_by(SyncRun.household_id)
    ):
        marks[hid] = (marks[hid][0], newest)
    return marks


def _price_rows(site_id: str, now: datetime) -> list[StoredPrice]:
    return list(db.session.scalars(
        select(StoredPrice).where(
            StoredPrice.amber_site_id == site_id,
            StoredPrice.start_at > now - timedelta(minutes=30),
            StoredPrice.start_at <= now + timedelta(hours=1),
        ).order_by(StoredPrice.start_at, StoredPrice.duration_minutes)
    ))


def _current(rows: list[StoredPrice], channel: str, now: datetime) -> StoredPrice | None:
    """The channel's interval containing `now`: the 5-minute one when there is one, else the half hour."""
    containing = [r for r in rows if r.channel == channel and r.start_at <= now < r.start_at + timedelta(minutes=r.duration_minutes)]
    return min(containing, key=lambda r: r.duration_minutes, default=None)


def read_state(household: Household, now: datetime, *, refresh_battery: bool) -> HouseholdState:
    """The household's state as plain data. `refresh_battery` reads the Powerwall again when the cached reading
    is over a minute old (one Tesla call); otherwise the last reading is shown."""
    settings = household.settings
    values: dict = {}
    if settings is not None and settings.amber_site_id:
        rows = _price_rows(settings.amber_site_id, now)
        general, feed_in = _current(rows, "general", now), _current(rows, "feedIn", now)
        upcoming = [r for r in rows if r.channel == "general" and r.duration_minutes == 30 and r.start_at > now]
        values.update(
            general_price=cents_to_dollars(general.per_kwh) if general else None,
            # Amber's feed-in price is negative when exporting earns: shown as what it earns, as the dashboard does.
            feed_in_price=cents_to_dollars(-feed_in.per_kwh) if feed_in else None,
            next_general_price=cents_to_dollars(upcoming[0].per_kwh) if upcoming else None,
            renewables=(general or feed_in).renewables if (general or feed_in) else None,
            spike=bool(general and general.spike_status == "spike"),
        )
    reading = battery(household, now, refresh=refresh_battery)
    if reading.configured:
        values.update(
            battery_level=reading.percentage, solar_power=reading.solar_w, home_power=reading.home_w,
            battery_power=reading.battery_w, grid_power=reading.grid_w, operation_mode=reading.mode,
            backup_reserve=reading.reserve,
        )
    last_run = db.session.scalar(select(SyncRun).where(SyncRun.household_id == household.id).order_by(SyncRun.id.desc()).limit(1))
    if last_run is not None:
        values.update(last_sync_outcome=last_run.outcome, last_sync_at=last_run.finished_at or last_run.started_at)
    values["force_session"] = _force_words(household)
    return HouseholdState(**values)


def _force_words(household: Household) -> str | None:
    session = control.live_session(household)
    if session is None:
        return None
    what = control.ACTION_WORDS[session.action]
    if session.state == "starting":
        return f"{what} starting"
    if session.state == "restoring":
        return f"{what} ending: putting the settings back"
    zone = ZoneInfo(effective_timezone(household.settings) or DEFAULT_ZONE)
    return f"{what} until {session.ends_at.astimezone(zone):%H:%M}"


def press(household_id: int, button: str, minutes: int, now: datetime) -> str | None:
    """Do what the button means for the household, as Home Assistant; what happened, for the log.

    None when the household has no device (unknown, or its sync is off): a stray message changes nothing.
    Raises control.ControlError (fit to show) when force control refuses or fails."""
    household = db.session.get(Household, household_id)
    if household is None or household.settings is None or not household.settings.sync_enabled:
        return None
    action = BUTTONS[button][1]
    if action == "cancel":
        done = control.cancel(household, now, actor=ACTOR_HOME_ASSISTANT)
        return "force session cancelled" if done else "cancel requested; the settings are being put back"
    session = control.start(household, action, minutes, now, actor=ACTOR_HOME_ASSISTANT)
    return f"{control.ACTION_WORDS[session.action].lower()} for {session.minutes} minutes ({session.state})"
