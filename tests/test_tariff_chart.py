"""The tariff page's chart: 48 half hours as bars (buy) and a line (sell), now marked, spike and negative
slots shaded, each slot's numbers on hover; the page draws it from the real push."""
from __future__ import annotations

import re

from app.dashboard.tariff_chart import tariff_chart
from tests.conftest import login
from tests.sync_env import env, simulator  # noqa: F401 (fixtures)


def slots(n=48, flags=None):
    flags = flags or {}
    out = []
    for i in range(n):
        h, m = divmod(14 * 60 + 30 * i, 60)
        out.append({"wall_from": f"{h % 24:02d}:{m:02d}", "wall_to": f"{(h + (m + 30) // 60) % 24:02d}:{(m + 30) % 60:02d}",
                    "buy": 0.30 + i / 1000, "sell": 0.08, "current": i == 0, "flags": flags.get(i, [])})
    return out


def test_every_half_hour_is_drawn_with_its_numbers_and_now_is_marked():
    svg = tariff_chart(slots())
    assert svg.startswith("<svg") and 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
    assert svg.count('class="slot-bar') == 48
    assert "14:00–14:30: buy 30.0c, sell 8.0c, now" in svg  # the current slot, with its numbers
    assert svg.count('class="slot-bar now"') == 1 and ">Now<" in svg


def test_spike_and_negative_slots_are_shaded_and_said_in_words():
    svg = tariff_chart(slots(flags={3: ["spike"], 4: ["potential_spike"], 10: ["export_costs_money"], 11: ["buy_clamped_negative"]}))
    assert svg.count("band-spike") == 2 and svg.count("band-negative") == 2
    assert "spike possible" in svg and "exporting costs money" in svg and "below zero" in svg


def test_negative_prices_get_an_axis_below_zero_and_nothing_breaks_without_slots():
    values = slots(6)
    values[2]["buy"] = -0.12
    svg = tariff_chart(values)
    assert re.search(r">-\d+c<", svg)  # an axis label below zero
    assert tariff_chart([]) == ""


def test_the_tariff_page_draws_the_pushed_tariff(env, app):  # noqa: F811
    env.tick()
    client = app.test_client()
    assert login(client, "alice@example.com").status_code == 302
    page = client.get("/tariff").get_data(as_text=True)
    assert page.count('class="slot-bar') == 48 and 'class="tariff-chart"' in page
    assert page.index('class="tariff-chart"') < page.index('<ol class="slots">')  # above the list
