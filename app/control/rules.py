"""Force control's pure decisions: what a request means, the forced tariff, the commands that force and
restore, whether the battery responds, and what to do with a live session. No Flask, no database."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.tariff import PERIOD_NAMES, TariffPolicy, period_name, tariff_from_rates

ACTIONS = ("force_charge", "force_discharge")
ACTION_WORDS = {"force_charge": "Force charge", "force_discharge": "Force discharge"}
PRESET_MINUTES = (30, 60, 120, 240)
MIN_MINUTES, MAX_MINUTES = 15, 240
LIVE_STATES = ("starting", "active", "restoring")
# A session still 'starting' or 'restoring' this long after its last step lost its process (killed,
# crashed, restarted): it is taken over and its saved settings put back.
STALE_AFTER = timedelta(minutes=2)
# How the end_reason of a 'restoring' session begins when its last attempt finished with a step failed (and
# so nobody is restoring it right now); an attempt clears it when it begins.
RESTORE_UNFINISHED = "Restoring is not finished"
DOUBLE_CLICK_WINDOW = timedelta(seconds=15)
RESPONSE_THRESHOLD_W = 500  # battery power beyond which it counts as charging/discharging
ESCALATE_AFTER = timedelta(minutes=10)
CHARGE_WINDOW_BUY, CHARGE_OTHER_BUY = 0.01, 1.00  # $/kWh
DISCHARGE_WINDOW_SELL, DISCHARGE_OTHER_BUY = 5.00, 0.30
FORCED_POLICY = TariffPolicy(code="AMBER:FORCED", name="Tesla-Amber-Sync forced window", sell_name="Tesla-Amber-Sync forced window")


class ControlError(Exception):
    """A control request that cannot be done, or a step that failed; the message is fit to show."""


# -- pure -------------------------------------------------------------------------------------------------


def validate_request(action: object, minutes: object) -> tuple[str, int]:
    """The action and its duration in minutes, or ControlError saying what is wrong."""
    if action not in ACTIONS:
        raise ControlError("Choose force charge or force discharge.")
    if isinstance(minutes, int) and not isinstance(minutes, bool):
        value = minutes
    elif isinstance(minutes, str) and re.fullmatch(r"[0-9]{1,4}", minutes.strip()):
        value = int(minutes.strip())
    else:
        raise ControlError("Give the duration as a whole number of minutes.")
    if not MIN_MINUTES <= value <= MAX_MINUTES:
        raise ControlError(f"Choose between {MIN_MINUTES} minutes and {MAX_MINUTES // 60} hours.")
    return str(action), value


def window_periods(start: datetime, end: datetime, tz: ZoneInfo) -> list[str]:
    """The tariff periods (local half hours) that overlap [start, end), in time order."""
    periods: list[str] = []
    cursor = start
    while cursor < end:
        local = cursor.astimezone(tz)
        name = period_name(local.hour * 60 + 30 * (local.minute // 30))
        if name not in periods:
            periods.append(name)
        # to the next local half-hour boundary
        boundary = local.replace(minute=30 * (local.minute // 30), second=0, microsecond=0) + timedelta(minutes=30)
        cursor = max(boundary.astimezone(start.tzinfo), cursor + timedelta(minutes=1))
    return periods


def forced_tariff(action: str, start: datetime, end: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The tariff that makes the Powerwall charge (or export) in [start, end) and not otherwise."""
    window = window_periods(start, end, tz)
    if action == "force_charge":
        buy = {p: (CHARGE_WINDOW_BUY if p in window else CHARGE_OTHER_BUY) for p in PERIOD_NAMES}
        sell = {p: 0.0 for p in PERIOD_NAMES}
    else:
        buy = {p: DISCHARGE_OTHER_BUY for p in PERIOD_NAMES}
        sell = {p: 0.0 for p in PERIOD_NAMES}
        for index, period in enumerate(window):
            # Falling slightly through the window, so exporting now always beats exporting later.
            sell[period] = round(DISCHARGE_WINDOW_SELL - 0.05 * index, 4)
            buy[period] = sell[period]  # Tesla requires sell <= buy
    return tariff_from_rates(FORCED_POLICY, buy, sell)


@dataclass(frozen=True)
class Command:
    """One Tesla command with a description for the audit trail."""

    step: str  # tariff | operation | backup | grid
    args: dict[str, Any]
    description: str


def start_commands(action: str, tariff: dict[str, Any], floor_percent: int) -> list[Command]:
    """The commands that force `action`, in the order they are sent."""
    commands = [Command("operation", {"mode": "autonomous"}, "Set time-based control")]
    if action == "force_charge":
        commands += [
            Command("grid", {"allow_grid_charging": True}, "Allow charging from the grid"),
            Command("tariff", {"tariff": tariff}, "Push a tariff with the window as the cheapest time"),
            Command("backup", {"percent": 100}, "Raise the backup reserve to 100%"),
        ]
    else:
        commands += [
            Command("grid", {"export_rule": "battery_ok"}, "Allow exporting from the battery"),
            Command("tariff", {"tariff": tariff}, "Push a tariff that pays most for exporting in the window"),
            Command("backup", {"percent": int(floor_percent)}, f"Lower the backup reserve to {int(floor_percent)}%"),
        ]
    return commands


@dataclass(frozen=True)
class SavedSettings:
    """The Powerwall's settings before force control, to be put back exactly."""

    mode: str | None
    reserve: float | None
    export_rule: str | None
    grid_charging: bool | None
    tariff: dict[str, Any] | None


def restore_commands(saved: SavedSettings) -> list[Command]:
    """The commands that put the saved settings back (anything unknown is left alone)."""
    commands = []
    if saved.tariff:
        commands.append(Command("tariff", {"tariff": saved.tariff}, "Put the previous tariff back"))
    if saved.mode:
        commands.append(Command("operation", {"mode": saved.mode}, f"Put the operation mode back ({saved.mode})"))
    if saved.reserve is not None:
        percent = int(round(saved.reserve))
        commands.append(Command("backup", {"percent": percent}, f"Put the backup reserve back ({percent}%)"))
    grid: dict[str, Any] = {}
    if saved.export_rule:
        grid["export_rule"] = saved.export_rule
    if saved.grid_charging is not None:
        grid["allow_grid_charging"] = saved.grid_charging
    if grid:
        commands.append(Command("grid", grid, "Put the export rule and grid charging back"))
    return commands


def verification_step(
    action: str, battery_w: float | None, started_at: datetime, escalated_at: datetime | None, now: datetime
) -> str:
    """responding | wait | escalate | not_responding — whether the battery does what was asked."""
    if battery_w is not None:
        if action == "force_charge" and battery_w < -RESPONSE_THRESHOLD_W:
            return "responding"
        if action == "force_discharge" and battery_w > RESPONSE_THRESHOLD_W:
            return "responding"
    if escalated_at is None:
        return "escalate" if now - started_at >= ESCALATE_AFTER else "wait"
    return "not_responding" if now - escalated_at >= ESCALATE_AFTER else "wait"


def session_action(state: str, updated_at: datetime, ends_at: datetime, now: datetime) -> str:
    """What the control job does with a live session: restore | verify | wait.

    'starting' and 'restoring' belong to the process doing them until they go STALE_AFTER without a
    step; then nobody is doing them any more and they are finished by putting the saved settings back."""
    if state in ("starting", "restoring"):
        return "restore" if now - updated_at >= STALE_AFTER else "wait"
    if state == "active":
        return "restore" if ends_at <= now else "verify"
    return "wait"


def restore_attempt_failed(state: str, end_reason: str | None) -> bool:
    """Whether a 'restoring' session's last attempt ended with a step failed (no attempt is under way)."""
    return state == "restoring" and (end_reason or "").startswith(RESTORE_UNFINISHED)


def cancel_action(state: str, updated_at: datetime, attempt_failed: bool, now: datetime) -> str:
    """What Cancel does with a live session: restore | take_over | signal | in_hand.

    'active': claim it and put the settings back now. 'starting' belongs to the process sending the forcing
    commands: while that process is alive, cancel only signals it (cancel_requested_by), and it stops before
    its next command and puts everything back itself, so one process talks to the Powerwall at a time; once
    silent for STALE_AFTER it has no process and cancel takes it over. 'restoring': retried now when its last
    attempt failed or its process is gone; while an attempt is under way it is in hand."""
    stale = now - updated_at >= STALE_AFTER
    if state == "active":
        return "restore"
    if state == "starting":
        return "take_over" if stale else "signal"
    if state == "restoring":
        return "take_over" if stale or attempt_failed else "in_hand"
    return "in_hand"


def cancel_message(done: bool, state: str | None) -> str:
    """What a person is told after Cancel, given whether it finished and the state the session is left in."""
    if done or state is None:
        return "Cancelled; your settings were put back."
    if state == "starting":
        return "Cancel recorded: the start under way stops before its next step and puts your settings back."
    return "Putting your settings back is not finished yet; it is retried automatically, and Cancel tries again at once."
