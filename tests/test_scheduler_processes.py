"""The scheduler across real processes on one database (SQLite file and PostgreSQL): three
`flask scheduler run` processes with one-second ticks run each tick exactly once, and when the leader
is killed another one takes over within the lease TTL; gunicorn with several workers elects one leader.

These tests wait for real processes (that is what they test); every wait is bounded."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from app import create_app
from app.sync import lease
from app.extensions import db
from app.sync.scheduler import LEASE_NAME
from tests.conftest import make_config
from tests.db_backends import BACKENDS, fresh_database
from tests.scheduler_helpers import metadata as ticks_metadata
from tests.scheduler_helpers import read_ticks

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PERIOD = timedelta(seconds=1)
TTL_SECONDS, RENEW_SECONDS = 1.5, 0.25


def scheduler_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER", "GUNICORN_")) and k not in (
        "SECRET_KEY", "FERNET_ENCRYPTION_KEY", "DATABASE_URL", "APP_ENV", "HOST", "PORT", "WERKZEUG_RUN_MAIN")}
    env.update(
        FLASK_APP="run.py", APP_ENV="production", DATA_DIR=str(data_dir), DATABASE_URL=database_url,
        LOG_LEVEL="INFO", PYTHONUNBUFFERED="1",
        SCHEDULER_TICK_SECONDS="1", SCHEDULER_TICK_DELAY_SECONDS="0.2",
        SCHEDULER_LEASE_TTL_SECONDS=str(TTL_SECONDS), SCHEDULER_LEASE_RENEW_SECONDS=str(RENEW_SECONDS),
        SCHEDULER_TICK_JOB="tests.scheduler_helpers:record_tick",
    )
    return env


def prepare_database(tmp_path: Path, database_url: str) -> Path:
    """Create the app's tables and the ticks table; generate the keys once (not in three processes at once)."""
    config = make_config(tmp_path, database_url)
    app = create_app(config)
    with app.app_context():
        db.create_all()
        ticks_metadata.create_all(db.engine)
        db.engine.dispose()
    return Path(config.DATA_DIR)


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, logs: list[Path], alive: list[subprocess.Popen]
) -> object:
    """Poll `condition` until true; fail at `timeout` or as soon as a process in `alive` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in alive):
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    what += "" if all(p.poll() is None for p in alive) else " (a process exited)"
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"gave up after {timeout} s waiting for {what}\n{tails}")


def assert_consecutive(ticks: list[datetime]) -> None:
    assert all(b - a == PERIOD for a, b in zip(ticks, ticks[1:])), ticks


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_processes_run_each_tick_once_and_fail_over(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        data_dir = prepare_database(tmp_path, url)
        engine = create_engine(make_config(tmp_path, url).SQLALCHEMY_DATABASE_URI)
        env = scheduler_env(url, data_dir)
        app = create_app(make_config(tmp_path, url))
        procs: dict[int, subprocess.Popen] = {}
        logs = [tmp_path / f"scheduler-{i}.log" for i in range(3)]

        def holder() -> lease.Lease | None:
            with app.app_context():
                return lease.read_lease(LEASE_NAME)

        def live_leader_pid() -> int | None:
            with app.app_context():
                from app.clock import system_clock

                held = lease.current_holder(LEASE_NAME, system_clock())
            return lease.holder_pid(held.holder) if held else None

        try:
            for log_path in logs:
                with log_path.open("w") as out:
                    proc = subprocess.Popen(
                        [str(BIN / "flask"), "scheduler", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                procs[proc.pid] = proc

            # Phase 1: one leader, each tick once, consecutive.
            running = list(procs.values())
            wait_for(lambda: len(read_ticks(engine)) >= 3, 15, "three ticks", logs, running)
            first_leader = live_leader_pid()
            assert first_leader in procs
            before = read_ticks(engine)
            assert {pid for _, pid in before} == {first_leader}
            assert_consecutive([t for t, _ in before])

            # Phase 2: SIGKILL the leader (no release); another process takes over within the TTL.
            last_before_kill = read_ticks(engine)[-1][0]
            killed_at = time.monotonic()
            procs[first_leader].send_signal(signal.SIGKILL)
            procs[first_leader].wait(timeout=5)
            running.remove(procs[first_leader])
            second_leader = wait_for(
                lambda: (pid := live_leader_pid()) not in (None, first_leader) and pid, TTL_SECONDS + 3,
                "a new leader", logs, running,
            )
            takeover = time.monotonic() - killed_at
            assert takeover <= TTL_SECONDS + 1.5, takeover
            wait_for(lambda: sum(pid == second_leader for _, pid in read_ticks(engine)) >= 2, 10,
                     "two ticks from the new leader", logs, running)

            # Phase 3: SIGTERM the new leader: it stops cleanly and releases; the last process takes over.
            procs[second_leader].send_signal(signal.SIGTERM)
            assert procs[second_leader].wait(timeout=10) == 0
            running.remove(procs[second_leader])
            third_leader = wait_for(
                lambda: (pid := live_leader_pid()) not in (None, first_leader, second_leader) and pid, TTL_SECONDS + 3,
                "the last leader", logs, running,
            )
            wait_for(lambda: any(pid == third_leader for _, pid in read_ticks(engine)), 10,
                     "a tick from the last leader", logs, running)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
            final_lease = holder()
            ticks = read_ticks(engine)
            engine.dispose()
            with app.app_context():
                db.engine.dispose()

        released_log = next(p for p, pid in zip(logs, procs) if pid == second_leader).read_text()
        assert "lease released" in released_log
        counts = Counter(t for t, _ in ticks)
        assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1]  # exactly once, always
        by_leader = [[t for t, pid in ticks if pid == leader] for leader in (first_leader, second_leader, third_leader)]
        for run in by_leader:
            assert_consecutive(run)
        assert by_leader[0][-1] >= last_before_kill
        # Across a failover only the ticks due while nobody held the lease are missing.
        assert by_leader[1][0] - by_leader[0][-1] <= timedelta(seconds=TTL_SECONDS + 2)
        assert by_leader[2][0] - by_leader[1][-1] <= timedelta(seconds=2)
        assert final_lease.last_tick_at == ticks[-1][0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_workers_elect_one_leader(tmp_path):
    """`gunicorn -c gunicorn.conf.py run:app` with three workers: one leader, each tick once, /healthz up."""
    with fresh_database("sqlite", tmp_path) as url:
        data_dir = prepare_database(tmp_path, url)
        engine = create_engine(url)
        port = free_port()
        env = scheduler_env(url, data_dir)
        env.update(SCHEDULER="embedded", HOST="127.0.0.1", PORT=str(port), GUNICORN_WORKERS="3", GUNICORN_THREADS="2")
        log_path = tmp_path / "gunicorn.log"
        with log_path.open("w") as out:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "run:app"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: len(read_ticks(engine)) >= 3, 15, "three ticks", [log_path], [proc])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert response.status == 200
            ticks = read_ticks(engine)
            running = log_path.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            all_ticks = read_ticks(engine)
            engine.dispose()
        assert running.count('logger=app.sync.scheduler request_id=- msg="Scheduler started') == 3  # LOG_FORMAT=text
        assert running.count("is now the leader") == 1, running
        assert "apscheduler" not in running  # its per-run INFO lines are quietened
        assert len({pid for _, pid in ticks}) == 1
        assert_consecutive([t for t, _ in ticks])
        # On shutdown each worker releases the lease (another may lead for a moment, never twice a tick).
        assert "lease released" in log_path.read_text()
        assert max(Counter(t for t, _ in all_ticks).values()) == 1
