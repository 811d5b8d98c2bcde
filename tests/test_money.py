"""Money: Amber's metered usage imported and billed to the cent, the battery's savings, the Money page,
its CSV and GET /api/money, `flask money import|report`, the daily import job.

Amber and Tesla are faked with `responses`; the expected figures are summed by hand here from the very
rows the fake serves (Decimal from the JSON text, rounded half up once), never taken from the app."""
from __future__ import annotations

import csv
import io
import json
import random
import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import responses
from sqlalchemy import func, select

from app.credentials import apply_settings
from app.extensions import db as _db
from app.models import EnergyInterval, ForceSession, Household, MeteredUsage, MoneyImport
from app.money import arithmetic as money
from tests.conftest import create_user, login

AMBER = "https://amber.test/v1"
TESLEMETRY = "https://teslemetry.test"
SITE = "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
TESLA_SITE = "2252188888888888"
NEM = timezone(timedelta(hours=10))
UTC = timezone.utc
SYDNEY = ZoneInfo("Australia/Sydney")
IDENT = {"general": "E1", "controlledLoad": "E2", "feedIn": "B1"}


# --- a fake Amber usage endpoint and Tesla history ---------------------------------------------------------


def usage_row(start: datetime, minutes: int, channel: str, kwh: float, per_kwh: float, *, quality: str = "billable",
              cost: float | None = None) -> dict:
    end = start + timedelta(minutes=minutes)
    return {
        "type": "Usage", "duration": minutes, "date": start.astimezone(NEM).date().isoformat(),
        "endTime": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "startTime": (start + timedelta(seconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nemTime": end.astimezone(NEM).isoformat(), "quality": quality, "kwh": kwh, "perKwh": per_kwh,
        "channelType": channel, "channelIdentifier": IDENT[channel],
        "cost": round(kwh * per_kwh, 4) if cost is None else cost,
        "renewables": 31.5, "spotPerKwh": 7.1, "spikeStatus": "none", "descriptor": "low",
    }


class FakeAmberUsage:
    """GET /sites/{SITE}/usage?startDate&endDate: the rows dated in the range; counts requests."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.rows: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        mock.add_callback(responses.GET, re.compile(rf"{re.escape(AMBER)}/sites/{SITE}/usage.*"), callback=self._answer)

    def _answer(self, request):
        query = parse_qs(urlsplit(request.url).query)
        first, last = query["startDate"][0], query["endDate"][0]
        self.requests.append((first, last))
        if self.status != 200:
            return self.status, {}, json.dumps({"message": "Unauthorized"})
        rows = [r for r in self.rows if first <= r["date"] <= last]
        return 200, self.headers, json.dumps(rows)

    def replace(self, rows: list[dict]) -> None:
        self.rows = rows


class FakeTeslaHistory:
    """calendar_history for the Powerwall: the stored rows whose timestamp falls in [start_date, end_date]."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.rows: list[dict] = []
        self.calls = 0
        mock.add_callback(
            responses.GET, re.compile(rf"{re.escape(TESLEMETRY)}/api/1/energy_sites/{TESLA_SITE}/calendar_history.*"),
            callback=self._answer,
        )

    def _answer(self, request):
        self.calls += 1
        query = parse_qs(urlsplit(request.url).query)
        first = datetime.fromisoformat(query["start_date"][0])
        last = datetime.fromisoformat(query["end_date"][0])
        rows = [r for r in self.rows if first <= datetime.fromisoformat(r["timestamp"]) <= last]
        body = {"response": {"period": "day", "installation_time_zone": "Australia/Sydney", "time_series": rows}}
        return 200, {}, json.dumps(body)


@pytest.fixture()
def fakes(app, household_id):
    app.config.update(AMBER_API_URL=AMBER, TESLEMETRY_API_URL=TESLEMETRY)
    with app.app_context():
        household = _db.session.get(Household, household_id)
        apply_settings(
            household, amber_token="psk_0123456789abcdef0123456789abcdef", amber_site_id=SITE,
            teslemetry_token="tslm_test_token_0123456789", tesla_site_id=TESLA_SITE, site_timezone="Australia/Sydney",
        )
        _db.session.commit()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeAmberUsage(mock), FakeTeslaHistory(mock)


def hand_bill(rows: list[dict], day: str | None = None) -> dict:
    """The bill summed by hand from Amber's rows (feed-in kWh may come either sign; earnings are -cost
    when kWh are positive, as Amber's own example row shows)."""
    chosen = [r for r in rows if day is None or r["date"] == day]
    imp = [r for r in chosen if r["channelType"] != "feedIn"]
    exp = [r for r in chosen if r["channelType"] == "feedIn"]
    d = lambda v: Decimal(str(v))
    import_cents = sum((d(r["cost"]) for r in imp), Decimal(0))
    earn_cents = sum((-abs(d(r["cost"])) if d(r["perKwh"]) > 0 else abs(d(r["cost"])) for r in exp), Decimal(0))
    cent = lambda c: float((c / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    return {
        "import_kwh": float(sum((d(r["kwh"]) for r in imp), Decimal(0)).quantize(Decimal("0.001"))),
        "import_cost": cent(import_cents),
        "export_kwh": float(sum((abs(d(r["kwh"])) for r in exp), Decimal(0)).quantize(Decimal("0.001"))),
        "export_earnings": cent(earn_cents),
        "net": cent(import_cents - earn_cents),
    }


def day_rows(day: date, minutes: int, rng: random.Random, *, negative: bool = False, quality: str = "billable",
             controlled: bool = False) -> list[dict]:
    """A billing day of rows (NEM midnight to midnight) with realistic kWh and prices."""
    start = datetime(day.year, day.month, day.day, tzinfo=NEM)
    rows = []
    for i in range(24 * 60 // minutes):
        t = start + timedelta(minutes=minutes * i)
        scale = minutes / 30
        general = round(rng.uniform(-12, 3) if negative and 10 <= i * minutes / 60 < 15 else rng.uniform(8, 55), 5)
        feed_in = round(rng.uniform(0.5, 9) if negative and 10 <= i * minutes / 60 < 15 else -rng.uniform(0, 14), 5)
        rows.append(usage_row(t, minutes, "general", round(rng.uniform(0, 1.2) * scale, 3), general, quality=quality))
        if controlled:
            rows.append(usage_row(t, minutes, "controlledLoad", round(rng.uniform(0, 0.6) * scale, 3), round(general * 0.6, 5), quality=quality))
        rows.append(usage_row(t, minutes, "feedIn", round(rng.uniform(0, 2.0) * scale, 3), feed_in, quality=quality))
    return rows


def run(runner, *args):
    result = runner.invoke(args=list(args))
    return result


def report(runner, first: str, last: str) -> dict:
    result = run(runner, "money", "report", "--user", "alice@example.com", "--from", first, "--to", last, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def assert_matches(report_day: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert report_day[key] == pytest.approx(value, abs=1e-9), (key, report_day[key], value)


# --- the bill to the cent ------------------------------------------------------------------------------------


def test_report_equals_hand_summed_amber_rows_to_the_cent(app, fakes, runner, clock):
    amber, _ = fakes
    rng = random.Random(7)
    rows = day_rows(date(2026, 11, 21), 30, rng, controlled=True) + day_rows(date(2026, 11, 22), 30, rng, controlled=True)
    amber.replace(rows)
    result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "5")
    assert result.exit_code == 0, result.output
    assert "Amber usage 2026-11-20..2026-11-24: 288 rows (0 estimated), 288 new or changed" in result.output
    data = report(runner, "2026-11-21", "2026-11-22")
    assert [d["date"] for d in data["days"]] == ["2026-11-21", "2026-11-22"]
    for day in data["days"]:
        assert_matches(day, hand_bill(rows, day["date"]))
    assert_matches(data["total"], hand_bill(rows))
    # The total is rounded once from the unrounded sums, as a bill is, not summed from rounded days.
    assert data["total"]["net"] == hand_bill(rows)["net"]


def test_negative_price_day_counts_paid_imports_and_costly_exports(app, fakes, runner):
    amber, _ = fakes
    rows = day_rows(date(2026, 11, 22), 30, random.Random(3), negative=True)
    assert any(r["perKwh"] < 0 for r in rows if r["channelType"] == "general")
    assert any(r["perKwh"] > 0 for r in rows if r["channelType"] == "feedIn")
    amber.replace(rows)
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    [day] = report(runner, "2026-11-22", "2026-11-22")["days"]
    expected = hand_bill(rows)
    assert_matches(day, expected)
    # A hand check of one negative interval: being paid to import lowers the cost.
    paid = [r for r in rows if r["channelType"] == "general" and r["perKwh"] < 0 and r["kwh"] > 0]
    assert paid and sum(Decimal(str(r["cost"])) for r in paid) < 0


def test_five_minute_billing_day(app, fakes, runner):
    amber, _ = fakes
    rows = day_rows(date(2026, 11, 23), 5, random.Random(11))
    assert len(rows) == 2 * 288
    amber.replace(rows)
    result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "2")
    assert result.exit_code == 0, result.output
    [day] = report(runner, "2026-11-23", "2026-11-23")["days"]
    assert_matches(day, hand_bill(rows))


def test_dst_days_follow_amber_billing_dates_not_the_local_calendar(app, fakes, runner, clock):
    """Sydney moves to daylight time on 4 October 2026; Amber's billing day stays 00:00-24:00 +10:00, so a
    local-midnight split would move an hour of money to the wrong day."""
    amber, _ = fakes
    clock.current = datetime(2026, 10, 7, 2, 0, tzinfo=UTC)
    rng = random.Random(5)
    rows = day_rows(date(2026, 10, 3), 5, rng) + day_rows(date(2026, 10, 4), 5, rng) + day_rows(date(2026, 10, 5), 5, rng)
    amber.replace(rows)
    assert run(runner, "money", "import", "--user", "alice@example.com", "--days", "6").exit_code == 0
    data = report(runner, "2026-10-03", "2026-10-05")
    for day in data["days"]:
        assert_matches(day, hand_bill(rows, day["date"]))
    with app.app_context():
        counts = dict(_db.session.execute(
            select(MeteredUsage.billing_date, func.count()).group_by(MeteredUsage.billing_date)
        ).all())
    assert set(counts.values()) == {576}  # 288 intervals x 2 channels on each day, DST or not
    # An hour of 5 October's local morning is billed on the 4th.
    local_day_rows = [r for r in rows if datetime.fromisoformat(r["endTime"].replace("Z", "+00:00")).astimezone(SYDNEY).date() == date(2026, 10, 5)]
    assert hand_bill(local_day_rows)["net"] != data["days"][2]["net"]


def test_feed_in_kwh_with_either_sign_gives_the_same_bill(app, fakes, runner):
    amber, _ = fakes
    rows = day_rows(date(2026, 11, 22), 30, random.Random(9), negative=True)
    amber.replace(rows)
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    positive = report(runner, "2026-11-22", "2026-11-22")
    flipped = [
        {**r, "kwh": -r["kwh"], "cost": round(-r["kwh"] * r["perKwh"], 4), "quality": "billable"}
        if r["channelType"] == "feedIn" else r for r in rows
    ]
    with app.app_context():
        _db.session.execute(MeteredUsage.__table__.delete())
        _db.session.commit()
    amber.replace(flipped)
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    assert report(runner, "2026-11-22", "2026-11-22") == positive
    assert positive["total"]["export_kwh"] > 0


def test_reimport_replaces_estimated_rows_keeps_billable_ones_and_is_idempotent(app, fakes, runner):
    amber, _ = fakes
    estimated = day_rows(date(2026, 11, 23), 30, random.Random(1), quality="estimated")
    amber.replace(estimated)
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    [day] = report(runner, "2026-11-23", "2026-11-23")["days"]
    assert_matches(day, hand_bill(estimated))
    assert day["estimated_intervals"] == 96

    again = run(runner, "money", "import", "--user", "alice@example.com")
    assert "96 rows (96 estimated), 0 new or changed" in again.output  # nothing rewritten

    billable = day_rows(date(2026, 11, 23), 30, random.Random(2))
    amber.replace(billable)
    assert "96 rows (0 estimated), 96 new or changed" in run(runner, "money", "import", "--user", "alice@example.com").output
    [day] = report(runner, "2026-11-23", "2026-11-23")["days"]
    assert_matches(day, hand_bill(billable))
    assert day["estimated_intervals"] == 0

    amber.replace(day_rows(date(2026, 11, 23), 30, random.Random(3), quality="estimated"))  # a late estimate
    run(runner, "money", "import", "--user", "alice@example.com")
    [day] = report(runner, "2026-11-23", "2026-11-23")["days"]
    assert_matches(day, hand_bill(billable))  # billable rows are never replaced by an estimate
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(MeteredUsage)) == 96


def test_import_goes_a_week_a_request_within_the_rate_budget(app, fakes, runner, clock):
    amber, _ = fakes
    amber.headers = {"RateLimit-Limit": "50", "RateLimit-Remaining": "3", "RateLimit-Reset": "120"}
    before = clock.current
    result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "20")
    assert result.exit_code == 0, result.output
    assert amber.requests == [("2026-11-05", "2026-11-11"), ("2026-11-12", "2026-11-18"), ("2026-11-19", "2026-11-24")]
    assert result.output.count("Amber usage ") == 3  # a progress line per request
    assert result.output.count("waiting 120 s") == 2  # it waited for the window instead of running it dry
    assert clock.current - before == timedelta(seconds=240)


def test_days_are_clamped_to_amber_s_ninety(app, fakes, runner):
    amber, _ = fakes
    result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "91")
    assert result.exit_code != 0 and "91 is not in the range 1<=x<=90" in result.output
    assert amber.requests == []


def test_a_refused_token_is_reported_and_keeps_what_was_imported(app, fakes, runner, household_id):
    amber, _ = fakes
    amber.replace(day_rows(date(2026, 11, 22), 30, random.Random(4)))
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    amber.status = 401
    result = run(runner, "money", "import", "--user", "alice@example.com")
    assert result.exit_code == 1
    assert "Amber's usage could not be read" in result.output and "psk_" not in result.output
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(MeteredUsage)) == 96
        state = _db.session.get(MoneyImport, household_id)
        assert "could not be read" in state.last_error
    assert report(runner, "2026-11-22", "2026-11-22")["days"][0]["net"] == hand_bill(amber.rows)["net"]


def test_report_without_json_prints_a_table_and_rejects_bad_dates(app, fakes, runner):
    amber, _ = fakes
    amber.replace(day_rows(date(2026, 11, 22), 30, random.Random(4)))
    run(runner, "money", "import", "--user", "alice@example.com")
    out = run(runner, "money", "report", "--user", "alice@example.com", "--from", "2026-11-22", "--to", "2026-11-22").output
    expected = hand_bill(amber.rows)
    assert f"{expected['net']:.2f}" in out.splitlines()[1] and out.splitlines()[-1].startswith("total")
    bad = run(runner, "money", "report", "--user", "alice@example.com", "--from", "22/11/2026")
    assert bad.exit_code != 0 and "YYYY-MM-DD" in bad.output
    nobody = run(runner, "money", "report", "--user", "nobody@example.com")
    assert nobody.exit_code != 0 and "No account" in nobody.output


# --- savings ---------------------------------------------------------------------------------------------------


def energy(start: datetime, **wh) -> dict:
    keys = {
        "battery_from_grid": "battery_energy_imported_from_grid", "battery_from_solar": "battery_energy_imported_from_solar",
        "battery_to_home": "consumer_energy_imported_from_battery", "battery_to_grid": "grid_energy_exported_from_battery",
    }
    row = {"timestamp": start.astimezone(SYDNEY).isoformat(), "grid_energy_imported": 0, "total_grid_energy_exported": 0,
           "total_home_usage": 500, "total_solar_generation": 0}
    for key, value in wh.items():
        row[keys[key]] = value
    return row


def test_savings_on_a_hand_made_day(app, fakes, runner, household_id, clock):
    """Four half hours, each with one battery flow, priced by hand:
    - 1,000 Wh to the home while buying costs 30 c/kWh: 30 c saved;
    - 2,000 Wh charged from the grid at 10 c/kWh (a force charge): 20 c spent;
    - 1,500 Wh charged from solar while exporting costs 5 c/kWh: 7.5 c saved;
    - 1,000 Wh sent to the grid while exporting earns 50 c/kWh: 50 c earned.
    Total 67.5 c -> $0.68."""
    amber, tesla = fakes
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=NEM)
    slots = [(30.0, -4.0), (10.0, -2.0), (12.0, 5.0), (60.0, -50.0)]
    rows = []
    for i, (buy, sell) in enumerate(slots):
        start = t0 + timedelta(minutes=30 * i)
        rows += [usage_row(start, 30, "general", 0.1, buy), usage_row(start, 30, "feedIn", 0.2, sell)]
    amber.replace(rows)
    tesla.rows = [
        energy(t0, battery_to_home=1000),
        energy(t0 + timedelta(minutes=30), battery_from_grid=2000),
        energy(t0 + timedelta(minutes=60), battery_from_solar=1500),
        energy(t0 + timedelta(minutes=90), battery_to_grid=1000),
    ]
    with app.app_context():
        _db.session.add(ForceSession(
            household_id=household_id, tesla_site_id=TESLA_SITE, action="force_charge", state="ended", minutes=30,
            started_at=t0 + timedelta(minutes=30), ends_at=t0 + timedelta(minutes=60), ended_at=t0 + timedelta(minutes=60),
            started_by="alice@example.com", updated_at=t0,
        ))
        _db.session.commit()
    result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "3")
    assert result.exit_code == 0, result.output
    assert "Tesla energy 2026-11-22: 4 rows, 4 new or changed" in result.output
    data = report(runner, "2026-11-22", "2026-11-22")
    assert data["savings"]["total"] == 0.68
    windows = {w["kind"]: w for w in data["windows"]}
    assert windows["force_charge"]["battery"] == -0.20
    assert windows["export_protection"]["battery"] == 0.08  # 7.5 c, rounded half up
    assert datetime.fromisoformat(windows["export_protection"]["start"]) == t0 + timedelta(minutes=60)


def test_pure_saving_arithmetic_matches_the_definition():
    row = money.EnergyRow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 30, tzinfo=UTC),
                          battery_to_home=800, battery_from_grid=200, battery_from_solar=300, battery_to_grid=100)
    # With no battery: 800 Wh bought, 200 Wh not bought, 300 Wh exported, 100 Wh not exported.
    assert money.battery_saving(row, Decimal(25), Decimal(-8)) == Decimal("25") * Decimal("0.6") + Decimal("-8") * Decimal("0.2")


# --- page, CSV, API -------------------------------------------------------------------------------------------


def _cents(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_page_csv_and_api_agree(app, fakes, runner, user_client):
    amber, _ = fakes
    rows = day_rows(date(2026, 11, 21), 30, random.Random(21), negative=True) + day_rows(date(2026, 11, 22), 30, random.Random(22))
    amber.replace(rows)
    assert run(runner, "money", "import", "--user", "alice@example.com").exit_code == 0
    api = user_client.get("/api/money?from=2026-11-21&to=2026-11-22").get_json()
    assert_matches(api["total"], hand_bill(rows))
    page = user_client.get("/money?from=2026-11-21&to=2026-11-22")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<svg class="money-chart"' in html and "<title" in html
    net = re.search(r'id="range-net">([^<]+)<', html).group(1)
    assert _cents(net) == Decimal(str(api["total"]["net"]))
    response = user_client.get("/money.csv?from=2026-11-21&to=2026-11-22")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(lines) == len(rows)
    import_cost = sum(Decimal(r["cost_dollars"]) for r in lines if r["channel"] != "feedIn")
    earnings = -sum(Decimal(r["cost_dollars"]) for r in lines if r["channel"] == "feedIn")
    q = lambda v: float(v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    assert q(import_cost) == api["total"]["import_cost"]
    assert q(earnings) == api["total"]["export_earnings"]
    assert q(import_cost - earnings) == api["total"]["net"]


def test_bad_ranges_get_a_clear_message(app, fakes, user_client):
    page = user_client.get("/money?from=yesterday")
    assert page.status_code == 400 and "YYYY-MM-DD" in page.get_data(as_text=True)
    api = user_client.get("/api/money?from=2026-11-22&to=2026-11-01")
    assert api.status_code == 400 and "after the end date" in api.get_json()["error"]
    assert user_client.get("/money.csv?from=2025-01-01&to=2026-11-22").status_code == 400


def test_empty_page_says_how_to_import(app, user_client):
    html = user_client.get("/money").get_data(as_text=True)
    assert "No metered usage yet" in html and "flask money import" in html


def test_fixed_costs_owner_only_and_shown_apart(app, fakes, runner, user_client, household_id):
    amber, _ = fakes
    rows = day_rows(date(2026, 11, 22), 30, random.Random(8))
    amber.replace(rows)
    run(runner, "money", "import", "--user", "alice@example.com")
    token = re.search(r'name="csrf_token" value="([^"]+)"', user_client.get("/money").get_data(as_text=True)).group(1)
    bad = user_client.post("/money/fixed-costs", data={"csrf_token": token, "supply_cents_per_day": "abc"}, follow_redirects=True)
    assert "must be a number" in bad.get_data(as_text=True)
    user_client.post("/money/fixed-costs", data={"csrf_token": token, "supply_cents_per_day": "110.5", "membership_dollars_per_month": "18.25"})
    [day] = user_client.get("/api/money?from=2026-11-22&to=2026-11-22").get_json()["days"]
    expected_fixed = Decimal("110.5") + Decimal("1825") * 12 / 365
    assert day["fixed_costs"] == float((expected_fixed / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    assert day["net"] == hand_bill(rows)["net"]  # fixed costs are kept apart from the energy money

    viewer_id = create_user(app, "vera@example.com")
    from app.households.service import add_member
    from app.models import User

    with app.app_context():
        add_member(_db.session.get(Household, household_id), _db.session.get(User, viewer_id), "viewer", "alice@example.com", datetime.now(UTC))
        _db.session.commit()
    viewer = app.test_client()
    assert login(viewer, "vera@example.com").status_code == 302
    page = viewer.get("/money?from=2026-11-22&to=2026-11-22")
    assert page.status_code == 200 and 'name="supply_cents_per_day"' not in page.get_data(as_text=True)
    vtoken = re.search(r'name="csrf_token" value="([^"]+)"', viewer.get("/settings/notifications").get_data(as_text=True)).group(1)
    refused = viewer.post("/money/fixed-costs", data={"csrf_token": vtoken, "supply_cents_per_day": "1"})
    assert refused.status_code == 403
    assert user_client.get("/api/money?from=2026-11-22&to=2026-11-22").get_json()["days"][0]["fixed_costs"] == day["fixed_costs"]


# --- the daily job ------------------------------------------------------------------------------------------


def test_daily_job_imports_each_household_once_a_day(app, fakes, household_id, clock):
    from app.money.importer import import_due

    amber, _ = fakes
    amber.replace(day_rows(date(2026, 11, 23), 30, random.Random(6)))
    with app.app_context():
        assert import_due(clock.current) == 1
        first_requests = len(amber.requests)
        assert first_requests == 2  # its first import reaches 14 days back: two weeks, two requests
        assert import_due(clock.current + timedelta(hours=5)) == 0  # not again the same day
        assert import_due(clock.current + timedelta(hours=21)) == 1
        assert len(amber.requests) == first_requests + 1  # then the last 3 days, one request
        assert _db.session.scalar(select(func.count()).select_from(MeteredUsage)) == 96


# --- end to end against the simulator -------------------------------------------------------------------------


def test_import_from_the_simulator_bills_its_meter_and_prices_its_powerwall(app, household_id, clock, runner):
    """The real clients against the local simulator: a day of the Powerwall model's life, imported, billed and
    priced; the meter the bill sums is the same grid flow as Tesla's history shows."""
    from app.simulator.server import create_simulator_app, start_simulator_thread
    from app.simulator import identity
    from tests.simulator_support import ManualClock

    sim_clock = ManualClock(datetime(2026, 11, 22, 13, 0, tzinfo=UTC))  # 00:00 on the 23rd in Sydney
    base, stop = start_simulator_thread(app=create_simulator_app(clock=sim_clock))
    try:
        requests_get = __import__("requests").get
        requests_get(f"{base}/_sim/state", timeout=5).raise_for_status()  # the model starts here
        sim_clock.now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # a day and a half later
        clock.current = sim_clock.now
        app.config.update(identity.app_settings(base))
        with app.app_context():
            apply_settings(
                _db.session.get(Household, household_id), amber_token=identity.AMBER_TOKEN, amber_site_id=identity.AMBER_SITE_ID,
                teslemetry_token=identity.TESLEMETRY_TOKEN, tesla_site_id=str(identity.TESLA_ENERGY_SITE_ID),
                site_timezone="Australia/Sydney",
            )
            _db.session.commit()
        result = run(runner, "money", "import", "--user", "alice@example.com", "--days", "2")
        assert result.exit_code == 0, result.output
        raw = requests_get(
            f"{base}/amber/v1/sites/{identity.AMBER_SITE_ID}/usage?startDate=2026-11-23&endDate=2026-11-23",
            headers={"Authorization": f"Bearer {identity.AMBER_TOKEN}"}, timeout=5,
        ).json()
        [day] = report(runner, "2026-11-23", "2026-11-23")["days"]
        assert_matches(day, hand_bill(raw))
        assert day["import_kwh"] > 0 and day["export_kwh"] > 0
        data = report(runner, "2026-11-23", "2026-11-23")
        assert data["savings"] is not None
        with app.app_context():
            stored = _db.session.scalars(select(EnergyInterval).order_by(EnergyInterval.start_at)).all()
            assert len(stored) > 200 and all(e.end_at - e.start_at == timedelta(minutes=5) for e in stored)
            # The bill's meter and Tesla's grid import agree over the billing day (within rounding to the Wh).
            start = datetime(2026, 11, 23, tzinfo=NEM)
            tesla_import = sum(e.grid_import_wh for e in stored if start <= e.start_at < start + timedelta(days=1)) / 1000
        assert tesla_import == pytest.approx(day["import_kwh"], abs=0.3)
    finally:
        stop()


def test_chart_scale_includes_zero_and_rounds_out_to_whole_ticks():
    from app.money.chart import _bounds, money_chart

    assert _bounds([24.8, -68.5, -43.7]) == (-75.0, 25.0, 25.0)
    assert _bounds([3.2, 1.1]) == (0.0, 4.0, 1.0)
    bill = money.Bill(import_cost=Decimal(2480), export_earnings=Decimal(6850))
    svg = money_chart({date(2026, 11, 22): bill})
    assert ">-$75</text>" in svg and ">$25</text>" in svg
    assert "imports cost $24.80, exports earned $68.50, net -$43.70" in svg


def test_without_tesla_the_bill_is_imported_and_the_household_is_not_retried_every_hour(app, fakes, runner, household_id, clock):
    from app.money.importer import import_due

    amber, tesla = fakes
    amber.replace(day_rows(date(2026, 11, 23), 30, random.Random(6)))
    with app.app_context():
        apply_settings(_db.session.get(Household, household_id), tesla_site_id=None, teslemetry_token=None)
        _db.session.commit()
        assert import_due(clock.current) == 1
        state = _db.session.get(MoneyImport, household_id)
        assert state.last_success_at is not None and "Tesla is not connected" in state.last_error
        assert import_due(clock.current + timedelta(hours=2)) == 0  # a day's wait, as after any success
    assert tesla.calls == 0
    assert report(runner, "2026-11-23", "2026-11-23")["savings"] is None
    assert "Tesla is not connected" in run(runner, "money", "import", "--user", "alice@example.com").output
