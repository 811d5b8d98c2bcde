"""Tesla's auth server: /oauth2/v3/authorize (auto-approves) and /oauth2/v3/token (form-encoded)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from .state import SimulatorState

oauth = Blueprint("oauth", __name__)


def _sim() -> SimulatorState:
    return current_app.extensions["simulator"]


def _reply(status: int, body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@oauth.get("/oauth2/v3/authorize")
def authorize() -> Response:
    """Approve at once and redirect to redirect_uri?code=NA_...&state=... (no login page)."""
    sim = _sim()
    with sim.lock:
        location, error = sim.tokens.authorize(request.args.to_dict(), sim.now())
    if error is not None:
        return _reply(*error)
    return redirect(location, code=302)


@oauth.post("/oauth2/v3/token")
def token() -> Response:
    """Token endpoint: authorization_code (+PKCE), refresh_token (single use), client_credentials."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return _reply(400, {"error": "invalid_request", "error_description": "body must be form-encoded"})
    sim = _sim()
    audience = request.host_url.rstrip("/") + "/tesla"
    with sim.lock:
        status, body = sim.tokens.token(request.form.to_dict(), sim.now(), audience)
    return _reply(status, body)
