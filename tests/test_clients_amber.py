"""Tests for the Amber Electric client (app/clients/amber.py), driven by the shared reference fixtures."""
from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from app.clients.amber import (
    AMBER_BASE_URL,
    AmberClient,
    RateLimitInfo,
    parse_price_interval,
    parse_prices,
)
from app.clients.errors import AuthenticationError, BadResponseError, NotFoundError, RateLimitedError, TransientError
from app.prices import Channel, IntervalKind

from tests.reference import FIXTURES  # noqa: E402
SITE = "01JCX8Q4V6M2R9T3ZKD5HB7WNE"
TOKEN = "psk_0123456789abcdef0123456789abcdef"
RATE_HEADERS = {"RateLimit-Limit": "50", "RateLimit-Remaining": "37", "RateLimit-Reset": "211", "RateLimit-Policy": "50;w=300"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client() -> AmberClient:
    return AmberClient(TOKEN, requests.Session(), sleep=lambda s: None)


# -- sites ----------------------------------------------------------------------------------------------


def test_sites_parses_fixture(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", json=load("amber_sites.json"))

    sites = client.sites()

    assert [s.id for s in sites] == [SITE, "01F5A5CRKMZ5BCX9P1S4V990AM"]
    active = [s for s in sites if s.is_active]
    assert [s.id for s in active] == [SITE]
    assert active[0].interval_length == 30
    assert active[0].network == "Ausgrid"
    assert [(c.identifier, c.type) for c in active[0].channels] == [("E1", "general"), ("B1", "feedIn")]
    assert sites[1].closed_on == date(2024, 3, 13)
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_sites_skips_entries_without_id(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", json=[{"nmi": "1"}, "junk", {"id": "S1", "status": "active"}])
    assert [s.id for s in client.sites()] == ["S1"]


# -- current prices -------------------------------------------------------------------------------------


def test_current_prices_fixture_parses_every_interval(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", json=load("amber_prices_current.json"))

    result = client.current_prices(SITE, next_intervals=48, resolution=30)

    assert result.skipped == 0
    assert len(result.intervals) == 98
    general = [i for i in result.intervals if i.channel is Channel.GENERAL]
    feed_in = [i for i in result.intervals if i.channel is Channel.FEED_IN]
    assert len(general) == len(feed_in) == 49
    assert [i.kind for i in general[:2]] == [IntervalKind.CURRENT, IntervalKind.FORECAST]

    current = general[0]
    assert current.start == datetime(2025, 11, 20, 3, 0, tzinfo=timezone.utc)
    assert current.end == datetime(2025, 11, 20, 3, 30, tzinfo=timezone.utc)
    assert current.duration_minutes == 30
    assert current.per_kwh == pytest.approx(8.84314)
    assert current.spot_per_kwh == pytest.approx(-2.87463)
    assert current.estimate is True
    assert current.advanced_price is not None and current.advanced_price.predicted == pytest.approx(8.57785)
    assert current.descriptor == "veryLow"
    assert current.spike_status == "none"
    assert current.renewables == pytest.approx(62.838)
    assert current.tariff_information == {"period": "shoulder", "season": "summer"}


def test_current_prices_sends_only_given_parameters(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", json=[])

    client.current_prices(SITE, next_intervals=48, previous_intervals=3, resolution=5)
    client.current_prices(SITE)

    assert parse_qs(urlsplit(mocked.calls[0].request.url).query) == {"next": ["48"], "previous": ["3"], "resolution": ["5"]}
    assert urlsplit(mocked.calls[1].request.url).query == ""


def test_start_is_end_minus_duration_never_start_time() -> None:
    raw = load("amber_prices_current.json")
    for item, interval in zip(raw, parse_prices(raw).intervals, strict=True):
        assert interval.end == utc(item["endTime"])
        assert interval.start == interval.end - timedelta(minutes=item["duration"])
        # Amber's startTime is one second after the exact start: we must not have used it.
        assert utc(item["startTime"]) - interval.start == timedelta(seconds=1)
        assert interval.start.second == 0


@given(
    end=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=timezone.utc)
    ),
    duration=st.sampled_from([5, 15, 30]),
)
def test_start_property_holds_for_any_interval(end: datetime, duration: int) -> None:
    raw = {
        "type": "ForecastInterval",
        "channelType": "general",
        "duration": duration,
        "endTime": end.isoformat().replace("+00:00", "Z"),
        "startTime": (end - timedelta(minutes=duration) + timedelta(seconds=1)).isoformat(),
        "perKwh": 10.0,
    }
    interval = parse_price_interval(raw)
    assert interval.start == end - timedelta(minutes=duration)
    assert interval.start.tzinfo is not None


def test_feed_in_sign_is_kept_as_amber_gives_it() -> None:
    intervals = parse_prices(load("amber_prices_current.json")).intervals
    feed_in = [i for i in intervals if i.channel is Channel.FEED_IN]
    # Current feed-in: positive = the user PAYS to export (negative spot); spike forecast: negative = earning.
    assert feed_in[0].kind is IntervalKind.CURRENT and feed_in[0].per_kwh == pytest.approx(2.82288)
    spike = next(i for i in feed_in if i.spike_status == "potential")
    assert spike.per_kwh == pytest.approx(-63.2408)
    assert spike.spot_per_kwh == pytest.approx(64.4)  # spot is not inverted
    # advancedPrice on feed-in: low > high numerically, kept as is.
    assert spike.advanced_price is not None
    assert (spike.advanced_price.low, spike.advanced_price.high) == (pytest.approx(-57.10561), pytest.approx(-64.31673))


def test_five_minute_fixture_kinds_and_missing_advanced_price(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", json=load("amber_prices_5min.json"))

    result = client.current_prices(SITE, previous_intervals=3, next_intervals=12, resolution=5)

    general = [i for i in result.intervals if i.channel is Channel.GENERAL]
    assert [i.kind for i in general].count(IntervalKind.ACTUAL) == 3
    current = [i for i in general if i.kind is IntervalKind.CURRENT]
    assert len(current) == 1
    assert current[0].estimate is False
    assert current[0].advanced_price is None  # absent once final: callers fall back to per_kwh
    assert all(i.duration_minutes == 5 for i in result.intervals)
    assert all(i.advanced_price is None for i in general if i.kind is IntervalKind.ACTUAL)


def test_unknown_fields_are_ignored() -> None:
    item = copy.deepcopy(load("amber_prices_current.json")[0])
    item["someFutureField"] = {"nested": [1, 2]}
    item["range"] = {"min": 1, "max": 2}
    interval = parse_price_interval(item)
    assert interval.per_kwh == pytest.approx(8.84314)


def test_null_tariff_information_and_missing_optionals() -> None:
    interval = parse_price_interval(
        {"type": "ActualInterval", "channelType": "controlledLoad", "duration": 30, "endTime": "2025-11-20T03:30:00Z",
         "perKwh": 5, "tariffInformation": None}
    )
    assert interval.channel is Channel.CONTROLLED_LOAD
    assert interval.tariff_information == {}
    assert interval.spot_per_kwh is None and interval.advanced_price is None and interval.descriptor is None


@pytest.mark.parametrize(
    "breakage",
    [
        {"endTime": None},
        {"endTime": "yesterday"},
        {"endTime": "2025-11-20T03:30:00"},  # no time zone
        {"duration": 0},
        {"duration": "30"},
        {"perKwh": "8.8"},
        {"perKwh": None},
        {"channelType": "solar"},
        {"type": "Usage"},
    ],
)
def test_malformed_interval_is_skipped_and_counted(
    mocked: responses.RequestsMock, client: AmberClient, breakage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    items = load("amber_prices_current.json")[:3]
    broken = {**items[1], **breakage}
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", json=[items[0], broken, items[2], 42])

    result = client.current_prices(SITE)

    assert result.skipped == 2
    assert [i.end for i in result.intervals] == [utc(items[0]["endTime"]), utc(items[2]["endTime"])]
    assert any("skipped" in r.getMessage() for r in caplog.records)


def test_partial_advanced_price_is_treated_as_absent() -> None:
    item = {**load("amber_prices_current.json")[1], "advancedPrice": {"low": 1.0, "predicted": None}}
    assert parse_price_interval(item).advanced_price is None


@pytest.mark.parametrize("body", [{"message": "Internal server error"}, "oops", None, 5])
def test_response_that_is_not_a_list_is_bad_response(mocked: responses.RequestsMock, client: AmberClient, body: Any) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", json=body)
    with pytest.raises(BadResponseError) as excinfo:
        client.current_prices(SITE)
    assert excinfo.value.service == "amber"


def test_non_json_response_is_bad_response(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", body="<html>", content_type="text/html")
    with pytest.raises(BadResponseError):
        client.sites()


# -- date ranges ----------------------------------------------------------------------------------------


def test_prices_for_date_range_sends_plain_dates(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices", json=load("amber_prices_current.json"))

    result = client.prices(SITE, date(2025, 11, 20), date(2025, 11, 21), resolution=30)

    assert len(result.intervals) == 98
    assert parse_qs(urlsplit(mocked.calls[0].request.url).query) == {
        "startDate": ["2025-11-20"],
        "endDate": ["2025-11-21"],
        "resolution": ["30"],
    }


def test_date_range_end_before_start_is_rejected_without_a_call(mocked: responses.RequestsMock, client: AmberClient) -> None:
    with pytest.raises(ValueError):
        client.prices(SITE, date(2025, 11, 21), date(2025, 11, 20))
    with pytest.raises(ValueError):
        client.usage(SITE, date(2025, 11, 21), date(2025, 11, 20))
    assert len(mocked.calls) == 0


def test_usage_parses_fixture(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/usage", json=load("amber_usage.json"))

    result = client.usage(SITE, date(2025, 7, 14), date(2025, 7, 14))

    assert result.skipped == 0
    general, feed_in = result.intervals
    assert general.channel is Channel.GENERAL and general.channel_identifier == "E1"
    assert general.start == datetime(2025, 7, 13, 14, 0, tzinfo=timezone.utc)
    assert general.end == datetime(2025, 7, 13, 14, 5, tzinfo=timezone.utc)
    assert (general.kwh, general.cost, general.quality) == (0.025, 0.4762, "billable")
    assert general.tariff_information == {"demandWindow": False}
    # Feed-in kWh/cost signs are kept exactly as Amber sends them (feed-in kWh sign is unconfirmed).
    assert feed_in.channel is Channel.FEED_IN
    assert feed_in.kwh == pytest.approx(0.212) and feed_in.cost == pytest.approx(-0.8294)
    assert parse_qs(urlsplit(mocked.calls[0].request.url).query) == {"startDate": ["2025-07-14"], "endDate": ["2025-07-14"]}


def test_usage_skips_malformed_rows(mocked: responses.RequestsMock, client: AmberClient) -> None:
    rows = load("amber_usage.json")
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/usage", json=[rows[0], {**rows[1], "kwh": "x"}])
    result = client.usage(SITE, date(2025, 7, 14), date(2025, 7, 14))
    assert (len(result.intervals), result.skipped) == (1, 1)


# -- rate limit and errors ------------------------------------------------------------------------------


def test_rate_limit_headers_are_exposed(mocked: responses.RequestsMock, client: AmberClient) -> None:
    assert client.rate_limit is None
    mocked.get(f"{AMBER_BASE_URL}/sites", json=[], headers=RATE_HEADERS)

    client.sites()

    assert client.rate_limit == RateLimitInfo(limit=50, remaining=37, reset_s=211.0, policy="50;w=300")


def test_429_uses_ratelimit_reset_and_updates_budget(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(
        f"{AMBER_BASE_URL}/sites",
        status=429,
        json={"message": "Too Many Requests"},
        headers={"RateLimit-Limit": "50", "RateLimit-Remaining": "0", "RateLimit-Reset": "95"},
    )
    with pytest.raises(RateLimitedError) as excinfo:
        client.sites()
    assert excinfo.value.retry_after == 95.0
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    assert len(mocked.calls) == 1


def test_429_prefers_retry_after(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", status=429, headers={"Retry-After": "12", "RateLimit-Reset": "95"})
    with pytest.raises(RateLimitedError) as excinfo:
        client.sites()
    assert excinfo.value.retry_after == 12.0


def test_429_without_headers_waits_60_seconds(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", status=429, body='{"message":"Too Many Requests"}')
    with pytest.raises(RateLimitedError) as excinfo:
        client.sites()
    assert excinfo.value.retry_after == 60.0


def test_401_is_authentication_error_naming_amber(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites", status=401)
    with pytest.raises(AuthenticationError) as excinfo:
        client.sites()
    assert "Amber Electric" in excinfo.value.user_message


def test_404_unknown_site(mocked: responses.RequestsMock, client: AmberClient) -> None:
    mocked.get(f"{AMBER_BASE_URL}/sites/nope/prices/current", status=404)
    with pytest.raises(NotFoundError):
        client.current_prices("nope")


def test_500_is_retried_then_transient(mocked: responses.RequestsMock) -> None:
    sleeps: list[float] = []
    client = AmberClient(TOKEN, requests.Session(), sleep=sleeps.append)
    mocked.get(f"{AMBER_BASE_URL}/sites", status=500, json={"message": "Internal server error"})
    with pytest.raises(TransientError):
        client.sites()
    assert len(mocked.calls) == 3 and len(sleeps) == 2


def test_amber_token_never_logged(mocked: responses.RequestsMock, client: AmberClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{AMBER_BASE_URL}/sites", json=[])
    mocked.get(f"{AMBER_BASE_URL}/sites/{SITE}/prices/current", status=403, body=f"forbidden for {TOKEN}")
    client.sites()
    with pytest.raises(AuthenticationError) as excinfo:
        client.current_prices(SITE)
    assert len(caplog.records) >= 2
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN not in str(excinfo.value)
