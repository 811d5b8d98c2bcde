"""Tests for the shared HTTP chokepoint (app/clients/base.py): status mapping, retries, timeouts, redaction."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator

import pytest
import requests
import responses

from app.clients.base import (
    DEFAULT_TIMEOUT,
    REDACTED,
    CallRecord,
    HttpClient,
    parse_retry_after,
    redact_data,
    redact_headers,
    redact_text,
    redact_url,
)
from app.clients.errors import (
    AppNotRegisteredError,
    AuthenticationError,
    BadResponseError,
    ClientError,
    DeviceOfflineError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    TransientError,
    UnexpectedStatusError,
    WrongRegionError,
)

BASE = "https://api.example.test/v1"
TOKEN = "tok_SECRET_0123456789abcdef"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def records() -> list[CallRecord]:
    return []


@pytest.fixture
def client(sleeps: list[float], records: list[CallRecord]) -> HttpClient:
    return HttpClient(BASE, TOKEN, requests.Session(), service="tesla", sleep=sleeps.append, on_call=records.append)


# -- request basics -------------------------------------------------------------------------------------


def test_get_sends_bearer_token_accept_header_and_timeouts(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/things", json={"ok": True})

    result = client.request("GET", "/things", params={"a": 1, "skip": None})

    assert result.status == 200
    assert result.body == {"ok": True}
    sent = mocked.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.url == f"{BASE}/things?a=1"  # None-valued params are dropped
    assert sent.req_kwargs["timeout"] == DEFAULT_TIMEOUT == (5.0, 20.0)


def test_no_authorization_header_without_token(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/public", json=[])
    HttpClient(BASE, None, requests.Session()).request("GET", "/public")
    assert "Authorization" not in mocked.calls[0].request.headers


def test_client_repr_hides_token(client: HttpClient) -> None:
    assert TOKEN not in repr(client)


# -- status mapping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, UnexpectedStatusError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (408, DeviceOfflineError),
        (412, AppNotRegisteredError),
        (421, WrongRegionError),
        (422, UnexpectedStatusError),
        (429, RateLimitedError),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_status_maps_to_typed_error(
    mocked: responses.RequestsMock, client: HttpClient, status: int, error_class: type[ClientError]
) -> None:
    mocked.post(f"{BASE}/cmd", status=status, json={"response": None, "error": "some_code", "error_description": "raw body text"})

    with pytest.raises(error_class) as excinfo:
        client.request("POST", "/cmd", json={})

    error = excinfo.value
    assert isinstance(error, ClientError) and isinstance(error, Exception)
    assert error.service == "tesla"
    assert error.status == status
    assert error.code == "some_code"
    assert error.user_message and "raw body text" not in error.user_message


def test_412_and_421_have_different_errors_and_messages(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=412, json={"error": "Account x must be registered in the current region"})
    mocked.get(f"{BASE}/b", status=421, json={"error": "user out of region"})

    with pytest.raises(AppNotRegisteredError) as not_registered:
        client.request("GET", "/a")
    with pytest.raises(WrongRegionError) as wrong_region:
        client.request("GET", "/b")

    assert not isinstance(not_registered.value, WrongRegionError)
    assert not isinstance(wrong_region.value, AppNotRegisteredError)
    assert not_registered.value.user_message != wrong_region.value.user_message
    assert "register" in not_registered.value.user_message
    assert "region" in wrong_region.value.user_message


def test_401_with_empty_body_is_authentication_error(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=401, body="")
    with pytest.raises(AuthenticationError) as excinfo:
        client.request("GET", "/a")
    assert excinfo.value.code is None


def test_429_carries_retry_after_seconds(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"Retry-After": "30", "RateLimit-Reset": "99"}, json={"error": "rate limited"})
    with pytest.raises(RateLimitedError) as excinfo:
        client.request("GET", "/a")
    assert excinfo.value.retry_after == 30.0
    assert len(mocked.calls) == 1  # a 429 is never retried by the client: the caller decides when


def test_429_falls_back_to_ratelimit_reset(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=429, headers={"RateLimit-Reset": "42"})
    with pytest.raises(RateLimitedError) as excinfo:
        client.request("GET", "/a")
    assert excinfo.value.retry_after == 42.0


def test_429_without_hints_uses_client_default(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=429)
    with pytest.raises(RateLimitedError) as excinfo:
        client.request("GET", "/a")
    assert excinfo.value.retry_after is None  # the generic client has no default; Amber's is 60 s


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"Retry-After": "Tue, 24 Nov 2026 05:00:30 GMT"}, 30.0),
        ({"Retry-After": "garbage", "RateLimit-Reset": "7"}, 7.0),
        ({"RateLimit-Commands-Reset": "5"}, 5.0),
        ({"Retry-After": "-3"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1795496400.0  # 2026-11-24T05:00:00Z
    assert parse_retry_after(headers, now=now) == expected


# -- retries --------------------------------------------------------------------------------------------


def test_get_retried_on_5xx_with_bounded_backoff(
    mocked: responses.RequestsMock, client: HttpClient, sleeps: list[float]
) -> None:
    mocked.get(f"{BASE}/a", status=503)
    mocked.get(f"{BASE}/a", status=502)
    mocked.get(f"{BASE}/a", json={"ok": 1})

    assert client.request("GET", "/a").body == {"ok": 1}
    assert len(mocked.calls) == 3
    assert sleeps == [0.5, 1.0]


def test_get_gives_up_after_max_attempts(mocked: responses.RequestsMock, client: HttpClient, sleeps: list[float]) -> None:
    mocked.get(f"{BASE}/a", status=500, json={"message": "Internal server error"})

    with pytest.raises(TransientError) as excinfo:
        client.request("GET", "/a")

    assert excinfo.value.status == 500
    assert len(mocked.calls) == 3
    assert len(sleeps) == 2


def test_post_never_retried_on_5xx(mocked: responses.RequestsMock, client: HttpClient, sleeps: list[float]) -> None:
    mocked.post(f"{BASE}/cmd", status=503)
    mocked.post(f"{BASE}/cmd", json={"response": {"result": True}})

    with pytest.raises(TransientError):
        client.request("POST", "/cmd", json={"x": 1})

    assert len(mocked.calls) == 1
    assert sleeps == []


def test_get_retried_on_connection_error(mocked: responses.RequestsMock, client: HttpClient, sleeps: list[float]) -> None:
    mocked.get(f"{BASE}/a", body=requests.ConnectionError("refused"))
    mocked.get(f"{BASE}/a", json=[1])

    assert client.request("GET", "/a").body == [1]
    assert len(mocked.calls) == 2
    assert sleeps == [0.5]


def test_post_not_retried_on_connection_error(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.post(f"{BASE}/cmd", body=requests.ConnectionError("refused"))
    mocked.post(f"{BASE}/cmd", json={})

    with pytest.raises(TransientError) as excinfo:
        client.request("POST", "/cmd", json={})

    assert excinfo.value.status is None
    assert len(mocked.calls) == 1


def test_read_timeout_is_transient_and_not_retried(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", body=requests.ReadTimeout("slow"))
    mocked.get(f"{BASE}/a", json=[])

    with pytest.raises(TransientError) as excinfo:
        client.request("GET", "/a")

    assert excinfo.value.status is None
    assert "timed out" in str(excinfo.value)
    assert len(mocked.calls) == 1


def test_4xx_not_retried(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", status=401)
    with pytest.raises(AuthenticationError):
        client.request("GET", "/a")
    assert len(mocked.calls) == 1


# -- bad responses --------------------------------------------------------------------------------------


def test_non_json_success_body_is_bad_response(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.get(f"{BASE}/a", body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(BadResponseError) as excinfo:
        client.request("GET", "/a")
    assert excinfo.value.status == 200
    assert "maintenance" not in excinfo.value.user_message


def test_a_garbled_success_is_still_counted_as_a_billable_call(
    mocked: responses.RequestsMock, client: HttpClient, records: list[CallRecord]
) -> None:
    mocked.post(f"{BASE}/a", body="{not json", status=200, content_type="application/json")
    with pytest.raises(BadResponseError):
        client.request("POST", "/a", json={})
    assert [(r.status, r.billable, r.error) for r in records] == [(200, True, "BadResponseError")]


def test_a_lost_answer_counts_as_billable_a_refused_connection_does_not(
    mocked: responses.RequestsMock, client: HttpClient, records: list[CallRecord]
) -> None:
    # The cost meter errs high: after a read timeout Tesla may have applied (and billed) the command.
    mocked.post(f"{BASE}/timeout", body=requests.ReadTimeout("slow"))
    mocked.post(f"{BASE}/refused", body=requests.ConnectionError("refused"))
    for path in ("/timeout", "/refused"):
        with pytest.raises(TransientError):
            client.request("POST", path, json={})
    assert [(r.path, r.status, r.billable) for r in records] == [("/v1/timeout", None, True), ("/v1/refused", None, False)]


def test_non_json_allowed_when_not_expected(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.post(f"{BASE}/a", body="", status=200)
    assert client.request("POST", "/a", json={}, expect_json=False).body is None


# -- call records ---------------------------------------------------------------------------------------


def test_on_call_records_each_attempt_and_billability(
    mocked: responses.RequestsMock, client: HttpClient, records: list[CallRecord]
) -> None:
    mocked.get(f"{BASE}/sites/1", status=500)
    mocked.get(f"{BASE}/sites/1", json={})
    mocked.get(f"{BASE}/sites/2", status=404)

    client.request("GET", "/sites/1", params={"token": "x"})
    with pytest.raises(NotFoundError):
        client.request("GET", "/sites/2")

    assert [(r.status, r.billable, r.attempt) for r in records] == [(500, False, 1), (200, True, 2), (404, True, 1)]
    assert all(r.service == "tesla" and r.method == "GET" for r in records)
    assert records[0].path == "/v1/sites/1"  # no query string
    assert records[0].error == "TransientError" and records[1].error is None


def test_connection_error_record_is_not_billable(mocked: responses.RequestsMock, client: HttpClient, records: list[CallRecord]) -> None:
    mocked.post(f"{BASE}/cmd", body=requests.ConnectionError("down"))
    with pytest.raises(TransientError):
        client.request("POST", "/cmd")
    assert records[0].status is None and records[0].billable is False


def test_broken_on_call_hook_does_not_break_the_call(mocked: responses.RequestsMock) -> None:
    def explode(record: CallRecord) -> None:
        raise RuntimeError("db down")

    mocked.get(f"{BASE}/a", json={"ok": 1})
    client = HttpClient(BASE, TOKEN, requests.Session(), on_call=explode)
    assert client.request("GET", "/a").body == {"ok": 1}


# -- redaction ------------------------------------------------------------------------------------------


def test_redact_text_masks_json_form_query_and_bearer() -> None:
    text = (
        'Authorization: Bearer eyJhbGciOi.abc.def {"access_token": "AT123", "refresh_token":"RT456"} '
        "grant_type=refresh_token&refresh_token=RT789&client_secret=CS000&code=NA_abc&code_verifier=VVV "
        "https://x.test/cb?code=NA_def&state=ok"
    )
    out = redact_text(text)
    for secret in ("eyJhbGciOi.abc.def", "AT123", "RT456", "RT789", "CS000", "NA_abc", "VVV", "NA_def"):
        assert secret not in out
    assert "grant_type=refresh_token" in out  # non-secret values survive
    assert "state=ok" in out


def test_redact_text_masks_known_secret_values_anywhere() -> None:
    assert "s3cr3t-value" not in redact_text("echo: s3cr3t-value!", secrets=["s3cr3t-value", None])


def test_redact_url_headers_and_data() -> None:
    assert redact_url("https://x.test/p?token=abc&site=1") == f"https://x.test/p?token={REDACTED}&site=1"
    assert redact_headers({"Authorization": "Bearer abc", "Accept": "x"}) == {"Authorization": REDACTED, "Accept": "x"}
    data = {"refresh_token": "r", "nested": [{"client_secret": "c", "domain": "d"}]}
    assert redact_data(data) == {"refresh_token": REDACTED, "nested": [{"client_secret": REDACTED, "domain": "d"}]}


@pytest.mark.parametrize("status", [200, 401, 429, 500])
def test_no_token_in_any_log_record_or_error(
    mocked: responses.RequestsMock, client: HttpClient, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    # A hostile server that echoes the credentials back in its body and headers.
    echo = {"error": f"bad token Bearer {TOKEN}", "error_description": f'{{"access_token": "{TOKEN}"}}'}
    mocked.get(f"{BASE}/a", status=status, json=echo if status != 200 else "not-a-dict-but-json")
    caplog.set_level(logging.DEBUG)

    error: ClientError | None = None
    try:
        client.request("GET", "/a", params={"token": TOKEN})
    except ClientError as exc:
        error = exc

    assert status == 200 or error is not None
    assert caplog.records, "the chokepoint logs every call"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    if error is not None:
        assert TOKEN not in str(error)
        assert TOKEN not in error.user_message
        assert TOKEN not in (error.code or "")


def test_a_json_body_is_sent_as_json_and_a_nan_in_an_answer_is_read(mocked: responses.RequestsMock, client: HttpClient) -> None:
    # Bodies go out through orjson (app/json_codec.py); an answer with NaN, which is not JSON but which
    # Python writes and Amber could send, is still read (the price sanity check then refuses that price).
    mocked.add(responses.POST, f"{BASE}/command", body=b'{"perKwh": NaN, "ok": true}', content_type="application/json")
    answer = client.request("POST", "/command", json={"tou_settings": {"rate": 0.25, 3: "three"}})
    sent = mocked.calls[0].request
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {"tou_settings": {"rate": 0.25, "3": "three"}}
    assert math.isnan(answer.body["perKwh"]) and answer.body["ok"] is True


def test_an_answer_that_is_not_json_is_a_bad_response(mocked: responses.RequestsMock, client: HttpClient) -> None:
    mocked.add(responses.GET, f"{BASE}/x", body=b"<html>busy</html>", content_type="text/html")
    with pytest.raises(BadResponseError):
        client.request("GET", "/x")
