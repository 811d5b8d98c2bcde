"""Workers sharing a tick through claims on PostgreSQL (app/sync/claims.py): batches of whole Amber sites,
SKIP LOCKED between two connections, expired claims taken over, every household once per interval, the
real sync recording its run with the claim's completion, and a worker process killed (SIGKILL) mid-batch
whose households another worker finishes within the claim's TTL.

The claims are PostgreSQL's (advisory locks, FOR UPDATE SKIP LOCKED): on SQLite these tests are skipped
and the single leader syncs everyone (tests/test_sync.py, tests/test_scheduler*.py). Time is the
injected clock, except in the process test, which waits on conditions with timeouts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from app import create_app
from app.extensions import db as _db
from app.models import Household, HouseholdSettings, SyncClaim, SyncRun
from app.sync import claims
from app.sync.claims import ClaimSettings, Worker
from app.sync.scheduler import tick_for
from tests.claims_helpers import metadata as syncs_metadata
from tests.claims_helpers import read_syncs
from tests.conftest import make_config
from tests.db_backends import POSTGRES_URL, fresh_database
from tests.sync_env import SHARED, another_powerwall, configure, env, simulator  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
PG_ONLY = "claims use PostgreSQL's advisory locks and FOR UPDATE SKIP LOCKED; SQLite keeps the single leader"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
TICK = tick_for(T0 + timedelta(seconds=10))
SETTINGS = ClaimSettings(batch=3, ttl=timedelta(seconds=150), poll_seconds=0.1)


def pg_only(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip(PG_ONLY)


def households(app, sites: list[str | None]) -> list[int]:
    """One household with sync on per entry of `sites` (its Amber site), ids in order."""
    with app.app_context():
        ids = []
        for n, site in enumerate(sites):
            household = Household(name=f"house {n}", created_at=T0)
            _db.session.add(household)
            _db.session.flush()
            _db.session.add(HouseholdSettings(household_id=household.id, amber_site_id=site, sync_enabled=True))
            ids.append(household.id)
        _db.session.commit()
        return ids


def claim_now(app, worker: str, now: datetime, settings: ClaimSettings = SETTINGS) -> list[int]:
    with app.app_context(), _db.engine.begin() as conn:
        claims.seed(conn, tick_for(now))
        return claims.claim(conn, worker, tick_for(now), now, settings)


def claim_rows(app) -> dict[int, SyncClaim]:
    with app.app_context():
        rows = {row.household_id: row for row in _db.session.scalars(select(SyncClaim))}
        _db.session.expunge_all()
        return rows


def test_claims_are_off_on_sqlite_and_by_default(app):
    assert not claims.enabled(app)  # SYNC_MODE unset: the leader syncs everyone
    app.config["SYNC_MODE"] = "claims"
    assert claims.enabled(app) is app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


def test_a_batch_takes_whole_sites_up_to_its_size(app):
    pg_only(app)
    a1, a2, b1, b2, c1 = households(app, ["A", "A", "B", "B", "C"])
    now = T0 + timedelta(seconds=10)
    first = claim_now(app, "w1", now)
    assert first == [a1, a2]  # site B would make 4 > 3: never split, left for the next batch
    second = claim_now(app, "w1", now)
    assert second == [b1, b2, c1]
    assert claim_now(app, "w1", now) == []
    rows = claim_rows(app)
    assert {r.claimed_by for r in rows.values()} == {"w1"}
    assert {r.claimed_until for r in rows.values()} == {now + SETTINGS.ttl}


def test_households_without_a_site_are_claimed_one_by_one(app):
    pg_only(app)
    ids = households(app, [None, None, "A"])
    assert sorted(claim_now(app, "w1", T0 + timedelta(seconds=10), ClaimSettings(batch=10))) == ids


def test_two_connections_never_claim_the_same_household(app):
    pg_only(app)
    ids = households(app, ["A", "B", "C", "D", "E", "F"])
    now = T0 + timedelta(seconds=10)
    with app.app_context():
        with _db.engine.begin() as conn:
            claims.seed(conn, TICK)
        first = _db.engine.connect()
        second = _db.engine.connect()
        try:
            with first.begin():
                mine = claims.claim(first, "w1", TICK, now, SETTINGS)  # locks held until this commits
                theirs = claims.claim(second, "w2", TICK, now, SETTINGS)  # skipped, not waited for
                second.commit()
            assert len(mine) == 3 and len(theirs) == 3 and not set(mine) & set(theirs)
            assert sorted(mine + theirs) == ids
        finally:
            first.close()
            second.close()


def test_a_site_is_claimed_whole_even_when_its_households_lie_beyond_the_rows_a_claim_reads(app):
    """A claim reads only the first due households (4 x the batch, in due then household order), but a site
    among them comes with all its due households, however far down the order the others are."""
    pg_only(app)
    ids = households(app, ["X", *[None] * 12, "X", "X"])  # X's second and third households come last
    x = [ids[0], ids[13], ids[14]]
    now = T0 + timedelta(seconds=10)
    first = claim_now(app, "w1", now, ClaimSettings(batch=2))  # reads 8 rows: X's first and 7 without a site
    assert first == x  # the whole site, larger than the batch: alone, never split
    second = claim_now(app, "w1", now, ClaimSettings(batch=2))
    assert second == ids[1:3]


def test_a_site_another_worker_is_claiming_is_skipped_and_its_room_filled(app):
    """The candidate sites are locked together; one that another claim holds is skipped, and the room it
    leaves goes to the next sites under the same rule (whole sites, in order, a site never split)."""
    pg_only(app)
    a, b1, b2, c, d, e1, e2, e3, e4 = households(app, ["A", "B", "B", "C", "D", "E", "E", "E", "E"])
    now = T0 + timedelta(seconds=10)
    with app.app_context():
        with _db.engine.begin() as conn:
            claims.seed(conn, TICK)
        holder = _db.engine.connect()
        try:
            holder.begin()
            holder.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext('A'))"), {"space": claims.SITE_LOCK_SPACE})
            with _db.engine.begin() as conn:
                assert claims.claim(conn, "w1", TICK, now, SETTINGS) == [b1, b2, c]  # A skipped, C fills its room
            with _db.engine.begin() as conn:
                assert claims.claim(conn, "w1", TICK, now, SETTINGS) == [d]  # E (4) would not fit after D
            with _db.engine.begin() as conn:
                assert claims.claim(conn, "w1", TICK, now, SETTINGS) == [e1, e2, e3, e4]  # larger than a batch: alone
            with _db.engine.begin() as conn:
                assert claims.claim(conn, "w1", TICK, now, SETTINGS) == []  # only A is left, and it is held
            holder.rollback()
            with _db.engine.begin() as conn:
                assert claims.claim(conn, "w1", TICK, now, SETTINGS) == [a]
        finally:
            holder.close()


def test_a_row_locked_elsewhere_is_skipped_not_waited_for(app):
    """FOR UPDATE SKIP LOCKED: a household whose claim row another transaction holds (e.g. a worker
    completing it) is left out of the batch at once; it comes in the next one."""
    pg_only(app)
    a, b = households(app, ["A", "B"])
    now = T0 + timedelta(seconds=10)
    with app.app_context():
        with _db.engine.begin() as conn:
            claims.seed(conn, TICK)
        holder = _db.engine.connect()
        other = _db.engine.connect()
        try:
            holder.begin()
            holder.execute(text("SELECT 1 FROM sync_claims WHERE household_id = :id FOR UPDATE"), {"id": a})
            other.execute(text("SET lock_timeout = '2s'"))  # a wait would fail the test instead of hanging it
            other.commit()
            started = time.monotonic()
            with other.begin():
                got = claims.claim(other, "w2", TICK, now, ClaimSettings(batch=10))
            assert got == [b] and time.monotonic() - started < 1.5
            holder.rollback()
            with other.begin():
                assert claims.claim(other, "w2", TICK, now, ClaimSettings(batch=10)) == [a]
        finally:
            holder.close()
            other.close()


def test_an_expired_claim_is_taken_over_in_the_same_interval(app):
    pg_only(app)
    ids = households(app, ["A", "B"])
    now = T0 + timedelta(seconds=10)
    assert sorted(claim_now(app, "dead", now)) == ids  # this worker then dies
    assert claim_now(app, "w2", now + SETTINGS.ttl - timedelta(seconds=1)) == []  # still held
    later = now + SETTINGS.ttl + timedelta(seconds=1)
    assert tick_for(later) == TICK  # within the same 5-minute interval
    assert sorted(claim_now(app, "w2", later)) == ids
    with app.app_context():
        _db.session.execute(text("SELECT 1"))
        assert claims.complete_in_session(ids[0], "dead", TICK, TICK + timedelta(minutes=5)) is False  # lost it
        assert claims.complete_in_session(ids[0], "w2", TICK, TICK + timedelta(minutes=5)) is True
        _db.session.commit()


def test_every_household_once_per_interval_across_workers(app, clock):
    pg_only(app)
    ids = households(app, ["A", "A", "B", "C", None, "D", "D", "E"])
    synced: list[tuple[int, datetime, str]] = []

    def job_for(name):
        def job(tick_at, batch, complete):
            for household_id in batch:
                synced.append((household_id, tick_at, name))
                assert complete(household_id)
                _db.session.commit()
        return job

    workers = [Worker(app, f"w{n}", settings=SETTINGS, job=job_for(f"w{n}")) for n in range(2)]
    clock.current = T0 + timedelta(seconds=10)
    for _ in range(10):
        for worker in workers:
            worker.step()
    assert sorted(h for h, _, _ in synced) == ids
    assert {t for _, t, _ in synced} == {TICK}
    assert {w for _, _, w in synced} == {"w0", "w1"}  # both took batches
    assert {r.due_at for r in claim_rows(app).values()} == {TICK + timedelta(minutes=5)}
    clock.current += timedelta(minutes=5)  # the next interval: every household is due once more
    for _ in range(10):
        for worker in workers:
            worker.step()
    counts = Counter((h, t) for h, t, _ in synced)
    assert len(counts) == 2 * len(ids) and set(counts.values()) == {1}


def test_a_household_left_unrecorded_is_tried_again_in_the_interval(app, clock):
    """A batch job that records nothing (the sync crashed: no database connection, say): its households
    are claimed again 30 s later in the same interval, not skipped until the next one; a sync still running
    past its deadline is marked done instead (it records its run when it ends, and nobody starts another)."""
    pg_only(app)
    from app.sync.engine import SyncResult

    crashed, stuck = households(app, ["A", "B"])
    clock.current = T0 + timedelta(seconds=10)

    def job(tick_at, batch, complete):
        return [SyncResult(stuck, "?", "failed", "Still running after the deadline", still_running=True)]

    worker = Worker(app, "w1", settings=SETTINGS, job=job)
    assert sorted(worker.step()) == [crashed, stuck]
    assert worker.step() == []  # not at once: a failing database is not hammered
    rows = claim_rows(app)
    assert (rows[stuck].due_at, rows[stuck].claimed_by) == (TICK + timedelta(minutes=5), None)
    assert (rows[crashed].due_at, rows[crashed].claimed_until) == (TICK, clock.current + timedelta(seconds=30))
    clock.advance(seconds=31)
    assert tick_for(clock.current) == TICK
    assert worker.step() == [crashed]


def test_the_leader_only_opens_the_interval_in_claims_mode(app, clock):
    pg_only(app)
    ids = households(app, ["A", "B"])
    app.config["SYNC_MODE"] = "claims"
    from app.sync import run_tick

    with app.app_context():
        assert run_tick(TICK) == []  # the workers sync; nothing ran here
        assert _db.session.scalar(select(SyncRun.id)) is None
    assert sorted(claim_rows(app)) == ids


def test_a_worker_syncs_its_batch_for_real_fetching_a_shared_site_once(env, app, household_id):
    """The default batch job is the real sync: runs recorded, claims completed with them, and two
    households of one Amber site claimed together, so Amber is asked once for the site."""
    pg_only(app)
    from tests.conftest import create_user, household_id_for

    other = household_id_for(app, create_user(app, "neighbour@example.com"))
    configure(app, other, tesla_site_id=another_powerwall(1))  # same Amber site, own Powerwall
    app.config["SYNC_MODE"] = "claims"
    worker = Worker(app, "w1", settings=ClaimSettings(batch=2, poll_seconds=0.1))
    assert sorted(worker.step()) == sorted([household_id, other])
    assert env.amber.calls.count("prices/30") == 1 and env.amber.calls.count("prices/5") == 1
    runs = env.runs()
    assert sorted(r.household_id for r in runs) == sorted([household_id, other])
    assert {r.outcome for r in runs} == {"pushed"} and {r.tick_at for r in runs} == {tick_for(SHARED.current)}
    assert {r.due_at for r in claim_rows(app).values()} == {tick_for(SHARED.current) + timedelta(minutes=5)}
    assert worker.step() == []  # nothing more due in this interval


def test_a_worker_s_batches_run_on_its_threads_and_their_open_connections(env, app, household_id, monkeypatch):
    """One thread pool for the worker's life: the next interval's batch runs on the same threads, with the
    same HTTP sessions (open connections to Amber and Tesla), not on new ones for every batch."""
    pg_only(app)
    import threading

    import app.connections as connections
    from tests.conftest import create_user, household_id_for

    other = household_id_for(app, create_user(app, "neighbour@example.com"))
    configure(app, other, tesla_site_id=another_powerwall(1))
    app.config["SYNC_MODE"] = "claims"
    handed_out: list[tuple[threading.Thread, object]] = []  # strong references: no id is reused meanwhile
    real_session = connections._session

    def recording_session():
        session = real_session()
        handed_out.append((threading.current_thread(), session))
        return session

    monkeypatch.setattr(connections, "_session", recording_session)
    worker = Worker(app, "w1", settings=ClaimSettings(batch=2, poll_seconds=0.1))
    assert sorted(worker.step()) == sorted([household_id, other])
    first = list(handed_out)
    handed_out.clear()
    SHARED.advance(seconds=300)  # the next interval: both due again
    assert sorted(worker.step()) == sorted([household_id, other])
    assert first and handed_out
    assert all(any(thread is t and session is s for t, s in first) for thread, session in handed_out)
    assert len(env.runs()) == 4


def test_the_worker_s_pool_is_replaced_after_a_sync_that_overran_its_deadline(app, monkeypatch):
    """A sync still running past the deadline keeps its thread: the batches after it get a fresh pool rather
    than one thread fewer; batches that end normally keep the pool."""
    import app.sync.engine as engine
    from app.sync.claims import SyncBatches
    from app.sync.engine import SyncResult

    pools, overran = [], set()

    def fake_run_tick(tick_at, *, household_ids, on_record, pool):
        pools.append(pool)
        return [SyncResult(h, "?", "failed", "", still_running=h in overran) for h in household_ids]

    monkeypatch.setattr(engine, "run_tick", fake_run_tick)
    job = SyncBatches()
    with app.app_context():
        job(TICK, [1], lambda h: True)
        job(TICK, [2], lambda h: True)
        overran.add(3)
        job(TICK, [3], lambda h: True)
        job(TICK, [4], lambda h: True)
    assert pools[0] is pools[1] is pools[2] and pools[3] is not pools[2]
    assert pools[2]._shutdown and not pools[3]._shutdown


def test_a_worker_claims_its_next_batch_while_the_last_one_still_syncs(app, clock):
    """A worker does not wait for the slowest household of a batch before claiming the next: while the
    first batch's sync is still waiting (on Amber, say), the second batch is claimed and synced; each is
    recorded once, and the worker stops cleanly with both loops."""
    pg_only(app)
    import threading

    first, second = households(app, ["A", "B"])
    clock.current = T0 + timedelta(seconds=10)
    second_synced = threading.Event()
    seen: dict[int, bool] = {}

    def job(tick_at, batch, complete):
        (household_id,) = batch
        if household_id == first:
            seen[first] = second_synced.wait(timeout=10)  # the slow one: it ends once the other got through
        else:
            seen[household_id] = True
        assert complete(household_id)
        _db.session.commit()
        if household_id != first:
            second_synced.set()

    worker = Worker(app, "w1", settings=ClaimSettings(batch=1, ttl=timedelta(seconds=150), poll_seconds=0.05), job=job)
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,))
    loop.start()
    try:
        assert second_synced.wait(timeout=10), "the second batch was not claimed while the first one ran"
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        loop.join(timeout=15)
    assert not loop.is_alive()
    assert seen == {first: True, second: True}
    rows = claim_rows(app)
    assert {rows[h].due_at for h in (first, second)} == {TICK + timedelta(minutes=5)}


def test_replacing_the_pool_after_an_overrun_lets_another_batch_s_queued_syncs_run(app, monkeypatch):
    """Two batches in flight share the worker's threads: when one ends with a sync past its deadline, the
    pool is replaced for the batches after it, but the syncs the other batch queued on it still run."""
    import threading

    import app.sync.engine as engine
    from app.sync.claims import SyncBatches
    from app.sync.engine import SyncResult

    app.config["SYNC_MAX_WORKERS"] = 1
    release = threading.Event()
    queued = []

    def fake_run_tick(tick_at, *, household_ids, on_record, pool):
        pool.submit(release.wait, 10)  # the overrunning sync holds the only thread
        queued.append(pool.submit(lambda: "synced"))  # another batch's sync, queued behind it
        return [SyncResult(h, "?", "failed", "", still_running=True) for h in household_ids]

    monkeypatch.setattr(engine, "run_tick", fake_run_tick)
    with app.app_context():
        SyncBatches()(TICK, [1], lambda h: True)
    release.set()
    assert queued[0].result(timeout=10) == "synced"


# -- real processes ---------------------------------------------------------------------------------------


def worker_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER", "SYNC_", "GUNICORN_")) and k not in (
        "SECRET_KEY", "FERNET_ENCRYPTION_KEY", "DATABASE_URL", "APP_ENV", "HOST", "PORT", "WERKZEUG_RUN_MAIN")}
    env.update(
        APP_ENV="production", DATA_DIR=str(data_dir), DATABASE_URL=database_url, LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
        SCHEDULER="off", SCHEDULER_TICK_SECONDS="3600", SCHEDULER_TICK_DELAY_SECONDS="0",
        SYNC_MODE="claims", SYNC_CLAIM_BATCH="4", SYNC_CLAIM_TTL_SECONDS="2", SYNC_WORKER_POLL_SECONDS="0.2",
        SYNC_WORKER_BATCH_JOB="tests.claims_helpers:record_batch", CLAIMS_TEST_WORK_SECONDS="0.4",
    )
    env.update(extra)
    return env


def wait_for(condition, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"gave up after {timeout} s waiting for {what}\n{tails}")


@pytest.mark.skipif(POSTGRES_URL is None, reason=PG_ONLY + " (set TEST_DATABASE_URL to run it)")
def test_a_killed_worker_s_households_are_taken_over_within_the_claim_ttl(tmp_path):
    """Two worker processes (`python -m app.sync.worker`, `flask sync worker`) share 16 households (batches of 4, 0.4 s each). One is
    SIGKILLed after it recorded a household of its batch; the other takes the rest of that batch over once
    the claims expire (2 s, standing in for 150 s within a 5-minute tick). Every household is recorded
    exactly once for the interval."""
    with fresh_database("postgresql", tmp_path) as url:
        config = make_config(tmp_path, url)
        app = create_app(config)
        with app.app_context():
            _db.create_all()
            syncs_metadata.create_all(_db.engine)
            _db.engine.dispose()
        ids = households(app, [f"site-{n}" for n in range(16)])
        engine = create_engine(config.SQLALCHEMY_DATABASE_URI)
        env = worker_env(url, Path(config.DATA_DIR))
        logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
        procs: list[subprocess.Popen] = []
        try:
            commands = [[sys.executable, "-m", "app.sync.worker"], [str(Path(sys.executable).parent / "flask"), "sync", "worker"]]
            for command, log_path in zip(commands, logs):
                with log_path.open("w") as out:
                    procs.append(subprocess.Popen(command, cwd=ROOT, env={**env, "FLASK_APP": "run.py"}, stdout=out,
                                                  stderr=subprocess.STDOUT))
            victim, survivor = procs
            # Kill the victim mid-batch: it has recorded one household of a batch, the batch's others not yet.
            wait_for(lambda: any(pid == victim.pid for _, _, pid, _ in read_syncs(engine)), 30, "a first sync by the victim", logs)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = datetime.now(timezone.utc)
            with engine.connect() as conn:
                orphaned = set(conn.execute(
                    text("SELECT household_id FROM sync_claims WHERE claimed_by LIKE :who"), {"who": f"%:{victim.pid}:%"}
                ).scalars())
            assert orphaned, "the victim held no claim when it was killed"
            wait_for(lambda: len({h for h, *_ in read_syncs(engine)}) == len(ids), 30, "every household synced", logs)
            syncs = read_syncs(engine)
            assert survivor.poll() is None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            engine.dispose()
    counts = Counter((h, t) for h, t, _, _ in syncs)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]  # never twice in one interval
    assert sorted(h for h, _, _, _ in syncs) == ids
    taken_over = [(h, pid, at) for h, _, pid, at in syncs if h in orphaned]
    assert taken_over and {pid for _, pid, _ in taken_over} == {survivor.pid}
    # Taken over once the 2-s claims expired (+ the 0.2-s poll and the 0.4-s work each), far inside a tick.
    assert max(at for _, _, at in taken_over) - killed_at < timedelta(seconds=15)
    assert "stopped" in logs[1].read_text()


def test_the_worker_command_refuses_without_claims(app, runner):
    """`flask sync worker` on SQLite, or without SYNC_MODE=claims, exits 2 and says why: a half-configured
    deployment never has a leader and workers both syncing everyone."""
    result = runner.invoke(args=["sync", "worker"])
    assert result.exit_code == 2
    assert "SYNC_MODE=claims" in result.output
