"""Events and problem episodes (pure): one message when a problem starts, none while it lasts, one when it clears."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# kind -> (words for a person choosing events, safety: sent even in quiet hours)
EVENTS: dict[str, tuple[str, bool]] = {
    "token_refused": ("Amber or Tesla refused a token", True),
    "stale_prices": ("No fresh prices: the safe fallback tariff was pushed", True),
    "changed_outside": ("The Powerwall's tariff was changed outside the app", False),
    "force": ("A force charge or discharge started or ended", False),
    "restore_failed": ("Putting the Powerwall back after a force session failed", True),
    "price_alert": ("A price spike or negative prices in the forecast", False),
    "sync_off": ("The sync stopped working (nothing reached the Powerwall for an hour)", True),
    "off_grid": ("The Powerwall is off-grid", True),
    "test": ("Test messages", True),
}
# A problem key (e.g. "amber_token") belongs to an event kind.
PROBLEM_EVENTS = {
    "amber_token": "token_refused", "tesla_token": "token_refused", "fallback": "stale_prices", "spike": "price_alert",
    "negative": "price_alert", "off_grid": "off_grid", "stalled": "sync_off",
}
START_WORDS = {
    "amber_token": "Amber refused the saved API token: prices cannot be read. Enter a working token in Settings.",
    "tesla_token": "Tesla refused the saved credentials: nothing can be sent to the Powerwall. Reconnect Tesla in Settings.",
    "fallback": "No fresh Amber prices for a while: the Powerwall got a safe flat tariff until prices return.",
    "spike": "Price spike in the forecast",
    "negative": "Negative prices in the forecast",
    "off_grid": "The Powerwall is off-grid (a grid outage): it is powering the house from the battery.",
    "stalled": "The sync has stopped working: no sync has succeeded for an hour, so the Powerwall's tariff is getting old",
}
CLEAR_WORDS = {
    "amber_token": "Amber accepts the token again: prices are read as usual.",
    "tesla_token": "Tesla accepts the credentials again: the sync reaches the Powerwall.",
    "fallback": "Fresh prices are back: the Powerwall follows Amber's prices again.",
    "spike": "The price spike is over (no spike left in the forecast).",
    "negative": "No more negative prices in the forecast.",
    "off_grid": "The grid is back: the Powerwall is on-grid again.",
    "stalled": "The sync works again: the Powerwall follows Amber's prices.",
}


@dataclass(frozen=True)
class Transition:
    """A problem that started (with what it is about) or cleared."""

    key: str
    started: bool
    detail: str | None
    episode_start: datetime


def transitions(open_problems: dict[str, datetime], current: dict[str, str | None], now: datetime) -> list[Transition]:
    """What changed between the open episodes (key -> since) and the problems seen now (key -> detail)."""
    changes = [Transition(key, True, detail, now) for key, detail in sorted(current.items()) if key not in open_problems]
    changes += [Transition(key, False, None, since) for key, since in sorted(open_problems.items()) if key not in current]
    return changes


def in_quiet_hours(minute_of_day: int, start: int | None, end: int | None) -> bool:
    """Whether a local minute of the day falls in [start, end) (which may wrap past midnight)."""
    if start is None or end is None or start == end:
        return False
    return start <= minute_of_day < end if start < end else minute_of_day >= start or minute_of_day < end
