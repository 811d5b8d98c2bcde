"""A person's Apprise targets: validated by Apprise on save, stored encrypted, shown only as a label."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import apprise
from sqlalchemy import select

from app.crypto import get_crypto
from app.extensions import db
from app.models import NotificationTarget, User
from app.notify.events import EVENTS

MAX_TARGETS = 10
MAX_URL = 2000


class TargetError(ValueError):
    """A target that cannot be saved; the message says why and never repeats the URL."""


def validate_url(url: object) -> str:
    """The URL, stripped, if Apprise knows how to send to it (TargetError otherwise)."""
    if not isinstance(url, str) or not url.strip():
        raise TargetError("Enter an Apprise URL, e.g. ntfy://ntfy.sh/your-topic.")
    url = url.strip()
    if len(url) > MAX_URL or any(ord(c) < 32 for c in url):
        raise TargetError("That is not an Apprise URL.")
    if not apprise.Apprise().add(url):
        raise TargetError("Apprise does not recognise that URL; see the Apprise documentation for its format.")
    return url


def label_for(url: str) -> str:
    """What pages may show: the service and the last four characters (the rest can hold tokens)."""
    scheme = urlsplit(url).scheme or "apprise"
    return f"{scheme} … {url[-4:]}"


def add_target(user: User, url: object, now: datetime, events: list[str] | None = None,
               quiet: tuple[int, int] | None = None) -> NotificationTarget:
    """Save a validated target for `user`. The caller commits."""
    clean = validate_url(url)
    if events is not None:
        unknown = set(events) - set(EVENTS)
        if unknown:
            raise TargetError(f"Unknown events: {', '.join(sorted(unknown))}.")
    count = len(targets_of(user))
    if count >= MAX_TARGETS:
        raise TargetError(f"At most {MAX_TARGETS} notification targets per person.")
    target = NotificationTarget(
        user_id=user.id, url_enc=get_crypto().encrypt(clean), label=label_for(clean), events=events, created_at=now,
        quiet_start=quiet[0] if quiet else None, quiet_end=quiet[1] if quiet else None,
    )
    db.session.add(target)
    db.session.flush()
    return target


def targets_of(user: User) -> list[NotificationTarget]:
    """The person's targets, oldest first."""
    return list(db.session.scalars(select(NotificationTarget).where(NotificationTarget.user_id == user.id).order_by(NotificationTarget.id)))


def remove_target(user: User, number: int) -> NotificationTarget:
    """Remove the person's target number `number` (1 = oldest). The caller commits."""
    mine = targets_of(user)
    if not 1 <= number <= len(mine):
        raise TargetError(f"No notification target number {number}.")
    db.session.delete(mine[number - 1])
    return mine[number - 1]


def wants(target: NotificationTarget, event: str) -> bool:
    """Whether the target chose this event (no choice: every event)."""
    return target.events is None or event in target.events or event == "test"
