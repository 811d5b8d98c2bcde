"""The sync's pure decisions, table-driven: when to push, the stale fallback, export protection."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sync.rules import (
    after_lost_answer,
    decide_export_protection,
    decide_push,
    fallback_tariff,
    is_stale,
    tariff_hash,
    tariffs_differ,
)
from app.tariff import PERIOD_NAMES, TariffPolicy, tariff_from_rates, tariff_rates, validate_tariff

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
POLICY = TariffPolicy()


def tariff(buy: float = 0.30, sell: float = 0.08, **overrides: tuple[float, float]) -> dict:
    buys = {p: buy for p in PERIOD_NAMES}
    sells = {p: sell for p in PERIOD_NAMES}
    for period, (b, s) in overrides.items():
        buys[period], sells[period] = b, s
    return tariff_from_rates(POLICY, buys, sells)


def decide(new, last, *, current="PERIOD_14_00", age_minutes=5, kind="normal", threshold=0.5, refresh=60):
    return decide_push(
        new, current, last, NOW - timedelta(minutes=age_minutes) if last else None, kind, NOW,
        threshold_cents=threshold, refresh_age=timedelta(minutes=refresh),
    )


@pytest.mark.parametrize(
    ("new", "last", "kwargs", "push", "reason_part"),
    [
        (tariff(), None, {}, True, "First tariff"),
        (tariff(), tariff(), {}, False, "No price changed"),
        (tariff(), tariff(), {"kind": "fallback"}, True, "replacing the safe fallback"),
        (tariff(PERIOD_14_00=(0.3001, 0.08)), tariff(), {}, True, "current half hour (14:00) changed"),
        (tariff(PERIOD_14_00=(0.30, 0.0801)), tariff(), {}, True, "current half hour"),
        (tariff(PERIOD_18_00=(0.3049, 0.08)), tariff(), {}, False, "No price changed"),
        (tariff(PERIOD_18_00=(0.3050, 0.08)), tariff(), {}, True, "most at 18:00: 0.5 c/kWh"),
        (tariff(PERIOD_18_00=(0.30, 0.0850)), tariff(), {}, True, "1 half hour(s) changed"),
        (tariff(PERIOD_18_00=(0.31, 0.08), PERIOD_19_00=(0.35, 0.08)), tariff(), {}, True, "most at 19:00: 5.0"),
        (tariff(PERIOD_18_00=(0.3049, 0.08)), tariff(), {"threshold": 0.2}, True, "changed by 0.2 c/kWh"),
        (tariff(), tariff(), {"age_minutes": 59}, False, "No price changed"),
        (tariff(), tariff(), {"age_minutes": 60}, True, "Refresh: the last push was 60 minutes ago"),
        (tariff(), tariff(), {"age_minutes": 30, "refresh": 30}, True, "Refresh"),
    ],
)
def test_decide_push(new, last, kwargs, push, reason_part):
    decision = decide(new, last, **kwargs)
    assert decision.push is push
    assert reason_part in decision.reason


def test_tariff_hash_is_stable_and_sensitive():
    assert tariff_hash(tariff()) == tariff_hash(tariff())
    assert tariff_hash(tariff()) != tariff_hash(tariff(PERIOD_00_00=(0.3001, 0.08)))


def _reordered(value):
    """The same document with every object's keys in the opposite order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


def test_tariff_hash_does_not_depend_on_the_order_keys_were_added_in():
    document = tariff(PERIOD_18_00=(1.2345, -0.05))
    reordered = _reordered(document)
    assert list(reordered) != list(document) and reordered == document
    assert tariff_hash(reordered) == tariff_hash(document)


# Rates as the builder writes them: dollars rounded to 4 decimals, from Amber's range (negative to spikes).
_RATES = st.integers(min_value=-200_000, max_value=200_000).map(lambda hundredths_of_a_cent: round(hundredths_of_a_cent / 10_000, 4))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(_RATES, min_size=2 * len(PERIOD_NAMES), max_size=2 * len(PERIOD_NAMES)))
def test_tariff_hash_is_the_one_earlier_versions_stored(rates):
    # Earlier versions hashed Python's json.dumps of the tariff; the same tariff still gets the same hash.
    buys = dict(zip(PERIOD_NAMES, rates[: len(PERIOD_NAMES)]))
    sells = dict(zip(PERIOD_NAMES, rates[len(PERIOD_NAMES):]))
    document = tariff_from_rates(POLICY, buys, sells)
    earlier = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert tariff_hash(document) == earlier


def test_read_back_comparison_ignores_tesla_normalisation_but_not_rates():
    ours = tariff(PERIOD_18_00=(0.9, 0.5))
    read_back = tariff(PERIOD_18_00=(0.9, 0.5))
    # Tesla may rename the season and drop zero-valued fields on read-back.
    read_back["energy_charges"]["Everything"] = read_back["energy_charges"].pop("Summer")
    read_back["sell_tariff"].pop("daily_charges")
    assert not tariffs_differ(ours, read_back)
    edited = tariff(PERIOD_18_00=(0.2, 0.05))
    assert tariffs_differ(ours, edited)
    assert tariffs_differ(ours, None)


OLD, LOST, NOW_WANTED, OUTSIDE = tariff(0.30), tariff(0.45), tariff(0.46), tariff(0.25, 0.05)


@pytest.mark.parametrize(
    ("wanted", "last", "read_back", "arrived", "push", "changed_outside"),
    [
        # The lost push is on the Powerwall: it counts as accepted and the usual rule decides against it.
        (NOW_WANTED, OLD, LOST, True, None, False),
        (LOST, OLD, LOST, True, None, False),
        # It did not arrive and the Powerwall still holds the last accepted tariff: the usual rule decides.
        (NOW_WANTED, OLD, OLD, False, None, False),
        # It did not arrive but the Powerwall already holds what is wanted now: never a second (billed) push.
        (OLD, OLD, OLD, False, False, False),
        # It did not arrive and the Powerwall holds neither: something else set it, so send the synced one
        # (the usual rule would compare with the last accepted tariff, which is not on the Powerwall).
        (OLD, OLD, OUTSIDE, False, True, True),
        (NOW_WANTED, OLD, OUTSIDE, False, True, True),
        (NOW_WANTED, OLD, None, False, True, True),  # no tariff on the Powerwall at all
        # The very first push was the lost one and did not arrive: the usual rule pushes (first tariff).
        (NOW_WANTED, None, OUTSIDE, False, None, False),
    ],
)
def test_after_a_lost_answer_the_read_back_decides(wanted, last, read_back, arrived, push, changed_outside):
    check = after_lost_answer(wanted, LOST, last, read_back)
    assert (check.arrived, check.push, check.changed_outside) == (arrived, push, changed_outside)
    assert ("shows it arrived" if arrived else "did not arrive") in check.reason


def test_fallback_is_flat_at_the_median_and_valid():
    last = tariff(0.30, 0.05, PERIOD_18_00=(12.0, 11.0), PERIOD_12_00=(0.0, 0.0))
    flat = fallback_tariff(last, POLICY)
    assert validate_tariff(flat) == []
    buy, sell = tariff_rates(flat)
    assert set(buy.values()) == {0.30} and set(sell.values()) == {0.05}


def test_fallback_never_sells_above_buy_and_needs_a_tariff():
    last = tariff(0.10, 0.10)
    buy, sell = tariff_rates(fallback_tariff(last, POLICY))
    assert all(sell[p] <= buy[p] for p in PERIOD_NAMES)
    assert fallback_tariff({"energy_charges": {}}, POLICY) is None


@pytest.mark.parametrize(
    ("last_success_minutes_ago", "stale"),
    [(None, False), (10, False), (45, False), (46, True), (600, True)],
)
def test_is_stale(last_success_minutes_ago, stale):
    last = None if last_success_minutes_ago is None else NOW - timedelta(minutes=last_success_minutes_ago)
    assert is_stale(last, NOW, timedelta(minutes=45)) is stale


BASE = dict(enabled=True, active=False, current_costs_money=False, next_costs_money=False,
            user_rule="battery_ok", protect_rule="never", active_since=None, now=NOW, min_hold=timedelta(minutes=10))


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({}, "none"),
        ({"current_costs_money": True}, "activate"),
        ({"current_costs_money": True, "enabled": False}, "none"),
        ({"current_costs_money": True, "user_rule": "never"}, "none"),
        ({"current_costs_money": True, "user_rule": "pv_only", "protect_rule": "pv_only"}, "none"),
        ({"current_costs_money": True, "user_rule": "pv_only", "protect_rule": "never"}, "activate"),
        ({"next_costs_money": True}, "none"),  # only the current half hour switches it on
        # active: stays on while the current or next half hour costs money (hysteresis)
        ({"active": True, "current_costs_money": True, "active_since": NOW - timedelta(hours=1)}, "none"),
        ({"active": True, "next_costs_money": True, "active_since": NOW - timedelta(hours=1)}, "none"),
        ({"active": True, "active_since": NOW - timedelta(minutes=5)}, "none"),
        ({"active": True, "active_since": NOW - timedelta(minutes=10)}, "restore"),
        ({"active": True, "enabled": False, "current_costs_money": True, "active_since": NOW}, "restore"),
    ],
)
def test_export_protection(changes, action):
    assert decide_export_protection(**{**BASE, **changes}).action == action


def test_tesla_wait_after_refused_credentials_and_after_a_429():
    from app.sync.rules import TESLA_AUTH_RECHECK, tesla_wait

    now = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
    check = now + TESLA_AUTH_RECHECK
    assert tesla_wait("Token refused.", check, now) == "Tesla needs attention: Token refused. The app checks again after 04:00 UTC."
    assert tesla_wait("Token refused.", check, check) is None  # the hourly check may call
    assert tesla_wait("Token refused.", None, now) is None  # blocked before checks existed: check now
    assert tesla_wait(None, now + timedelta(seconds=90), now) == "Tesla asked us to slow down; the next push is after 03:01:30 UTC."
    assert tesla_wait(None, None, now) is None
