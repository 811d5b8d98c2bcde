"""Observability: redacted structured logs with a request id, and the token-protected /metrics."""
from __future__ import annotations

import json
import logging
import re
from datetime import date, timedelta

import pytest
import responses

from app.clients.base import HttpClient
from app.clients.errors import ClientError
from app.observability import (
    REQUEST_ID_HEADER,
    RedactingFilter,
    configure_logging,
    redact,
)
from app.security import public
from tests.conftest import csrf_token
from tests.sync_env import env, simulator  # noqa: F401  (fixtures)

BEARER = "tok_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
AMBER_KEY = "psk_0123456789abcdef0123456789abcdef"
REFRESH = "NA_refresh0123456789abcdefghijklmnop"
CLIENT_SECRET = "ta-secret.clientsecret0123456789"
CODE = "NA_authcode0123456789abcdefSECRET"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlMDEyMzQ1Njc4OQ"
SECRETS = (BEARER, AMBER_KEY, REFRESH, CLIENT_SECRET, CODE, JWT)
METRICS_TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture()
def structured(caplog):
    """Install the app's root handler (writing to the captured stdout) for one test, then undo it."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_filters = {h: list(h.filters) for h in saved_handlers}
    caplog.set_level(logging.DEBUG)

    def install(fmt: str = "text", level: str = "DEBUG") -> logging.Handler:
        return configure_logging(level, fmt)

    yield install
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    for handler, filters in saved_filters.items():
        handler.filters[:] = filters
    root.setLevel(saved_level)


def all_logs(capsys, caplog) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err + caplog.text + "".join(str(r.msg) for r in caplog.records)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


# -- redaction ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"Authorization: Bearer {BEARER}", "Bearer ***"),
        (f"amber key {AMBER_KEY} refused", "psk_***"),
        (f"POST /token access_token={BEARER}&refresh_token={REFRESH}", "access_token=***"),
        (f'{{"refresh_token": "{REFRESH}", "client_secret": "{CLIENT_SECRET}"}}', '"refresh_token": "***"'),
        (f"GET /tesla-fleet/callback?code={CODE}&state=abc123xyz", "code=***&state=***"),
        (f"id token {JWT}", "id token ***"),
        (f"client_secret={CLIENT_SECRET}", "client_secret=***"),
    ],
)
def test_redact_masks_every_kind_of_secret(text, kept):
    out = redact(text)
    assert kept in out
    assert_no_secret(out)
    assert "abc123xyz" not in out


def test_redact_leaves_ordinary_text_alone():
    text = "User 3 pushed a tariff (hash 4f2a) in 812 ms; next tick at 04:05:03"
    assert redact(text) == text


# -- log lines ----------------------------------------------------------------------------------------------


def test_text_lines_are_one_logfmt_line_with_the_request_id(app, client, admin_id, structured, capsys):
    structured("text")
    response = client.get("/login", headers={REQUEST_ID_HEADER: "req-42.a_b"})
    assert response.headers[REQUEST_ID_HEADER] == "req-42.a_b"
    logging.getLogger("app.test").warning("two\nlines and \"quotes\"")
    lines = capsys.readouterr().out.splitlines()
    access = [line for line in lines if "logger=app.access" in line]
    assert access and "request_id=req-42.a_b" in access[0]
    assert re.match(r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=INFO logger=app.access ", access[0])
    assert 'msg="GET /login 200"' in access[0] and "status=200" in access[0] and "duration_ms=" in access[0]
    warning = [line for line in lines if "logger=app.test" in line]
    assert len(warning) == 1
    assert warning[0].endswith(r' level=WARNING logger=app.test request_id=- msg="two\nlines and \"quotes\""')


def test_json_lines_parse_and_carry_the_request_id(app, client, admin_id, structured, capsys):
    structured("json")
    response = client.get("/login")
    request_id = response.headers[REQUEST_ID_HEADER]
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "app.access"]
    assert access[0]["request_id"] == request_id
    assert access[0]["method"] == "GET" and access[0]["path"] == "/login" and access[0]["status"] == 200
    assert set(access[0]) >= {"ts", "level", "logger", "msg", "duration_ms"}


def test_level_comes_from_log_level(app, client, structured, capsys):
    structured("text", level="WARNING")
    logging.getLogger("app.test").info("not shown")
    logging.getLogger("app.test").warning("shown")
    out = capsys.readouterr().out
    assert "not shown" not in out and "shown" in out


@pytest.mark.parametrize("incoming", ["x" * 65, "abc 123", "<script>", "a;b", "é", ""])
def test_an_unsafe_or_long_request_id_is_replaced(client, incoming):
    response = client.get("/login", headers={REQUEST_ID_HEADER: incoming})
    generated = response.headers[REQUEST_ID_HEADER]
    assert generated != incoming and re.fullmatch(r"[0-9a-f]{16}", generated)


def test_every_response_has_a_request_id(app, client):
    for path in ("/login", "/nowhere", "/healthz", "/static/app.css", "/api/dashboard"):
        assert re.fullmatch(r"[0-9a-f]{16}", client.get(path).headers[REQUEST_ID_HEADER]), path


def test_secrets_in_a_request_never_reach_a_log(app, client, user_client, structured, capsys, caplog):
    structured("text")
    client.get(f"/login?access_token={BEARER}&code={CODE}&state=abc123xyz", headers={"Authorization": f"Bearer {BEARER}"})
    client.get(f"/tesla-fleet/callback?code={CODE}&state=abc123xyz")
    token = csrf_token(user_client, "/settings")
    user_client.post("/settings/amber", data={"token": AMBER_KEY, "site_id": "", "csrf_token": token})
    user_client.post(f"/settings/tesla?refresh_token={REFRESH}", data={"token": JWT, "csrf_token": token})
    logs = all_logs(capsys, caplog)
    assert "GET /login?access_token=***&code=***&state=***" in logs
    assert_no_secret(logs)
    assert "abc123xyz" not in logs


def test_secrets_in_an_exception_never_reach_a_log(app, client, structured, capsys, caplog):
    @public
    def boom():
        raise RuntimeError(f"upstream said Bearer {BEARER} for {AMBER_KEY}: {{\"refresh_token\": \"{REFRESH}\"}} {JWT}")

    app.add_url_rule("/boom", "boom", boom)
    structured("json")
    response = client.get("/boom")
    assert response.status_code == 500
    assert_no_secret(response.get_data(as_text=True))
    logs = all_logs(capsys, caplog)
    assert "Traceback" in logs and "RuntimeError: upstream said Bearer ***" in logs
    assert_no_secret(logs)


def test_secrets_in_a_client_error_never_reach_a_log(app, structured, capsys, caplog):
    structured("text")
    log = logging.getLogger("app.sync")
    client = HttpClient("https://api.example.test", token=BEARER, service="tesla", sleep=lambda s: None)
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.GET, "https://api.example.test/api/1/products", status=401,
            json={"error": "invalid_token", "error_description": f"{JWT} with {AMBER_KEY} client_secret={CLIENT_SECRET}"},
        )
        with pytest.raises(ClientError) as caught:
            client.request("GET", "/api/1/products")
    # Callers log errors in all the usual ways; none of them may leak.
    log.warning("Tesla refused: %s", caught.value)
    log.warning("Tesla refused: %r", caught.value.__dict__)
    try:
        raise RuntimeError(f"wrapped: {caught.value} {JWT} refresh_token={REFRESH}") from caught.value
    except RuntimeError:
        log.exception("sync failed")
    log.error("request headers %s", {"Authorization": f"Bearer {BEARER}", "X": f"{AMBER_KEY}"})
    logs = all_logs(capsys, caplog)
    assert "sync failed" in logs and "Traceback" in logs
    assert_no_secret(logs)


def test_loggers_that_do_not_propagate_are_redacted_too(app, structured, capsys):
    import io

    stream = io.StringIO()
    gunicorn_access = logging.getLogger("gunicorn.access")
    saved = (list(gunicorn_access.handlers), gunicorn_access.propagate, gunicorn_access.level)
    own = logging.StreamHandler(stream)
    gunicorn_access.handlers[:] = [own]
    gunicorn_access.propagate = False
    gunicorn_access.setLevel(logging.INFO)
    try:
        structured("text")
        assert any(isinstance(f, RedactingFilter) for f in own.filters)
        gunicorn_access.info('%(h)s "%(r)s" %(s)s', {"h": "10.0.0.1", "r": f"GET /tesla-fleet/callback?code={CODE}&state=s3cr3tst4te HTTP/1.1", "s": "302"})
        logging.getLogger("werkzeug").info("%s - - %s", "127.0.0.1", f'"GET /x?access_token={BEARER} HTTP/1.1" 200')
    finally:
        gunicorn_access.handlers[:], gunicorn_access.propagate, _ = saved[0], saved[1], gunicorn_access.setLevel(saved[2])
    text = stream.getvalue() + capsys.readouterr().out
    assert "callback?code=***&state=***" in text and "logger=gunicorn.access" in text
    assert "s3cr3tst4te" not in text
    assert_no_secret(text)


def test_configure_logging_replaces_its_handler_instead_of_adding_one(structured):
    structured("text")
    structured("json")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_tas_handler", False)]
    assert len(ours) == 1


# -- /metrics -----------------------------------------------------------------------------------------------


SAMPLE_RE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$')


def parse_exposition(text: str) -> dict[str, float]:
    """{'name{labels}': value}; asserts the text format as it goes."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    helped, typed = set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            typed.add(name)
        else:
            assert SAMPLE_RE.match(line), line
            key, value = line.rsplit(" ", 1)
            name = key.split("{", 1)[0]
            assert name in typed and name in helped, line
            samples[key] = float(value)
    return samples


@pytest.fixture()
def metrics_app(app):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    return app


def scrape(client, token: str | None = METRICS_TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/metrics", headers=headers)


def test_metrics_do_not_exist_without_a_token_configured(app, client):
    app.config["METRICS_TOKEN"] = None
    assert scrape(client).status_code == 404
    assert scrape(client, None).status_code == 404


def test_metrics_want_the_bearer_token(metrics_app, client):
    response = scrape(client, None)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"}).status_code == 401
    assert scrape(client, "wrong-token-0123456789abcdef").status_code == 403
    assert scrape(client, METRICS_TOKEN[:-1]).status_code == 403
    assert scrape(client, METRICS_TOKEN + "x").status_code == 403
    assert scrape(client, "é" * 20).status_code == 403
    assert client.post("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 405
    ok = scrape(client)
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Set-Cookie" not in ok.headers


def test_metrics_use_a_constant_time_compare(metrics_app, client, monkeypatch):
    import hmac

    from app import observability

    calls = []
    monkeypatch.setattr(observability.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or hmac.compare_digest(a, b))
    scrape(client, "wrong-token-0123456789abcdef")
    assert calls


def test_metrics_on_an_empty_database(metrics_app, client):
    samples = parse_exposition(scrape(client).get_data(as_text=True))
    for outcome in ("pushed", "unchanged", "skipped", "failed"):
        assert samples[f'tas_sync_runs_total{{outcome="{outcome}"}}'] == 0
    assert samples["tas_scheduler_leader"] == 0
    assert samples["tas_pushes_last_24h"] == 0
    assert samples['tas_force_sessions_active{action="force_charge"}'] == 0


def test_metrics_are_read_from_the_database(metrics_app, client, db, clock, household_id, admin_household_id):
    from app.models import ApiCallCount, ForceSession, SchedulerLease, SyncRun, SyncRunTotal

    now = clock()
    runs = [("pushed", 100), ("pushed", 300), ("pushed", 200), ("pushed", 900), ("unchanged", None), ("failed", None)]
    for outcome, latency in runs:
        db.session.add(SyncRun(household_id=household_id, started_at=now - timedelta(minutes=5), outcome=outcome, push_latency_ms=latency, pushed=latency is not None))
    db.session.add(SyncRun(household_id=household_id, started_at=now - timedelta(hours=25), outcome="pushed", push_latency_ms=99999, pushed=True))
    today = date(2026, 11, 24)
    db.session.add_all([
        ApiCallCount(household_id=household_id, day=today, service="amber", kind="prices", status_class="2xx", calls=10, billable=0),
        ApiCallCount(household_id=admin_household_id, day=today, service="amber", kind="prices", status_class="2xx", calls=5, billable=0),
        ApiCallCount(household_id=household_id, day=today, service="amber", kind="prices", status_class="5xx", calls=3, billable=0),
        ApiCallCount(household_id=household_id, day=today, service="teslemetry", kind="time_of_use_settings", status_class="2xx", calls=7, billable=6),
        ApiCallCount(household_id=household_id, day=today, service="teslemetry", kind="site_info", status_class="4xx", calls=2, billable=2),
        # Counted before status classes existed (the migration's backfill).
        ApiCallCount(household_id=household_id, day=today - timedelta(days=1), service="teslemetry", kind="site_info", calls=4, billable=4),
    ])
    db.session.add(SyncRunTotal(outcome="pushed", purged=10))  # runs that retention deleted still count
    db.session.add(SchedulerLease(name="scheduler", holder="host-a:4242:beef", acquired_at=now, renewed_at=now,
                                  expires_at=now + timedelta(seconds=60), last_tick_at=now - timedelta(seconds=30)))
    db.session.add(ForceSession(household_id=household_id, tesla_site_id="1", action="force_charge", state="active", minutes=30,
                                started_at=now, ends_at=now + timedelta(minutes=30)))
    db.session.add(ForceSession(household_id=admin_household_id, tesla_site_id="2", action="force_discharge", state="ended", minutes=30,
                                started_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1), ended_at=now - timedelta(hours=1)))
    db.session.commit()

    samples = parse_exposition(scrape(client).get_data(as_text=True))
    assert samples['tas_sync_runs_total{outcome="pushed"}'] == 15
    assert samples['tas_sync_runs_total{outcome="unchanged"}'] == 1
    assert samples['tas_sync_runs_total{outcome="failed"}'] == 1
    assert samples['tas_sync_runs_total{outcome="skipped"}'] == 0
    assert samples["tas_pushes_last_24h"] == 4  # the 25-hour-old push is outside the window
    assert samples['tas_push_latency_last_24h_ms{quantile="0.5"}'] == 200
    assert samples['tas_push_latency_last_24h_ms{quantile="1"}'] == 900
    assert samples["tas_push_latency_last_24h_ms_sum"] == 1500
    assert samples['tas_api_calls_total{service="amber",status="2xx",billable="false"}'] == 15
    assert samples['tas_api_calls_total{service="amber",status="5xx",billable="false"}'] == 3
    assert samples['tas_api_calls_total{service="teslemetry",status="2xx",billable="true"}'] == 6
    assert samples['tas_api_calls_total{service="teslemetry",status="2xx",billable="false"}'] == 1
    assert samples['tas_api_calls_total{service="teslemetry",status="4xx",billable="true"}'] == 2
    assert samples['tas_api_calls_total{service="teslemetry",status="unknown",billable="true"}'] == 4
    assert not any('status="3xx"' in key for key in samples)  # only classes that happened
    assert samples["tas_scheduler_leader"] == 1
    assert samples['tas_scheduler_leader_info{pid="4242"}'] == 1
    assert samples["tas_scheduler_last_tick_timestamp_seconds"] == (now - timedelta(seconds=30)).timestamp()
    assert samples['tas_force_sessions_active{action="force_charge"}'] == 1
    assert samples['tas_force_sessions_active{action="force_discharge"}'] == 0

    clock.advance(seconds=61)  # the lease expired: nobody leads
    samples = parse_exposition(scrape(client).get_data(as_text=True))
    assert samples["tas_scheduler_leader"] == 0 and not any(k.startswith("tas_scheduler_leader_info") for k in samples)


def test_metrics_token_setting(monkeypatch):
    from config import ConfigError, config_for

    monkeypatch.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        config_for("testing")
    monkeypatch.setenv("METRICS_TOKEN", METRICS_TOKEN)
    assert config_for("testing").METRICS_TOKEN == METRICS_TOKEN
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        config_for("testing")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert config_for("testing").LOG_FORMAT == "json"


# -- API calls by status, from a real sync against the fakes -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (204, "2xx"), (301, "3xx"), (401, "4xx"), (429, "4xx"), (500, "5xx"), (503, "5xx"),
     (100, "1xx"), (None, "none"), (0, "other"), (600, "other"), (999, "other")],
)
def test_status_class(status, expected):
    from app.api_usage import status_class

    assert status_class(status) == expected


def test_failed_calls_show_up_in_metrics_by_status_and_the_cost_meter_counts_them_all(env, app, household_id):
    import requests as real_requests

    from app.dashboard import data
    from app.extensions import db as _db
    from app.models import Household
    from tests.sync_env import SHARED, TESLA_SITE

    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    push_url = f"{env.simulator}/teslemetry/api/1/energy_sites/{TESLA_SITE}/time_of_use_settings"

    # 1: Amber answers, Tesla says "slow down" to the push.
    env.sim("faults", json={"endpoint": "tesla_time_of_use_settings", "status": 429, "retry_after": 120, "count": 1})
    [result] = env.tick()
    assert result.outcome == "failed" and "slow down" in result.reason
    # 2: Amber fails with 500 (a GET: tried three times); nothing reaches Tesla.
    SHARED.advance(minutes=5)
    env.amber.fail_status = 500
    [result] = env.tick()
    assert result.outcome == "failed" and "Amber prices could not be read" in result.reason
    env.amber.fail_status = None
    # 3: Amber answers, the push times out waiting for Tesla's answer (no status at all).
    SHARED.advance(minutes=5)
    env.mock.add(responses.POST, push_url, body=real_requests.exceptions.ReadTimeout("read timed out"))
    [result] = env.tick()
    assert result.outcome == "failed"
    env.mock.remove(responses.POST, push_url)

    samples = parse_exposition(scrape(app.test_client()).get_data(as_text=True))
    calls = {k: v for k, v in samples.items() if k.startswith("tas_api_calls_total")}
    assert calls == {
        'tas_api_calls_total{service="amber",status="2xx",billable="true"}': 0,
        'tas_api_calls_total{service="amber",status="2xx",billable="false"}': 4,
        'tas_api_calls_total{service="amber",status="5xx",billable="true"}': 0,
        'tas_api_calls_total{service="amber",status="5xx",billable="false"}': 3,
        'tas_api_calls_total{service="teslemetry",status="4xx",billable="true"}': 1,  # Tesla bills a 429
        'tas_api_calls_total{service="teslemetry",status="4xx",billable="false"}': 0,
        # The push's answer was lost after sending: Tesla may have applied and billed it, so it counts.
        'tas_api_calls_total{service="teslemetry",status="none",billable="true"}': 1,
        'tas_api_calls_total{service="teslemetry",status="none",billable="false"}': 0,
    }
    assert len(env.amber.calls) == 4 + 3  # every call Amber saw is counted once
    with app.app_context():
        household = _db.session.get(Household, household_id)
        costs = data.costs(household, SHARED.current)
        assert costs.teslemetry_today == 2  # the meter adds up every status class
