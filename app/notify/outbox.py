"""The outbox: one row per message and target, keyed so an event is queued once, delivered at least once.

A crash before the commit loses nothing that was promised (the row and the change that caused it commit
together); a crash after sending and before marking it delivered sends it once more, never more."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import apprise
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app.crypto import get_crypto
from app.extensions import db
from app.fault_points import fault_point
from app.models import Household, HouseholdMember, NotificationTarget, OutboxMessage, User
from app.notify.events import EVENTS, in_quiet_hours
from app.notify.targets import wants

log = logging.getLogger(__name__)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
MAX_ATTEMPTS = 10
Sender = Callable[[str, str, str], None]  # (url, title, body); raises on failure


def apprise_send(url: str, title: str, body: str) -> None:
    """Send one message through Apprise; raises when Apprise reports a failure."""
    sender = apprise.Apprise()
    sender.add(url)
    if not sender.notify(title=title, body=body):
        raise RuntimeError("the service did not accept the message")


# Built once (a sync may queue a message at every push): the targets of a household's members, or of users.
_TARGETS_IN_ORDER = (NotificationTarget.user_id, NotificationTarget.id)
_HOUSEHOLD_TARGETS = (
    select(NotificationTarget).join(HouseholdMember, HouseholdMember.user_id == NotificationTarget.user_id)
    .where(HouseholdMember.household_id == bindparam("household_id")).order_by(*_TARGETS_IN_ORDER)
)
_USERS_TARGETS = (
    select(NotificationTarget).where(NotificationTarget.user_id.in_(bindparam("user_ids", expanding=True))).order_by(*_TARGETS_IN_ORDER)
)


def enqueue(household: Household | None, event: str, key: str, title: str, body: str, now: datetime,
            users: list[User] | None = None) -> int:
    """Queue a message for every target (of the household's members, or of `users`) that wants `event`.

    `key` names the occurrence (e.g. "7:amber_token:start:2026-12-04T01:00"): queued once per target however
    often it is asked. Returns how many rows were added. The caller commits."""
    if users is None:
        targets = db.session.scalars(_HOUSEHOLD_TARGETS, {"household_id": household.id})
    else:
        targets = db.session.scalars(_USERS_TARGETS, {"user_ids": [user.id for user in users]})
    safety = EVENTS[event][1]
    added = 0
    for target in targets.all():
        if not wants(target, event):
            continue
        dedupe = f"{key}:t{target.id}"[:255]
        if db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe)) is not None:
            continue
        row = OutboxMessage(household_id=household.id if household else None, target_id=target.id, event=event,
                            dedupe_key=dedupe, title=title[:200], body=body, safety=safety, created_at=now,
                            next_attempt_at=now, attempts=0)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # another process queued the same occurrence a moment ago
            continue
        added += 1
    return added


def _quiet_until(target: NotificationTarget, now: datetime, tz: ZoneInfo) -> datetime | None:
    local = now.astimezone(tz)
    minute = local.hour * 60 + local.minute
    if not in_quiet_hours(minute, target.quiet_start, target.quiet_end):
        return None
    end = local.replace(hour=target.quiet_end // 60, minute=target.quiet_end % 60, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def deliver_due(now: datetime, send: Sender = apprise_send, tz: ZoneInfo | None = None, limit: int = 200) -> dict[str, int]:
    """Send every due, undelivered message (committing after each); failures wait BACKOFF and are shown
    on the target. Quiet hours hold back all but safety messages. Returns counts by result."""
    tz = tz or ZoneInfo("Australia/Sydney")
    counts = {"sent": 0, "failed": 0, "held": 0}
    due = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= now,
                                    OutboxMessage.attempts < MAX_ATTEMPTS)
        .order_by(OutboxMessage.id).limit(limit)
    ).all()
    for message in due:
        target = db.session.get(NotificationTarget, message.target_id)
        if target is None:
            continue
        quiet_end = None if message.safety else _quiet_until(target, now, tz)
        if quiet_end is not None:
            message.next_attempt_at = quiet_end
            counts["held"] += 1
            db.session.commit()
            continue
        try:
            fault_point("outbox_before_send")
            send(get_crypto().decrypt(target.url_enc), message.title, message.body)
            fault_point("outbox_after_send")  # sent, not yet marked: a crash here sends it once more
        except Exception as exc:  # any failure of any service: retried, shown, never raised
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: delivery failed"
            message.next_attempt_at = now + BACKOFF[min(message.attempts - 1, len(BACKOFF) - 1)]
            target.last_error, target.last_error_at = f"Delivery failed ({type(exc).__name__}); retried automatically.", now
            log.warning("Notification %s to target %s failed (%s)", message.id, target.id, type(exc).__name__)
            counts["failed"] += 1
        else:
            message.attempts += 1
            message.delivered_at = now
            target.last_error = target.last_error_at = None
            counts["sent"] += 1
        db.session.commit()
    return counts
