"""Force sessions have no dead ends: a real `flask force` process is killed (SIGKILL) at every step of a
start and of a restore; then a new force is refused with a way out, cancel is accepted, the control job of
a restarted app takes the abandoned session over, and the Powerwall (the simulator, read back over HTTP)
has exactly the settings it had before."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app import control
from app.clients.tesla import teslemetry_client
from app.extensions import db
from app.models import ControlEvent, ForceSession
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from config import BASE_DIR
from tests.conftest import FakeClock
from tests.db_backends import BACKENDS
from tests.process_support import household_on_simulator, run_flask

EMAIL = "owner@example.com"
POWERWALL = str(identity.TESLA_ENERGY_SITE_ID)
BEFORE = {"backup_reserve_percent": 20, "default_real_mode": "self_consumption",
          "customer_preferred_export_rule": "pv_only", "grid_charging_allowed": False}
START_STEPS = ["after_save", "after_operation", "after_grid", "after_tariff", "after_backup"]
RESTORE_STEPS = ["restore_after_tariff", "restore_after_operation", "restore_after_backup", "restore_after_grid"]


@pytest.fixture(scope="module")
def simulator():
    base, stop = start_simulator_thread(app=create_simulator_app())
    yield base
    stop()


def powerwall(simulator: str) -> dict:
    import requests

    state = requests.get(f"{simulator}/_sim/state", timeout=5).json()["powerwall"]
    return {key: state[key] for key in (*BEFORE, "tariff_content_v2")}


@pytest.fixture(params=BACKENDS)
def home(request, tmp_path, simulator):
    """A household on the simulator's Powerwall, set to known settings, on each database backend; yields
    (app, env for children, the Powerwall's settings)."""
    import requests

    requests.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()
    tesla = teslemetry_client(identity.TESLEMETRY_TOKEN, base_url=f"{simulator}/teslemetry")
    tesla.set_backup_reserve(POWERWALL, 20)
    tesla.set_operation_mode(POWERWALL, "self_consumption")
    tesla.set_grid_import_export(POWERWALL, export_rule="pv_only", allow_grid_charging=False)
    with household_on_simulator(request.param, tmp_path, simulator, EMAIL, teslemetry_token=identity.TESLEMETRY_TOKEN,
                                tesla_site_id=POWERWALL) as (app, env, _):
        yield app, env, powerwall(simulator)


def wait_until_stopped(child: subprocess.Popen, seconds: float = 30) -> None:
    """Wait (bounded) until the child has stopped itself (SIGSTOP) at its fault point."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid, status = os.waitpid(child.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return
        assert not pid, f"the child ended instead of stopping: {status}"
        time.sleep(0.05)
    child.kill()
    raise AssertionError("the child never reached its fault point")


def the_session(app) -> ForceSession:
    with app.app_context():
        session = db.session.scalar(select(ForceSession).order_by(ForceSession.id.desc()))
        db.session.expunge_all()
        return session


def household(app):
    from app.models import Household

    return db.session.scalar(select(Household))


def recover(app, simulator, before, minutes_later: int = 3) -> None:
    """A restarted app: its control job, a few minutes later, finishes what the killed process left."""
    app.extensions["clock"] = FakeClock(datetime.now(timezone.utc) + timedelta(minutes=minutes_later))
    with app.app_context():
        control.check_sessions(app.extensions["clock"]())
    session = the_session(app)
    assert session.state in ("ended", "failed"), (session.state, session.end_reason)
    assert powerwall(simulator) == before


@pytest.mark.parametrize("step", START_STEPS)
def test_killed_while_starting(home, simulator, step):
    app, env, before = home
    result = run_flask(env, "force", "start", EMAIL, "force_charge", "30", kill_at=step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    session = the_session(app)
    assert session.state == "starting"
    # Killed before any command, the Powerwall is untouched; after one, it is left (partly) forced.
    assert (powerwall(simulator) == before) is (step == "after_save")
    # The settings to put back were saved before the first change.
    assert (session.saved_reserve, session.saved_mode, session.saved_export_rule, session.saved_grid_charging) == (
        20, "self_consumption", "pv_only", False
    )

    # Right away a new force is refused (the start may still be under way), and says how to get out.
    app.extensions["clock"] = FakeClock(datetime.now(timezone.utc))
    with app.app_context(), pytest.raises(control.ControlError, match="cancel it first"):
        control.start(household(app), "force_discharge", 30, actor="someone")
    # Cancel is accepted in 'starting' too.
    with app.app_context():
        assert control.cancel(household(app), actor="owner@example.com") is False
    assert the_session(app).cancel_requested_by == "owner@example.com"

    recover(app, simulator, before)
    with app.app_context():
        steps = [e.step for e in db.session.scalars(select(ControlEvent).order_by(ControlEvent.id))]
    assert "take_over" in steps and steps[-1] in ("end", "sync")

    # And the household can force again.
    with app.app_context():
        fresh = control.start(household(app), "force_charge", 30, actor="owner@example.com")
        assert fresh.state == "active"
        assert control.cancel(household(app), actor="owner@example.com") is True
    assert powerwall(simulator) == before


@pytest.mark.parametrize("step", RESTORE_STEPS)
def test_killed_while_restoring(home, simulator, step):
    app, env, before = home
    started = run_flask(env, "force", "start", EMAIL, "force_charge", "30")
    assert started.returncode == 0, started.stderr
    assert powerwall(simulator)["backup_reserve_percent"] == 100
    result = run_flask(env, "force", "cancel", EMAIL, kill_at=step)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert the_session(app).state == "restoring"
    with app.app_context():
        assert control.cancel(household(app), actor="owner@example.com") is False  # accepted: being put back
    recover(app, simulator, before)


def test_a_fresh_start_is_not_taken_over(home, simulator):
    """The control job leaves a session alone while its process may still be working on it."""
    app, env, before = home
    result = run_flask(env, "force", "start", EMAIL, "force_charge", "30", kill_at="after_grid")
    assert result.returncode == -signal.SIGKILL
    app.extensions["clock"] = FakeClock(datetime.now(timezone.utc) + timedelta(seconds=30))
    with app.app_context():
        control.check_sessions(app.extensions["clock"]())
    assert the_session(app).state == "starting"
    recover(app, simulator, before)


def test_a_paused_start_that_was_taken_over_sends_nothing_more(home, simulator):
    """A start paused past STALE_AFTER (a frozen VM or container) is taken over and put back; when it wakes up
    it sends no more forcing commands and does not bring the session back to life."""
    app, env, before = home
    child = subprocess.Popen([sys.executable, "-m", "flask", "force", "start", EMAIL, "force_charge", "30"], cwd=BASE_DIR,
                             env={**env, control.FAULT_STOP_ENV: "after_operation"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until_stopped(child)
        assert powerwall(simulator)["default_real_mode"] == "autonomous"  # one forcing command sent
        recover(app, simulator, before)  # another process takes it over and puts everything back
    finally:
        child.send_signal(signal.SIGCONT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1 and "took the session over" in err, err
    assert powerwall(simulator) == before
    assert the_session(app).state == "ended"


def test_a_paused_restore_that_was_taken_over_does_not_undo_a_new_force(home, simulator):
    """A restore paused past STALE_AFTER is finished by another process, and the household forces again; when the
    paused process wakes up it sends nothing (its old restore commands would undo the new force)."""
    app, env, before = home
    assert run_flask(env, "force", "start", EMAIL, "force_charge", "30").returncode == 0
    child = subprocess.Popen([sys.executable, "-m", "flask", "force", "cancel", EMAIL], cwd=BASE_DIR,
                             env={**env, control.FAULT_STOP_ENV: "restore_after_tariff"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until_stopped(child)
        recover(app, simulator, before)
        with app.app_context():
            assert control.start(household(app), "force_discharge", 30, actor="owner@example.com").state == "active"
        forced = powerwall(simulator)
        assert forced["customer_preferred_export_rule"] == "battery_ok"
    finally:
        child.send_signal(signal.SIGCONT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert powerwall(simulator) == forced  # the new force is untouched
    with app.app_context():
        assert control.live_session(household(app)).action == "force_discharge"
        assert control.cancel(household(app), actor="owner@example.com") is True
    assert powerwall(simulator) == before


@pytest.mark.parametrize(
    ("state", "age", "ends_in", "expected"),
    [
        ("starting", timedelta(seconds=30), timedelta(minutes=30), "wait"),
        ("starting", timedelta(minutes=2), timedelta(minutes=30), "restore"),
        ("restoring", timedelta(minutes=1), timedelta(minutes=-5), "wait"),
        ("restoring", timedelta(minutes=3), timedelta(minutes=-5), "restore"),
        ("active", timedelta(hours=1), timedelta(minutes=5), "verify"),
        ("active", timedelta(seconds=1), timedelta(seconds=0), "restore"),
        ("ended", timedelta(hours=1), timedelta(minutes=-5), "wait"),
    ],
)
def test_session_action(state, age, ends_in, expected):
    now = datetime(2026, 12, 4, 3, 0, tzinfo=timezone.utc)
    assert control.session_action(state, now - age, now + ends_in, now) == expected
