"""Views of the main blueprint."""
from __future__ import annotations

import logging

from flask import jsonify, render_template
from flask_login import current_user
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.credentials import secret_status
from app.extensions import db
from app.main import bp
from app.security import public

log = logging.getLogger(__name__)


@bp.route("/")
def index():
    """The signed-in user's home: what is set up and what is still missing."""
    settings = current_user.settings
    amber = secret_status(settings, "amber_token")
    teslemetry = secret_status(settings, "teslemetry_token")
    fleet = secret_status(settings, "tesla_access_token")
    steps = [
        ("Amber API token", amber.state == "saved", amber.state == "unreadable"),
        ("Amber site", bool(settings and settings.amber_site_id), False),
        (
            "Tesla connection (Teslemetry token or Fleet API)",
            teslemetry.state == "saved" or fleet.state == "saved",
            teslemetry.state == "unreadable" or fleet.state == "unreadable",
        ),
        ("Tesla energy site", bool(settings and settings.tesla_site_id), False),
        ("Sync turned on", bool(settings and settings.sync_enabled), False),
    ]
    return render_template("main/index.html", steps=steps, settings=settings)


@bp.route("/healthz")
@public
def healthz():
    """200 when the database answers, 503 otherwise; small JSON either way."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.error("Health check: database unavailable (%s)", type(exc).__name__)
        db.session.rollback()
        return jsonify(status="error", database="unavailable"), 503
    return jsonify(status="ok", database="ok")
