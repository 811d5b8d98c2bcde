"""A sync environment for tests: Amber through `responses` (scriptable prices, see amber_fake.py),
Tesla through the local simulator over loopback, one shared frozen clock, and a sleep that only
moves that clock. Import the fixtures (`simulator`, `env`) into a test module to use them."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests
import responses
from sqlalchemy import select

from app.credentials import apply_settings
from app.extensions import db as _db
from app.models import SyncRun, SyncState, Household
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from app.sync import run_tick
from tests.amber_fake import FakeAmber
from tests.conftest import FakeClock

AMBER_URL = "https://amber.test/v1"
SITE = "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
TESLA_SITE = str(identity.TESLA_ENERGY_SITE_ID)
NOW = datetime(2026, 11, 24, 3, 12, 40, tzinfo=timezone.utc)  # 14:12:40 in Sydney (AEDT)
SHARED = FakeClock(NOW)


def another_powerwall(n: int) -> str:
    """The site id of the simulator's n-th further Powerwall (a household of its own needs its own)."""
    return str(identity.TESLA_ENERGY_SITE_ID + n)


def fake_sleep(seconds: float) -> None:
    SHARED.advance(seconds=seconds)


@pytest.fixture(scope="module")
def simulator():
    base, stop = start_simulator_thread(app=create_simulator_app(clock=lambda: SHARED.current))
    yield base
    stop()


class Env:
    def __init__(self, app, amber: FakeAmber, simulator: str, mock):
        self.app, self.amber, self.simulator, self.mock = app, amber, simulator, mock

    def tick(self, **kwargs):
        with self.app.app_context():
            return run_tick(SHARED.current, sleep=fake_sleep, **kwargs)

    def sim(self, path: str = "state", **kwargs):
        method = "post" if "json" in kwargs else "get"
        response = getattr(requests, method)(f"{self.simulator}/_sim/{path}", timeout=5, **kwargs)
        response.raise_for_status()
        return response.json()

    def pushed_tariff(self):
        return self.sim()["powerwall"]["tariff_content_v2"]

    def runs(self, household_id=None):
        with self.app.app_context():
            query = select(SyncRun).order_by(SyncRun.id)
            if household_id:
                query = query.where(SyncRun.household_id == household_id)
            rows = _db.session.scalars(query).all()
            _db.session.expunge_all()
            return rows

    def state(self, household_id):
        with self.app.app_context():
            row = _db.session.get(SyncState, household_id)
            _db.session.expunge_all()
            return row


def configure(app, household_id, **overrides):
    with app.app_context():
        household = _db.session.get(Household, household_id)
        values = dict(
            amber_token="psk_0123456789abcdef0123456789abcdef",
            amber_site_id=SITE,
            teslemetry_token=identity.TESLEMETRY_TOKEN,
            tesla_site_id=TESLA_SITE,
            site_timezone="Australia/Sydney",
            sync_enabled=True,
        )
        values.update(overrides)
        apply_settings(household, **values)
        _db.session.commit()


@pytest.fixture()
def env(app, household_id, simulator):
    SHARED.current = NOW
    requests.post(f"{simulator}/_sim/reset", timeout=5).raise_for_status()
    app.extensions["clock"] = SHARED
    app.extensions["sleep"] = fake_sleep
    app.config.update(identity.app_settings(simulator))
    app.config.update(AMBER_API_URL=AMBER_URL, SYNC_MAX_WORKERS=4)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(simulator)
        amber = FakeAmber(AMBER_URL, SITE, lambda: SHARED.current)
        amber.install(mock)
        configure(app, household_id)
        yield Env(app, amber, simulator, mock)


