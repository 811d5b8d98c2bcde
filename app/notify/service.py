"""What the sync, force control and the readings call: problem episodes and one-off events to the outbox.

Every function here swallows its own failures (logged): a notification problem never stops a sync."""
from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select

from app.extensions import db
from app.models import Household, HouseholdProblem, SyncRun, SyncState
from app.notify.events import CLEAR_WORDS, PROBLEM_EVENTS, START_WORDS, Transition, transitions
from app.notify.outbox import deliver_due, enqueue

log = logging.getLogger(__name__)


_PROBLEMS = select(HouseholdProblem).where(HouseholdProblem.household_id == bindparam("household_id"))  # built once: every sync asks


def observe(
    household: Household, now: datetime, current: dict[str, str | None], checked: set[str],
    open_keys: Collection[str] | None = None,
) -> list[Transition]:
    """Open and close the household's problem episodes: `current` are the problems seen now (key ->
    detail), `checked` the keys this look could see at all (others stay as they are); `open_keys`, the keys
    of the open episodes when the caller knows them: the episodes are then read only if one opens or closes
    (most syncs change none). The caller commits."""
    seen = {k: v for k, v in current.items() if k in checked}
    if open_keys is not None and not transitions({key: now for key in open_keys if key in checked}, seen, now):
        return []
    rows = {p.key: p for p in db.session.scalars(_PROBLEMS, {"household_id": household.id})}
    visible = {key: row.started_at for key, row in rows.items() if key in checked}
    changes = transitions(visible, seen, now)
    for change in changes:
        event = PROBLEM_EVENTS[change.key]
        if change.started:
            db.session.add(HouseholdProblem(household_id=household.id, key=change.key, started_at=now, detail=change.detail))
            words = START_WORDS[change.key] + (f": {change.detail}" if change.detail else "")
            enqueue(household, event, f"h{household.id}:{change.key}:start:{now.isoformat()}", f"{household.name}: {words[:150]}", words, now)
        else:
            db.session.delete(rows[change.key])
            words = CLEAR_WORDS[change.key]
            enqueue(household, event, f"h{household.id}:{change.key}:clear:{change.episode_start.isoformat()}",
                    f"{household.name}: {words[:150]}", words, now)
    return changes


def event(household: Household, kind: str, key: str, message: str, now: datetime) -> None:
    """A one-off event (a force session started, the tariff changed outside the app). The caller commits."""
    enqueue(household, kind, f"h{household.id}:{key}", f"{household.name}: {message[:150]}", message, now)


def _price_problems(explanation: Any) -> dict[str, str | None]:
    from app.tariff import SlotFlag

    found: dict[str, str | None] = {}
    spikes = [s for s in explanation.slots if s.has(SlotFlag.SPIKE)]
    if spikes:
        top = max(spikes, key=lambda s: s.buy_before)
        found["spike"] = f"from {spikes[0].wall_from}, up to ${top.buy_before:.2f}/kWh at {top.wall_from}"
    negative = [s for s in explanation.slots if s.buy_before < 0 or s.has(SlotFlag.EXPORT_COSTS_MONEY)]
    if negative:
        low = min(negative, key=lambda s: s.buy_before)
        found["negative"] = f"from {negative[0].wall_from}, down to ${low.buy_before:.2f}/kWh at {low.wall_from}"
    return found


STALLED_AFTER = timedelta(hours=1)


def _stalled(household_id: int, now: datetime) -> bool:
    """No sync of the household has succeeded (pushed or unchanged) for STALLED_AFTER, and it has been trying
    for at least that long. Only asked after a failed or skipped sync, so a healthy tick costs no query."""
    good = db.session.scalar(
        select(func.max(SyncRun.started_at)).where(SyncRun.household_id == household_id, SyncRun.outcome.in_(("pushed", "unchanged")))
    )
    if good is not None:
        return now - good >= STALLED_AFTER
    first = db.session.scalar(select(func.min(SyncRun.started_at)).where(SyncRun.household_id == household_id))
    return first is not None and now - first >= STALLED_AFTER


def after_sync(household_id: int, result: Any, now: datetime, open_problems: Collection[str] | None = None) -> None:
    """Turn one household's sync into problem episodes and events, and commit them. `open_problems`: the keys
    of the open episodes when the caller knows them (the sync reads them with the household, and spares the
    query unless one opens or closes)."""
    try:
        household = db.session.get(Household, household_id)
        if household is None:
            return
        state = db.session.get(SyncState, household_id)
        current: dict[str, str | None] = {}
        checked = {"tesla_token", "fallback"}
        if state is not None and state.tesla_blocked_reason:
            current["tesla_token"] = None
        if state is not None and state.fallback_active:
            current["fallback"] = None
        if result.amber_refused is not None:
            checked.add("amber_token")
            if result.amber_refused:
                current["amber_token"] = None
        if result.explanation is not None:
            checked |= {"spike", "negative"}
            current.update(_price_problems(result.explanation))
        if not result.forced:
            checked.add("stalled")
            if result.outcome in ("failed", "skipped") and _stalled(household_id, now):
                current["stalled"] = f"last attempt: {result.reason}"
        observe(household, now, current, checked, open_problems)
        if result.changed_outside:
            event(household, "changed_outside", f"outside:{now.isoformat()}",
                  "The Powerwall's tariff was changed outside this app; the synced tariff was put back.", now)
        db.session.commit()
    except Exception:
        log.exception("Household %s: notifications after the sync failed", household_id)
        db.session.rollback()


def safely(func, *args, **kwargs) -> None:
    """Run a notification step; log and roll back on any failure (the caller's work is already committed)."""
    try:
        func(*args, **kwargs)
        db.session.commit()
    except Exception:
        log.exception("Notification step %s failed", getattr(func, "__name__", func))
        db.session.rollback()


def send_test(user, now: datetime) -> int:
    """Queue a test message for each of the person's targets and deliver now; return how many failed
    (they stay queued and are retried). The caller has checked the person has targets."""
    from app.models import OutboxMessage

    key = f"test:u{user.id}:{now.isoformat()}"
    enqueue(None, "test", key, "Tesla-Amber-Sync test", "This is a test message: notifications reach you here.", now, users=[user])
    db.session.commit()
    deliver_due(now)
    return len(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"{key}:%"), OutboxMessage.delivered_at.is_(None))
    ).all())


def deliver(now: datetime) -> dict[str, int]:
    """The scheduler's delivery job (and what the command line runs before it exits)."""
    return deliver_due(now)
