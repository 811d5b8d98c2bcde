"""Force control's executor: sends the commands that rules.py decides, records every step, and puts
the Powerwall back at the end, on cancel, after a failure, or when a process died half-way."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.clients.errors import ClientError, CommandRejectedError
from app.connections import HouseholdConnections, NotConfigured, check_tesla, resolve
from app.control.rules import (
    ACTION_WORDS,
    DOUBLE_CLICK_WINDOW,
    LIVE_STATES,
    RESTORE_UNFINISHED,
    STALE_AFTER,
    Command,
    ControlError,
    SavedSettings,
    cancel_action,
    forced_tariff,
    restore_attempt_failed,
    restore_commands,
    session_action,
    start_commands,
    validate_request,
    verification_step,
)
from app.credentials import CredentialUnreadable
from app.extensions import db
from app.fault_points import fault_point
from app.households.service import ACTOR_COMMAND_LINE
from app.models import ControlEvent, ForceSession, Household
from app.notify.service import event as notify_event
from app.notify.service import safely

log = logging.getLogger(__name__)


# Who owns a live session: the process that last moved it, by a compare-and-set on its state and updated_at
# (works the same on SQLite and PostgreSQL). A process decides on what it read in one _Hold and claims with that
# same _Hold, so nothing that changed in between is overridden. The owner keeps what it last wrote (the _Hold,
# not the ORM object, whose attributes reload after any commit and would always look current) and stamps every
# step with the same compare-and-set, so a process that was paused (a frozen VM, a long stall) and whose
# session was taken over in the meantime learns it before its next command and stops.


@dataclass
class _Hold:
    """A session's state and updated_at as this process last read or wrote them: its compare-and-set token."""

    state: str
    updated_at: datetime
    end_reason: str | None = None
    # The stored text of updated_at as read. A row written by hand, by an older version or by a migration may not be
    # in SQLAlchemy's own SQLite format ("...:40" for "...:40.000000"), and comparing the parsed value would then
    # never match, leaving the session with no way out. None once this process wrote the value itself.
    stored: str | None = None

    @classmethod
    def read(cls, session: ForceSession) -> _Hold:
        """The session's row as it is now, in one read (decide on this, then claim with it)."""
        state, updated_at, end_reason, stored = db.session.execute(
            select(ForceSession.state, ForceSession.updated_at, ForceSession.end_reason,
                   cast(ForceSession.updated_at, String).label("stored"))
            .where(ForceSession.id == session.id)
        ).one()
        return cls(state, updated_at, end_reason, stored)

    def unchanged(self) -> Any:
        """The SQL condition: the row is still as this hold says."""
        same_time = (cast(ForceSession.updated_at, String) == self.stored if self.stored is not None
                     else ForceSession.updated_at == self.updated_at)
        return and_(ForceSession.state == self.state, same_time)


def _cas(session: ForceSession, hold: _Hold, values: dict[str, Any], *conditions: Any) -> bool:
    """Update the session only if it is still as `hold` says (then `hold` follows); the session is read afresh."""
    result = db.session.execute(
        update(ForceSession)
        .where(ForceSession.id == session.id, hold.unchanged(), *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    won = result.rowcount == 1
    if won:
        hold.state, hold.updated_at, hold.stored = values.get("state", hold.state), values["updated_at"], None
    db.session.refresh(session)
    return won


def _claim(session: ForceSession, hold: _Hold, new_state: str, now: datetime) -> bool:
    """Take the session over into `new_state`: True if this process now owns it (two never both do)."""
    values: dict[str, Any] = {"state": new_state, "updated_at": now}
    if new_state == "restoring":
        values["end_reason"] = None  # an attempt is under way; a failed one says so again
    return _cas(session, hold, values)


def _step_done(session: ForceSession, hold: _Hold, now: datetime) -> bool:
    """Stamp a step (committing its audit event): False if another process has taken the session over."""
    return _cas(session, hold, {"updated_at": now})


def _may_go_on(session: ForceSession, hold: _Hold, now: datetime) -> bool:
    """Before each forcing command: stamp the step; False once the start was cancelled or taken over."""
    return _step_done(session, hold, now) and session.cancel_requested_by is None


def _settled(household: Household, session: ForceSession) -> bool:
    """True if the session has ended and nothing else is live."""
    db.session.refresh(session)
    return session.state in ("ended", "failed") and live_session(household) is None


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


def _live_with_hold(household: Household) -> tuple[ForceSession, _Hold] | tuple[None, None]:
    """The household's live session and its row as read now (to decide on and claim with), or (None, None)."""
    session = live_session(household)
    hold = _Hold.read(session) if session is not None else None
    if session is None or hold.state not in LIVE_STATES:  # it ended a moment ago
        return None, None
    return session, hold


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
    current, seen = _live_with_hold(household)
    if current is not None and seen.state != "active":
        if session_action(seen.state, seen.updated_at, current.ends_at, now) == "restore":
            _take_over(household, current, seen, now, on_call)  # its process is gone: finish it first
            current, seen = _live_with_hold(household)
        if current is not None and seen.state != "active":
            raise ControlError(_busy_message(current, seen.state, tz))
    if current is not None and current.action == action and current.minutes == minutes and now - current.started_at < DOUBLE_CLICK_WINDOW:
        return current  # a double click: one session
    try:
        if current is not None:
            saved = SavedSettings(current.saved_mode, current.saved_reserve, current.saved_export_rule,
                                  current.saved_grid_charging, current.saved_tariff)
            # Only if nobody is ending it right now (a cancel, its expiry); committed with the new session.
            replaced = db.session.execute(
                update(ForceSession)
                .where(ForceSession.id == current.id, seen.unchanged())
                .values(state="ended", ended_at=now, end_reason="Replaced by a new session.", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if replaced.rowcount != 1:
                db.session.rollback()
                raise ControlError(f"The running {ACTION_WORDS[current.action].lower()} is being ended right now; try again in a moment.")
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
    hold = _Hold("starting", now)
    fault_point("after_save")

    tariff = forced_tariff(action, now, session.ends_at, tz)
    for command in start_commands(action, tariff, settings.discharge_floor_percent):
        if not _may_go_on(session, hold, clock.now()):  # the last thing before each send
            break
        try:
            _send(conn, site_id, command)
        except (ClientError, CredentialUnreadable, NotConfigured, ValueError) as exc:
            _event(household, session, now, command.step, False, f"{command.description}: failed ({_describe_error(exc)}).")
            db.session.commit()
            if _claim(session, hold, "restoring", clock.now()):  # else another process took it over and restores
                restore(household, session, hold, "The start failed; the previous settings were put back.", now, on_call,
                        run_sync=False, final_state="failed")
            raise ControlError(
                f"{ACTION_WORDS[action]} could not be started ({_describe_error(exc)}); your previous settings were put back."
            ) from exc
        _event(household, session, now, command.step, True, f"{command.description}.")
        _step_done(session, hold, clock.now())  # the step is in the audit trail even if this process dies now
        fault_point(f"after_{command.step}")
    # Active only if still ours and not cancelled, in one compare-and-set: a cancel can never land in between.
    if _cas(session, hold, {"state": "active", "updated_at": clock.now()}, ForceSession.cancel_requested_by.is_(None)):
        safely(notify_event, household, "force", f"force:{session.id}:start",
               f"{ACTION_WORDS[action]} started by {actor} until {session.ends_at.astimezone(tz):%H:%M}.", now)
        return session
    if _claim(session, hold, "restoring", clock.now()):  # still ours, so it was cancelled: put it back
        restore(household, session, hold, f"Cancelled by {session.cancel_requested_by} while starting; the previous settings were put back.",
                now, on_call)
        return session
    raise ControlError(
        f"{ACTION_WORDS[action]} was stopped: this process stalled for over {int(STALE_AFTER.total_seconds() // 60)} minutes and "
        "another one took the session over; it puts your previous settings back."
    )


def _busy_message(session: ForceSession, state: str, tz: ZoneInfo) -> str:
    """Why a new force cannot start now, and how to cancel the one in the way."""
    what = f"A {ACTION_WORDS[session.action].lower()} (until {session.ends_at.astimezone(tz):%H:%M})"
    if state == "starting":
        return (f"{what} is being set up right now. Wait a moment, or cancel it first: Cancel on the dashboard, "
                "or POST /api/control with {\"action\": \"cancel\"}.")
    return (f"{what} has ended and your settings are being put back right now. Wait a moment; if that does not finish, "
            "Put my settings back now on the dashboard, or POST /api/control with {\"action\": \"cancel\"}, retries it at once.")


def _take_over(
    household: Household, session: ForceSession, hold: _Hold, now: datetime, on_call=None, *, asked_by: str | None = None
) -> bool | None:
    """Finish a session nobody is working on (its process is gone, or its last restore failed), as `hold` read it:
    claim it, then put the saved settings back. True when they are back, False when not yet, None when the session
    changed since `hold` was read (another process moved it) and nothing was done."""
    last_step, retry = hold.updated_at, restore_attempt_failed(hold.state, hold.end_reason)
    if not _claim(session, hold, "restoring", now):
        return None
    if retry:
        why = "Trying again to put the saved settings back (the last attempt did not finish)."
    else:
        minutes = int((now - last_step).total_seconds() // 60)
        why = f"The process that was changing the battery stopped {minutes} min ago; putting the saved settings back."
    _event(household, session, now, "take_over", True, why if asked_by is None else f"{why} Asked by {asked_by}.")
    db.session.commit()
    if asked_by:
        reason = f"Cancelled by {asked_by}; the previous settings were put back."
    elif retry:
        reason = "The previous settings were put back on a later attempt."
    else:
        reason = "Taken over after the app stopped mid-way; the previous settings were put back."
    return restore(household, session, hold, reason, now, on_call)


def restore(
    household: Household,
    session: ForceSession,
    hold: _Hold,
    reason: str,
    now: datetime | None = None,
    on_call=None,
    *,
    run_sync: bool = True,
    final_state: str = "ended",
) -> bool:
    """Put the saved settings back; the caller has claimed the session ('restoring', `hold`). It stays 'restoring' until
    every step worked: a failed attempt is retried by Cancel at once, or by the control job after STALE_AFTER."""
    now = now or clock.now()
    conn = resolve(household, now, on_call)
    saved = SavedSettings(session.saved_mode, session.saved_reserve, session.saved_export_rule,
                          session.saved_grid_charging, session.saved_tariff)
    failures = []
    for command in restore_commands(saved):
        if not _step_done(session, hold, clock.now()):  # the last thing before each send
            return _lost(household, session)
        try:
            _send(conn, session.tesla_site_id, command)
            _event(household, session, now, f"restore_{command.step}", True, f"{command.description}.")
        except (ClientError, CredentialUnreadable, NotConfigured, ValueError) as exc:
            failures.append(command.description)
            _event(household, session, now, f"restore_{command.step}", False, f"{command.description}: failed ({_describe_error(exc)}).")
        if not _step_done(session, hold, clock.now()):  # the step is in the audit trail even if this process dies now
            return _lost(household, session)
        fault_point(f"restore_after_{command.step}")
    if failures:
        session.end_reason = f"{RESTORE_UNFINISHED} ({'; '.join(failures)}); it is retried automatically."
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


def _lost(household: Household, session: ForceSession) -> bool:
    """This process was paused past STALE_AFTER and the session taken over: the new owner finishes it (and may
    since have started a new force, which this process must not undo), so it stops here."""
    log.warning("Household %s: force session %s was taken over while this process restored it", household.id, session.id)
    return False


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
    """End the household's live session, in any live state, and put the saved settings back; True once they are.

    What it does is rules.cancel_action's choice. An active session, one whose process is gone, and one whose
    last restore attempt failed are put back now, by this process, after a compare-and-set claim. A session
    another process is still starting is marked cancelled: that process sees it before its next command and
    puts everything back itself, so only one process talks to the Powerwall at a time (it is taken over here
    if that process dies). A restore under way in another process is in hand. False means "not finished yet";
    the dashboard and the API say so, and the control job finishes it."""
    now = now or clock.now()
    session = live_session(household)
    if session is None:
        raise ControlError("Nothing to cancel: no force charge or discharge is running.")
    _event(household, session, now, "cancel", True, f"Cancelled by {actor}.", actor)
    db.session.commit()
    for _ in range(3):  # when the session moved on meanwhile (a race lost), decide again on what it is now
        hold = _Hold.read(session)
        if hold.state not in LIVE_STATES:
            return live_session(household) is None  # it ended meanwhile
        decision = cancel_action(hold.state, hold.updated_at, restore_attempt_failed(hold.state, hold.end_reason), now)
        if decision == "restore":
            if _claim(session, hold, "restoring", now):
                return restore(household, session, hold, f"Cancelled by {actor}; the previous settings were put back.", now, on_call)
        elif decision == "take_over":
            done = _take_over(household, session, hold, now, on_call, asked_by=actor)
            if done is not None:
                return done
        elif decision == "signal":
            # No updated_at condition: the starting process stamps every step, and it only matters that the session
            # is still starting; its move to 'active' is conditional on no cancel, so this is never missed.
            signalled = db.session.execute(
                update(ForceSession).where(ForceSession.id == session.id, ForceSession.state == "starting")
                .values(cancel_requested_by=actor).execution_options(synchronize_session=False)
            ).rowcount
            db.session.commit()
            if signalled:
                return _settled(household, session)
        else:
            return False  # being put back right now by another process
    return False


def check_sessions(now: datetime | None = None, battery_reader: Callable[[Household, datetime], Any] | None = None) -> int:
    """The scheduler's control job: restore expired (or half-restored) sessions, verify active ones.

    Returns how many sessions it looked at. Runs any time, so an end missed while the app was down is
    handled as soon as it is back."""
    now = now or clock.now()
    sessions = db.session.scalars(select(ForceSession).where(ForceSession.state.in_(LIVE_STATES))).all()
    for session in sessions:
        household = db.session.get(Household, session.household_id)
        try:
            hold = _Hold.read(session)
            decision = session_action(hold.state, hold.updated_at, session.ends_at, now)
            if decision == "wait":
                continue
            if hold.state in ("starting", "restoring"):
                _take_over(household, session, hold, now)
            elif decision == "restore":
                late = now - session.ends_at
                reason = "Finished; the previous settings were put back."
                if late > timedelta(minutes=2):
                    reason = f"Finished (restored {int(late.total_seconds() // 60)} minutes late, the app was not running at the end time)."
                if _claim(session, hold, "restoring", now):  # else a cancel is putting it back already
                    restore(household, session, hold, reason, now)
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
