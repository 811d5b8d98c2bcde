"""Force control's executor: sends the commands that rules.py decides, records every step, and puts
the Powerwall back at the end, on cancel, after a failure, or when a process died half-way."""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.clients.errors import ClientError, CommandRejectedError
from app.connections import HouseholdConnections, NotConfigured, check_tesla, resolve
from app.control.rules import (
    ACTION_WORDS,
    DOUBLE_CLICK_WINDOW,
    FAULT_ENV,
    LIVE_STATES,
    Command,
    ControlError,
    SavedSettings,
    forced_tariff,
    restore_commands,
    session_action,
    start_commands,
    validate_request,
    verification_step,
)
from app.credentials import CredentialUnreadable
from app.extensions import db
from app.households.service import ACTOR_COMMAND_LINE
from app.models import ControlEvent, ForceSession, Household
from app.notify.service import event as notify_event
from app.notify.service import safely

log = logging.getLogger(__name__)


def _fault_point(step: str) -> None:
    """Tests only: die here, as a killed worker would, when TAS_FAULT_KILL_AT names this step."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("Fault injection: killing this process at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)


def _claim(session: ForceSession, expect_state: str, new_state: str, now: datetime) -> bool:
    """Take the session over (compare-and-set on its state and last step): True if this process now owns it.

    Two processes that find the same stale session cannot both restore it, on SQLite or PostgreSQL."""
    result = db.session.execute(
        update(ForceSession)
        .where(ForceSession.id == session.id, ForceSession.state == expect_state, ForceSession.updated_at == session.updated_at)
        .values(state=new_state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(session)
    return result.rowcount == 1


def _progress(session: ForceSession, now: datetime) -> None:
    """Record that a step was done (the session is alive), committing it."""
    session.updated_at = now
    db.session.commit()


def _event(
    household: Household, session: ForceSession | None, now: datetime, step: str, ok: bool, message: str, actor: str | None = None
) -> None:
    db.session.add(ControlEvent(household_id=household.id, session_id=session.id if session else None, at=now, step=step, ok=ok,
                                message=message, actor=actor))
    (log.info if ok else log.warning)("Household %s control %s: %s", household.id, step, message)


def _send(conn: HouseholdConnections, site_id: str, command: Command) -> None:
    def operation(client):
        if command.step == "operation":
            return client.set_operation_mode(site_id, command.args["mode"])
        if command.step == "backup":
            return client.set_backup_reserve(site_id, command.args["percent"])
        if command.step == "grid":
            return client.set_grid_import_export(site_id, **command.args)
        return client.set_tariff(site_id, command.args["tariff"])

    conn.tesla(operation)


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, CommandRejectedError):
        return f"Tesla refused: {exc.reason or 'no reason given'}"
    if isinstance(exc, ClientError):
        return exc.user_message
    return str(exc)


def _choose_only_site(household: Household, now: datetime) -> None:
    """Before the first sync: pick the household's only Tesla energy site, as the sync would."""
    try:
        check_tesla(household, now)
        db.session.commit()
    except Exception:  # a failed check leaves the site unchosen; the caller says what to do
        log.exception("Household %s: could not list the Tesla energy sites", household.id)
        db.session.rollback()


def live_session(household: Household) -> ForceSession | None:
    """The household's starting, active or restoring session, if any."""
    return db.session.scalar(
        select(ForceSession).where(ForceSession.household_id == household.id, ForceSession.state.in_(LIVE_STATES))
    )


def _read_saved(conn: HouseholdConnections, site_id: str) -> SavedSettings:
    info = conn.tesla(lambda client: client.site_info(site_id))
    return SavedSettings(
        info.operation_mode, info.backup_reserve_percent, info.export_rule, info.grid_charging_allowed, info.tariff_content_v2
    )


def start(
    household: Household, action: object, minutes: object, now: datetime | None = None, on_call=None, *, actor: str = ACTOR_COMMAND_LINE
) -> ForceSession:
    """Start (or replace) a force session; on any failure put the saved settings back and raise."""
    action, minutes = validate_request(action, minutes)
    now = now or clock.now()
    settings = household.settings
    if settings is not None and not settings.tesla_site_id:
        _choose_only_site(household, now)
    if not settings or not settings.tesla_site_id:
        raise ControlError("Choose your Tesla energy site in Settings first.")
    site_id = settings.tesla_site_id
    conn = resolve(household, now, on_call)  # one resolution for the whole start
    tz = conn.zone
    current = live_session(household)
    if current is not None and current.state != "active":
        if session_action(current.state, current.updated_at, current.ends_at, now) == "restore":
            _take_over(household, current, now, on_call)  # its process is gone: finish it first
            current = live_session(household)
        if current is not None and current.state != "active":
            raise ControlError(_busy_message(current, tz))
    if current is not None and current.action == action and current.minutes == minutes and now - current.started_at < DOUBLE_CLICK_WINDOW:
        return current  # a double click: one session
    try:
        if current is not None:
            saved = SavedSettings(current.saved_mode, current.saved_reserve, current.saved_export_rule,
                                  current.saved_grid_charging, current.saved_tariff)
            current.state, current.ended_at, current.end_reason = "ended", now, "Replaced by a new session."
            _event(household, current, now, "replace", True, f"{ACTION_WORDS[current.action]} replaced by {ACTION_WORDS[action].lower()}.")
            db.session.flush()
        else:
            saved = _read_saved(conn, site_id)
    except (ClientError, CredentialUnreadable, NotConfigured) as exc:
        db.session.rollback()
        raise ControlError(f"Could not read the Powerwall's settings, so nothing was changed: {_describe_error(exc)}") from exc
    session = ForceSession(
        household_id=household.id, tesla_site_id=site_id, action=action, state="starting", minutes=minutes,
        started_at=now, ends_at=now + timedelta(minutes=minutes), saved_mode=saved.mode, saved_reserve=saved.reserve,
        saved_export_rule=saved.export_rule, saved_grid_charging=saved.grid_charging, saved_tariff=saved.tariff,
        verification="pending", started_by=actor, updated_at=now,
    )
    db.session.add(session)
    try:
        db.session.flush()
    except IntegrityError as exc:  # another request started a session a moment ago
        db.session.rollback()
        existing = live_session(household)
        if existing is not None:
            return existing
        raise ControlError("Another request is changing the battery right now; try again.") from exc
    _event(household, session, now, "start", True, f"{ACTION_WORDS[action]} for {minutes} minutes requested by {actor}; settings saved.", actor)
    db.session.commit()  # the session (with what to restore) exists before anything is changed
    _fault_point("after_save")

    tariff = forced_tariff(action, now, session.ends_at, tz)
    for command in start_commands(action, tariff, settings.discharge_floor_percent):
        if _cancel_requested(session):
            break
        try:
            _send(conn, site_id, command)
        except (ClientError, CredentialUnreadable, NotConfigured, ValueError) as exc:
            _event(household, session, now, command.step, False, f"{command.description}: failed ({_describe_error(exc)}).")
            db.session.commit()
            restore(household, session, "The start failed; the previous settings were put back.", now, on_call,
                    run_sync=False, final_state="failed")
            raise ControlError(
                f"{ACTION_WORDS[action]} could not be started ({_describe_error(exc)}); your previous settings were put back."
            ) from exc
        _event(household, session, now, command.step, True, f"{command.description}.")
        _progress(session, clock.now())
        _fault_point(f"after_{command.step}")
    if _cancel_requested(session):
        restore(household, session, f"Cancelled by {session.cancel_requested_by} while starting; the previous settings were put back.",
                now, on_call)
        return session
    session.state = "active"
    _progress(session, clock.now())
    safely(notify_event, household, "force", f"force:{session.id}:start",
           f"{ACTION_WORDS[action]} started by {actor} until {session.ends_at.astimezone(tz):%H:%M}.", now)
    return session


def _cancel_requested(session: ForceSession) -> bool:
    """Whether someone cancelled while this process was still starting the session (read afresh)."""
    db.session.refresh(session, ["cancel_requested_by"])
    return session.cancel_requested_by is not None


def _busy_message(session: ForceSession, tz: ZoneInfo) -> str:
    """Why a new force cannot start now, and how to cancel the one in the way."""
    doing = "being set up" if session.state == "starting" else "being put back to your settings"
    return (
        f"A {ACTION_WORDS[session.action].lower()} (until {session.ends_at.astimezone(tz):%H:%M}) is {doing} right now. "
        "Wait a moment, or cancel it first: Cancel on the dashboard, or POST /api/control with {\"action\": \"cancel\"}."
    )


def _take_over(household: Household, session: ForceSession, now: datetime, on_call=None) -> bool:
    """Finish a session whose process is gone: claim it, then put the saved settings back."""
    stale_since = session.updated_at
    if not _claim(session, session.state, "restoring", now):
        return False  # another process took it a moment ago
    minutes = int((now - stale_since).total_seconds() // 60)
    _event(household, session, now, "take_over", True,
           f"The process that was changing the battery stopped {minutes} min ago; putting the saved settings back.")
    db.session.commit()
    return restore(household, session, "Taken over after the app stopped mid-way; the previous settings were put back.",
                   now, on_call)


def restore(
    household: Household,
    session: ForceSession,
    reason: str,
    now: datetime | None = None,
    on_call=None,
    *,
    run_sync: bool = True,
    final_state: str = "ended",
) -> bool:
    """Put the saved settings back. Stays 'restoring' (retried by the next tick) until every step worked."""
    now = now or clock.now()
    session.state = "restoring"
    session.updated_at = clock.now()
    db.session.commit()
    conn = resolve(household, now, on_call)
    saved = SavedSettings(session.saved_mode, session.saved_reserve, session.saved_export_rule,
                          session.saved_grid_charging, session.saved_tariff)
    failures = []
    for command in restore_commands(saved):
        try:
            _send(conn, session.tesla_site_id, command)
            _event(household, session, now, f"restore_{command.step}", True, f"{command.description}.")
            _progress(session, clock.now())
            _fault_point(f"restore_after_{command.step}")
        except (ClientError, CredentialUnreadable, NotConfigured, ValueError) as exc:
            failures.append(command.description)
            _event(household, session, now, f"restore_{command.step}", False, f"{command.description}: failed ({_describe_error(exc)}).")
    if failures:
        session.end_reason = f"Restoring is not finished ({'; '.join(failures)}); it is retried automatically."
        db.session.commit()
        safely(notify_event, household, "restore_failed", f"force:{session.id}:restore_failed",
               f"Putting the Powerwall back after the {ACTION_WORDS[session.action].lower()} failed ({'; '.join(failures)}); "
               "the app keeps retrying. Check the Powerwall in the Tesla app.", now)
        return False
    if not saved.tariff:
        _event(household, session, now, "restore_tariff", True, "There was no tariff on the Powerwall before; the next sync pushes one.")
    session.state = final_state
    session.ended_at, session.end_reason, session.updated_at = now, reason, clock.now()
    _event(household, session, now, "end", True, reason)
    db.session.commit()
    safely(notify_event, household, "force", f"force:{session.id}:end", f"{ACTION_WORDS[session.action]} ended: {reason}", now)
    if run_sync:
        _sync_after(household)
    return True


def _sync_after(household: Household) -> None:
    """A normal sync at once, so the Powerwall gets the current prices back."""
    from app.sync import sync_household

    try:
        result = sync_household(household.id, actor="force control")
        _event(household, None, clock.now(), "sync", result.outcome in ("pushed", "unchanged"), f"Normal sync after force control: {result.reason}")
        db.session.commit()
    except Exception:  # the restore itself is done; a failed sync is retried by the next tick
        log.exception("Household %s: sync after force control failed", household.id)
        db.session.rollback()


def cancel(household: Household, now: datetime | None = None, on_call=None, *, actor: str = ACTOR_COMMAND_LINE) -> bool:
    """End the household's active session now and put the saved settings back."""
    now = now or clock.now()
    session = live_session(household)
    if session is None:
        raise ControlError("Nothing to cancel: no force charge or discharge is running.")
    _event(household, session, now, "cancel", True, f"Cancelled by {actor}.", actor)
    db.session.commit()
    if session.state == "active":
        return restore(household, session, f"Cancelled by {actor}; the previous settings were put back.", now, on_call)
    if session_action(session.state, session.updated_at, session.ends_at, now) == "restore":
        return _take_over(household, session, now, on_call)  # nobody is working on it any more
    if session.state == "starting":
        # Its process is sending the forcing commands right now: it sees this before its next command
        # and puts everything back itself (one process talks to the Powerwall at a time).
        db.session.execute(
            update(ForceSession).where(ForceSession.id == session.id, ForceSession.state == "starting")
            .values(cancel_requested_by=actor).execution_options(synchronize_session=False)
        )
        db.session.commit()
        db.session.refresh(session)
        if session.state == "starting":
            return False
        return session.state in ("ended", "failed")
    return False  # 'restoring' right now in another process: it is already being put back


def check_sessions(now: datetime | None = None, battery_reader: Callable[[Household, datetime], Any] | None = None) -> int:
    """The scheduler's control job: restore expired (or half-restored) sessions, verify active ones.

    Returns how many sessions it looked at. Runs any time, so an end missed while the app was down is
    handled as soon as it is back."""
    now = now or clock.now()
    sessions = db.session.scalars(select(ForceSession).where(ForceSession.state.in_(LIVE_STATES))).all()
    for session in sessions:
        household = db.session.get(Household, session.household_id)
        try:
            decision = session_action(session.state, session.updated_at, session.ends_at, now)
            if decision == "wait":
                continue
            if session.state in ("starting", "restoring"):
                _take_over(household, session, now)
            elif session.ends_at <= now:
                late = now - session.ends_at
                reason = "Finished; the previous settings were put back."
                if late > timedelta(minutes=2):
                    reason = f"Finished (restored {int(late.total_seconds() // 60)} minutes late, the app was not running at the end time)."
                restore(household, session, reason, now)
            else:
                _verify(household, session, now, battery_reader)
        except Exception:  # one household's trouble never stops the others
            log.exception("Household %s: force control check failed", session.household_id)
            db.session.rollback()
    return len(sessions)


def _verify(household: Household, session: ForceSession, now: datetime, battery_reader) -> None:
    if session.verification in ("responding", "not_responding"):
        return
    if battery_reader is None:
        from app.readings import battery as battery_reader  # cached reads, shared with the dashboard
    reading = battery_reader(household, now)
    session.last_checked_at = now
    step = verification_step(session.action, reading.battery_w, session.started_at, session.escalated_at, now)
    if step == "responding":
        session.verification, session.responded_at = "responding", now
        seconds = int((now - session.started_at).total_seconds())
        _event(household, session, now, "verify", True, f"The battery responded after {seconds // 60} min {seconds % 60} s ({reading.battery_w:.0f} W).")
    elif step == "escalate":
        session.escalated_at = now
        try:
            conn = resolve(household, now)
            _send(conn, session.tesla_site_id, Command("operation", {"mode": "self_consumption"}, "Bounce the mode"))
            _send(conn, session.tesla_site_id, Command("operation", {"mode": "autonomous"}, "Bounce the mode"))
            _event(household, session, now, "escalate", True, "The battery had not responded after 10 minutes; switched the operation mode off and on again.")
        except (ClientError, CredentialUnreadable, NotConfigured) as exc:
            _event(household, session, now, "escalate", False, f"Could not bounce the operation mode: {_describe_error(exc)}")
    elif step == "not_responding":
        session.verification = "not_responding"
        _event(household, session, now, "verify", False,
               "The battery still does not respond. Tesla may be ignoring the request (firmware, storm watch or a full/empty battery); "
               "the session keeps running and the settings are put back at the end.")
    db.session.commit()
