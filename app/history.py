"""A household's history as data: pushes (with why and who started the sync), force sessions, and who
changed what. The History page and GET /api/history both read it; it imports no blueprint."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import defer

from app.extensions import db
from app.models import ForceSession, Household, HouseholdEvent, SyncRun, TariffPush

MAX_DAYS = 90
KINDS = ("all", "pushes", "force", "changes")


def parse_days(raw: object, default: int = 7) -> int:
    """The number of days asked for, 1 to MAX_DAYS (ValueError with a message otherwise)."""
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}.")
    return int(text)


def _who(run: SyncRun | None) -> str:
    if run is None:
        return "unknown"
    if run.triggered_by:
        return run.triggered_by
    return "schedule" if run.tick_at is not None else "a person"


def _iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    return value.astimezone(tz).isoformat() if value is not None else None


def history(household: Household, now: datetime, days: int, tz: ZoneInfo) -> dict[str, Any]:
    """Everything of the last `days` days, newest first, times in the site's zone with their offset."""
    since = now - timedelta(days=days)
    rows = db.session.execute(
        select(TariffPush, SyncRun)
        .options(defer(TariffPush.explanation), defer(TariffPush.tariff))
        .outerjoin(SyncRun, SyncRun.tariff_push_id == TariffPush.id)
        .where(TariffPush.household_id == household.id, TariffPush.created_at >= since)
        .order_by(TariffPush.created_at.desc(), TariffPush.id.desc())
    ).all()
    pushes = [
        {
            "id": push.id, "at": _iso(push.created_at, tz), "kind": push.kind, "accepted": push.accepted,
            "reason": (run.reason if run is not None else None) or push.tesla_reason or "",
            "by": _who(run), "tesla_site_id": push.tesla_site_id,
        }
        for push, run in rows
    ]
    sessions = db.session.scalars(
        select(ForceSession).where(ForceSession.household_id == household.id, ForceSession.started_at >= since)
        .order_by(ForceSession.started_at.desc(), ForceSession.id.desc())
    ).all()
    force_sessions = [
        {
            "id": s.id, "action": s.action, "minutes": s.minutes, "state": s.state, "by": s.started_by or "unknown",
            "started_at": _iso(s.started_at, tz), "ends_at": _iso(s.ends_at, tz), "ended_at": _iso(s.ended_at, tz),
            "end_reason": s.end_reason,
        }
        for s in sessions
    ]
    events = db.session.scalars(
        select(HouseholdEvent).where(HouseholdEvent.household_id == household.id, HouseholdEvent.at >= since)
        .order_by(HouseholdEvent.at.desc(), HouseholdEvent.id.desc())
    ).all()
    changes = [{"at": _iso(e.at, tz), "by": e.actor, "action": e.action, "message": e.message} for e in events]
    return {"days": days, "time_zone": str(tz), "pushes": pushes, "force_sessions": force_sessions, "changes": changes}


def by_day(items: list[dict[str, Any]], key: str = "at") -> list[tuple[str, list[dict[str, Any]]]]:
    """Items grouped by their local date (newest day first), as (date 'YYYY-MM-DD', items)."""
    days: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        stamp = item.get(key)
        days.setdefault(stamp[:10] if stamp else "unknown", []).append(item)
    return sorted(days.items(), reverse=True)
