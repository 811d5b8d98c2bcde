"""The app's clock. Code that decides by time calls `now()`; tests replace the clock."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from flask import Flask, current_app

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def init_app(app: Flask, clock: Clock | None = None) -> None:
    """Install the clock (the system clock unless given) and the sleep that goes with it."""
    app.extensions["clock"] = clock or system_clock
    app.extensions["sleep"] = time.sleep


def now() -> datetime:
    """The current time according to the app's clock."""
    return current_app.extensions["clock"]()


def sleeper() -> Callable[[float], None]:
    """The app's way to wait (tests replace it with one that only moves their clock)."""
    return current_app.extensions["sleep"]
