"""Amber Electric public API client: sites, prices (current and by date range) and usage.

Parses into the shared value types of `app.prices`. Tolerant by design: unknown fields are ignored and a
malformed interval is skipped and counted, but a response that is not a JSON list is an error. A `perKwh`
that is a number but not finite (NaN, Infinity) is kept, for `app.price_sanity` to refuse in words.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

import requests

from app.clients.base import HttpClient
from app.clients.errors import BadResponseError
from app.prices import AdvancedPrice, Channel, IntervalKind, PriceInterval

logger = logging.getLogger("app.clients.amber")

AMBER_BASE_URL = "https://api.amber.com.au/v1"
# Announced budget: 50 requests per 5-minute window per Amber account (all keys share it).
AMBER_RATE_LIMIT = 50
AMBER_RATE_WINDOW_S = 300
# Wait assumed on a 429 that carries neither Retry-After nor RateLimit-Reset.
AMBER_DEFAULT_RETRY_AFTER_S = 60.0

_KIND_BY_TYPE: dict[str, IntervalKind] = {
    "ActualInterval": IntervalKind.ACTUAL,
    "CurrentInterval": IntervalKind.CURRENT,
    "ForecastInterval": IntervalKind.FORECAST,
}
T = TypeVar("T")


class MalformedInterval(ValueError):
    """Raised inside the parser for one interval that cannot be used; the caller skips and counts it."""


@dataclass(frozen=True)
class RateLimitInfo:
    """Last `RateLimit-*` headers seen from Amber; `reset_s` is seconds until the window resets."""

    limit: int | None
    remaining: int | None
    reset_s: float | None
    policy: str | None = None


@dataclass(frozen=True)
class AmberChannel:
    """One meter channel of a site (e.g. E1 general, B1 feed-in)."""

    identifier: str
    type: str
    tariff: str | None = None


@dataclass(frozen=True)
class AmberSite:
    """One site linked to the Amber account."""

    id: str
    nmi: str | None
    network: str | None
    status: str | None  # pending / active / closed
    channels: tuple[AmberChannel, ...] = ()
    interval_length: int | None = None  # billing interval in minutes (5 or 30); absent on old API versions
    active_from: date | None = None
    closed_on: date | None = None

    @property
    def is_active(self) -> bool:
        """True when the site is currently supplied by Amber."""
        return self.status == "active"


@dataclass(frozen=True)
class PriceResult:
    """Parsed price intervals in response order, and how many malformed intervals were skipped."""

    intervals: list[PriceInterval]
    skipped: int = 0


@dataclass(frozen=True)
class UsageInterval:
    """One metered usage interval; `start` is exact (`endTime - duration`), UTC."""

    channel: Channel
    channel_identifier: str | None
    start: datetime
    end: datetime
    kwh: float
    per_kwh: float | None
    cost: float | None  # cents incl. GST
    quality: str | None  # estimated / billable
    spot_per_kwh: float | None = None
    spike_status: str = "none"
    descriptor: str | None = None
    renewables: float | None = None
    tariff_information: dict[str, object] = field(default_factory=dict)
    # Amber's `date`: the billing day (NEM time, UTC+10 all year); None when the row lacks it.
    billing_date: date | None = None


@dataclass(frozen=True)
class UsageResult:
    """Parsed usage intervals and how many malformed ones were skipped."""

    intervals: list[UsageInterval]
    skipped: int = 0


class AmberClient(HttpClient):
    """Client for `https://api.amber.com.au/v1`; every call is a GET (so retried on 5xx/connection errors)."""

    service = "amber"
    default_retry_after = AMBER_DEFAULT_RETRY_AFTER_S

    def __init__(self, token: str, session: requests.Session | None = None, base_url: str = AMBER_BASE_URL, **kwargs: Any) -> None:
        super().__init__(base_url, token, session, **kwargs)
        self.rate_limit: RateLimitInfo | None = None

    def _observe_response(self, response: requests.Response) -> None:
        info = parse_rate_limit_headers(response.headers)
        if info is not None:
            self.rate_limit = info

    def sites(self) -> list[AmberSite]:
        """List the account's sites (closed ones included; filter with `AmberSite.is_active`)."""
        body = self._get_list("/sites")
        sites: list[AmberSite] = []
        for raw in body:
            site = parse_site(raw)
            if site is None:
                logger.warning("amber: skipped a site entry without an id")
                continue
            sites.append(site)
        return sites

    def current_prices(
        self,
        site_id: str,
        *,
        next_intervals: int | None = None,
        previous_intervals: int | None = None,
        resolution: int | None = None,
    ) -> PriceResult:
        """Current interval per channel plus `previous_intervals` actuals and up to `next_intervals` forecasts."""
        params = {"next": next_intervals, "previous": previous_intervals, "resolution": resolution}
        return parse_prices(self._get_list(f"/sites/{site_id}/prices/current", params=params))

    def prices(self, site_id: str, start_date: date, end_date: date, *, resolution: int | None = None) -> PriceResult:
        """All price intervals dated `start_date`..`end_date` inclusive (NEM dates; keep ranges <= 7 days)."""
        _check_range(start_date, end_date)
        params = {"startDate": start_date.isoformat(), "endDate": end_date.isoformat(), "resolution": resolution}
        return parse_prices(self._get_list(f"/sites/{site_id}/prices", params=params))

    def usage(self, site_id: str, start_date: date, end_date: date) -> UsageResult:
        """Metered usage dated `start_date`..`end_date` inclusive (Amber keeps 90 days)."""
        _check_range(start_date, end_date)
        params = {"startDate": start_date.isoformat(), "endDate": end_date.isoformat()}
        return parse_usage(self._get_list(f"/sites/{site_id}/usage", params=params))

    def _get_list(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        body = self.request("GET", path, params=params).body
        if not isinstance(body, list):
            raise BadResponseError(self.service, 200, detail=f"expected a JSON list from {path}, got {type(body).__name__}")
        return body


def _check_range(start_date: date, end_date: date) -> None:
    if end_date < start_date:
        raise ValueError(f"end_date {end_date} is before start_date {start_date}")


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Read `RateLimit-Limit/Remaining/Reset/Policy`; None when none of them is present."""
    names = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
    if not any(headers.get(n) is not None for n in names):
        return None
    return RateLimitInfo(
        limit=_int_header(headers.get("RateLimit-Limit")),
        remaining=_int_header(headers.get("RateLimit-Remaining")),
        reset_s=_float_header(headers.get("RateLimit-Reset")),
        policy=headers.get("RateLimit-Policy"),
    )


def _int_header(value: str | None) -> int | None:
    number = _float_header(value)
    return int(number) if number is not None else None


def _float_header(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


# -- parsing ------------------------------------------------------------------------------------


def parse_site(raw: Any) -> AmberSite | None:
    """Parse one `/sites` element; None when it has no usable id."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"]:
        return None
    channels = tuple(
        AmberChannel(identifier=str(c.get("identifier", "")), type=str(c.get("type", "")), tariff=_opt_str(c.get("tariff")))
        for c in raw.get("channels") or []
        if isinstance(c, Mapping)
    )
    interval_length = raw.get("intervalLength")
    return AmberSite(
        id=raw["id"],
        nmi=_opt_str(raw.get("nmi")),
        network=_opt_str(raw.get("network")),
        status=_opt_str(raw.get("status")),
        channels=channels,
        interval_length=int(interval_length) if _is_number(interval_length) else None,
        active_from=_opt_date(raw.get("activeFrom")),
        closed_on=_opt_date(raw.get("closedOn")),
    )


def _parse_each(items: list[Any], parse_one: Callable[[Any], T], what: str) -> tuple[list[T], int]:
    """Parse every item; malformed ones are skipped, counted and logged (without payload)."""
    parsed: list[T] = []
    skipped = 0
    for index, raw in enumerate(items):
        try:
            parsed.append(parse_one(raw))
        except MalformedInterval as exc:
            skipped += 1
            logger.warning("amber: skipped malformed %s interval #%d: %s", what, index, exc)
    return parsed, skipped


def parse_prices(items: list[Any]) -> PriceResult:
    """Parse a price array; malformed intervals are skipped, counted and logged (without payload)."""
    ends: dict[str, datetime] = {}  # endTime text -> UTC datetime: the 30- and 5-minute calls share many

    def parse_one(raw: Any) -> PriceInterval:
        interval = _parse_price_fast(raw, ends)
        return interval if interval is not None else _parse_price_careful(raw)

    intervals, skipped = _parse_each(items, parse_one, "price")
    return PriceResult(intervals=intervals, skipped=skipped)


def parse_price_interval(raw: Any) -> PriceInterval:
    """Parse one price interval; raises MalformedInterval when a required field is missing or wrong."""
    interval = _parse_price_fast(raw, {})
    return interval if interval is not None else _parse_price_careful(raw)


# Fast path. Every sync parses ~140 price intervals per site, nearly all of one well-formed shape, and the
# careful path below (isinstance against unions and ABCs, a helper per field, the frozen dataclass's
# __init__ with one object.__setattr__ per field) cost ~7 us each. `_parse_price_fast` checks that common
# shape with exact type tests and builds the same values directly; at the first thing it does not
# recognise (a str or int subclass, a float duration, NaN, an unknown type, ...) it returns None and the
# careful path parses the item from scratch, so every error, message and odd value comes from there
# exactly as before. Its checks run in the careful path's order and are stricter, so an exception it
# lets through (e.g. OverflowError from an endTime near year 1) is the one the careful path would raise.
_CHANNEL_BY_VALUE: dict[str, Channel] = {channel.value: channel for channel in Channel}
# duration -> (timedelta, PriceInterval.duration_minutes of an interval that long)
_MINUTES: dict[int, tuple[timedelta, int]] = {
    minutes: (timedelta(minutes=minutes), int(timedelta(minutes=minutes).total_seconds() // 60)) for minutes in (5, 15, 30, 60)
}
_INF = math.inf
_new = object.__new__
_PRICE_INTERVAL_FIELDS = ("channel", "kind", "start", "end", "per_kwh", "spot_per_kwh", "advanced_price", "estimate",
                          "spike_status", "descriptor", "renewables", "tariff_information")
# The fast path fills a PriceInterval's / AdvancedPrice's __dict__ in one step (what their generated
# __init__ does field by field): that is only the same object while they are plain frozen dataclasses
# with exactly these fields and no __post_init__.
if (tuple(f.name for f in fields(PriceInterval)) != _PRICE_INTERVAL_FIELDS
        or tuple(f.name for f in fields(AdvancedPrice)) != ("low", "predicted", "high")
        or hasattr(PriceInterval, "__post_init__") or hasattr(AdvancedPrice, "__post_init__")):
    raise TypeError("PriceInterval or AdvancedPrice changed: update _parse_price_fast")


def _parse_price_fast(raw: Any, ends: dict[str, datetime]) -> PriceInterval | None:
    """The common well-formed price interval, parsed as `_parse_price_careful` would; None for anything else."""
    if type(raw) is not dict:
        return None
    get = raw.get
    type_text = get("type")
    kind = _KIND_BY_TYPE.get(type_text) if type(type_text) is str else None
    channel_text = get("channelType")
    channel = _CHANNEL_BY_VALUE.get(channel_text) if type(channel_text) is str else None
    end_text = get("endTime")
    duration = get("duration")
    known = _MINUTES.get(duration) if type(duration) is int else None
    if kind is None or channel is None or type(end_text) is not str or known is None:
        return None
    delta, duration_minutes = known
    end = ends.get(end_text)
    if end is None:
        try:
            parsed = datetime.fromisoformat(end_text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        end = ends[end_text] = parsed.astimezone(timezone.utc)
    start = end - delta
    per_kwh = get("perKwh")
    if type(per_kwh) is not float:  # NaN and Infinity are kept, as in `_price`
        if type(per_kwh) is not int:
            return None
        per_kwh = float(per_kwh)
    # -inf < x < inf is math.isfinite for a float (NaN compares false); anything else goes to the helper.
    spot = get("spotPerKwh")
    spot = spot if type(spot) is float and -_INF < spot < _INF else _opt_number(spot)
    advanced = get("advancedPrice")
    if type(advanced) is dict:
        low, predicted, high = advanced.get("low"), advanced.get("predicted"), advanced.get("high")
        if (type(low) is float and type(predicted) is float and type(high) is float
                and -_INF < low < _INF and -_INF < predicted < _INF and -_INF < high < _INF):
            advanced = _new(AdvancedPrice)
            advanced.__dict__.update(low=low, predicted=predicted, high=high)
        else:
            advanced = _advanced_price(advanced)
    elif advanced is not None:
        advanced = _advanced_price(advanced)
    estimate = get("estimate")
    if estimate is not True and estimate is not False:
        estimate = kind is IntervalKind.CURRENT
    spike_status = get("spikeStatus")
    descriptor = get("descriptor")
    renewables = get("renewables")
    tariff_information = get("tariffInformation")
    interval = _new(PriceInterval)
    interval.__dict__.update(
        channel=channel,
        kind=kind,
        start=start,
        end=end,
        per_kwh=per_kwh,
        spot_per_kwh=spot,
        advanced_price=advanced,
        estimate=estimate,
        spike_status=spike_status if isinstance(spike_status, str) and spike_status else "none",
        descriptor=descriptor if isinstance(descriptor, str) else None,
        renewables=renewables if type(renewables) is float and -_INF < renewables < _INF else _opt_number(renewables),
        tariff_information=(dict(tariff_information) if type(tariff_information) is dict or isinstance(tariff_information, Mapping)
                            else {}),
        duration_minutes=duration_minutes,  # what PriceInterval's cached_property would compute and keep
    )
    return interval


def _parse_price_careful(raw: Any) -> PriceInterval:
    """Parse one price interval, any shape; raises MalformedInterval when a required field is missing or wrong."""
    if not isinstance(raw, Mapping):
        raise MalformedInterval(f"not an object ({type(raw).__name__})")
    kind = _KIND_BY_TYPE.get(raw.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise MalformedInterval(f"unknown type {raw.get('type')!r}")
    channel = _channel(raw)
    start, end = _span(raw)
    per_kwh = _price(raw, "perKwh")
    estimate = raw.get("estimate")
    return PriceInterval(
        channel=channel,
        kind=kind,
        start=start,
        end=end,
        per_kwh=per_kwh,
        spot_per_kwh=_opt_number(raw.get("spotPerKwh")),
        advanced_price=_advanced_price(raw.get("advancedPrice")),
        # `estimate` is required on CurrentInterval; if it is ever missing there, assume not final.
        estimate=estimate if isinstance(estimate, bool) else kind is IntervalKind.CURRENT,
        spike_status=_opt_str(raw.get("spikeStatus")) or "none",
        descriptor=_opt_str(raw.get("descriptor")),
        renewables=_opt_number(raw.get("renewables")),
        tariff_information=dict(raw["tariffInformation"]) if isinstance(raw.get("tariffInformation"), Mapping) else {},
    )


def parse_usage(items: list[Any]) -> UsageResult:
    """Parse a usage array; malformed intervals are skipped and counted."""
    intervals, skipped = _parse_each(items, parse_usage_interval, "usage")
    return UsageResult(intervals=intervals, skipped=skipped)


def parse_usage_interval(raw: Any) -> UsageInterval:
    """Parse one usage interval; raises MalformedInterval when a required field is missing or wrong."""
    if not isinstance(raw, Mapping):
        raise MalformedInterval(f"not an object ({type(raw).__name__})")
    channel = _channel(raw)
    start, end = _span(raw)
    return UsageInterval(
        channel=channel,
        channel_identifier=_opt_str(raw.get("channelIdentifier")),
        start=start,
        end=end,
        # The sign of feed-in kWh is unconfirmed (spec says negative, users saw positive): kept as given.
        kwh=_required_number(raw, "kwh"),
        per_kwh=_opt_number(raw.get("perKwh")),
        cost=_opt_number(raw.get("cost")),
        quality=_opt_str(raw.get("quality")),
        spot_per_kwh=_opt_number(raw.get("spotPerKwh")),
        spike_status=_opt_str(raw.get("spikeStatus")) or "none",
        descriptor=_opt_str(raw.get("descriptor")),
        renewables=_opt_number(raw.get("renewables")),
        tariff_information=dict(raw["tariffInformation"]) if isinstance(raw.get("tariffInformation"), Mapping) else {},
        billing_date=_opt_date(raw.get("date")),
    )


def _channel(raw: Mapping[str, Any]) -> Channel:
    try:
        return Channel(raw.get("channelType"))
    except ValueError:
        raise MalformedInterval(f"unknown channelType {raw.get('channelType')!r}") from None


def _span(raw: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """Exact (start, end) in UTC: start = endTime - duration, because `startTime` is one second late."""
    end_text = raw.get("endTime")
    if not isinstance(end_text, str):
        raise MalformedInterval("missing endTime")
    try:
        end = datetime.fromisoformat(end_text)
    except ValueError:
        raise MalformedInterval(f"unparseable endTime {end_text!r}") from None
    if end.tzinfo is None:
        raise MalformedInterval("endTime has no time zone")
    duration = raw.get("duration")
    if not _is_number(duration) or duration <= 0 or duration != int(duration):
        raise MalformedInterval(f"bad duration {duration!r}")
    end = end.astimezone(timezone.utc)
    return end - timedelta(minutes=int(duration)), end


def _advanced_price(raw: Any) -> AdvancedPrice | None:
    # A partial or malformed advancedPrice is treated as absent: callers fall back to perKwh.
    if not isinstance(raw, Mapping):
        return None
    values = [raw.get(k) for k in ("low", "predicted", "high")]
    if not all(_is_number(v) for v in values):
        return None
    return AdvancedPrice(low=float(values[0]), predicted=float(values[1]), high=float(values[2]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _required_number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if not _is_number(value):
        raise MalformedInterval(f"missing or non-numeric {key}")
    return float(value)


def _price(raw: Mapping[str, Any], key: str) -> float:
    # A number that is not finite (NaN, Infinity, or 1e400 read as infinity) is kept: the sync's price
    # sanity check refuses it and names it in the run and on the dashboard, where skipping it here would
    # only leave a log line. Anything that is not a number at all is still malformed.
    value = raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MalformedInterval(f"missing or non-numeric {key}")
    return float(value)


def _opt_number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
