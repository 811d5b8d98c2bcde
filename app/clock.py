"""The app's clock. Code that decides by time calls `now()`; tests replace the clock."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from flask import Flask, current_app

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def init_app(app: Flask, clock: Clock | None = None) -> None:
    """Install the clock on the app (the system clock unless given)."""
    app.extensions["clock"] = clock or system_clock


def now() -> datetime:
    """The current time according to the app's clock."""
    return current_app.extensions["clock"]()
