"""The scheduler: sync ticks aligned to Amber's 5-minute intervals, run exactly once across processes.

Every process that runs a scheduler (each gunicorn worker, `python run.py`, `flask scheduler run`) fires
the same jobs, but only the holder of the database lease (app/sync/lease.py) does the work, and a tick runs
only after the holder's claim on it succeeds in the database. So each tick runs once even with several
workers, several app instances on one database, or an old leader that wakes up after losing the lease.

This module only schedules: job bodies are plain functions (the tick job is `app.sync.run_tick`), each
run inside an app context; an exception in a job is logged and never stops the scheduler.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask, current_app
from werkzeug.utils import import_string

from app import clock
from app.sync import lease

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
AMBER_INTERVAL = timedelta(minutes=5)
TICK_DELAY = timedelta(seconds=3)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

TickJob = Callable[[datetime], object]


# --- When ticks happen (pure) -------------------------------------------------------------------

def tick_for(now: datetime, period: timedelta = AMBER_INTERVAL, delay: timedelta = TICK_DELAY) -> datetime:
    """The interval boundary a run at `now` belongs to: the latest boundary whose start time (+ delay) has come."""
    step = _whole_microseconds(period)
    since_epoch = _whole_microseconds(now - delay - _EPOCH)
    return _EPOCH + timedelta(microseconds=since_epoch - since_epoch % step)


def next_tick(now: datetime, period: timedelta = AMBER_INTERVAL, delay: timedelta = TICK_DELAY) -> datetime:
    """When the next tick starts after `now` (strictly later): the next boundary plus `delay`."""
    return tick_for(now, period, delay) + period + delay


def _whole_microseconds(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


class AlignedTrigger(BaseTrigger):
    """An APScheduler trigger firing at every `period` boundary (UTC, from the epoch) plus `delay`."""

    __slots__ = ("period", "delay")

    def __init__(self, period: timedelta, delay: timedelta) -> None:
        self.period = period
        self.delay = delay

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        # From the previous fire time, so APScheduler's catch-up loop always moves forward (and then
        # coalesces what it missed into one run).
        return next_tick(previous_fire_time or now, self.period, self.delay)

    def __repr__(self) -> str:
        return f"<AlignedTrigger period={self.period} delay={self.delay}>"


# --- What runs --------------------------------------------------------------------------------

def run_sync_tick(tick_at: datetime) -> object:
    """The tick job: sync every household's tariff for the interval starting at `tick_at`, then tell the
    heartbeat monitor (HEALTHCHECK_PING_URL) that a tick ran, so the owner hears when the app stops."""
    from app.mqtt.bridge import after_tick as mqtt_after_tick
    from app.sync import run_tick  # imported when the first tick runs, not when the app starts

    results = run_tick(tick_at)
    ping_heartbeat(current_app.config.get("HEALTHCHECK_PING_URL"))
    mqtt_after_tick()  # Home Assistant's states (app/mqtt/), published on the MQTT bridge's own thread
    return results


def ping_heartbeat(url: str | None, session: requests.Session | None = None) -> bool:
    """GET the heartbeat URL (healthchecks.io, an Uptime Kuma push monitor); True if it answered 2xx.

    A failed ping is logged (host only: the URL's path is its secret) and never stops the scheduler."""
    if not url:
        return False
    host = urlsplit(url).hostname or "?"
    try:
        response = (session or requests).get(url, timeout=10)
    except requests.RequestException as exc:
        log.warning("Heartbeat ping to %s failed (%s)", host, type(exc).__name__)
        return False
    if not response.ok:
        log.warning("Heartbeat ping to %s answered HTTP %s", host, response.status_code)
        return False
    return True


@dataclass(frozen=True)
class LeaderJob:
    """A periodic job that only the leader runs, e.g. expiring force-charge sessions.

    Unlike the tick it is not claimed per run: it must be idempotent (a leader change can overlap two
    runs by a few seconds). `target` is "module:function" taking `now`, imported when it first runs."""

    name: str
    target: str
    every_seconds: float
    on_takeover: bool = False  # also run at once when this process becomes the leader (e.g. at start-up)


# Leader-only periodic jobs besides the tick: adding a job is one line here.
LEADER_JOBS: tuple[LeaderJob, ...] = (
    # Restore force sessions that ended (also ones missed while the app was down); verify active ones.
    # At start-up too: a session its process left half-way (killed mid-start) is finished at once.
    LeaderJob("force-control", "app.control:check_sessions", every_seconds=30, on_takeover=True),
    # Deliver queued notifications (app/notify/outbox.py): due messages, retries after backoff.
    LeaderJob("notify", "app.notify.service:deliver", every_seconds=60),
    # Home Assistant over MQTT (off unless MQTT_URL): hold the connection, publish what force control or a sync changed.
    LeaderJob("mqtt", "app.mqtt.bridge:publish_changes", every_seconds=15),
    # Delete old sync runs, tariff pushes and prices in small committed batches (app/retention.py).
    LeaderJob("retention", "app.retention:purge_old_rows", every_seconds=3600),
    # Import Amber usage and Tesla energy history for the Money page, each household once a day (app/money).
    LeaderJob("money-import", "app.money.importer:import_due", every_seconds=3600),
)


def tick_job_from_config(config: dict) -> TickJob:
    """The tick job named by SCHEDULER_TICK_JOB (tests only), else the tariff sync."""
    target = config.get("SCHEDULER_TICK_JOB")
    return import_string(target) if target else run_sync_tick


# --- The scheduler ----------------------------------------------------------------------------

class Scheduler:
    """The periodic jobs of one process and its part in the leader election.

    `renew_lease()` and `run_due_tick()` are the decisions, made with the app's clock; `start()` and
    `stop()` drive them from APScheduler's background thread."""

    def __init__(
        self,
        app: Flask,
        *,
        tick_job: TickJob | None = None,
        leader_jobs: tuple[LeaderJob, ...] = LEADER_JOBS,
        holder: str | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.tick_job = tick_job or tick_job_from_config(config)
        self.leader_jobs = leader_jobs
        self.holder = holder or lease.new_holder_id()
        self.period = timedelta(seconds=config["SCHEDULER_TICK_SECONDS"])
        self.delay = timedelta(seconds=config["SCHEDULER_TICK_DELAY_SECONDS"])
        self.ttl = timedelta(seconds=config["SCHEDULER_LEASE_TTL_SECONDS"])
        self.renew_every = float(config["SCHEDULER_LEASE_RENEW_SECONDS"])
        self.is_leader = False
        self._leader_lock = threading.Lock()
        # Held while a job adds a job and while stop() takes the scheduler away: APScheduler's
        # shutdown(wait=True) holds its job-store lock while it waits for running jobs, so a job
        # adding one after shutdown began would wait for that lock forever (and stop() for the job).
        self._aps_lock = threading.Lock()
        self._aps: BackgroundScheduler | None = None

    # Decisions -------------------------------------------------------------------------------

    def renew_lease(self) -> bool:
        """Take or extend the lease; True if this process became leader just now (it was not before)."""
        with self.app.app_context():
            now = clock.now()
            try:
                holds = lease.try_acquire_or_renew(LEASE_NAME, self.holder, now, self.ttl)
            except Exception:
                log.exception("Scheduler lease: could not reach the database")
                holds = False
        return self._set_leader(holds)

    def _set_leader(self, holds: bool) -> bool:
        with self._leader_lock:
            was, self.is_leader = self.is_leader, holds
        if holds and not was:
            log.info("Scheduler: this process (%s) is now the leader and runs the ticks", self.holder)
        elif was and not holds:
            log.info("Scheduler: this process (%s) is no longer the leader", self.holder)
        return holds and not was

    def run_due_tick(self) -> bool:
        """Run the tick of the current interval here if this process is the leader and nobody ran it yet."""
        self.renew_lease()  # a tick never waits for the next renewal to notice an expired lease
        with self.app.app_context():
            now = clock.now()
            tick_at = tick_for(now, self.period, self.delay)
            if not lease.claim_tick(LEASE_NAME, self.holder, tick_at, now):
                return False
            log.info("Tick %s: started", tick_at.isoformat())
            started = time.monotonic()
            try:
                self.tick_job(tick_at)
            except Exception:
                log.exception("Tick %s: failed after %.1f s", tick_at.isoformat(), time.monotonic() - started)
            else:
                log.info("Tick %s: finished in %.1f s", tick_at.isoformat(), time.monotonic() - started)
        return True

    def run_leader_job(self, job: LeaderJob) -> bool:
        """Run `job` inside an app context if this process is the leader; True if it ran."""
        if not self.is_leader:
            return False
        with self.app.app_context():
            try:
                import_string(job.target)(clock.now())
            except Exception:
                log.exception("Scheduled job %s failed", job.name)
        return True

    # Driving them ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the jobs in a background thread (the lease is tried at once)."""
        if self._aps is not None:
            return
        aps_log = logging.getLogger("apscheduler")
        if aps_log.level == logging.NOTSET:
            # APScheduler logs every run at INFO (several a minute per process); ours say what matters.
            aps_log.setLevel(logging.WARNING)
        aps = BackgroundScheduler(
            timezone=timezone.utc,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(self.period.total_seconds())},
        )
        aps.add_job(
            self._guarded(self._lease_job), IntervalTrigger(seconds=self.renew_every, timezone=timezone.utc),
            id="lease", name="scheduler lease", next_run_time=datetime.now(timezone.utc),
        )
        # A tick may start late by up to a whole interval: it then runs the current interval once.
        aps.add_job(
            self._guarded(self.run_due_tick), AlignedTrigger(self.period, self.delay), id="tick", name="sync tick"
        )
        for job in self.leader_jobs:
            aps.add_job(
                self._guarded(lambda job=job: self.run_leader_job(job)),
                IntervalTrigger(seconds=job.every_seconds, timezone=timezone.utc), id=job.name, name=job.name,
            )
        self._aps = aps
        aps.start()
        log.info(
            "Scheduler started (%s): ticks every %s s, lease %s s renewed every %s s",
            self.holder, int(self.period.total_seconds()), self.ttl.total_seconds(), self.renew_every,
        )

    def stop(self) -> None:
        """Stop the jobs (letting a running one finish), then give the lease up for another process."""
        with self._aps_lock:
            aps, self._aps = self._aps, None
        if aps is None:
            return
        # APScheduler's shutdown marks the scheduler stopped before it takes its job stores' lock: a one-shot
        # job (run_soon) being handed out at that moment is then looked for among the never-started jobs only,
        # and the scheduler's thread dies with JobLookupError. Paused, nothing new is handed out; get_jobs()
        # takes that lock, so it returns once a hand-out in progress has finished.
        aps.pause()
        aps.get_jobs()
        aps.shutdown(wait=True)
        try:
            with self.app.app_context():
                released = lease.release(LEASE_NAME, self.holder, clock.now())
        except Exception:
            log.exception("Scheduler: could not release the lease (it expires by itself)")
            released = False
        self._set_leader(False)
        log.info("Scheduler stopped (%s)%s", self.holder, ", lease released" if released else "")

    def run_soon(self, func: Callable[[], object], job_id: str) -> None:
        """Run `func` once, now, in the scheduler's worker threads."""
        with self._aps_lock:
            if self._aps is not None:
                self._aps.add_job(self._guarded(func), id=job_id, replace_existing=True)

    def _lease_job(self) -> None:
        if self.renew_lease():
            # A new leader runs the current interval's tick at once if its old leader never did.
            self.run_soon(self.run_due_tick, "tick-on-takeover")
            for job in self.leader_jobs:
                if job.on_takeover:
                    self.run_soon(lambda job=job: self.run_leader_job(job), f"{job.name}-on-takeover")

    @staticmethod
    def _guarded(func: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                func()
            except Exception:
                log.exception("Scheduler job failed")

        return run


# --- Starting it ------------------------------------------------------------------------------

_embedded: Scheduler | None = None
_embedded_lock = threading.Lock()


def start_embedded(app: Flask, *, tick_job: TickJob | None = None) -> Scheduler | None:
    """Start this process's in-process scheduler unless SCHEDULER=off or testing; at most one per process.

    Called by the gunicorn worker hook and `python run.py`, never by create_app (which also runs for
    `flask db upgrade`, other commands and tests)."""
    global _embedded
    if app.config["SCHEDULER"] != "embedded" or app.testing:
        log.info("Scheduler: not started in this process (SCHEDULER=%s%s)", app.config["SCHEDULER"],
                 ", testing" if app.testing else "")
        return None
    with _embedded_lock:
        if _embedded is None:
            _embedded = Scheduler(app, tick_job=tick_job)
            _embedded.start()
            atexit.register(stop_embedded)
        return _embedded


def stop_embedded() -> None:
    """Stop this process's embedded scheduler, if any, releasing its lease."""
    global _embedded
    with _embedded_lock:
        scheduler, _embedded = _embedded, None
    if scheduler is not None:
        scheduler.stop()


def is_reloader_watcher(use_reloader: bool) -> bool:
    """True in the werkzeug reloader's watcher process, which must not schedule (its child serves)."""
    return use_reloader and os.environ.get("WERKZEUG_RUN_MAIN") != "true"


def run_forever(app: Flask, *, stop: threading.Event | None = None, tick_job: TickJob | None = None) -> None:
    """Run a dedicated scheduler in the foreground until SIGINT/SIGTERM or `stop` (`flask scheduler run`)."""
    stop = stop or threading.Event()
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    scheduler = Scheduler(app, tick_job=tick_job)
    scheduler.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- What it is doing (dashboard, metrics, CLI) -------------------------------------------------

@dataclass(frozen=True)
class SchedulerStatus:
    """Who leads the scheduler and when the next tick is due (any process may ask)."""

    leader: lease.Lease | None  # None when no process holds the lease
    last_tick_at: datetime | None
    next_tick_at: datetime


def status(now: datetime | None = None) -> SchedulerStatus:
    """The scheduler's state from the database and config (inside an app context)."""
    now = now or clock.now()
    config = current_app.config
    stored = lease.read_lease(LEASE_NAME)
    return SchedulerStatus(
        leader=stored if stored is not None and stored.is_live(now) else None,
        last_tick_at=stored.last_tick_at if stored is not None else None,
        next_tick_at=next_tick(
            now,
            timedelta(seconds=config["SCHEDULER_TICK_SECONDS"]),
            timedelta(seconds=config["SCHEDULER_TICK_DELAY_SECONDS"]),
        ),
    )
