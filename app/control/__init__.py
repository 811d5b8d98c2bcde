"""Force charge and force discharge.

Tesla has no "charge now" command. Force charge sets time-based control, allows grid charging, pushes
a tariff where the forced window is the cheapest time of the day and raises the backup reserve to
100% (firmware versions honour one or the other). Force discharge sets time-based control, export
rule battery_ok, a tariff whose window sells far above every other slot (falling slightly so the
Powerwall does not wait for the end), and lowers the reserve to the household's floor. The settings from
before are saved with the session before the first change and put back exactly at the end, on cancel,
after a failure, or when the process doing it died (taken over after STALE_AFTER). Every step is
recorded in the audit trail.

`rules` holds the pure decisions; `executor` the thin part that talks to Tesla and the database. It may
import the connections, credentials, households and models; pages and the sync import it."""
from __future__ import annotations

from app.control.executor import (  # noqa: F401 - the package's public face
    cancel,
    check_sessions,
    live_session,
    restore,
    start,
)
from app.fault_points import FAULT_ENV, FAULT_STOP_ENV  # noqa: F401 - tests kill `flask force` at a step
from app.control.rules import (  # noqa: F401
    ACTION_WORDS,
    ACTIONS,
    LIVE_STATES,
    MAX_MINUTES,
    MIN_MINUTES,
    PRESET_MINUTES,
    RESTORE_UNFINISHED,
    STALE_AFTER,
    Command,
    ControlError,
    SavedSettings,
    cancel_action,
    cancel_message,
    forced_tariff,
    restore_attempt_failed,
    restore_commands,
    session_action,
    start_commands,
    validate_request,
    verification_step,
    window_periods,
)
