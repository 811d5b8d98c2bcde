"""docker/entrypoint.sh outside Docker, with the image's own command: it waits for the database, migrates,
then gunicorn's 4 workers each start the embedded scheduler against the local simulator, and the
database shows one leader, every user synced exactly once per tick, and a takeover when the leader's
worker is killed. On SQLite, and on PostgreSQL when TEST_DATABASE_URL is set.

Real processes and real time (two-second ticks): every wait is bounded and every process is killed in
`finally`. Each backend's run takes about 15-20 s."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from app import create_app
from app.extensions import db
from app.sync.lease import holder_pid
from app.models import Household, SchedulerLease, SyncRun, User
from app.sync.scheduler import LEASE_NAME
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from config import normalise_database_url
from tests.conftest import make_config
from tests.db_backends import BACKENDS, fresh_database
from tests.test_docker import image_command

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
TICK = timedelta(seconds=2)  # must divide an hour (config.py)
TTL_SECONDS, RENEW_SECONDS = 3.0, 0.5
WORKERS = 4
USERS = ("alice@example.com", "bob@example.com")
PASSWORD = "entrypoint test password"
LEADER_LINE = re.compile(r"\(([^()\s]+:\d+:[0-9a-f]+)\) is now the leader")  # app.sync.scheduler's log line


@pytest.fixture(scope="module")
def simulator():
    """The Amber/Tesla simulator on a free loopback port, real clock, budgets off, prices confirmed at once."""
    base, stop = start_simulator_thread(app=create_simulator_app())
    try:
        response = requests.post(
            f"{base}/_sim/config", json={"amber_rate_limit": 0, "teslemetry_rate_limit": 0, "estimate_seconds": 0}, timeout=5
        )
        response.raise_for_status()
        yield base
    finally:
        stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def entrypoint_env(database_url: str, data_dir: Path, simulator: str | None = None, **extra: str) -> dict[str, str]:
    """The environment a container would get: the app's variables set here only, the venv first on PATH."""
    example = (ROOT / ".env.example").read_text().splitlines()
    documented = {line.split("=", 1)[0] for line in example if "=" in line and not line.startswith("#")}
    env = {k: v for k, v in os.environ.items() if k not in documented and not k.startswith(("FLASK_", "WERKZEUG_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", APP_ENV="production", DATA_DIR=str(data_dir),
        DATABASE_URL=database_url, LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", SCHEDULER="embedded",
        SCHEDULER_TICK_SECONDS=str(int(TICK.total_seconds())), SCHEDULER_TICK_DELAY_SECONDS="0.3",
        SCHEDULER_LEASE_TTL_SECONDS=str(TTL_SECONDS), SCHEDULER_LEASE_RENEW_SECONDS=str(RENEW_SECONDS),
        DB_WAIT_SECONDS="20",
    )
    if simulator:
        env.update(identity.app_settings(simulator))
    env.update(extra)
    return env


def wait_for(condition: Callable[[], object], timeout: float, what: str, log: Path, proc: subprocess.Popen) -> object:
    """Poll `condition` until it is true; fail at `timeout` or as soon as gunicorn exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting {timeout} s for {what}{'' if proc.poll() is None else ' (gunicorn exited)'}\n"
                f"{log.read_text()[-4000:]}")


def read_runs(engine: Engine) -> list[tuple[datetime | None, int, str, str | None]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(SyncRun.tick_at, SyncRun.household_id, SyncRun.outcome, SyncRun.reason))]


def read_lease(engine: Engine):
    with engine.connect() as conn:
        return conn.execute(select(SchedulerLease.__table__).where(SchedulerLease.name == LEASE_NAME)).first()


def live_leader(engine: Engine) -> int | None:
    row = read_lease(engine)
    return holder_pid(row.holder) if row is not None and row.expires_at > datetime.now(timezone.utc) else None


def complete_ticks(runs, household_ids: set[int]) -> list[datetime]:
    """Ticks in which every household has a run, oldest first."""
    by_tick: dict[datetime, set[int]] = defaultdict(set)
    for tick_at, household_id, _, _ in runs:
        if tick_at is not None:
            by_tick[tick_at].add(household_id)
    return sorted(t for t, households in by_tick.items() if households >= household_ids)


def worker_pids(log_text: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log_text)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def configure_users(tmp_path: Path, url: str) -> set[int]:
    """Two households, each on a Powerwall of the simulator, through the CLI (in-process, so it takes no time);
    returns their ids."""
    app = create_app(make_config(tmp_path, url))  # DATA_DIR tmp_path/data: the key the entrypoint generated
    runner = app.test_cli_runner()
    try:
        for n, email in enumerate(USERS):
            result = runner.invoke(args=["users", "create", email, "--password", PASSWORD])
            assert result.exit_code == 0, result.output
            result = runner.invoke(args=[
                "users", "configure", email, "--amber-token", identity.AMBER_TOKEN, "--amber-site-id",
                identity.AMBER_SITE_ID, "--teslemetry-token", identity.TESLEMETRY_TOKEN, "--tesla-site-id",
                str(identity.TESLA_ENERGY_SITE_ID + n), "--timezone", identity.SITE_TIME_ZONE, "--sync",
            ])
            assert result.exit_code == 0, result.output
        with app.app_context():
            return set(db.session.scalars(select(Household.id)))
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_entrypoint_runs_gunicorn_workers_with_one_leader_syncing_each_user_once_per_tick(backend, tmp_path, simulator):
    with fresh_database(backend, tmp_path) as url:
        data_dir = tmp_path / "data"
        engine = create_engine(normalise_database_url(url))
        port = free_port()
        env = entrypoint_env(url, data_dir, simulator, HOST="127.0.0.1", PORT=str(port),
                             GUNICORN_WORKERS=str(WORKERS), GUNICORN_THREADS="2")

        # The image's own entrypoint and command (Dockerfile ENTRYPOINT + CMD), run from another folder.
        entrypoint, command = image_command()
        assert entrypoint == ["/app/docker/entrypoint.sh"]
        log = tmp_path / "gunicorn.log"
        assert not data_dir.exists()  # a first start: no keys, no schema
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(ENTRYPOINT), *command], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so `finally` can end gunicorn and its workers
            )
        try:
            def healthy() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                        return response.status == 200
                except OSError:
                    return False

            wait_for(healthy, 20, "/healthz", log, proc)  # so the entrypoint has migrated the fresh database
            user_ids = configure_users(tmp_path, url)
            # Every worker has loaded the app and started its scheduler: four candidates for the lease.
            wait_for(lambda: log.read_text().count("Scheduler started") == WORKERS, 20, "4 schedulers", log, proc)
            workers = worker_pids(log.read_text())
            assert len(workers) == WORKERS

            # One leader among the workers; every user synced in each tick.
            leader = wait_for(lambda: live_leader(engine), 10, "a leader", log, proc)
            assert leader in workers
            wait_for(lambda: len(complete_ticks(read_runs(engine), user_ids)) >= 2, 12, "two complete ticks", log, proc)
            leaders = LEADER_LINE.findall(log.read_text())
            assert len(leaders) == 1 and holder_pid(leaders[0]) == leader  # one of the four leads
            assert read_lease(engine).holder == leaders[0]

            # SIGKILL the leader's worker (just after a complete tick): no release, the lease expires, another
            # worker takes it (gunicorn also boots a replacement worker).
            os.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            successor = wait_for(lambda: (pid := live_leader(engine)) not in (None, leader) and pid,
                                 TTL_SECONDS + 5, "a new leader", log, proc)
            assert time.monotonic() - killed_at <= TTL_SECONDS + 3  # expiry, a renewal, polling, a loaded machine
            assert successor in worker_pids(log.read_text()) and alive(successor) and not alive(leader)
            taken_over = datetime.now(timezone.utc)
            wait_for(lambda: len([t for t in complete_ticks(read_runs(engine), user_ids) if t >= taken_over]) >= 2,
                     10, "two complete ticks from the new leader", log, proc)
            runs_before_stop = read_runs(engine)
            text = log.read_text()
            assert f"Worker (pid:{leader}) was sent SIGKILL" in text
            assert [holder_pid(h) for h in LEADER_LINE.findall(text)] == [leader, successor]  # no other change

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            for pid in worker_pids(log.read_text()):
                if alive(pid):  # a worker left behind by a failed run (same process group, normally gone)
                    os.kill(pid, signal.SIGKILL)
            all_runs = read_runs(engine)
            engine.dispose()

    text = log.read_text()
    assert "entrypoint: applying database migrations" in text and "entrypoint: starting gunicorn (4 workers" in text
    assert "lease released" in text  # a clean stop hands the lease on

    # Exactly once: no (tick, user) twice, ever; no failed sync; no run outside a tick.
    counts = Counter((tick_at, user_id) for tick_at, user_id, _, _ in all_runs)
    assert max(counts.values()) == 1, [key for key, n in counts.items() if n > 1]
    assert all(tick_at is not None for tick_at, _, _, _ in all_runs)
    failed = [(t, u, reason) for t, u, outcome, reason in all_runs if outcome == "failed"]
    assert not failed, failed
    assert {outcome for _, _, outcome, _ in all_runs} <= {"pushed", "unchanged"}

    # From the first tick after both users were configured, every tick ran for both, except at most the
    # one the killed leader was in, and ticks follow each other with a gap only across the takeover.
    complete = complete_ticks(runs_before_stop, user_ids)
    ticks = sorted({t for t, _, _, _ in runs_before_stop if t >= complete[0]})
    assert len(set(ticks) - set(complete)) <= 1, (ticks, complete)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert all(gap % TICK == timedelta(0) for gap in gaps), gaps
    assert sum(gap > TICK for gap in gaps) <= 1 and max(gaps) <= timedelta(seconds=TTL_SECONDS) + 3 * TICK, gaps


def test_entrypoint_with_a_command_migrates_a_fresh_database_first_and_never_echoes_options(tmp_path):
    """As `docker compose run --rm web flask users create ...` on a first start."""
    data_dir = tmp_path / "data"
    env = entrypoint_env(f"sqlite:///{data_dir / 'app.db'}", data_dir, SCHEDULER="off")
    code, output, _ = run_entrypoint(env, "flask", "users", "create", USERS[0], "--password", PASSWORD, "--admin")
    assert code == 0, output
    assert output.index("is reachable") < output.index("applying database migrations") < output.index(
        f"entrypoint: starting flask users create {USERS[0]}\n") < output.index(f"Created {USERS[0]} (administrator)")
    assert PASSWORD not in output and (data_dir / "fernet.key").read_text().strip() not in output


# --- The entrypoint's own decisions ----------------------------------------------------------------

def run_entrypoint(env: dict[str, str], *command: str, timeout: float = 30) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run([str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def test_unreachable_database_is_retried_then_given_up_without_the_password(tmp_path):
    port = free_port()  # nothing listens there
    env = entrypoint_env(f"postgresql://tas:pw-not-shown-42@127.0.0.1:{port}/tas", tmp_path / "data", DB_WAIT_SECONDS="3")
    code, output, took = run_entrypoint(env, "true")
    assert code == 1 and took < 15
    assert "waiting for database postgresql+psycopg://tas:***@127.0.0.1" in output
    assert "still unreachable after" in output and "DB_WAIT_SECONDS=3" in output
    assert "pw-not-shown-42" not in output
    assert "applying database migrations" not in output


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="TEST_DATABASE_URL not set")
def test_waits_for_a_database_that_comes_up_later(tmp_path):
    """The database does not exist when the entrypoint starts (as a postgres container still initialising)."""
    with fresh_database("postgresql", tmp_path) as url:
        missing = url.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1] + "_later"
        env = entrypoint_env(missing, tmp_path / "data", DB_WAIT_SECONDS="20", SCHEDULER="off")
        proc = subprocess.Popen([str(ENTRYPOINT), "flask", "db", "current"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        name = missing.rsplit("/", 1)[1]
        from tests.db_backends import _admin_connect

        try:
            time.sleep(2.5)
            with _admin_connect() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            output, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert proc.returncode == 0, output
    assert "waiting for database" in output and f'database "{name}" does not exist' in output
    assert output.index("is reachable") < output.index("applying database migrations") < output.index("starting flask db current")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"SCHEDULER": "twice"}, "configuration error: SCHEDULER must be one of"),
        ({"DATABASE_URL": "postgresql://tas:pw-not-shown-42@db:port/tas"}, "DATABASE_URL is not a valid database URL"),
        ({"DB_WAIT_SECONDS": "soon"}, "DB_WAIT_SECONDS must be a whole number"),
    ],
)
def test_bad_configuration_stops_at_once_with_a_clear_message(tmp_path, setting, message):
    env = entrypoint_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "data", **setting)
    code, output, took = run_entrypoint(env, "true")
    assert code == 1 and took < 10, output
    assert f"entrypoint: ERROR: {message}" in output
    assert "pw-not-shown-42" not in output and "Traceback" not in output


def test_data_dir_that_cannot_be_written_is_named_with_the_fix(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = entrypoint_env(f"sqlite:///{tmp_path / 'x.db'}", blocker / "data")
    code, output, _ = run_entrypoint(env, "true")
    assert code == 1
    assert f"DATA_DIR {blocker / 'data'} is not writable" in output and "sudo chown -R" in output


def test_run_migrations_0_skips_the_upgrade(tmp_path):
    env = entrypoint_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "data", RUN_MIGRATIONS="0")
    code, output, _ = run_entrypoint(env, "sh", "-c", "echo command ran")
    assert code == 0, output
    assert "not applying migrations" in output and "command ran" in output
    assert "applying database migrations (flask db upgrade)" not in output
