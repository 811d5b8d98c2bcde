"""Price sanity: impossible Amber prices (beyond the NEM limits, NaN, a channel sent twice) are refused,
never stored over a good price, never pushed, and the run and the dashboard say which and why."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from sqlalchemy import select

from app.clients.amber import MalformedInterval, parse_price_interval
from app.extensions import db as _db
from app.models import StoredPrice, SyncRun
from app.price_sanity import PriceBounds, screen_prices
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval
from app.sync import run_tick
from app.tariff import build_tariff, tariff_rates
from config import ConfigError
from tests.conftest import login, make_config
from tests.sync_env import SHARED, env, fake_sleep, simulator  # noqa: F401 (fixtures)

T = datetime(2026, 11, 24, 3, 30, tzinfo=timezone.utc)
BOUNDS = PriceBounds()


def interval(per_kwh, channel=Channel.GENERAL, start=T, minutes=30, advanced=None):
    kind = IntervalKind.FORECAST if advanced else IntervalKind.ACTUAL
    return PriceInterval(channel, kind, start, start + timedelta(minutes=minutes), per_kwh, advanced_price=advanced)


# -- pure ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (interval(1e9), "1,000,000,000.0 c/kWh (price) is above the limit of 2,500.0 c/kWh"),
        (interval(-151.0), "below the limit of -150.0 c/kWh"),
        (interval(float("nan")), "not a finite number (nan)"),
        (interval(float("inf")), "not a finite number (inf)"),
        (interval(30.0, advanced=AdvancedPrice(25.0, 30.0, 1e6)), "(high forecast) is above the limit"),
        (interval(-3000.0, Channel.FEED_IN), "below the limit of -2,500.0 c/kWh"),
        (interval(200.0, Channel.FEED_IN), "above the limit of 150.0 c/kWh"),
    ],
)
def test_impossible_prices_are_refused_with_the_reason(item, reason):
    kept, refused = screen_prices([interval(30.0, start=T - timedelta(minutes=30)), item], BOUNDS)
    assert [i.per_kwh for i in kept] == [30.0]
    assert len(refused) == 1 and reason in refused[0].reason


@pytest.mark.parametrize("price", [-149.9, -100.0, 0.0, 35.5, 1800.0, 2499.0])
def test_real_prices_pass_on_both_channels(price):
    kept, refused = screen_prices([interval(price), interval(-price, Channel.FEED_IN)], BOUNDS)
    assert len(kept) == 2 and refused == []


def test_a_channel_sent_twice_with_different_prices_is_refused_and_an_exact_repeat_is_kept_once():
    repeat = [interval(30.0), interval(30.0)]
    assert (len(screen_prices(repeat, BOUNDS)[0]), screen_prices(repeat, BOUNDS)[1]) == (1, [])
    # Amber's feed-in series labelled general: two general prices for every interval.
    kept, refused = screen_prices([interval(30.0), interval(-8.0)], BOUNDS)
    assert kept == [] and len(refused) == 2
    assert "2 different general prices" in refused[0].reason and "-8.0 c/kWh and 30.0 c/kWh" in refused[0].reason


def test_one_feed_in_interval_labelled_general_leaves_its_slot_filled_not_free_power_or_free_export():
    # 30-minute series from 14:30 Sydney for 24 h; the 18:00 feed-in interval comes labelled general.
    starts = [T + timedelta(minutes=30 * i) for i in range(48)]
    odd = datetime(2026, 11, 24, 7, 0, tzinfo=timezone.utc)  # 18:00 in Sydney
    items = [interval(30.0 + i % 3, start=s, advanced=AdvancedPrice(30.0, 30.0 + i % 3, 33.0)) for i, s in enumerate(starts)]
    items += [interval(-8.0, Channel.GENERAL if s == odd else Channel.FEED_IN, start=s) for s in starts]
    kept, refused = screen_prices(items, BOUNDS)
    assert [(r.channel, r.start) for r in refused] == [("general", odd), ("general", odd)]
    tariff, explanation = build_tariff(kept, ZoneInfo("Australia/Sydney"), T)
    buy, sell = tariff_rates(tariff)
    # Without the check, -8 c/kWh became the 18:00 buy price (clamped to 0: free power, so the Powerwall
    # charges from the grid) and the sell price followed it down to 0. Now both sides take the median,
    # like missing data.
    assert (buy["PERIOD_18_00"], sell["PERIOD_18_00"]) == (explanation.fill_buy, explanation.fill_sell) == (0.31, 0.08)


def test_bounds_are_settings_and_must_make_sense(tmp_path, monkeypatch):
    monkeypatch.setenv("PRICE_MAX_CENTS", "500")
    config = make_config(tmp_path, "sqlite://")
    assert config.PRICE_MAX_CENTS == 500.0
    assert screen_prices([interval(600.0)], PriceBounds(config.PRICE_MIN_CENTS, config.PRICE_MAX_CENTS))[1]
    monkeypatch.setenv("PRICE_MIN_CENTS", "600")
    with pytest.raises(ConfigError, match="PRICE_MIN_CENTS must be below PRICE_MAX_CENTS"):
        make_config(tmp_path, "sqlite://")
    with pytest.raises(ValueError):
        PriceBounds(10.0, 10.0)
    with pytest.raises(ValueError):
        PriceBounds(math.nan, 10.0)


# -- in the sync ---------------------------------------------------------------------------------------------


@pytest.fixture()
def home(env):
    """alice's household on the simulator's Powerwall, with Amber scripted (tests/sync_env.py)."""
    return env.amber, env.mock

def tick(app):
    with app.app_context():
        [result] = run_tick(SHARED.current, sleep=fake_sleep)
        return result


def pushed(simulator):
    return requests.get(f"{simulator}/_sim/state", timeout=5).json()["powerwall"]["tariff_content_v2"]


def test_an_impossible_price_is_never_stored_or_pushed_and_the_run_and_dashboard_say_so(app, home, simulator):
    amber, _ = home
    spike_at = datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc)  # 17:00 in Sydney, a forecast slot
    assert tick(app).outcome == "pushed"
    with app.app_context():
        good = _db.session.scalar(select(StoredPrice.per_kwh).where(StoredPrice.start_at == spike_at, StoredPrice.channel == "general",
                                                                    StoredPrice.duration_minutes == 30))
    assert good == 30.0

    amber.price_fn = lambda start, minutes: (1e9 if start == spike_at else 31.0, -8.0)
    SHARED.advance(minutes=5)
    result = tick(app)
    buy, _ = tariff_rates(pushed(simulator))
    assert max(buy.values()) < 1.0  # $/kWh: the impossible price went nowhere near the Powerwall
    assert "Refused 1 impossible Amber price(s)" in result.reason and "above the limit of 2,500.0 c/kWh" in result.reason
    with app.app_context():
        run = _db.session.scalar(select(SyncRun).order_by(SyncRun.id.desc()))
        assert [r["start"] for r in run.refused_prices] == [spike_at.isoformat()]
        stored = _db.session.scalar(select(StoredPrice.per_kwh).where(StoredPrice.start_at == spike_at, StoredPrice.channel == "general",
                                                                      StoredPrice.duration_minutes == 30))
    assert stored == 30.0  # the last good price stays
    client = app.test_client()
    assert login(client, "alice@example.com").status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "refused Amber prices that cannot be real" in page and "general 24 Nov 17:00–17:30" in page


@pytest.mark.parametrize(("bad", "words"), [(math.nan, "not a finite number (nan)"), (math.inf, "not a finite number (inf)")])
def test_a_price_that_is_not_a_number_is_named_in_the_run_and_on_the_dashboard(app, home, simulator, bad, words):
    amber, _ = home
    bad_at = datetime(2026, 11, 24, 7, 0, tzinfo=timezone.utc)  # 18:00 in Sydney, a forecast slot
    assert tick(app).outcome == "pushed"
    # Amber's JSON says NaN (or Infinity): Python reads it as a float, and it must not vanish in silence.
    amber.price_fn = lambda start, minutes: (bad if start == bad_at else 30.0, -8.0)
    SHARED.advance(minutes=5)
    result = tick(app)
    assert f"general 24 Nov 18:00–18:30: the price is {words}" in result.reason
    buy, _ = tariff_rates(pushed(simulator))
    assert buy["PERIOD_18_00"] == 0.3  # the slot was filled as missing data, at the median
    with app.app_context():
        run = _db.session.scalar(select(SyncRun).order_by(SyncRun.id.desc()))
        assert [(r["start"], r["value"]) for r in run.refused_prices] == [(bad_at.isoformat(), None)]
    client = app.test_client()
    assert login(client, "alice@example.com").status_code == 302
    assert f"general 24 Nov 18:00–18:30: the price is {words}" in client.get("/").get_data(as_text=True)


def test_the_amber_client_keeps_a_price_that_is_not_finite_for_the_sanity_check():
    raw = {"type": "ForecastInterval", "duration": 30, "endTime": "2026-11-24T07:30:00Z", "channelType": "general",
           "perKwh": math.nan, "advancedPrice": {"low": 1.0, "predicted": 2.0, "high": 3.0}}
    parsed = parse_price_interval(raw)
    assert math.isnan(parsed.per_kwh)
    assert "not a finite number" in screen_prices([parsed], BOUNDS)[1][0].reason
    with pytest.raises(MalformedInterval):
        parse_price_interval({**raw, "perKwh": "12.5"})


def test_a_feed_in_series_labelled_general_is_refused_and_the_last_good_tariff_stays(app, home, simulator):
    amber, mock = home
    assert tick(app).outcome == "pushed"
    before = pushed(simulator)
    original = amber._prices

    def relabelled(request):
        status, headers, body = original(request)
        items = json.loads(body)
        for item in items:
            item["channelType"] = "general"
        return status, headers, json.dumps(items)

    amber._prices = relabelled
    mock.remove(responses.GET, amber.base_url)  # no-op when absent; re-install with the relabelling callback
    mock.reset()
    mock.add_passthru(simulator)
    amber.install(mock)
    SHARED.advance(minutes=5)
    result = tick(app)
    assert result.outcome == "failed" and "Refused" in result.reason and "different general prices" in result.reason
    assert pushed(simulator) == before  # nothing pushed: the sell prices did not silently become 0
