"""Views of the main blueprint."""
from __future__ import annotations

import logging

from flask import jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.main import bp
from app.security import public

log = logging.getLogger(__name__)


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
