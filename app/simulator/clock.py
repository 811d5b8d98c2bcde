"""The simulated clock: an injected base clock plus an offset, optionally frozen."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Real UTC time."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class SimClock:
    """Base clock + offset, or a frozen instant; callable like the base clock."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base or system_clock
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None

    def __call__(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return as_utc(self._base()) + self._offset

    @property
    def frozen(self) -> bool:
        """True while the clock stands still."""
        return self._frozen_at is not None

    @property
    def offset_seconds(self) -> float:
        """Offset from the base clock (meaningful while running)."""
        return self._offset.total_seconds()

    def set(self, instant: datetime) -> None:
        """Jump to `instant`; a frozen clock stays frozen there, a running one runs on from it."""
        instant = as_utc(instant)
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = instant
            else:
                self._offset = instant - as_utc(self._base())

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by `seconds`."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)

    def set_offset(self, seconds: float) -> None:
        """Run at base clock + `seconds` (unfreezes)."""
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(seconds=seconds)

    def freeze(self, frozen: bool = True) -> None:
        """Stop the clock at the current instant, or let it run on from where it stood."""
        now = self()
        with self._lock:
            if frozen:
                self._frozen_at = now
            elif self._frozen_at is not None:
                self._offset = self._frozen_at - as_utc(self._base())
                self._frozen_at = None

    def reset(self) -> None:
        """Back to the base clock, running."""
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(0)
