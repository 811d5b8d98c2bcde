"""Views of the JSON API."""
from __future__ import annotations

from datetime import datetime

from flask import jsonify, request

from app import clock, control
from app.api import bp
from app.dashboard.actions import sync_now
from app.dashboard.routes import PARTS, dashboard_context, render_part
from app.households.web import actor, current_household, requires


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@bp.get("/dashboard")
@requires("view")
def dashboard():
    """The dashboard's parts as HTML fragments, plus the key numbers as data."""
    now = clock.now()
    context = dashboard_context(current_household(), now)
    prices, battery, status = context["prices"], context["battery"], context["status"]

    def price(p):
        if p is None:
            return None
        return {"buy": p.buy, "sell": p.sell, "start": _iso(p.start), "end": _iso(p.end), "estimate": p.estimate,
                "descriptor": p.descriptor, "spike_status": p.spike_status, "renewables": p.renewables}

    return jsonify(
        generated_at=now.isoformat(),
        updated_label=now.astimezone(context["tz"]).strftime("%H:%M:%S"),
        time_zone=str(context["tz"]),
        now={"five_minute": price(prices.five_minute), "half_hour": price(prices.half_hour),
             "updated_at": _iso(prices.updated_at), "stale": prices.stale},
        battery={"configured": battery.configured, "percentage": battery.percentage, "solar_w": battery.solar_w,
                 "home_w": battery.home_w, "battery_w": battery.battery_w, "grid_w": battery.grid_w,
                 "mode": battery.mode, "reserve": battery.reserve, "export_rule": battery.export_rule,
                 "grid_charging": battery.grid_charging, "read_at": _iso(battery.read_at), "error": battery.error},
        status={"sync_enabled": status.sync_enabled,
                "last_run": {"outcome": status.last_run.outcome, "reason": status.last_run.reason,
                             "at": _iso(status.last_run.started_at)} if status.last_run else None,
                "last_push_at": _iso(status.last_push.created_at) if status.last_push else None,
                "next_tick_at": _iso(status.next_tick_at),
                "alerts": [{"level": a.level, "message": a.message} for a in status.alerts]},
        html={part: render_part(part, context) for part in PARTS},
    )


@bp.post("/sync")
@requires("control")
def sync():
    """'Sync now' from the dashboard's button."""
    result = sync_now(current_household(), clock.now(), actor=actor())
    return jsonify(ok=result.ok, outcome=result.outcome, message=result.message), (200 if result.ok or result.outcome != "wait" else 429)


@bp.post("/control")
@requires("control")
def control_action():
    """Force charge / force discharge / cancel: {"action": ..., "minutes": N}."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser can go; get_json only silences ValueError
        body = None
    if not isinstance(body, dict):
        return jsonify(error='Send JSON like {"action": "force_charge", "minutes": 60}.', status=400), 400
    action = body.get("action")
    try:
        if action == "cancel":
            done = control.cancel(current_household(), actor=actor())
            live = None if done else control.live_session(current_household())
            return jsonify(ok=done, state=live.state if live else "ended",
                           cancel_pending=bool(live is not None and live.cancel_requested_by),
                           message=control.cancel_message(done, live.state if live else None))
        session = control.start(current_household(), action, body.get("minutes"), actor=actor())
    except control.ControlError as exc:
        return jsonify(error=str(exc), status=400), 400
    return jsonify(ok=True, state=session.state, action=session.action, ends_at=session.ends_at.isoformat(), session_id=session.id)


@bp.get("/history")
@requires("view")
def history_data():
    """The household's pushes, force sessions and changes of the last `days` days (default 7, at most 90)."""
    from app import history
    from app.dashboard.data import site_zone

    try:
        days = history.parse_days(request.args.get("days"))
    except ValueError as exc:
        return jsonify(error=str(exc), status=400), 400
    household = current_household()
    return jsonify(history.history(household, clock.now(), days, site_zone(household)))
