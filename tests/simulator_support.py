"""Shared by the simulator's own tests: a clock the test moves by hand."""
from __future__ import annotations

from datetime import datetime


class ManualClock:
    """A clock the test moves by hand (set `.now`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
