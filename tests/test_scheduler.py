"""The scheduler: tick alignment (pure), the leader lease and tick claims (both backends, injected
clock), the scheduler's decisions and how it is started. Nothing here sleeps; the tests with real
processes are in test_scheduler_processes.py."""
from __future__ import annotations

import logging
import runpy
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.schedulers.base import STATE_RUNNING
from flask import current_app

from app.sync import lease
from app.sync import scheduler as sched
from app.sync.scheduler import AlignedTrigger, LeaderJob, Scheduler, next_tick, tick_for
from config import ConfigError, config_for

ROOT = Path(__file__).resolve().parents[1]
TTL = timedelta(seconds=60)
NAME = "test-lease"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --- Alignment (pure) ---------------------------------------------------------------------------

FIVE_MIN, THREE_S = timedelta(minutes=5), timedelta(seconds=3)


@pytest.mark.parametrize(
    ("now", "period", "delay", "tick", "following"),
    [
        # Amber's intervals, starting 3 s after each boundary.
        (utc(2026, 11, 24, 3, 0, 3), FIVE_MIN, THREE_S, utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 5, 3)),
        (utc(2026, 11, 24, 3, 0, 2), FIVE_MIN, THREE_S, utc(2026, 11, 24, 2, 55), utc(2026, 11, 24, 3, 0, 3)),
        (utc(2026, 11, 24, 3, 0, 0), FIVE_MIN, THREE_S, utc(2026, 11, 24, 2, 55), utc(2026, 11, 24, 3, 0, 3)),
        (utc(2026, 11, 24, 3, 4, 59), FIVE_MIN, THREE_S, utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 5, 3)),
        (utc(2026, 11, 24, 3, 7, 30), FIVE_MIN, THREE_S, utc(2026, 11, 24, 3, 5), utc(2026, 11, 24, 3, 10, 3)),
        # Across midnight UTC and the end of a year.
        (utc(2026, 12, 31, 23, 58, 0), FIVE_MIN, THREE_S, utc(2026, 12, 31, 23, 55), utc(2027, 1, 1, 0, 0, 3)),
        (utc(2027, 1, 1, 0, 0, 1), FIVE_MIN, THREE_S, utc(2026, 12, 31, 23, 55), utc(2027, 1, 1, 0, 0, 3)),
        # No delay: a run exactly on the boundary belongs to it.
        (utc(2026, 11, 24, 3, 5, 0), FIVE_MIN, timedelta(0), utc(2026, 11, 24, 3, 5), utc(2026, 11, 24, 3, 10)),
        # Microseconds just before the start time.
        (utc(2026, 11, 24, 3, 5, 2, 999_999), FIVE_MIN, THREE_S, utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 5, 3)),
        # The test knob: one-second ticks, 0.2 s in.
        (utc(2026, 11, 24, 3, 0, 7, 500_000), timedelta(seconds=1), timedelta(milliseconds=200),
         utc(2026, 11, 24, 3, 0, 7), utc(2026, 11, 24, 3, 0, 8, 200_000)),
    ],
)
def test_tick_for_and_next_tick(now, period, delay, tick, following):
    assert tick_for(now, period, delay) == tick
    assert next_tick(now, period, delay) == following
    assert next_tick(now, period, delay) > now
    assert tick_for(next_tick(now, period, delay), period, delay) == following - delay


def test_defaults_are_amber_intervals_three_seconds_in():
    now = utc(2026, 11, 24, 3, 1, 0)
    assert next_tick(now) == utc(2026, 11, 24, 3, 5, 3)
    assert tick_for(now) == utc(2026, 11, 24, 3, 0)


def test_ticks_land_on_five_minute_utc_boundaries_all_day():
    at = utc(2026, 11, 24, 0, 0, 0)
    seen = []
    for _ in range(288):
        at = next_tick(at)
        seen.append(at)
    assert all(t.minute % 5 == 0 and t.second == 3 and t.microsecond == 0 for t in seen)
    assert all(b - a == FIVE_MIN for a, b in zip(seen, seen[1:]))
    assert (seen[0], seen[-1]) == (utc(2026, 11, 24, 0, 0, 3), utc(2026, 11, 24, 23, 55, 3))  # 288 a day


def test_aligned_trigger_follows_next_tick_and_moves_forward_from_the_previous_fire_time():
    trigger = AlignedTrigger(FIVE_MIN, THREE_S)
    now = utc(2026, 11, 24, 3, 1, 0)
    assert trigger.get_next_fire_time(None, now) == utc(2026, 11, 24, 3, 5, 3)
    # APScheduler's catch-up loop after a long pause: every call moves one interval on, so it ends.
    previous = utc(2026, 11, 24, 2, 50, 3)
    assert trigger.get_next_fire_time(previous, now) == utc(2026, 11, 24, 2, 55, 3)


# --- The lease (both backends, injected clock) --------------------------------------------------

def test_first_holder_acquires_and_renews_keeping_its_start(app, clock):
    with app.app_context():
        t0 = clock()
        assert lease.try_acquire_or_renew(NAME, "a", t0, TTL)
        clock.advance(seconds=20)
        assert lease.try_acquire_or_renew(NAME, "a", clock(), TTL)
        held = lease.current_holder(NAME, clock())
        assert held is not None and held.holder == "a"
        assert held.acquired_at == t0 and held.renewed_at == clock() and held.expires_at == clock() + TTL


def test_a_live_lease_cannot_be_taken_and_an_expired_one_is_taken_over(app, clock):
    with app.app_context():
        assert lease.try_acquire_or_renew(NAME, "a", clock(), TTL)
        clock.advance(seconds=59)
        assert not lease.try_acquire_or_renew(NAME, "b", clock(), TTL)
        clock.advance(seconds=1)  # expires_at == now: not yet free
        assert not lease.try_acquire_or_renew(NAME, "b", clock(), TTL)
        clock.advance(seconds=1)
        assert lease.try_acquire_or_renew(NAME, "b", clock(), TTL)
        held = lease.current_holder(NAME, clock())
        assert held.holder == "b" and held.acquired_at == clock()
        # The old holder wakes up: it cannot renew a lease someone else took.
        assert not lease.try_acquire_or_renew(NAME, "a", clock(), TTL)
        assert lease.current_holder(NAME, clock()).holder == "b"


def test_release_frees_the_lease_at_once_but_only_for_its_holder(app, clock):
    with app.app_context():
        assert lease.try_acquire_or_renew(NAME, "a", clock(), TTL)
        assert not lease.release(NAME, "b", clock())
        assert lease.current_holder(NAME, clock()).holder == "a"
        assert lease.release(NAME, "a", clock())
        assert lease.current_holder(NAME, clock()) is None
        assert not lease.release(NAME, "a", clock())  # twice is harmless
        clock.advance(milliseconds=1)
        assert lease.try_acquire_or_renew(NAME, "b", clock(), TTL)


def test_nobody_holds_a_lease_that_was_never_taken(app, clock):
    with app.app_context():
        assert lease.current_holder(NAME, clock()) is None and lease.read_lease(NAME) is None
        assert not lease.claim_tick(NAME, "a", utc(2026, 11, 24, 3, 0), clock())
        assert not lease.release(NAME, "a", clock())


def test_each_tick_is_claimed_once_across_holders(app, clock):
    t1, t2, t3 = utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 5), utc(2026, 11, 24, 3, 10)
    with app.app_context():
        assert lease.try_acquire_or_renew(NAME, "a", clock(), TTL)
        assert lease.claim_tick(NAME, "a", t1, clock())
        assert not lease.claim_tick(NAME, "a", t1, clock())  # the same tick again
        assert not lease.claim_tick(NAME, "b", t2, clock())  # not the holder
        assert lease.claim_tick(NAME, "a", t2, clock())
        assert not lease.claim_tick(NAME, "a", t1, clock())  # an older tick
        clock.advance(seconds=61)
        assert not lease.claim_tick(NAME, "a", t3, clock())  # its lease expired
        assert lease.try_acquire_or_renew(NAME, "b", clock(), TTL)
        assert not lease.claim_tick(NAME, "b", t2, clock())  # claimed under the old leader
        assert not lease.claim_tick(NAME, "a", t3, clock())  # the old leader, awake again
        assert lease.claim_tick(NAME, "b", t3, clock())
        assert lease.read_lease(NAME).last_tick_at == t3


def test_concurrent_acquires_have_exactly_one_winner(app, clock):
    """Real threads race on the same row (first insert, then takeovers of an expired lease)."""
    contenders = 6

    def race(round_: int) -> list[str]:
        barrier, winners = threading.Barrier(contenders), []
        now = clock()

        def contend(i: int) -> None:
            with app.app_context():
                barrier.wait(timeout=10)
                if lease.try_acquire_or_renew(NAME, f"h{round_}-{i}", now, TTL):
                    winners.append(f"h{round_}-{i}")

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        return winners

    for round_ in range(4):
        winners = race(round_)
        assert len(winners) == 1, winners
        with app.app_context():
            assert lease.current_holder(NAME, clock()).holder == winners[0]
        clock.advance(seconds=61)


@pytest.mark.parametrize(
    ("holder", "pid"), [("web-1:4242:0a1b2c3d", 4242), ("h:o:s:t:7:ab", 7), ("odd", None), ("h:x:ab", None)]
)
def test_holder_pid(holder, pid):
    assert lease.holder_pid(holder) == pid


def test_holder_ids_differ_per_call_and_name_this_process():
    import os

    a, b = lease.new_holder_id(), lease.new_holder_id()
    assert a != b and lease.holder_pid(a) == os.getpid() and len(a) <= 128


# --- The scheduler's decisions (injected clock, no threads) -------------------------------------

class Recorder:
    """A tick job that records its ticks and that it ran inside an app context."""

    def __init__(self, fail: bool = False) -> None:
        self.ticks: list[datetime] = []
        self.fail = fail

    def __call__(self, tick_at: datetime) -> None:
        assert current_app  # inside an app context
        self.ticks.append(tick_at)
        if self.fail:
            raise RuntimeError("boom")


def make_scheduler(app, holder: str, job=None) -> Scheduler:
    return Scheduler(app, tick_job=job or Recorder(), holder=holder)


def elapse(clock, seconds: int, *schedulers: Scheduler) -> None:
    """Let time pass while each scheduler's lease job renews every 15 s, as its thread would."""
    for _ in range(seconds // 15):
        clock.advance(seconds=15)
        for s in schedulers:
            s.renew_lease()


def test_only_the_leader_runs_a_tick_and_only_once_per_interval(app, clock):
    clock.current = utc(2026, 11, 24, 3, 0, 3)
    a, b = make_scheduler(app, "a"), make_scheduler(app, "b")
    assert a.renew_lease() is True and b.renew_lease() is False
    assert a.run_due_tick() and not b.run_due_tick() and not a.run_due_tick()
    elapse(clock, 120, a, b)  # a second run in the same interval
    assert not a.run_due_tick()
    elapse(clock, 180, a, b)
    assert not b.run_due_tick() and a.run_due_tick()
    assert a.tick_job.ticks == [utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 5)]
    assert b.tick_job.ticks == []


def test_a_new_leader_takes_over_without_repeating_a_tick(app, clock, caplog):
    caplog.set_level(logging.INFO, logger="app.sync.scheduler")
    clock.current = utc(2026, 11, 24, 3, 0, 3)
    a, b = make_scheduler(app, "a"), make_scheduler(app, "b")
    assert a.run_due_tick()  # acquires the lease on its way
    # `a` stops (killed, or paused); `b` keeps trying and gets the lease once it expires.
    clock.advance(seconds=30)
    assert b.renew_lease() is False and not b.run_due_tick()
    clock.advance(seconds=31)
    assert b.renew_lease() is True and b.is_leader
    assert not b.run_due_tick()  # 03:00 was run by `a`
    elapse(clock, 240, b)
    assert clock() == utc(2026, 11, 24, 3, 5, 4)
    # `a` wakes up: it learns it lost the lease and runs nothing.
    assert not a.run_due_tick() and not a.is_leader
    assert b.run_due_tick()
    assert a.tick_job.ticks == [utc(2026, 11, 24, 3, 0)] and b.tick_job.ticks == [utc(2026, 11, 24, 3, 5)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("(a) is now the leader" in m for m in messages) == 1
    assert sum("(b) is now the leader" in m for m in messages) == 1
    assert sum("(a) is no longer the leader" in m for m in messages) == 1


def test_a_new_leader_runs_the_current_tick_at_once_if_nobody_did(app, clock, monkeypatch):
    clock.current = utc(2026, 11, 24, 3, 0, 40)
    s = make_scheduler(app, "a")
    soon = []
    monkeypatch.setattr(s, "run_soon", lambda func, job_id: soon.append((func, job_id)))
    s._lease_job()
    # The tick, and the force-control job (a session its process left half-way is finished at start-up).
    assert [job_id for _, job_id in soon] == ["tick-on-takeover", "force-control-on-takeover"]
    assert soon[0] == (s.run_due_tick, "tick-on-takeover")
    soon[0][0]()
    assert s.tick_job.ticks == [utc(2026, 11, 24, 3, 0)]
    ran = []
    monkeypatch.setattr("app.sync.scheduler.import_string", lambda target: lambda now: ran.append(target))
    soon[1][0]()
    assert ran == ["app.control:check_sessions"]
    s._lease_job()  # a renewal is not a takeover
    assert len(soon) == 2


def test_a_failing_tick_is_logged_and_the_next_one_still_runs(app, clock, caplog):
    caplog.set_level(logging.INFO, logger="app.sync.scheduler")
    clock.current = utc(2026, 11, 24, 3, 0, 3)
    job = Recorder(fail=True)
    s = make_scheduler(app, "a", job)
    assert s.run_due_tick()
    assert any(r.levelno == logging.ERROR and "failed" in r.getMessage() and r.exc_info for r in caplog.records)
    clock.advance(minutes=5)
    assert s.run_due_tick()
    assert len(job.ticks) == 2


def test_scheduler_job_wrapper_never_lets_an_exception_out(caplog):
    def broken() -> None:
        raise ValueError("database is down")

    Scheduler._guarded(broken)()  # returns normally
    assert "Scheduler job failed" in caplog.text


def test_a_database_error_on_renewal_is_logged_and_means_not_leader(app, clock, monkeypatch, caplog):
    s = make_scheduler(app, "a")
    assert s.renew_lease() is True

    def fail(*args, **kwargs):
        raise RuntimeError("connection refused")

    monkeypatch.setattr(lease, "try_acquire_or_renew", fail)
    assert s.renew_lease() is False and not s.is_leader
    assert "could not reach the database" in caplog.text


def test_leader_jobs_run_only_on_the_leader_inside_an_app_context(app, clock, monkeypatch):
    calls = []
    monkeypatch.setattr(sched, "import_string", lambda target: lambda now: calls.append((target, now, bool(current_app))))
    job = LeaderJob("expire-force-charges", "app.control:expire_sessions", 60)
    a, b = make_scheduler(app, "a"), make_scheduler(app, "b")
    a.renew_lease(), b.renew_lease()
    assert a.run_leader_job(job) and not b.run_leader_job(job)
    assert calls == [("app.control:expire_sessions", clock(), True)]


def test_the_tick_job_comes_from_config_and_defaults_to_the_sync(app):
    from tests.scheduler_helpers import record_tick

    assert sched.tick_job_from_config({"SCHEDULER_TICK_JOB": None}) is sched.run_sync_tick
    assert sched.tick_job_from_config({"SCHEDULER_TICK_JOB": "tests.scheduler_helpers:record_tick"}) is record_tick
    assert Scheduler(app).tick_job is sched.run_sync_tick


def test_status_shows_the_leader_last_tick_and_next_tick(app, clock):
    clock.current = utc(2026, 11, 24, 3, 1, 0)
    with app.app_context():
        state = sched.status()
        assert state.leader is None and state.last_tick_at is None
        assert state.next_tick_at == utc(2026, 11, 24, 3, 5, 3)
    s = make_scheduler(app, "web-1:42:abcd")
    s.run_due_tick()
    with app.app_context():
        state = sched.status()
        assert state.leader.holder == "web-1:42:abcd" and state.leader.expires_at == clock() + TTL
        assert state.last_tick_at == utc(2026, 11, 24, 3, 0)
        clock.advance(minutes=2)
        assert sched.status().leader is None  # expired: nobody leads
        assert sched.status().last_tick_at == utc(2026, 11, 24, 3, 0)


def test_cli_status(app, runner, clock):
    clock.current = utc(2026, 11, 24, 3, 1, 0)
    result = runner.invoke(args=["scheduler", "status"])
    assert result.exit_code == 0, result.output
    assert "Leader: none" in result.output and "Last tick: never" in result.output
    assert "Next tick: 2026-11-24T03:05:03+00:00" in result.output
    make_scheduler(app, "web-1:42:abcd").run_due_tick()
    result = runner.invoke(args=["scheduler", "status"])
    assert "Leader: web-1:42:abcd since 2026-11-24T03:01:00+00:00" in result.output
    assert "Last tick: 2026-11-24T03:00:00+00:00" in result.output


# --- Starting and stopping (real APScheduler threads; nothing waits for a tick) ------------------

def test_stop_while_a_job_adds_a_job_does_not_deadlock(app):
    # APScheduler's shutdown(wait=True) holds its job-store lock while it waits for running jobs; a
    # lease takeover adding its catch-up tick right then used to wait for that lock forever.
    s = Scheduler(app, tick_job=Recorder(), leader_jobs=())
    adding, shutting_down = threading.Event(), threading.Event()
    leader = threading.Event()  # once set, every lease job "becomes leader" and asks for the catch-up tick
    s.renew_lease = leader.is_set
    s.start()
    aps = s._aps
    real_add_job, executor = aps.add_job, aps._lookup_executor("default")
    real_shutdown = executor.shutdown

    def slow_add_job(*args, **kwargs):
        adding.set()
        shutting_down.wait(1)  # without the fix, stop() is inside shutdown by now
        return real_add_job(*args, **kwargs)

    def shutdown(wait=True):
        shutting_down.set()
        real_shutdown(wait)

    aps.add_job, executor.shutdown = slow_add_job, shutdown
    leader.set()
    for _ in range(50):  # APScheduler skips a run while the previous lease run is still under way: ask again
        aps.modify_job("lease", next_run_time=datetime.now(timezone.utc))
        if adding.wait(0.1):
            break
    assert adding.is_set()
    stopper = threading.Thread(target=s.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "stop() deadlocked with a job adding a job"


def test_start_registers_aligned_jobs_and_stop_releases_the_lease(app, clock):
    s = Scheduler(app, tick_job=Recorder(), leader_jobs=(LeaderJob("expire", "x:y", 60),))
    s.start()
    try:
        jobs = {job.id: job for job in s._aps.get_jobs()}
        assert {"lease", "tick", "expire"} <= set(jobs)
        tick = jobs["tick"]
        assert isinstance(tick.trigger, AlignedTrigger) and tick.coalesce and tick.max_instances == 1
        assert tick.misfire_grace_time == 300
        fire = tick.next_run_time
        assert fire.minute % 5 == 0 and fire.second == 3
        s.start()  # a second start is a no-op
    finally:
        s.stop()
    with app.app_context():
        assert lease.current_holder(sched.LEASE_NAME, clock()) is None
    assert not s.is_leader
    s.stop()  # twice is harmless


def test_embedded_scheduler_is_not_started_when_off_or_testing(app):
    assert app.config["SCHEDULER"] == "off" and sched.start_embedded(app) is None
    app.config["SCHEDULER"] = "embedded"  # but TESTING
    assert sched.start_embedded(app) is None


def test_embedded_scheduler_starts_once_per_process(app, monkeypatch):
    app.config.update(SCHEDULER="embedded", TESTING=False)
    monkeypatch.setattr(sched.atexit, "register", lambda func: None)
    first = sched.start_embedded(app, tick_job=Recorder())
    try:
        assert first is not None and first._aps is not None
        assert sched.start_embedded(app, tick_job=Recorder()) is first
    finally:
        sched.stop_embedded()
    assert first._aps is None and sched._embedded is None
    sched.stop_embedded()  # nothing left to stop


def test_stopping_while_a_one_shot_job_is_handed_out_kills_no_thread(app, monkeypatch):
    """APScheduler's shutdown marks the scheduler stopped before it takes its job stores' lock. A one-shot job
    (a leader job run at takeover) being handed to the executor at that moment was then looked for among the
    never-started jobs only, and the scheduler's thread died with JobLookupError (seen in CI). Stopping
    waits for the hand-out instead, and the job still runs."""
    from apscheduler.executors.pool import ThreadPoolExecutor

    handing_out, release, ran = threading.Event(), threading.Event(), threading.Event()
    submit = ThreadPoolExecutor.submit_job

    def held_submit(self, job, run_times):
        if job.id == "held":
            handing_out.set()
            release.wait(10)
        return submit(self, job, run_times)

    errors: list[BaseException] = []
    monkeypatch.setattr(ThreadPoolExecutor, "submit_job", held_submit)
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    recorder = Recorder()
    scheduler = Scheduler(app, tick_job=recorder, leader_jobs=())
    scheduler.start()
    aps = scheduler._aps
    # The start-up lease job makes this process the leader and queues the interval's tick (holding the
    # scheduler's own lock meanwhile); once that tick has run, nothing else is queued for minutes.
    deadline = time.monotonic() + 10
    while not recorder.ticks and time.monotonic() < deadline:
        handing_out.wait(0.01)
    assert recorder.ticks
    scheduler.run_soon(ran.set, "held")
    assert handing_out.wait(10)
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    while aps.state == STATE_RUNNING and stopper.is_alive():  # until stop() has begun shutting down
        stopper.join(0.01)
    release.set()
    stopper.join(10)
    assert not stopper.is_alive() and scheduler._aps is None  # shutdown joined the scheduler's thread
    assert errors == [] and ran.is_set()


@pytest.mark.parametrize(
    ("use_reloader", "run_main", "watcher"),
    [(False, None, False), (True, None, True), (True, "true", False), (False, "true", False)],
)
def test_only_the_reloader_child_schedules(monkeypatch, use_reloader, run_main, watcher):
    if run_main is None:
        monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    else:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", run_main)
    assert sched.is_reloader_watcher(use_reloader) is watcher


def test_run_forever_stops_on_its_event_and_releases_the_lease(app, clock):
    stop = threading.Event()
    stop.set()
    sched.run_forever(app, stop=stop, tick_job=Recorder())
    with app.app_context():
        assert lease.current_holder(sched.LEASE_NAME, clock()) is None


# --- Configuration knobs ------------------------------------------------------------------------

def test_scheduler_knobs_default_to_amber_intervals(monkeypatch):
    for name in ("SCHEDULER_TICK_SECONDS", "SCHEDULER_TICK_DELAY_SECONDS", "SCHEDULER_LEASE_TTL_SECONDS",
                 "SCHEDULER_LEASE_RENEW_SECONDS", "SCHEDULER_TICK_JOB"):
        monkeypatch.delenv(name, raising=False)
    config = config_for("production")
    assert (config.SCHEDULER_TICK_SECONDS, config.SCHEDULER_TICK_DELAY_SECONDS) == (300, 3)
    assert (config.SCHEDULER_LEASE_TTL_SECONDS, config.SCHEDULER_LEASE_RENEW_SECONDS) == (60, 15)
    assert config.SCHEDULER_TICK_JOB is None


def test_scheduler_knobs_for_fast_tests(monkeypatch):
    monkeypatch.setenv("SCHEDULER_TICK_SECONDS", "1")
    monkeypatch.setenv("SCHEDULER_TICK_DELAY_SECONDS", "0.2")
    monkeypatch.setenv("SCHEDULER_LEASE_TTL_SECONDS", "1.5")
    monkeypatch.setenv("SCHEDULER_LEASE_RENEW_SECONDS", "0.25")
    config = config_for("production")
    assert (config.SCHEDULER_TICK_SECONDS, config.SCHEDULER_TICK_DELAY_SECONDS) == (1, 0.2)
    assert (config.SCHEDULER_LEASE_TTL_SECONDS, config.SCHEDULER_LEASE_RENEW_SECONDS) == (1.5, 0.25)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCHEDULER_TICK_SECONDS": "7"}, "SCHEDULER_TICK_SECONDS must divide an hour"),
        ({"SCHEDULER_TICK_SECONDS": "0"}, "SCHEDULER_TICK_SECONDS must be at least 1"),
        ({"SCHEDULER_TICK_SECONDS": "2.5"}, "SCHEDULER_TICK_SECONDS must be an integer"),
        ({"SCHEDULER_TICK_DELAY_SECONDS": "300"}, "SCHEDULER_TICK_DELAY_SECONDS must be shorter"),
        ({"SCHEDULER_TICK_DELAY_SECONDS": "-1"}, "SCHEDULER_TICK_DELAY_SECONDS must be at least 0"),
        ({"SCHEDULER_LEASE_TTL_SECONDS": "soon"}, "SCHEDULER_LEASE_TTL_SECONDS must be a number"),
        ({"SCHEDULER_LEASE_RENEW_SECONDS": "60"}, "SCHEDULER_LEASE_RENEW_SECONDS must be shorter"),
    ],
)
def test_invalid_scheduler_knobs_fail_fast(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        config_for("production")


# --- gunicorn.conf.py ----------------------------------------------------------------------------

def load_gunicorn_conf() -> dict:
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_conf_defaults(monkeypatch):
    for name in ("HOST", "PORT", "GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_KEEPALIVE"):
        monkeypatch.setenv(name, "")
    conf = load_gunicorn_conf()
    assert conf["bind"] == "127.0.0.1:5001" and conf["workers"] == 2 and conf["threads"] == 4
    assert conf["keepalive"] == 0  # connections are not pinned to one worker (docs/performance.md)
    assert conf["preload_app"] is False


def test_gunicorn_conf_from_environment(monkeypatch):
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "8000")
    monkeypatch.setenv("GUNICORN_WORKERS", "4")
    monkeypatch.setenv("GUNICORN_THREADS", "8")
    monkeypatch.setenv("GUNICORN_KEEPALIVE", "5")
    conf = load_gunicorn_conf()
    assert conf["bind"] == "0.0.0.0:8000" and conf["workers"] == 4 and conf["threads"] == 8 and conf["keepalive"] == 5


def test_gunicorn_hooks_start_and_stop_the_worker_scheduler(app, monkeypatch):
    conf = load_gunicorn_conf()
    started, stopped = [], []
    monkeypatch.setattr(sched, "start_embedded", lambda application: started.append(application))
    monkeypatch.setattr(sched, "stop_embedded", lambda: stopped.append(True))

    class Worker:
        wsgi = app

    conf["post_worker_init"](Worker())
    conf["worker_exit"](None, Worker())
    assert started == [app] and stopped == [True]


def test_each_tick_pings_the_heartbeat_monitor_and_a_failed_ping_changes_nothing(app, monkeypatch, caplog):
    import responses

    from app.sync import scheduler as sched_module

    ticks = []
    monkeypatch.setattr("app.sync.run_tick", lambda tick_at: ticks.append(tick_at) or [])
    url = "https://hc-ping.example/8f2c0e5a-secret-uuid"
    with app.app_context(), responses.RequestsMock() as mock:
        mock.get(url, body="OK")
        app.config["HEALTHCHECK_PING_URL"] = url
        sched_module.run_sync_tick(utc(2026, 11, 24, 3, 0))
        assert len(mock.calls) == 1 and ticks == [utc(2026, 11, 24, 3, 0)]
        mock.replace(responses.GET, url, status=500)
        assert sched_module.run_sync_tick(utc(2026, 11, 24, 3, 5)) == []  # the tick itself is unaffected
        assert "Heartbeat ping to hc-ping.example answered HTTP 500" in caplog.text and "secret-uuid" not in caplog.text
        app.config["HEALTHCHECK_PING_URL"] = None
        sched_module.run_sync_tick(utc(2026, 11, 24, 3, 10))
        assert len(mock.calls) == 2  # no URL, no ping
