"""What the dashboard's buttons do."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app import clock
from app.extensions import db
from app.households.service import record_event
from app.models import SyncRun, Household

# A "Sync now" costs Tesla calls (billed); one a minute is plenty for a person.
SYNC_NOW_MIN_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class SyncNowResult:
    ok: bool
    outcome: str
    message: str


def sync_now(household: Household, now: datetime, *, actor: str) -> SyncNowResult:
    """Sync this household at once (without waiting for Amber to confirm the current price)."""
    from app.sync import PriceFeed, sync_household

    last = db.session.scalar(
        select(SyncRun.started_at).where(SyncRun.household_id == household.id).order_by(SyncRun.id.desc()).limit(1)
    )
    if last is not None and now - last < SYNC_NOW_MIN_INTERVAL:
        wait = int((SYNC_NOW_MIN_INTERVAL - (now - last)).total_seconds()) + 1
        return SyncNowResult(False, "wait", f"A sync ran moments ago; try again in {wait} s.")
    if not (household.settings and household.settings.sync_enabled):
        return SyncNowResult(False, "skipped", "Sync is turned off in Settings, so nothing was sent to the Powerwall.")
    record_event(household, actor, "sync_now", "Sync now.", now)
    db.session.commit()
    feed = PriceFeed(clock.now, clock.sleeper(), ())  # a person is waiting: no re-polls
    result = sync_household(household.id, feed=feed, actor=actor)
    return SyncNowResult(result.outcome in ("pushed", "unchanged"), result.outcome, result.reason)
