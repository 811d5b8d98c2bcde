"""The Amber API under /amber/v1: sites, prices, usage, renewables; bearer auth and the 50/300 s budget."""
from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta

from flask import Blueprint, Response, current_app, g, jsonify, request

from . import identity, prices
from .state import SimulatorState

amber = Blueprint("amber", __name__)
MAX_COUNT = 2048  # upper bound of next/previous in Amber's docs (UNCONFIRMED, amber-api.md §4.2)
MAX_RANGE_DAYS = 7  # Amber clamps /prices and /usage ranges to a week
STATE_SEED_OFFSET = {"nsw": 0, "qld": 1, "sa": 2, "vic": 3}  # the site is in NSW: same numbers as its prices


class AmberError(Exception):
    """An error answer in Amber's (API Gateway) style: {"message": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sim() -> SimulatorState:
    return current_app.extensions["simulator"]


def message_response(status: int, message: str) -> Response:
    """An Amber-style error response."""
    response = jsonify({"message": message})
    response.status_code = status
    return response


@amber.errorhandler(AmberError)
def _amber_error(error: AmberError) -> Response:
    return message_response(error.status, error.message)


@amber.before_request
def _authenticate() -> Response | None:
    if request.endpoint == "amber.renewables":
        return None  # public endpoint (SPEC security: [])
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    if token != identity.AMBER_TOKEN:
        return message_response(401, "Unauthorized")
    sim = _sim()
    with sim.lock:
        limiter = sim.limiters["amber"]
        if limiter.limit == 0:
            return None
        decision = limiter.hit(token, sim.now())
    if not decision.allowed:
        return too_many_requests()
    g.amber_rate = (decision, limiter.policy())
    return None


def too_many_requests() -> Response:
    """Amber's 429 as API Gateway sends it: 31-byte body, no RateLimit or Retry-After headers (#280)."""
    response = Response('{"message":"Too Many Requests"}', status=429, mimetype="application/json")
    response.headers["x-amzn-ErrorType"] = "TooManyRequestsException"
    return response


@amber.after_request
def _rate_headers(response: Response) -> Response:
    rate = g.pop("amber_rate", None)
    if rate is not None:
        decision, policy = rate
        response.headers["RateLimit-Limit"] = str(decision.limit)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)
        response.headers["RateLimit-Reset"] = str(decision.reset_seconds)
        response.headers["RateLimit-Policy"] = policy
    return response


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise AmberError(400, f"{name} must be an integer") from error
    if not 0 <= value <= MAX_COUNT:
        raise AmberError(400, f"{name} must be between 0 and {MAX_COUNT}")
    return value


def _resolution(sim: SimulatorState) -> int:
    site_length = sim.config.interval_length
    value = _int_arg("resolution", site_length)
    if value not in (5, 30):
        raise AmberError(400, "resolution must be 5 or 30")
    return site_length if sim.config.ignore_resolution else value


def _date_arg(name: str, default: date | None) -> date:
    raw = request.args.get(name)
    if not raw:
        if default is None:
            raise AmberError(400, f"{name} is required")
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as error:
        raise AmberError(400, f"{name} must be a date (YYYY-MM-DD)") from error


def _date_range(default: date | None) -> tuple[date, date]:
    first = _date_arg("startDate", default)
    last = _date_arg("endDate", default)
    if last < first:
        raise AmberError(400, "endDate must not be before startDate")
    return first, min(last, first + timedelta(days=MAX_RANGE_DAYS - 1))


ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def _check_site(site_id: str) -> None:
    if site_id in (identity.AMBER_SITE_ID, identity.AMBER_CLOSED_SITE_ID):
        return
    if _sim().config.amber_site_aliases and ULID_RE.fullmatch(site_id):
        return  # an alias of the demo site (benchmarks): same prices
    raise AmberError(404, "Site not found")


@amber.get("/sites")
def sites() -> Response:
    """GET /sites: the active demo site and a closed one."""
    length = _sim().config.interval_length
    return jsonify(
        [
            {
                "id": identity.AMBER_SITE_ID,
                "nmi": identity.AMBER_NMI,
                "channels": [
                    {"identifier": "E1", "type": "general", "tariff": "EA116"},
                    {"identifier": "B1", "type": "feedIn", "tariff": "EA116"},
                ],
                "network": identity.AMBER_NETWORK,
                "status": "active",
                "activeFrom": "2024-03-14",
                "intervalLength": length,
            },
            {
                "id": identity.AMBER_CLOSED_SITE_ID,
                "nmi": identity.AMBER_NMI + "0",
                "channels": [
                    {"identifier": "E1", "type": "general", "tariff": "EA025"},
                    {"identifier": "E2", "type": "controlledLoad", "tariff": "EA030"},
                ],
                "network": identity.AMBER_NETWORK,
                "status": "closed",
                "activeFrom": "2021-06-01",
                "closedOn": "2024-03-13",
                "intervalLength": 30,
            },
        ]
    )


@amber.get("/sites/<site_id>/prices/current")
def prices_current(site_id: str) -> Response:
    """GET /sites/{id}/prices/current?previous=&next=&resolution="""
    _check_site(site_id)
    sim = _sim()
    previous, next_ = _int_arg("previous", 0), _int_arg("next", 0)
    duration = _resolution(sim)
    # The answer changes only at 5-minute boundaries and when the current 5-minute price is confirmed
    # (estimate_seconds into it): work it out once per such stretch, not for every household of a benchmark.
    now = sim.now()
    window = prices.floor_to(now, 5)
    confirmed_at = window + timedelta(seconds=sim.config.estimate_seconds)
    body = _current_prices_json(
        sim.seed, sim.tz, previous, next_, duration, sim.config.estimate_seconds, sim.config.five_minute_horizon_minutes,
        confirmed_at if now >= confirmed_at and confirmed_at < window + timedelta(minutes=5) else window,
    )
    return current_app.response_class(body, mimetype="application/json")


@functools.lru_cache(maxsize=32)
def _current_prices_json(
    seed: int, tz, previous: int, next_: int, duration: int, estimate_seconds: float, horizon: int, now: datetime
) -> str:
    """`/prices/current` as JSON text, seen at `now` (the start of a stretch in which it does not change)."""
    return current_app.json.dumps(prices.current_prices(
        seed, now, tz, previous=previous, next_=next_, duration=duration, estimate_seconds=estimate_seconds,
        five_minute_horizon_minutes=horizon,
    )) + "\n"


@amber.get("/sites/<site_id>/prices")
def prices_between(site_id: str) -> Response:
    """GET /sites/{id}/prices?startDate=&endDate=&resolution= (dates in NEM time, inclusive)."""
    _check_site(site_id)
    sim = _sim()
    now = sim.now()
    first, last = _date_range(prices.nem_date(now))
    duration = _resolution(sim)
    return jsonify(
        prices.prices_between(
            sim.seed,
            now,
            sim.tz,
            first=first,
            last=last,
            duration=duration,
            estimate_seconds=sim.config.estimate_seconds,
            five_minute_horizon_minutes=sim.config.five_minute_horizon_minutes,
        )
    )


@amber.get("/sites/<site_id>/usage")
def usage(site_id: str) -> Response:
    """GET /sites/{id}/usage?startDate=&endDate= (both required; at the site's interval length)."""
    _check_site(site_id)
    sim = _sim()
    first, last = _date_range(None)
    with sim.lock:
        sim.powerwall.advance(sim.now())
        return jsonify(
            prices.usage_between(
                sim.seed, sim.now(), sim.tz, first=first, last=last, duration=sim.config.interval_length,
                metered=sim.powerwall.metered_kwh,
            )
        )


@amber.get("/state/<state>/renewables/current")
def renewables(state: str) -> Response:
    """GET /state/{state}/renewables/current?previous=&next=&resolution= (no auth)."""
    if state not in STATE_SEED_OFFSET:
        raise AmberError(404, "State not found")
    sim = _sim()
    previous, next_ = _int_arg("previous", 0), _int_arg("next", 0)
    duration = _int_arg("resolution", 30)
    if duration not in (5, 30):
        raise AmberError(400, "resolution must be 5 or 30")
    seed = sim.seed + STATE_SEED_OFFSET[state]
    rows = prices.renewables_current(seed, sim.now(), sim.tz, previous=previous, next_=next_, duration=duration)
    return jsonify(rows)
