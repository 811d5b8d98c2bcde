"""Error pages and JSON errors: a clear message and the right status, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, render_template, request
from flask_login import AnonymousUserMixin
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Check what you entered and try again."),
    401: ("Sign in first", "You need to sign in to see this."),
    403: ("Not allowed", "Your account is not allowed to do that."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "That action cannot be done this way."),
    413: ("Too large", "What you sent is too large."),
    429: ("Too many requests", "Too many attempts. Wait a little and try again."),
    500: ("Something went wrong", "The app hit an unexpected problem. Nothing you saved was lost; try again."),
    503: (
        "The database is not answering",
        "The database is not answering. The Powerwall keeps the last tariff it was given; nothing was lost. "
        "Try again in a minute.",
    ),
}


def wants_json() -> bool:
    """Whether the client expects a JSON error (the pages' own API, or an explicit Accept)."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, message: str | None = None, *, bare: bool = False):
    """Render an error page (or JSON body) for `status`."""
    title, default = MESSAGES.get(status, (f"Error {status}", "Something went wrong."))
    message = message or default
    if wants_json():
        return jsonify(error=message, status=status), status
    if not bare:
        try:
            return render_template("errors/error.html", status=status, title=title, message=message, bare=False), status
        except SQLAlchemyError as exc:
            # The layout's menu loads the signed-in user and their households; a 404 or a refused form
            # is decided before that, so the database can be gone by now: the page still renders, bare.
            log.error("Database error while rendering the %s page for %s %s: %s", status, request.method,
                      request.path, type(exc).__name__)
            _rollback()
    # Do not touch the signed-in user (the database may be what failed): Flask-Login's template context
    # would load them from it, and the error page would itself fail.
    g._login_user = AnonymousUserMixin()
    return render_template("errors/error.html", status=status, title=title, message=message, bare=True), status


def _rollback() -> None:
    """Roll the request's session back, ignoring a database that cannot even do that."""
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on `app`."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        log.info("CSRF check failed on %s %s: %s", request.method, request.path, exc.description)
        return error_response(
            400, "This form has expired or did not come from this site. Reload the page and try again."
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_response(exc.code or 500)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError):
        log.error("Database error on %s %s: %s", request.method, request.path, type(exc).__name__)
        _rollback()
        return error_response(503, bare=True)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("Unexpected error on %s %s", request.method, request.path)
        return error_response(500, bare=True)
