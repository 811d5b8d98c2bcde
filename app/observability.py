"""Observability: one structured, redacted log line per record with the request id, and `/metrics`.

Logs: `configure_logging` puts one handler on the root logger (stdout, `LOG_FORMAT` text or json, level
`LOG_LEVEL`) and a `RedactingFilter` on it and on every other handler already installed (gunicorn's own
loggers do not propagate to the root, so their handlers get the filter too). Every request gets an id
(`X-Request-ID`, taken from the client only when short and safe) that each log line and the response
carry, and one access line.

Metrics: `/metrics` in the Prometheus text format, computed from the database at scrape time, so every
gunicorn worker answers the same. It exists only when `METRICS_TOKEN` is set (404 otherwise) and wants
`Authorization: Bearer <METRICS_TOKEN>` (401 without, 403 when wrong).
"""
from __future__ import annotations

import hmac
import json
import logging
import math
import re
import secrets
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from flask import Blueprint, Flask, Response, abort, current_app, g, has_request_context, request
from sqlalchemy import func, select, union_all

from app import clock
from app.clients.base import REDACTED, redact_text
from app.extensions import csrf, db
from app.security import public

log = logging.getLogger(__name__)
access_log = logging.getLogger("app.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Paths polled by machines: their access lines are DEBUG so they do not drown the rest.
_QUIET_PREFIXES = ("/static/", "/healthz", "/metrics")
_HANDLER_MARK = "_tas_handler"

# Secrets that `redact_text` does not know by a key name: Amber API keys, JWTs (Tesla access/ID
# tokens, session cookies), and the OAuth callback's state.
_EXTRA_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bpsk_[A-Za-z0-9]+"), "psk_" + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_])(state=)[^&\s\"',;]+", re.IGNORECASE), r"\1" + REDACTED),
)


def redact(text: str) -> str:
    """Mask bearer tokens, `psk_` keys, JWTs and secret `key=value` / JSON fields in free text."""
    out = redact_text(text)
    for pattern, replacement in _EXTRA_PATTERNS:
        out = pattern.sub(replacement, out)
    return out


# -- logging ----------------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Rewrites every record's message, traceback, stack and structured fields through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True


def current_request_id() -> str | None:
    """The id of the request being handled in this thread, if any."""
    if has_request_context():
        return g.get("request_id")
    return None


class _StructuredFormatter(logging.Formatter):
    """Common fields of a record: time, level, logger, request id, message, extra fields, traceback."""

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        ts = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"
        out: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id() or "-",
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update({k: v for k, v in extra.items() if k not in out})
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return out


class TextFormatter(_StructuredFormatter):
    """`ts=… level=INFO logger=app.sync request_id=… msg="…"` on one line (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in self.fields(record).items())


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str)


_BARE_VALUE = re.compile(r"[A-Za-z0-9._:/@+\-]+")


def _logfmt_value(value: Any) -> str:
    text = "null" if value is None else str(value)
    if _BARE_VALUE.fullmatch(text):
        return text
    return json.dumps(text)  # quotes, escapes newlines: one record stays one line


def configure_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Install the stdout handler on the root logger (replacing an earlier one) and redact every handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for other in _all_handlers():
        if not any(isinstance(f, RedactingFilter) for f in other.filters):
            other.addFilter(RedactingFilter())
    # gunicorn's loggers keep their own handlers (propagate=False): give their lines our format too.
    for name in ("gunicorn.access", "gunicorn.error"):
        for other in logging.getLogger(name).handlers:
            other.setFormatter(formatter)
    return handler


def _all_handlers() -> Iterable[logging.Handler]:
    seen: set[int] = set()
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                yield handler


# -- request id and access line ---------------------------------------------------------------------------


def _begin_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    user = g.get("_login_user")  # only when this request already loaded it: no extra query
    level = logging.DEBUG if request.path.startswith(_QUIET_PREFIXES) else logging.INFO
    if access_log.isEnabledFor(level):
        # Redacted here as well as by the handler's filter: the line is ours, so it is safe on any handler.
        path = redact(request.full_path if request.query_string else request.path)
        access_log.log(
            level,
            "%s %s %s",
            request.method,
            path,
            response.status_code,
            extra={
                "fields": {
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                    "user_id": getattr(user, "id", None),
                    "remote_addr": request.remote_addr,
                }
            },
        )
    return response


# -- metrics ----------------------------------------------------------------------------------------------

bp = Blueprint("observability", __name__)

SYNC_OUTCOMES = ("pushed", "unchanged", "skipped", "failed")
LATENCY_QUANTILES = (0.5, 0.9, 0.95, 0.99, 1.0)
LATENCY_WINDOW = timedelta(hours=24)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/metrics")
@public  # its own bearer token, below
def metrics() -> Response:
    """Prometheus metrics, for a scraper holding METRICS_TOKEN."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Response(
            "Send Authorization: Bearer <METRICS_TOKEN>.\n", 401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain; charset=utf-8"},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Response("Wrong metrics token.\n", 403, {"Content-Type": "text/plain; charset=utf-8"})
    body = render_metrics(clock.now())
    return Response(body, 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


csrf.exempt(metrics)


def render_metrics(now: datetime) -> str:
    """The exposition text, read from the database at `now`."""
    from app.sync import lease
    from app.control import LIVE_STATES
    from app.models import ApiCallCount, ForceSession, SyncRun, SyncRunTotal
    from app.sync.scheduler import LEASE_NAME

    out = _Exposition()

    # Rows still in sync_runs plus the ones retention deleted, read in ONE statement: retention moves
    # counts from one table to the other in a transaction, and two statements could straddle its
    # commit and make the counter dip.
    present = select(SyncRun.outcome.label("outcome"), func.count().label("n")).group_by(SyncRun.outcome)
    purged = select(SyncRunTotal.outcome.label("outcome"), SyncRunTotal.purged.label("n"))
    counts: dict[str, int] = {}
    for outcome, n in db.session.execute(union_all(present, purged)).all():
        counts[outcome] = counts.get(outcome, 0) + int(n or 0)
    out.family("tas_sync_runs_total", "counter", "Syncs of one user since the database was created, by outcome.")
    for outcome in sorted(set(SYNC_OUTCOMES) | set(counts)):
        out.sample("tas_sync_runs_total", counts.get(outcome, 0), outcome=outcome)

    latencies = list(
        db.session.scalars(
            select(SyncRun.push_latency_ms)
            .where(SyncRun.started_at >= now - LATENCY_WINDOW, SyncRun.push_latency_ms.is_not(None))
            .order_by(SyncRun.push_latency_ms)
        )
    )
    out.family("tas_push_latency_last_24h_ms", "gauge",
               "Latency of the tariff pushes of the last 24 h in milliseconds, by quantile (1 = slowest).")
    for q in LATENCY_QUANTILES:
        out.sample("tas_push_latency_last_24h_ms", _nearest_rank(latencies, q), quantile=f"{q:g}")
    out.family("tas_pushes_last_24h", "gauge", "Tariff pushes with a measured latency in the last 24 h.")
    out.sample("tas_pushes_last_24h", len(latencies))
    out.family("tas_push_latency_last_24h_ms_sum", "gauge", "Sum of those latencies in milliseconds.")
    out.sample("tas_push_latency_last_24h_ms_sum", sum(latencies))

    rows = db.session.execute(
        select(
            ApiCallCount.service, ApiCallCount.status_class, func.sum(ApiCallCount.calls), func.sum(ApiCallCount.billable)
        ).group_by(ApiCallCount.service, ApiCallCount.status_class)
    ).all()
    out.family("tas_api_calls_total", "counter",
               "Calls to Amber and Tesla since the database was created, by service, HTTP status class "
               "(none = no response, unknown = counted before classes were recorded) and whether Tesla bills them.")
    for service, klass, calls, billable in sorted(rows, key=lambda r: (r[0], r[1])):
        calls, billable = int(calls or 0), int(billable or 0)
        out.sample("tas_api_calls_total", billable, service=service, status=klass, billable="true")
        out.sample("tas_api_calls_total", calls - billable, service=service, status=klass, billable="false")

    held = lease.current_holder(LEASE_NAME, now)
    stored = held or lease.read_lease(LEASE_NAME)
    out.family("tas_scheduler_leader", "gauge", "1 when a scheduler process holds the leader lease, else 0.")
    out.sample("tas_scheduler_leader", 1 if held else 0)
    out.family("tas_scheduler_leader_info", "gauge", "The process id of the live scheduler leader.")
    if held is not None:
        out.sample("tas_scheduler_leader_info", 1, pid=str(lease.holder_pid(held.holder) or "unknown"))
    out.family("tas_scheduler_last_tick_timestamp_seconds", "gauge", "When the last sync tick was claimed (Unix time).")
    if stored is not None and stored.last_tick_at is not None:
        out.sample("tas_scheduler_last_tick_timestamp_seconds", stored.last_tick_at.timestamp())

    live = dict(
        db.session.execute(
            select(ForceSession.action, func.count()).where(ForceSession.state.in_(LIVE_STATES)).group_by(ForceSession.action)
        ).all()
    )
    out.family("tas_force_sessions_active", "gauge", "Force charge / discharge sessions not yet ended, by action.")
    for action in sorted({"force_charge", "force_discharge"} | set(live)):
        out.sample("tas_force_sessions_active", live.get(action, 0), action=action)
    return out.text()


def _nearest_rank(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class _Exposition:
    """Prometheus text format 0.0.4: `# HELP`, `# TYPE`, `name{label="value"} number`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        label_text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{label_text}}} {_number(value)}" if labels else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


# -- wiring -----------------------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Logging (outside tests), the request id and access line, and the /metrics route."""
    # Logging is process-wide: tests leave it to pytest's capture instead.
    if not app.testing:
        configure_logging(app.config["LOG_LEVEL"], app.config.get("LOG_FORMAT", "text"))
    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.register_blueprint(bp)
