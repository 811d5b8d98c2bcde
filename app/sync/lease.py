"""A named leader lease in the database, safe across processes and hosts on SQLite and PostgreSQL.

Every operation is one short transaction of plain conditional SQL whose row count says who won, so
no backend-specific locking is needed. Times are the caller's `now` (the app clock): hosts sharing a
database must keep their clocks in sync (NTP), as the TTL is compared against each host's clock.

The row of a lease is never deleted: `last_tick_at` must outlive every holder, so that a tick claimed
by one leader cannot be claimed again by the next one (or by an old leader that wakes up late).
"""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import SchedulerLease

_leases = SchedulerLease.__table__


@dataclass(frozen=True)
class Lease:
    """What the database says about a lease (whoever holds it, live or expired)."""

    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    last_tick_at: datetime | None

    def is_live(self, now: datetime) -> bool:
        """Whether the holder still owns the lease at `now`."""
        return self.expires_at > now


def new_holder_id() -> str:
    """A holder id unique to this process: hostname, pid and a random suffix (a pid can be reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_pid(holder: str) -> int | None:
    """The process id inside a holder id from `new_holder_id` (None if it has another shape)."""
    parts = holder.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def try_acquire_or_renew(name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take the lease if it is free or expired, or extend it if `holder` has it; True if `holder` now holds it."""
    with db.engine.begin() as conn:
        renewed = conn.execute(
            update(_leases)
            .where(_leases.c.name == name, or_(_leases.c.holder == holder, _leases.c.expires_at < now))
            .values(
                # A takeover starts a new tenure; a renewal keeps the time the holder first got it.
                acquired_at=_acquired_at_unless_renewal(holder, now),
                holder=holder,
                renewed_at=now,
                expires_at=now + ttl,
            )
        ).rowcount
        if renewed == 1:
            return True
        if _exists(conn, name):
            return False
    # No row yet: the first process to insert it wins; a concurrent insert loses on the primary key.
    try:
        with db.engine.begin() as conn:
            conn.execute(
                _leases.insert().values(
                    name=name, holder=holder, acquired_at=now, renewed_at=now, expires_at=now + ttl, last_tick_at=None
                )
            )
    except IntegrityError:
        return False
    return True


def _acquired_at_unless_renewal(holder: str, now: datetime) -> ColumnElement[datetime]:
    return case((_leases.c.holder == holder, _leases.c.acquired_at), else_=literal(now, _leases.c.acquired_at.type))


def _exists(conn: Connection, name: str) -> bool:
    return conn.execute(select(_leases.c.name).where(_leases.c.name == name)).first() is not None


def release(name: str, holder: str, now: datetime) -> bool:
    """Give the lease up at `now` if `holder` has it, so another process can take it at once."""
    with db.engine.begin() as conn:
        return (
            conn.execute(
                update(_leases)
                .where(_leases.c.name == name, _leases.c.holder == holder, _leases.c.expires_at > now)
                .values(expires_at=now)
            ).rowcount
            == 1
        )


def claim_tick(name: str, holder: str, tick_at: datetime, now: datetime) -> bool:
    """Record that `holder` runs the tick of `tick_at`; True only for the live holder and only once per tick.

    The claim moves `last_tick_at` forward in the same statement that checks the holder and expiry, so
    an old leader that lost the lease (or a second process) can never run a tick that was claimed."""
    with db.engine.begin() as conn:
        return (
            conn.execute(
                update(_leases)
                .where(
                    _leases.c.name == name,
                    _leases.c.holder == holder,
                    _leases.c.expires_at > now,
                    or_(_leases.c.last_tick_at.is_(None), _leases.c.last_tick_at < tick_at),
                )
                .values(last_tick_at=tick_at)
            ).rowcount
            == 1
        )


def read_lease(name: str) -> Lease | None:
    """The lease row as stored (possibly expired), or None if nobody ever held it."""
    with db.engine.connect() as conn:
        row = conn.execute(select(_leases).where(_leases.c.name == name)).mappings().first()
    return Lease(**row) if row is not None else None


def current_holder(name: str, now: datetime) -> Lease | None:
    """The lease if someone holds it at `now`, else None."""
    lease = read_lease(name)
    return lease if lease is not None and lease.is_live(now) else None

