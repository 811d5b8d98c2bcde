"""The Powerwall as last read (live status and site settings), shared by every process through the
database so the dashboard and force control call Tesla (billed per call) at most once a minute.

Domain code: the dashboard and force control both ask it; it imports no blueprint."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.clients.errors import ClientError
from app.connections import NotConfigured, call_tesla
from app.credentials import CredentialUnreadable
from app.extensions import db
from app.models import Household, SyncState, TeslaReading

log = logging.getLogger(__name__)


def safely_observe(household: Household, now: datetime, current: dict, checked: set[str]) -> None:
    """Open or close the off-grid episode; a notification problem never breaks a battery read."""
    from app.notify.service import observe

    try:
        with db.session.begin_nested():
            observe(household, now, current, checked)
    except Exception:
        log.exception("Household %s: off-grid notification failed", household.id)

LIVE_STATUS_MAX_AGE = timedelta(seconds=60)
SITE_INFO_MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class BatteryView:
    """What the Powerwall is doing, from the last Tesla read (at most a minute old while someone looks)."""

    configured: bool
    percentage: float | None = None
    solar_w: float | None = None
    home_w: float | None = None
    battery_w: float | None = None  # + discharging, - charging
    grid_w: float | None = None  # + importing, - exporting
    grid_status: str | None = None
    mode: str | None = None
    reserve: float | None = None
    export_rule: str | None = None
    grid_charging: bool | None = None
    read_at: datetime | None = None
    error: str | None = None

    @property
    def battery_doing(self) -> str:
        return _direction(self.battery_w, "discharging", "charging", "idle")

    @property
    def grid_doing(self) -> str:
        return _direction(self.grid_w, "importing", "exporting", "idle")


def _direction(watts: float | None, positive: str, negative: str, idle: str) -> str:
    if watts is None:
        return "unknown"
    if abs(watts) < 50:
        return idle
    return positive if watts > 0 else negative


def battery(household: Household, now: datetime, *, refresh: bool = True, on_call=None) -> BatteryView:
    """The battery as last read; reads Tesla again when the reading is older than a minute (live
    status) or ten minutes (site settings) and `refresh` is set. Errors keep the last reading."""
    settings = household.settings
    site_id = settings.tesla_site_id if settings else None
    if not site_id:
        return BatteryView(configured=False)
    reading = db.session.get(TeslaReading, household.id)
    if reading is None or reading.tesla_site_id != site_id:
        if reading is not None:
            db.session.delete(reading)
            db.session.flush()
        reading = TeslaReading(household_id=household.id, tesla_site_id=site_id)
        db.session.add(reading)
    if refresh:
        _refresh_reading(household, reading, site_id, now, on_call)
    live = reading.live_status or {}
    info = reading.site_info or {}
    return BatteryView(
        configured=True,
        percentage=live.get("percentage_charged"),
        solar_w=live.get("solar_power"),
        home_w=live.get("load_power"),
        battery_w=live.get("battery_power"),
        grid_w=live.get("grid_power"),
        grid_status=live.get("grid_status"),
        mode=info.get("mode"),
        reserve=info.get("backup_reserve_percent"),
        export_rule=info.get("export_rule"),
        grid_charging=info.get("grid_charging_allowed"),
        read_at=reading.live_status_at,
        error=reading.error if reading.error_at and (reading.live_status_at is None or reading.error_at >= reading.live_status_at) else None,
    )


def _refresh_reading(household: Household, reading: TeslaReading, site_id: str, now: datetime, on_call) -> None:
    live_due = reading.live_status_at is None or now - reading.live_status_at >= LIVE_STATUS_MAX_AGE
    info_due = reading.site_info_at is None or now - reading.site_info_at >= SITE_INFO_MAX_AGE
    if not (live_due or info_due):
        return
    # An error also counts as a read, so a broken connection is not retried on every page view.
    if reading.error_at is not None and now - reading.error_at < LIVE_STATUS_MAX_AGE:
        return
    state = db.session.get(SyncState, household.id)
    if state is not None and state.tesla_blocked_reason:
        reading.error, reading.error_at = state.tesla_blocked_reason, now
        return
    try:
        if live_due:
            status = call_tesla(household, lambda c: c.live_status(site_id), now, on_call).value
            reading.live_status = {
                "percentage_charged": status.percentage_charged,
                "solar_power": status.solar_power_w,
                "load_power": status.load_power_w,
                "battery_power": status.battery_power_w,
                "grid_power": status.grid_power_w,
                "grid_status": status.grid_status,
            }
            reading.live_status_at = now
            off_grid = status.grid_status not in (None, "Active")
            safely_observe(household, now, {"off_grid": None} if off_grid else {}, {"off_grid"})
        if info_due:
            info = call_tesla(household, lambda c: c.site_info(site_id), now, on_call).value
            reading.site_info = {
                "mode": info.operation_mode,
                "backup_reserve_percent": info.backup_reserve_percent,
                "export_rule": info.export_rule,
                "grid_charging_allowed": info.grid_charging_allowed,
                "time_zone": info.time_zone,
            }
            reading.site_info_at = now
        reading.error, reading.error_at = None, None
    except (ClientError, CredentialUnreadable, NotConfigured) as exc:
        reading.error = exc.user_message if isinstance(exc, ClientError) else str(exc)
        reading.error_at = now
        log.info("Household %s: battery read failed (%s)", household.id, type(exc).__name__)
