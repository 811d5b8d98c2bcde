"""Real `flask` processes for the crash tests: the environment a child app runs with, and one command run
to its end (or killed at a fault point, app/fault_points.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask

from app import create_app
from app.credentials import apply_settings
from app.extensions import db
from app.fault_points import FAULT_ENV
from app.simulator import identity
from config import BASE_DIR
from tests.conftest import create_user, make_config, owned_household
from tests.db_backends import fresh_database


def flask_env(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """A child's environment: this database and data folder, production settings, no scheduler, no fault."""
    env = {**os.environ, **settings, "DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "APP_ENV": "production",
           "SCHEDULER": "off", "FLASK_APP": "run.py", "LOG_LEVEL": "WARNING"}
    env.pop(FAULT_ENV, None)
    return env


def run_flask(env: dict[str, str], *args: str, kill_at: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `flask ARGS` to its end; with `kill_at`, the child kills itself (SIGKILL) at that step."""
    child_env = {**env, FAULT_ENV: kill_at} if kill_at else env
    return subprocess.run([sys.executable, "-m", "flask", *args], cwd=BASE_DIR, env=child_env,
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def household_on_simulator(
    backend: str, tmp_path: Path, simulator: str, email: str, **household_settings: str
) -> Iterator[tuple[Flask, dict[str, str], int]]:
    """A fresh database on `backend` with one account whose household has `household_settings` (and the
    Sydney zone), the app pointed at the simulator: (app, the environment for its `flask` children, the
    household's id)."""
    with fresh_database(backend, tmp_path) as url:
        settings = identity.app_settings(simulator)
        app = create_app(make_config(tmp_path, url, **settings))
        with app.app_context():
            db.create_all()
        uid = create_user(app, email)
        with app.app_context():
            household = owned_household(uid)
            apply_settings(household, site_timezone="Australia/Sydney", **household_settings)
            db.session.commit()
            household_id = household.id
        try:
            yield app, flask_env(url, tmp_path / "data", **settings), household_id
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
