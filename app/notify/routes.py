"""The person's notification page: add an Apprise URL (validated on save), choose events and quiet hours,
send a test, see failed deliveries, remove a target. Every signed-in person manages only their own."""
from __future__ import annotations

import re

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import clock
from app.extensions import db
from app.form_helpers import ActionForm
from app.notify.events import EVENTS
from app.notify.service import send_test
from app.notify.targets import TargetError, add_target, remove_target, targets_of
from config import parse_mqtt_url

bp = Blueprint("notify", __name__)
TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _minutes(value: str | None) -> int | None:
    match = TIME.match((value or "").strip())
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def _mqtt_where() -> str | None:
    """Where Home Assistant's MQTT broker is (scheme, host, port; never the password), or None when off."""
    url = current_app.config.get("MQTT_URL")
    return parse_mqtt_url(url).where if url else None


def _page(status: int = 200, error: str | None = None):
    return render_template("notify/index.html", targets=targets_of(current_user), events=EVENTS, error=error,
                           form=ActionForm(), mqtt_where=_mqtt_where(),
                           mqtt_prefix=current_app.config.get("MQTT_DISCOVERY_PREFIX", "homeassistant")), status


@bp.get("/settings/notifications")
def index():
    """The person's notification targets."""
    return _page()


@bp.post("/settings/notifications")
def add():
    """Add a target from the form."""
    if not ActionForm().validate_on_submit():
        return _page(400, "This form has expired; reload the page and try again.")
    chosen = [e for e in request.form.getlist("events") if e in EVENTS]
    start, end = _minutes(request.form.get("quiet_start")), _minutes(request.form.get("quiet_end"))
    quiet = (start, end) if start is not None and end is not None and start != end else None
    try:
        add_target(current_user, request.form.get("url"), clock.now(), chosen or None, quiet)
    except TargetError as exc:
        db.session.rollback()
        return _page(400, str(exc))
    db.session.commit()
    flash("Notification target added. Send a test to check it.", "success")
    return redirect(url_for("notify.index"))


@bp.post("/settings/notifications/<int:number>/remove")
def remove(number: int):
    """Remove one of the person's targets."""
    if ActionForm().validate_on_submit():
        try:
            remove_target(current_user, number)
            db.session.commit()
            flash("Notification target removed.", "info")
        except TargetError as exc:
            flash(str(exc), "error")
    return redirect(url_for("notify.index"))


@bp.post("/settings/notifications/test")
def test():
    """Send a test message to each of the person's targets now."""
    if not ActionForm().validate_on_submit() or not targets_of(current_user):
        return redirect(url_for("notify.index"))
    failed = send_test(current_user, clock.now())
    if failed:
        flash(f"{failed} test message(s) could not be delivered; see below. They are retried automatically.", "error")
    else:
        flash("Test message sent to every target.", "success")
    return redirect(url_for("notify.index"))
