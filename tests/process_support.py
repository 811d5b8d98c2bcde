"""Real `flask` processes for the crash tests: the environment a child app runs with, and one command run
to its end (or killed at a fault point, app/fault_points.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.fault_points import FAULT_ENV
from config import BASE_DIR


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
