"""Several worker processes share one tick on PostgreSQL: each claims households in batches.

Opt-in with SYNC_MODE=claims (PostgreSQL only; SQLite keeps the single leader that syncs everyone). The
scheduler's leader then only opens each interval (`seed`: a `sync_claims` row per household with sync on,
due at that interval) and pings the heartbeat; `flask sync worker` processes do the syncing:

- **claim**: in one short transaction a worker takes up to SYNC_CLAIM_BATCH households that are due and
  not claimed (or whose claim expired), whole Amber sites at a time: candidate sites are locked with
  `pg_try_advisory_xact_lock` (a site another worker is claiming right now is skipped, not waited for),
  then their due rows are locked with `SELECT ... FOR UPDATE SKIP LOCKED` and stamped with the worker and
  `claimed_until` (now + SYNC_CLAIM_TTL_SECONDS). A site's households land in one batch, so the batch's
  PriceFeed fetches each Amber site once per tick, as the single leader does. A worker has up to two
  batches in hand: it claims the next while the last syncs of the one before finish. Indexes on (due_at,
  household_id) and on the settings' Amber site keep a claim to a batch's worth of rows, however many
  households are due.
- **complete**: the household's run is recorded in the same transaction that moves its `due_at` to the
  next interval, compare-and-set on (worker, due_at): no household is synced twice in one interval.
- **takeover**: a worker that dies leaves claims that expire after the TTL (default 150 s, under one
  5-minute tick); any worker then claims those households again for the same interval. A sync that
  crashed without recording its run (e.g. no database connection) is claimable again after 30 s; one
  still running past its deadline is marked done for the interval (it records its run when it ends).

Why not a job queue (procrastinate, pgqueuer): both are well kept and would give us claiming, retries and
worker management, but a tick is not a stream of jobs: every interval each household is due once, and
"due" is one timestamp per household that the run's own transaction moves forward. With a queue we would
enqueue 10,000 jobs every 5 minutes (and dedupe them), keep a second schema and a second worker runtime
(procrastinate's is asyncio-first, pgqueuer's needs LISTEN/NOTIFY), and the completion could not share the
transaction that records the run without reaching into their internals. One table and three statements do it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.engine import Connection
from werkzeug.utils import import_string

from app import clock
from app.extensions import db
from app.models import HouseholdSettings

log = logging.getLogger(__name__)

SETTINGS_TABLE = HouseholdSettings.__tablename__
# A household whose sync ended without a recorded run (it crashed) is claimed again after this long.
RETRY_DELAY = timedelta(seconds=30)
# Advisory locks of the claim live in their own key space (the first int of the two-int form).
SITE_LOCK_SPACE = 715_001

# A batch job: (tick_at, household ids, complete) -> None; `complete(household_id)` moves the household's
# claim to the next interval in the caller's database session (the caller commits it with the run).
BatchJob = Callable[[datetime, list[int], Callable[[int], bool]], object]


@dataclass(frozen=True)
class ClaimSettings:
    """How a worker claims: batch size, how many batches it has in hand at once, how long a claim holds,
    how often an idle worker looks again."""

    batch: int = 32
    # Batches a worker has claimed and not finished, at most: with two, the next batch is claimed and queued
    # on the worker's threads while the last syncs of the one before still wait on Amber or Tesla, so no
    # thread idles at the end of every batch waiting for its slowest household.
    in_flight: int = 2
    ttl: timedelta = timedelta(seconds=150)
    poll_seconds: float = 5.0
    period: timedelta = timedelta(minutes=5)
    delay: timedelta = timedelta(seconds=3)

    @classmethod
    def from_config(cls, config) -> ClaimSettings:
        """From the app's config (config.py reads and checks SYNC_CLAIM_BATCH, SYNC_CLAIM_TTL_SECONDS and
        SYNC_WORKER_POLL_SECONDS from the environment, with their defaults)."""
        return cls(
            batch=int(config["SYNC_CLAIM_BATCH"]),
            ttl=timedelta(seconds=float(config["SYNC_CLAIM_TTL_SECONDS"])),
            poll_seconds=float(config["SYNC_WORKER_POLL_SECONDS"]),
            period=timedelta(seconds=config["SCHEDULER_TICK_SECONDS"]),
            delay=timedelta(seconds=config["SCHEDULER_TICK_DELAY_SECONDS"]),
        )


def enabled(app: Flask | None = None) -> bool:
    """Whether workers claim households (SYNC_MODE=claims on PostgreSQL); never on SQLite."""
    app = app or current_app
    if app.config["SYNC_MODE"] != "claims":
        return False
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        log.warning("SYNC_MODE=claims needs PostgreSQL; on SQLite the scheduler's leader syncs every household")
        return False
    return True


# -- the statements -----------------------------------------------------------------------------------


def seed(conn: Connection, tick_at: datetime) -> int:
    """Give every household with sync on a claim row, due at `tick_at` if it has none yet; return how many
    rows were added (households that existed before keep their own due time)."""
    return conn.execute(
        text(
            "INSERT INTO sync_claims (household_id, due_at) "
            f"SELECT s.household_id, :tick FROM {SETTINGS_TABLE} s WHERE s.sync_enabled "
            "ON CONFLICT (household_id) DO NOTHING"
        ),
        {"tick": _naive(tick_at)},
    ).rowcount


_DUE = (
    "c.due_at <= :tick AND (c.claimed_until IS NULL OR c.claimed_until < :now) AND s.sync_enabled"
)


# The first due households in claiming order (oldest due first, then by household; an index walks them in
# that order, so a claim reads a few rows, not every due one), grouped into their Amber sites in order of
# first appearance; with each site, how many of its households are due (households without a site: one).
# `site` names what is locked: the Amber site, or a household without one on its own.
_CANDIDATES = f"""
WITH candidates AS (
    SELECT c.household_id, c.due_at, s.amber_site_id FROM sync_claims c
    JOIN {SETTINGS_TABLE} s ON s.household_id = c.household_id
    WHERE {_DUE} ORDER BY c.due_at, c.household_id LIMIT :limit
), sites AS (
    SELECT amber_site_id, min(household_id) AS first, min(due_at) AS due FROM candidates
    GROUP BY amber_site_id, CASE WHEN amber_site_id IS NULL THEN household_id END
)
SELECT COALESCE(sites.amber_site_id, 'household:' || sites.first::text) AS site, sites.amber_site_id, sites.first,
    CASE WHEN sites.amber_site_id IS NULL THEN 1 ELSE (
        SELECT count(*) FROM {SETTINGS_TABLE} s JOIN sync_claims c ON c.household_id = s.household_id
        WHERE s.amber_site_id = sites.amber_site_id AND {_DUE}
    ) END AS n
FROM sites ORDER BY sites.due, sites.first
"""
# The due households of the locked sites, read again under their locks (so a household of a site that
# became due meanwhile comes with its site), their rows locked; a row another transaction holds is skipped.
_LOCK_DUE = f"""
SELECT c.household_id FROM sync_claims c JOIN {SETTINGS_TABLE} s ON s.household_id = c.household_id
WHERE {_DUE} AND c.household_id = ANY(
    ARRAY(SELECT o.household_id FROM {SETTINGS_TABLE} o WHERE o.amber_site_id = ANY(CAST(:sites AS text[])))
    || CAST(:solo AS integer[])
)
ORDER BY c.household_id FOR UPDATE OF c SKIP LOCKED
"""


def claim(conn: Connection, worker: str, tick_at: datetime, now: datetime, settings: ClaimSettings) -> list[int]:
    """Claim up to `settings.batch` due households, whole Amber sites at a time, for `worker`; return their
    ids (empty when nothing is due or every due site is being claimed by another worker). The caller's
    transaction holds the site locks until it commits."""
    params = {"tick": _naive(tick_at), "now": _naive(now)}
    # More candidates than a batch, so a worker whose first choices are locked by another claim moves on.
    candidates = conn.execute(text(_CANDIDATES), {**params, "limit": settings.batch * 4}).all()
    locked = set(_lock_sites(conn, [(row.site, row.n) for row in candidates], settings.batch))
    if not locked:
        return []
    chosen = [row for row in candidates if row.site in locked]
    amber = [row.amber_site_id for row in chosen if row.amber_site_id is not None]
    solo = [row.first for row in chosen if row.amber_site_id is None]  # a household without a site is its own
    rows = conn.execute(text(_LOCK_DUE), {**params, "sites": amber, "solo": solo}).scalars().all()
    if not rows:
        return []
    conn.execute(
        text("UPDATE sync_claims SET claimed_by = :worker, claimed_until = :until WHERE household_id = ANY(:ids)"),
        {"worker": worker, "until": _naive(now + settings.ttl), "ids": list(rows)},
    )
    return list(rows)


def _lock_sites(conn: Connection, candidates: list[tuple[str, int]], batch: int) -> list[str]:
    """Lock candidate sites in order, skipping those another claim holds, while their households fit in the
    batch (a site larger than the batch is taken alone, never split); return the locked ones.

    The sites that would fit if every lock succeeds are tried in one statement, not one round trip per
    site; only when some were taken by another worker does the next chunk fill the room they left, under
    the same rule."""
    locked: list[str] = []
    total, position = 0, 0
    while position < len(candidates):
        chunk: dict[str, int] = {}
        room = total
        for site, count in candidates[position:]:
            if room and room + count > batch:
                break
            chunk[site] = count
            room += count
        if not chunk:
            break
        position += len(chunk)
        got = conn.execute(
            text(
                "SELECT site FROM unnest(CAST(:sites AS text[])) WITH ORDINALITY AS c(site, n) "
                "WHERE pg_try_advisory_xact_lock(:space, hashtext(site)) ORDER BY n"
            ),
            {"space": SITE_LOCK_SPACE, "sites": list(chunk)},
        ).scalars().all()
        locked += got
        total += sum(chunk[site] for site in got)
        if len(got) == len(chunk):
            break  # every site fitted and was locked: the next candidate did not fit
    return locked


def complete_in_session(household_id: int, worker: str, tick_at: datetime, next_due: datetime) -> bool:
    """Move the household's claim to `next_due` in the current session's transaction (the caller commits
    it together with the run), if `worker` still holds it for this interval; False if it does not."""
    done = db.session.execute(
        text(
            "UPDATE sync_claims SET due_at = :next, claimed_by = NULL, claimed_until = NULL "
            "WHERE household_id = :id AND claimed_by = :worker AND due_at <= :tick"
        ),
        {"next": _naive(next_due), "id": household_id, "worker": worker, "tick": _naive(tick_at)},
    ).rowcount == 1
    if not done:
        log.warning("Household %s: the claim of %s had been taken over before its run was recorded", household_id, worker)
    return done


def finish(conn: Connection, worker: str, ids: list[int], tick_at: datetime, next_due: datetime) -> int:
    """Mark households of `worker`'s batch done for this interval although their run is not recorded yet
    (still running past the deadline: it records its run when it ends, and nobody syncs them again
    meanwhile); return how many."""
    return conn.execute(
        text(
            "UPDATE sync_claims SET due_at = :next, claimed_by = NULL, claimed_until = NULL "
            "WHERE household_id = ANY(:ids) AND claimed_by = :worker AND due_at <= :tick"
        ),
        {"next": _naive(next_due), "ids": ids, "worker": worker, "tick": _naive(tick_at)},
    ).rowcount


def retry_later(conn: Connection, worker: str, ids: list[int], tick_at: datetime, retry_at: datetime) -> int:
    """Households of `worker`'s batch whose run was not recorded (the sync crashed, e.g. the database
    refused a connection; or it never started) stay due and may be claimed again from `retry_at`, by any
    worker, in this interval; return how many."""
    return conn.execute(
        text(
            "UPDATE sync_claims SET claimed_until = :retry_at "
            "WHERE household_id = ANY(:ids) AND claimed_by = :worker AND due_at <= :tick"
        ),
        {"retry_at": _naive(retry_at), "ids": ids, "worker": worker, "tick": _naive(tick_at)},
    ).rowcount


def _naive(moment: datetime) -> datetime:
    """UTC without a zone, as the app stores times (UTCDateTime)."""
    from datetime import timezone

    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


# -- the jobs ---------------------------------------------------------------------------------------------


def open_interval(tick_at: datetime) -> int:
    """The scheduler leader's part in claims mode: make sure every household with sync on has a claim row."""
    with db.engine.begin() as conn:
        added = seed(conn, tick_at)
    if added:
        log.info("Tick %s: %d household(s) added to the sync claims", tick_at.isoformat(), added)
    return added


class SyncBatches:
    """The default batch job: the tick's sync over each batch, each run recorded with its claim's completion,
    on one thread pool kept for the worker's life. Its threads keep their HTTP sessions, so Amber and Tesla
    connections (TCP, and TLS in production) stay open from one batch to the next instead of a new pool,
    hence new connections, for every batch of every interval."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # the worker's batches in flight share the pool

    def _current_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=current_app.config["SYNC_MAX_WORKERS"], thread_name_prefix="sync")
            return self._pool

    def __call__(self, tick_at: datetime, household_ids: list[int], complete: Callable[[int], bool]) -> object:
        from app.sync.engine import run_tick

        pool = self._current_pool()
        results = run_tick(tick_at, household_ids=household_ids, on_record=complete, pool=pool)
        if any(getattr(r, "still_running", False) for r in results):
            # A sync ran past its deadline and still holds a thread: the next batches get a fresh pool. The
            # old one is let go, not cancelled: another batch in flight still runs its queued syncs on it.
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
        return results


def batch_job_from_config(config) -> BatchJob:
    """SYNC_WORKER_BATCH_JOB ("module:function", tests only), else the sync."""
    target = config["SYNC_WORKER_BATCH_JOB"]
    return import_string(target) if target else SyncBatches()


class Worker:
    """One worker process's claiming: claim a batch, sync it, repeat, with up to `in_flight` batches in hand at
    once (the next one queued on the threads while the last one's slowest households finish); idle until
    something is due."""

    def __init__(self, app: Flask, worker_id: str, *, settings: ClaimSettings | None = None, job: BatchJob | None = None):
        self.app = app
        self.id = worker_id
        self.settings = settings or ClaimSettings.from_config(app.config)
        self.job = job or batch_job_from_config(app.config)
        self._seeded: datetime | None = None

    def step(self) -> list[int]:
        """Claim one batch and run it; return the ids it synced (empty: nothing was due)."""
        from app.sync.scheduler import tick_for

        with self.app.app_context():
            now = clock.now()
            tick_at = tick_for(now, self.settings.period, self.settings.delay)
            next_due = tick_at + self.settings.period
            with db.engine.begin() as conn:
                if self._seeded != tick_at:
                    seed(conn, tick_at)  # households added since the leader opened the interval
                ids = claim(conn, self.id, tick_at, now, self.settings)
            if self._seeded != tick_at:
                self._seeded = tick_at
            if not ids:
                return []
            log.info("Worker %s: claimed %d household(s) for %s", self.id, len(ids), tick_at.isoformat())

            def complete(household_id: int) -> bool:
                return complete_in_session(household_id, self.id, tick_at, next_due)

            outcome = None
            try:
                outcome = self.job(tick_at, ids, complete)
            finally:
                db.session.remove()
                # A sync still running past the deadline records its run when it ends: done for the interval.
                running = [r.household_id for r in outcome or () if getattr(r, "still_running", False)]
                # Any other household of the batch without a recorded run is tried again in this interval.
                retry_at = clock.now() + min(self.settings.ttl, RETRY_DELAY)
                with db.engine.begin() as conn:
                    finished = finish(conn, self.id, running, tick_at, next_due) if running else 0
                    retried = retry_later(conn, self.id, ids, tick_at, retry_at)
                if finished or retried:
                    log.warning("Worker %s: of the batch, %d household(s) still running past the deadline, %d without a "
                                "recorded run (tried again from %s)", self.id, finished, retried, retry_at.isoformat())
            return ids

    def run(self, stop: threading.Event) -> None:
        """Until `stop`, `in_flight` claiming loops side by side (this thread and helpers): each runs batches
        back to back while households are due. A loop with nothing to claim looks again after
        SYNC_WORKER_POLL_SECONDS (expired claims) or at the next interval, whichever comes first. On stop each
        loop finishes the batch in hand and the worker returns once all have."""
        log.info("Worker %s: claiming households (batch %d, %d in flight, claims hold %d s)", self.id, self.settings.batch,
                 self.settings.in_flight, self.settings.ttl.total_seconds())
        helpers = [threading.Thread(target=self._loop, args=(stop,), name=f"claims-{n}", daemon=True)
                   for n in range(1, max(1, self.settings.in_flight))]
        for helper in helpers:
            helper.start()
        try:
            self._loop(stop)
        finally:
            stop.set()  # this loop ends only on stop, or on an error escaping it: the helpers end with it
            for helper in helpers:
                helper.join()

    def _loop(self, stop: threading.Event) -> None:
        from app.sync.scheduler import next_tick

        while not stop.is_set():
            try:
                if self.step():
                    continue
            except Exception:
                log.exception("Worker %s: a batch failed", self.id)
            with self.app.app_context():
                now = clock.now()
            until_tick = (next_tick(now, self.settings.period, self.settings.delay) - now).total_seconds()
            stop.wait(max(0.05, min(self.settings.poll_seconds, until_tick)))
