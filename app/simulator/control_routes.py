"""Control endpoints under /_sim for tests and the demo: state, reset, clock, faults, config, identity."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request

from . import identity
from .faults import FaultSpecError, parse_fault
from .state import SimulatorState

control = Blueprint("control", __name__)


def _sim() -> SimulatorState:
    return current_app.extensions["simulator"]


def _bad(message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = 400
    return response


def _body() -> dict | list | None:
    return request.get_json(silent=True)


def _clock_view(sim: SimulatorState) -> dict[str, object]:
    return {"now": sim.now().isoformat(), "frozen": sim.clock.frozen, "offset_seconds": sim.clock.offset_seconds}


@control.get("/state")
def state() -> Response:
    """The whole simulator state: clock, config, Powerwall (incl. tariff), pushes, faults, counters."""
    sim = _sim()
    with sim.lock:
        now = sim.now()
        sim.powerwall.advance(now)
        return jsonify(
            {
                "clock": _clock_view(sim),
                "seed": sim.seed,
                "config": asdict(sim.config),
                "powerwall": sim.powerwall.state(),
                "live_status": sim.powerwall.live_status(now),
                "price_signal": dict(zip(("cheap", "high_sell"), sim.powerwall.price_signal(now))),
                "tou_pushes": sim.tou_pushes,
                "faults": [f.describe() for f in sim.faults],
                "partner_registered": sim.partner_registered,
                "request_counts": sim.request_counts,
            }
        )


@control.post("/reset")
def reset() -> Response:
    """Back to the initial state (settings given at creation, clock unfrozen without offset)."""
    sim = _sim()
    sim.reset()
    return jsonify({"reset": True, "clock": _clock_view(sim)})


@control.get("/clock")
def clock_get() -> Response:
    """The simulated clock."""
    return jsonify(_clock_view(_sim()))


@control.post("/clock")
def clock_set() -> Response:
    """{"set": ISO-8601, "freeze": bool, "advance_seconds": n, "offset_seconds": n}, applied in that order
    (offset first when given, as it replaces the running offset)."""
    body = _body()
    if not isinstance(body, dict) or not body:
        return _bad("expected a JSON object with set, freeze, advance_seconds or offset_seconds")
    unknown = set(body) - {"set", "freeze", "advance_seconds", "offset_seconds"}
    if unknown:
        return _bad(f"unknown clock fields: {', '.join(sorted(unknown))}")
    sim = _sim()
    try:
        instant = datetime.fromisoformat(body["set"].replace("Z", "+00:00")) if "set" in body else None
        if instant is not None and instant.tzinfo is None:
            return _bad("set needs a time zone offset")
        with sim.lock:
            sim.powerwall.advance(sim.now())  # settle the battery up to the moment the clock jumps
            if "offset_seconds" in body:
                sim.clock.set_offset(float(body["offset_seconds"]))
            if instant is not None:
                sim.clock.set(instant)
            if "freeze" in body:
                sim.clock.freeze(bool(body["freeze"]))
            if "advance_seconds" in body:
                sim.clock.advance(float(body["advance_seconds"]))
            sim.powerwall.advance(sim.now())
    except (AttributeError, TypeError, ValueError) as error:
        return _bad(f"bad clock request: {error}")
    return jsonify(_clock_view(sim))


@control.get("/faults")
def faults_get() -> Response:
    """Active fault rules."""
    sim = _sim()
    with sim.lock:
        return jsonify({"faults": [f.describe() for f in sim.faults]})


@control.post("/faults")
def faults_add() -> Response:
    """Add one rule (object) or several (list); see faults.Fault for the fields."""
    body = _body()
    specs = body if isinstance(body, list) else [body]
    sim = _sim()
    with sim.lock:
        try:
            new = []
            for spec in specs:
                sim.fault_serial += 1
                new.append(parse_fault(spec, sim.seed, sim.fault_serial))
        except (FaultSpecError, TypeError, ValueError) as error:
            return _bad(str(error))
        sim.faults.extend(new)
        response = jsonify({"faults": [f.describe() for f in sim.faults]})
    response.status_code = 201
    return response


@control.delete("/faults")
def faults_clear() -> Response:
    """Remove every fault rule."""
    sim = _sim()
    with sim.lock:
        sim.faults.clear()
    return jsonify({"faults": []})


@control.get("/config")
def config_get() -> Response:
    """Current settings."""
    return jsonify(asdict(_sim().config))


@control.post("/config")
def config_set() -> Response:
    """Change settings (SimConfig field names)."""
    body = _body()
    if not isinstance(body, dict):
        return _bad("expected a JSON object of settings")
    sim = _sim()
    try:
        sim.apply_config(body)
    except ValueError as error:
        return _bad(str(error))
    return jsonify(asdict(sim.config))


@control.post("/powerwall")
def powerwall_set() -> Response:
    """Set {"percentage_charged": 0..100} and/or {"grid_status": "Active"|"Inactive"} (grid outage)."""
    body = _body()
    if not isinstance(body, dict) or not body or set(body) - {"percentage_charged", "grid_status"}:
        return _bad("expected percentage_charged and/or grid_status")
    percent = body.get("percentage_charged")
    is_percent = isinstance(percent, (int, float)) and not isinstance(percent, bool) and 0 <= percent <= 100
    if percent is not None and not is_percent:
        return _bad("percentage_charged must be a number 0-100")
    grid = body.get("grid_status")
    if grid is not None and grid not in ("Active", "Inactive"):
        return _bad("grid_status must be Active or Inactive")
    sim = _sim()
    with sim.lock:
        sim.powerwall.advance(sim.now())
        if percent is not None:
            sim.powerwall.set_percentage(float(percent))
        if grid is not None:
            sim.powerwall.grid_up = grid == "Active"
        return jsonify(sim.powerwall.state())


@control.post("/tokens/expire")
def tokens_expire() -> Response:
    """Expire every Fleet access token now (refresh tokens stay valid), to exercise the app's refresh."""
    sim = _sim()
    with sim.lock:
        count = sim.tokens.expire_all(sim.now())
    return jsonify({"expired": count})


@control.get("/identity")
def identity_view() -> Response:
    """The demo identity the simulator accepts (tokens, ids, client credentials, time zone)."""
    return jsonify(identity_constants())


def identity_constants() -> dict[str, object]:
    """identity.py's constants as a dict."""
    constants = {name: value for name, value in vars(identity).items() if name.isupper()}
    constants["app_settings"] = identity.app_settings(request.host_url)
    return constants
