"""The real entry points a newcomer and an operator use: `flask` with FLASK_APP=run.py on a fresh
DATA_DIR (keys generated once and reused, migrations applied, CLI working)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLASK = str(Path(sys.executable).with_name("flask"))


def flask(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FERNET_ENCRYPTION_KEY", "DATABASE_URL", "APP_ENV")}
    env.update(FLASK_APP="run.py", DATA_DIR=str(data_dir), SCHEDULER="off")
    return subprocess.run([FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_fresh_data_dir_upgrade_create_and_list(tmp_path):
    data = tmp_path / "data"
    result = flask("db", "upgrade", data_dir=data)
    assert result.returncode == 0, result.stderr
    key = (data / "fernet.key").read_text()
    assert key.strip() not in result.stdout + result.stderr  # logged that it was made, never the value
    assert "Generated a new fernet.key" in result.stdout + result.stderr

    result = flask("users", "create", "op@example.com", "--password", "operator secret", data_dir=data)
    assert result.returncode == 0 and "(administrator)" in result.stdout
    result = flask("users", "configure", "op@example.com", "--amber-token", "psk_entrypointentrypointentrypoint00", data_dir=data)
    assert result.returncode == 0, result.stderr

    result = flask("users", "list", data_dir=data)
    assert result.returncode == 0 and "amber=saved" in result.stdout  # decrypted with the reused key
    assert (data / "fernet.key").read_text() == key
    assert "psk_entrypoint" not in result.stdout

    result = flask("users", "configure", "ghost@example.com", "--sync", data_dir=data)
    assert result.returncode != 0 and "No account" in result.stderr
