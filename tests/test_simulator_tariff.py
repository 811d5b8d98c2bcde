"""The simulator's own tariff_content_v2 checker (tesla-energy-api.md §6.3), table-driven, no HTTP."""
from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest

from app.simulator.powerwall import default_site_tariff
from app.simulator.tou_tariff import TariffError, compile_tariff, normalise, price_problems

from tests.reference import FIXTURES  # noqa: E402


def period(from_dow: int, to_dow: int, from_hour: int, to_hour: int, from_minute: int = 0, to_minute: int = 0) -> dict:
    return {
        "fromDayOfWeek": from_dow,
        "toDayOfWeek": to_dow,
        "fromHour": from_hour,
        "fromMinute": from_minute,
        "toHour": to_hour,
        "toMinute": to_minute,
    }


def tariff(tou_periods: dict, rates: dict, *, seasons: dict | None = None, sell_rates: dict | None = None) -> dict:
    seasons = seasons or {"Year": {"fromMonth": 1, "fromDay": 1, "toMonth": 12, "toDay": 31, "tou_periods": tou_periods}}
    body = {
        "version": 1,
        "code": "T",
        "name": "T",
        "utility": "U",
        "currency": "AUD",
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
        "energy_charges": {"ALL": {"rates": {"ALL": 0}}, **{name: {"rates": rates} for name in seasons if seasons[name]}},
        "seasons": seasons,
    }
    if sell_rates is not None:
        body["sell_tariff"] = {
            "name": "S",
            "utility": "U",
            "daily_charges": [],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
            "energy_charges": {"ALL": {"rates": {"ALL": 0}}, **{name: {"rates": sell_rates} for name in seasons}},
            "seasons": copy.deepcopy(seasons),
        }
    return body


def test_reference_request_and_default_plan_are_valid():
    request = json.loads((FIXTURES / "tesla_tou_settings_request.json").read_text())
    for document in (request["tou_settings"]["tariff_content_v2"], default_site_tariff()):
        compiled = compile_tariff(document)
        assert price_problems(compiled) == []


@pytest.mark.parametrize(
    "tou_periods",
    [
        {"PEAK": {"periods": [period(0, 6, 16, 21)]}, "OFF": {"periods": [period(0, 6, 21, 16)]}},  # wraps midnight
        {"ALL_DAY": {"periods": [period(0, 6, 0, 0)]}},  # from == to: whole day
        {"A": {"periods": [period(0, 6, 0, 12)]}, "B": {"periods": [period(0, 6, 12, 24)]}},  # toHour 24
        {"WD": {"periods": [period(0, 4, 0, 0)]}, "WE": {"periods": [period(5, 6, 0, 0)]}},  # weekdays / weekend
        {"X": {"periods": [period(4, 0, 0, 0)]}, "Y": {"periods": [period(1, 3, 0, 0)]}},  # day range wraps the week
    ],
)
def test_valid_period_layouts(tou_periods):
    compile_tariff(tariff(tou_periods, {name: 0.1 for name in tou_periods}))


def test_seasons_may_wrap_the_year_and_placeholders_are_ignored():
    day = {"D": {"periods": [period(0, 6, 0, 0)]}}
    seasons = {
        "Summer": {"fromMonth": 10, "fromDay": 1, "toMonth": 3, "toDay": 31, "tou_periods": day},
        "Winter": {"fromMonth": 4, "fromDay": 1, "toMonth": 9, "toDay": 30, "tou_periods": copy.deepcopy(day)},
        "Unused": {"fromMonth": 0, "fromDay": 0, "toMonth": 0, "toDay": 0, "tou_periods": {}},
        "Empty": {},
    }
    document = tariff({}, {"D": 0.2}, seasons=seasons)
    document["energy_charges"]["Unused"] = {"rates": {}}
    document["energy_charges"]["Empty"] = {}
    compiled = compile_tariff(document)
    assert compiled.buy.season_on(datetime(2026, 1, 15).date()).name == "Summer"
    assert compiled.buy.season_on(datetime(2026, 7, 15).date()).name == "Winter"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.pop("currency"), "missing currency"),
        (lambda t: t.update(currency="XYZ"), "not a supported currency"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].pop("fromMinute"), "missing fromMinute"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].update(toHour=13), "overlaps"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].update(toHour=11), "gap at day 0 11:00"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].update(fromDayOfWeek=7), "day of week"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].update(toHour="12"), "integers"),
        (lambda t: t["seasons"]["Year"]["tou_periods"]["A"]["periods"][0].update(toHour=24, toMinute=30), "toHour 24"),
        (lambda t: t["energy_charges"]["Year"]["rates"].update(GHOST=0.1), "price for a period without time periods"),
        (lambda t: t["energy_charges"].update(Winter={"rates": {"A": 0.1}}), "season without time periods"),
        (lambda t: t["energy_charges"]["Year"]["rates"].update(A="0.1"), "must be a number"),
        (lambda t: t["seasons"]["Year"].update(toMonth=6, toDay=30), "no season covers 7/1"),
        (lambda t: t["seasons"]["Year"].update(toDay=32), "invalid calendar date"),
        (lambda t: t.update(seasons={}), "at least one season"),
    ],
)
def test_structural_errors(mutate, message):
    document = tariff(
        {"A": {"periods": [period(0, 6, 0, 12)]}, "B": {"periods": [period(0, 6, 12, 0)]}}, {"A": 0.1, "B": 0.2}
    )
    mutate(document)
    with pytest.raises(TariffError, match=message):
        compile_tariff(document)


def test_price_without_fallback_is_an_error():
    document = tariff({"A": {"periods": [period(0, 6, 0, 12)]}, "B": {"periods": [period(0, 6, 12, 0)]}}, {"A": 0.1})
    compile_tariff(document)  # B falls back to ALL/ALL
    del document["energy_charges"]["ALL"]
    with pytest.raises(TariffError, match="period B of season Year has no price"):
        compile_tariff(document)


def test_price_problems_and_normalisation():
    periods = {"A": {"periods": [period(0, 6, 0, 12)]}, "B": {"periods": [period(0, 6, 12, 0)]}}
    document = tariff(periods, {"A": -0.05, "B": 0.2}, sell_rates={"A": 0.0, "B": 0.3})
    compiled = compile_tariff(document)
    problems = price_problems(compiled)
    assert any("negative" in p for p in problems)
    assert any("sell 0.3 exceeds buy 0.2" in p for p in problems)
    fixed = normalise(document, compiled)
    assert fixed["energy_charges"]["Year"]["rates"] == {"A": 0, "B": 0.3}
    assert price_problems(compile_tariff(fixed)) == []
    assert document["energy_charges"]["Year"]["rates"]["A"] == -0.05  # the input is left alone


def test_rate_lookup_uses_local_wall_clock_and_fallbacks():
    periods = {"DAY": {"periods": [period(0, 6, 7, 22)]}, "NIGHT": {"periods": [period(0, 6, 22, 7)]}}
    document = tariff(periods, {"DAY": 0.3})
    document["energy_charges"]["ALL"]["rates"]["NIGHT"] = 0.1
    compiled = compile_tariff(document)
    assert compiled.buy_at(datetime(2026, 11, 24, 6, 59)) == 0.1
    assert compiled.buy_at(datetime(2026, 11, 24, 7, 0)) == 0.3
    assert compiled.sell_at(datetime(2026, 11, 24, 7, 0)) == 0.0  # no sell tariff
