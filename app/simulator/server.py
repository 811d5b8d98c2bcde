"""The simulator's Flask app and how to serve it: blocking (CLI) or in a background thread (tests, demo).

URL layout: /amber/v1/... (Amber), /tesla/... (Fleet API), /teslemetry/... (Teslemetry),
/oauth2/v3/... (Tesla auth), /_sim/... (control)."""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from http import HTTPStatus
from typing import Callable

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server, run_simple

from .amber_routes import amber, message_response, too_many_requests
from .control_routes import control
from .faults import Fault, truncate_body
from .oauth_routes import oauth
from .state import DEFAULT_SEED, SimulatorState
from .tesla_routes import PARTNER_REGISTRATION_ERROR, TeslaError, tesla, tesla_error_response, teslemetry_extra

FAMILY_OF_BLUEPRINT = {
    "amber": "amber",
    "tesla": "tesla",
    "teslemetry": "tesla",  # same API through the proxy: one fault name for both
    "teslemetry_extra": "teslemetry",
    "oauth": "oauth",
}
TESLA_ERRORS = {
    401: "token expired (401)",
    403: "Unauthorized missing scopes",
    408: "device is offline or asleep",
    421: "user out of region",
    429: "rate limited",
    500: "internal server error",
    503: "service unavailable",
    504: "gateway timeout",
}
AMBER_MESSAGES = {401: "Unauthorized", 500: "Internal server error", 504: "Endpoint request timed out"}


def create_simulator_app(
    clock: Callable[[], datetime] | None = None,
    seed: int = DEFAULT_SEED,
    *,
    sleep: Callable[[float], None] = time.sleep,
    **config: object,
) -> Flask:
    """Build a simulator app. `clock` is the base clock (UTC now by default); `config` takes SimConfig fields."""
    app = Flask(__name__)
    app.json.sort_keys = False  # keep Amber's and Tesla's field order
    app.extensions["simulator"] = SimulatorState(clock, seed, dict(config), sleep)
    app.register_blueprint(amber, url_prefix="/amber/v1")
    app.register_blueprint(tesla, url_prefix="/tesla")
    app.register_blueprint(tesla, url_prefix="/teslemetry", name="teslemetry")
    app.register_blueprint(teslemetry_extra, url_prefix="/teslemetry")
    app.register_blueprint(oauth)
    app.register_blueprint(control, url_prefix="/_sim")
    app.before_request(_inject_faults)
    app.after_request(_garble)
    app.register_error_handler(HTTPException, _http_error)
    return app


def fault_name(blueprint: str | None, endpoint: str | None) -> str | None:
    """The name fault rules match for a Flask endpoint, e.g. "amber_prices_current", "tesla_site_info"."""
    family = FAMILY_OF_BLUEPRINT.get(blueprint or "")
    if family is None or endpoint is None:
        return None
    return f"{family}_{endpoint.split('.', 1)[1]}"


def _inject_faults() -> Response | None:
    name = fault_name(request.blueprint, request.endpoint)
    if name is None:
        return None
    sim: SimulatorState = current_app.extensions["simulator"]
    with sim.lock:
        sim.request_counts[request.endpoint] = sim.request_counts.get(request.endpoint, 0) + 1
        fault = next((f for f in sim.faults if f.matches(name) and f.fires()), None)
    if fault is None:
        return None
    if fault.latency_ms:
        sim.sleep(fault.latency_ms / 1000)  # outside the lock: other requests carry on meanwhile
    if fault.malformed:
        g.garble = True
    if fault.status is None:
        return None
    return _fault_response(fault, name.split("_", 1)[0])


def _fault_response(fault: Fault, family: str) -> Response:
    status = fault.status or 500
    if family == "amber":
        response = too_many_requests() if status == 429 else message_response(
            status, AMBER_MESSAGES.get(status, HTTPStatus(status).phrase)
        )
    elif family == "oauth":
        fallback = "server_error" if status >= 500 else "invalid_request"
        error = {401: "login_required", 429: "too_many_requests"}.get(status, fallback)
        response = jsonify({"error": error, "error_description": "injected fault"})
        response.status_code = status
    elif status == 412:
        host = request.host_url.rstrip("/") + "/tesla"
        response = tesla_error_response(TeslaError(412, PARTNER_REGISTRATION_ERROR.format(host=host), bare=True))
    elif status == 402 and request.blueprint == "teslemetry":
        response = tesla_error_response(TeslaError(402, "subscription_required"))
    else:
        phrase = TESLA_ERRORS.get(status, HTTPStatus(status).phrase.lower())
        response = tesla_error_response(TeslaError(status, phrase))
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def _garble(response: Response) -> Response:
    if g.pop("garble", False):
        response.set_data(truncate_body(response.get_data()))
    return response


def _http_error(error: HTTPException) -> Response:
    # JSON in each API's own error style instead of Flask's HTML pages.
    status = error.code or 500
    path = request.path
    if path.startswith("/amber/"):
        return message_response(status, HTTPStatus(status).phrase)
    if path.startswith(("/tesla/", "/teslemetry/")):
        return tesla_error_response(TeslaError(status, HTTPStatus(status).phrase.lower()))
    response = jsonify({"error": HTTPStatus(status).phrase.lower(), "error_description": error.description or ""})
    response.status_code = status
    return response


class RedactingRequestHandler(WSGIRequestHandler):
    """Werkzeug's request log line with `?token=` values (Teslemetry query auth) masked."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Runs after the response is sent, so rewriting the path only changes what is logged.
        self.path = re.sub(r"(?i)([?&]token=)[^&]+", r"\1***", self.path)
        super().log_request(code, size)


class QuietRequestHandler(WSGIRequestHandler):
    """No per-request log lines (in-process use: tests and demo mode keep the app's log readable)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 5055,
    *,
    clock: Callable[[], datetime] | None = None,
    seed: int = DEFAULT_SEED,
    **config: object,
) -> None:
    """Serve the simulator until interrupted (werkzeug's threaded server)."""
    app = create_simulator_app(clock, seed, **config)
    run_simple(host, port, app, threaded=True, request_handler=RedactingRequestHandler)


def start_simulator_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    app: Flask | None = None,
    clock: Callable[[], datetime] | None = None,
    seed: int = DEFAULT_SEED,
    log_requests: bool = False,
    **config: object,
) -> tuple[str, Callable[[], None]]:
    """Serve a simulator (the given `app`, or a new one) in a daemon thread; returns (base_url, stop).

    Port 0 picks a free ephemeral port. Reach the state in-process via `app.extensions["simulator"]`."""
    app = app or create_simulator_app(clock, seed, **config)
    handler = RedactingRequestHandler if log_requests else QuietRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, name="tesla-amber-simulator", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()

    return f"http://{host}:{server.server_port}", stop
