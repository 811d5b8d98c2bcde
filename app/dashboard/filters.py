"""Template filters: times in the site's zone (with the zone shown), prices in c/kWh, power in kW."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from app.dashboard import bp


@bp.app_template_filter("local")
def local_time(value: datetime | None, tz: ZoneInfo, fmt: str = "%H:%M") -> str:
    """`value` on the site's wall clock, e.g. "14:05"."""
    if value is None:
        return "—"
    return value.astimezone(tz).strftime(fmt)


@bp.app_template_filter("zone")
def zone_name(value: datetime | None, tz: ZoneInfo) -> str:
    """The zone's abbreviation at `value`, e.g. "AEDT"."""
    if value is None:
        return str(tz)
    return value.astimezone(tz).tzname() or str(tz)


@bp.app_template_filter("cents")
def cents(value: float | None, digits: int = 1) -> str:
    """A c/kWh price, e.g. "31.2c"; "—" when unknown."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}c"


@bp.app_template_filter("kw")
def kilowatts(value: float | None) -> str:
    """Watts shown as kW with one decimal, without a sign (the direction is said in words)."""
    if value is None:
        return "—"
    return f"{abs(value) / 1000:.1f} kW"


@bp.app_template_filter("ago")
def ago(value: datetime | None, now: datetime) -> str:
    """How long ago, in plain words."""
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} days ago"


@bp.app_template_filter("duration_ms")
def duration_ms(value: int | None) -> str:
    """A duration in ms as "850 ms" or "2.4 s"."""
    if value is None:
        return "—"
    return f"{value} ms" if value < 1000 else f"{value / 1000:.1f} s"
