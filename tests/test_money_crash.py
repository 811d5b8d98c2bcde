"""A money import killed half-way loses nothing and leaves no way in: a real `flask money import` against the
simulator is killed (SIGKILL) after its first week of usage is committed; what it stored stays, the household
is still due for the daily import, and the next import completes without a duplicate row."""
from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import MeteredUsage, MoneyImport
from app.money.importer import chunks, households_due
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from tests.db_backends import BACKENDS
from tests.process_support import household_on_simulator, run_flask

EMAIL = "owner@example.com"


@pytest.fixture(scope="module")
def simulator():
    base, stop = start_simulator_thread(app=create_simulator_app())
    yield base
    stop()


@pytest.fixture(params=BACKENDS)
def home(request, tmp_path, simulator):
    with household_on_simulator(request.param, tmp_path, simulator, EMAIL, amber_token=identity.AMBER_TOKEN,
                                amber_site_id=identity.AMBER_SITE_ID) as home:
        yield home


def money_import(env: dict, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return run_flask(env, "money", "import", "--user", EMAIL, "--days", "10", kill_at=kill_at, timeout=120)


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(MeteredUsage))


def test_an_import_killed_between_two_weeks_keeps_the_first_and_the_next_import_completes(home, simulator):
    app, env, household_id = home
    killed = money_import(env, kill_at="money_after_usage_chunk")
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    first_week = stored(app)
    assert first_week > 0  # the committed week stays
    with app.app_context():
        assert db.session.get(MoneyImport, household_id) is None  # no success recorded...
        assert household_id in households_due(datetime.now(timezone.utc))  # ...so the daily job will import it
    done = money_import(env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.count("Amber usage ") == 2
    today = datetime.now(timezone(timedelta(hours=10))).date()
    rows = []
    for first, last in chunks(today - timedelta(days=9), today):  # a week a request, as the import asks
        rows += requests.get(
            f"{simulator}/amber/v1/sites/{identity.AMBER_SITE_ID}/usage",
            params={"startDate": first.isoformat(), "endDate": last.isoformat()},
            headers={"Authorization": f"Bearer {identity.AMBER_TOKEN}"}, timeout=10,
        ).json()
    # Exactly the simulator's rows, once each (a row completed between the two runs may have been added).
    assert len(rows) - 4 <= stored(app) <= len(rows) + 4 and stored(app) > first_week
    with app.app_context():
        dupes = db.session.execute(
            select(MeteredUsage.channel, MeteredUsage.start_at, func.count()).group_by(MeteredUsage.channel, MeteredUsage.start_at)
            .having(func.count() > 1)
        ).all()
        assert dupes == []
        assert db.session.get(MoneyImport, household_id).last_success_at is not None
