"""A push whose answer is lost (sent, but the reply never came back whole) is read back from the Powerwall
before anything is sent again, and sent again only if the Powerwall does not already hold it."""
from __future__ import annotations

import urllib.request

import pytest
import requests
import responses
from sqlalchemy import select

from app.clients.tesla import teslemetry_client
from app.extensions import db as _db
from app.models import TariffPush
from app.simulator import identity
from app.sync import run_tick
from app.tariff import PERIOD_NAMES, TariffPolicy, tariff_from_rates
from tests.sync_env import SHARED, env, fake_sleep, simulator  # noqa: F401 (fixtures)

POWERWALL = str(identity.TESLA_ENERGY_SITE_ID)


@pytest.fixture()
def home(env):
    """alice's household on the simulator's Powerwall, with Amber scripted (tests/sync_env.py)."""
    return env

def tick(app):
    with app.app_context():
        [result] = run_tick(SHARED.current, sleep=fake_sleep)
        return result


def sim(simulator):
    return requests.get(f"{simulator}/_sim/state", timeout=5).json()


def time_out_after_sending(mock, simulator):
    """The next push reaches the Powerwall (forwarded past `responses`), but the reply never comes back in time."""
    url = f"{simulator}/teslemetry/api/1/energy_sites/{POWERWALL}/time_of_use_settings"
    timed_out = []

    def forward(request):
        sent = urllib.request.Request(url, data=request.body, method="POST", headers=dict(request.headers))
        with urllib.request.urlopen(sent, timeout=5) as answer:
            body = answer.read()
        if not timed_out:
            timed_out.append(True)
            raise requests.ReadTimeout("read timed out")
        return 200, {"Content-Type": "application/json"}, body

    mock.add_callback(responses.POST, url, callback=forward)


def lose_the_next_push_answer(app, simulator, env, how="garbled"):
    """Tick 1 pushes; prices change; tick 2's push reaches the Powerwall but its answer is lost (`how`: a
    garbled reply, or a read timeout after sending)."""
    assert tick(app).outcome == "pushed"
    env.amber.price_fn = lambda start, minutes: (45.0, -8.0)
    if how == "timeout":
        time_out_after_sending(env.mock, simulator)
    else:
        requests.post(f"{simulator}/_sim/faults", json={"endpoint": "tesla_time_of_use_settings", "malformed": True, "count": 1},
                      timeout=5).raise_for_status()
    SHARED.advance(minutes=5)
    result = tick(app)
    assert result.outcome == "failed" and "answer to the push was lost" in result.reason
    with app.app_context():
        lost = _db.session.scalar(select(TariffPush).order_by(TariffPush.id.desc()))
        assert (lost.accepted, lost.answer_lost) == (False, True)
        return lost.tariff


@pytest.mark.parametrize("how", ["garbled", "timeout"])
def test_the_next_sync_reads_back_and_does_not_push_what_already_arrived(app, home, simulator, how):
    wanted = lose_the_next_push_answer(app, simulator, home, how)
    assert sim(simulator)["powerwall"]["tariff_content_v2"] == wanted  # it did arrive
    pushes = len(sim(simulator)["tou_pushes"])
    reads = sim(simulator)["request_counts"].get("teslemetry.site_info", 0)
    SHARED.advance(minutes=5)
    result = tick(app)
    assert result.outcome == "unchanged", result.reason
    assert "shows it arrived" in result.reason
    assert len(sim(simulator)["tou_pushes"]) == pushes  # no second (billed) push
    assert sim(simulator)["request_counts"].get("teslemetry.site_info", 0) == reads + 1  # one read-back
    assert result.tesla_calls == 1
    with app.app_context():
        confirmed = _db.session.scalar(select(TariffPush).order_by(TariffPush.id.desc()))
        assert (confirmed.accepted, confirmed.answer_lost) == (True, False)


def test_the_next_sync_pushes_again_when_the_read_back_differs(app, home, simulator):
    wanted = lose_the_next_push_answer(app, simulator, home)
    # Something else changed the Powerwall's tariff meanwhile (or the push never landed).
    tesla = teslemetry_client(identity.TESLEMETRY_TOKEN, base_url=app.config["TESLEMETRY_API_URL"])
    with app.app_context():
        first = _db.session.scalar(select(TariffPush).where(TariffPush.accepted.is_(True)).order_by(TariffPush.id))
        tesla.set_tariff(POWERWALL, first.tariff)
    pushes = len(sim(simulator)["tou_pushes"])
    SHARED.advance(minutes=5)
    result = tick(app)
    assert result.outcome == "pushed" and "did not arrive" in result.reason
    assert len(sim(simulator)["tou_pushes"]) == pushes + 1
    assert sim(simulator)["powerwall"]["tariff_content_v2"]["energy_charges"] == wanted["energy_charges"]


def test_the_next_sync_pushes_when_the_powerwall_holds_neither_the_lost_nor_the_last_tariff(app, home, simulator):
    lose_the_next_push_answer(app, simulator, home)
    # Prices go back to what the last accepted push held, while the Powerwall got a tariff from elsewhere:
    # comparing with the last accepted push alone would see nothing to do and leave the wrong tariff there.
    home.amber.price_fn = lambda start, minutes: (30.0, -8.0)
    outside = tariff_from_rates(TariffPolicy(), {p: 0.25 for p in PERIOD_NAMES}, {p: 0.05 for p in PERIOD_NAMES})
    teslemetry_client(identity.TESLEMETRY_TOKEN, base_url=app.config["TESLEMETRY_API_URL"]).set_tariff(POWERWALL, outside)
    pushes = len(sim(simulator)["tou_pushes"])
    SHARED.advance(minutes=5)
    result = tick(app)
    assert result.outcome == "pushed" and "set outside this app" in result.reason, result.reason
    assert result.changed_outside and result.tesla_calls == 2  # one read-back, one push
    assert len(sim(simulator)["tou_pushes"]) == pushes + 1
    with app.app_context():
        first = _db.session.scalar(select(TariffPush).where(TariffPush.accepted.is_(True)).order_by(TariffPush.id))
    assert sim(simulator)["powerwall"]["tariff_content_v2"]["energy_charges"] == first.tariff["energy_charges"]
