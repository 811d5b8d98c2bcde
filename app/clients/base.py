"""The one HTTP chokepoint shared by every client family, plus log redaction.

`HttpClient.request()` is the only place that talks to `requests`: it sets headers and timeouts, retries
idempotent GETs on connection errors and 5xx with a small bounded backoff, maps statuses to the typed
errors of `app.clients.errors`, parses JSON, logs one redacted line per attempt and reports each attempt
to an optional `on_call` hook. No Flask, no models.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from app import json_codec
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
    service_display_name,
)

logger = logging.getLogger("app.clients")

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 20.0)  # (connect, read) seconds

# Keys whose values are secrets wherever they appear: query strings, form bodies, JSON bodies.
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code",
        "code_verifier",
        "token",
        "password",
        "authorization",
        "api_key",
        "apikey",
    }
)
SENSITIVE_HEADERS: frozenset[str] = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
REDACTED = "***"

_KEYS_PATTERN = "|".join(sorted((re.escape(k) for k in SENSITIVE_KEYS), key=len, reverse=True))
# JSON `"key": "value"` (value as a JSON string).
_JSON_SECRET_RE = re.compile(r'("(?:' + _KEYS_PATTERN + r')"\s*:\s*")((?:[^"\\]|\\.)*)(")', re.IGNORECASE)
# Form/query `key=value` up to the next separator.
_FORM_SECRET_RE = re.compile(r"(?<![A-Za-z0-9_])((?:" + _KEYS_PATTERN + r")=)([^&\s\"',;]+)", re.IGNORECASE)
# `Bearer xxx` / `Basic xxx` anywhere in free text.
_AUTH_SCHEME_RE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask known secret values and secret-looking fields (JSON, form, query, Bearer) in free text."""
    out = text
    # Exact known secrets first (the client's own token, form secrets): catches them in any format.
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        out = out.replace(secret, REDACTED)
    out = _JSON_SECRET_RE.sub(lambda m: m.group(1) + REDACTED + m.group(3), out)
    out = _FORM_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, out)
    out = _AUTH_SCHEME_RE.sub(lambda m: m.group(1) + " " + REDACTED, out)
    return out


def redact_url(url: str) -> str:
    """Return `url` with the values of secret query parameters masked."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    safe = [(k, REDACTED if k.lower() in SENSITIVE_KEYS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(safe, safe="*")))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of `headers` with Authorization/Cookie values masked."""
    return {k: (REDACTED if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def redact_data(data: Any) -> Any:
    """Deep copy of a JSON-like value with the values of secret keys masked."""
    if isinstance(data, Mapping):
        return {k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else redact_data(v)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt, reported to `on_call` so the caller can count calls without the client knowing why."""

    service: str
    method: str
    path: str  # no query string, so no secrets
    status: int | None  # None when no response arrived (timeout, connection error)
    duration_s: float
    billable: bool  # Tesla bills every request that got a status < 500; an answer lost after sending may be billed
    attempt: int = 1
    error: str | None = None  # error class name when the attempt failed


@dataclass(frozen=True)
class ApiResponse:
    """A successful (2xx) response: status, headers and the parsed JSON body (None if not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), else `RateLimit-Reset`, else None."""
    value = headers.get("Retry-After")
    if value is not None:
        seconds = _non_negative_float(value)
        if seconds is not None:
            return seconds
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            current = time.time() if now is None else now
            return max(0.0, when.timestamp() - current)
    # Amber sends `RateLimit-Reset` (seconds until the window resets); Tesla documents
    # `RateLimit-<name>-Reset` variants, so accept any `RateLimit-*-Reset` too.
    candidates = [headers.get("RateLimit-Reset")]
    candidates += [v for k, v in headers.items() if k.lower().startswith("ratelimit-") and k.lower().endswith("-reset")]
    for candidate in candidates:
        if candidate is not None:
            seconds = _non_negative_float(candidate)
            if seconds is not None:
                return seconds
    return None


def _non_negative_float(value: str) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    return number


class HttpClient:
    """Base class holding the single request chokepoint for one outside service."""

    service: str = "http"
    # Wait reported on 429 when the response says nothing (None = unknown, caller decides).
    default_retry_after: float | None = None

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        session: requests.Session | None = None,
        *,
        service: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_call: Callable[[CallRecord], None] | None = None,
        user_agent: str = "tesla-amber-sync",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = session if session is not None else requests.Session()
        if service is not None:
            self.service = service
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock
        self._on_call = on_call
        self._user_agent = user_agent

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(service={self.service!r}, base_url={self.base_url!r})"

    # -- the chokepoint -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        expect_json: bool = True,
        extra_secrets: Iterable[str | None] = (),
    ) -> ApiResponse:
        """Send one logical request (GETs may be retried) and return the parsed 2xx response or raise."""
        method = method.upper()
        url = f"{self.base_url}/{path.lstrip('/')}"
        log_path = urlsplit(url).path
        secrets = [self.token, *extra_secrets]
        if form:
            secrets += [v for k, v in form.items() if k.lower() in SENSITIVE_KEYS]
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        body = None
        if json is not None:
            body = json_codec.dumps_bytes(json)
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body = dict(form)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        # Only idempotent reads are retried; a command or token exchange is never replayed blindly.
        attempts = self.max_attempts if method == "GET" else 1

        for attempt in range(1, attempts + 1):
            started = self._clock()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=clean_params or None,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                )
            except requests.ConnectionError as exc:  # includes ConnectTimeout: nothing was processed
                error: ClientError = TransientError(self.service, None, detail=f"connection failed: {type(exc).__name__}")
                retryable = True
                status, reached = None, False
            except requests.Timeout as exc:  # read timeout: the server may have acted, and waiting again is costly
                error = TransientError(self.service, None, detail=f"timed out: {type(exc).__name__}")
                retryable = False
                status, reached = None, True
            except requests.RequestException as exc:
                error = TransientError(self.service, None, detail=f"request failed: {type(exc).__name__}")
                retryable = False
                status, reached = None, True
            else:
                status, reached = response.status_code, True
                duration = self._clock() - started
                self._observe_response(response)
                if 200 <= status < 300:
                    try:
                        body = self._parse_body(response, expect_json, secrets)
                    except ClientError as exc:
                        # The call happened (and Tesla bills it) even though its answer is unusable.
                        self._record(method, log_path, status, duration, attempt, type(exc).__name__, reached)
                        raise
                    self._record(method, log_path, status, duration, attempt, None, reached)
                    logger.debug("%s %s %s -> %s in %.0f ms", self.service, method, log_path, status, duration * 1000)
                    return ApiResponse(status=status, headers=response.headers, body=body)
                error = self._error_for_status(response, secrets)
                retryable = status >= 500

            duration = self._clock() - started
            self._record(method, log_path, status, duration, attempt, type(error).__name__, reached)
            will_retry = retryable and attempt < attempts
            logger.warning(
                "%s %s %s -> %s in %.0f ms (attempt %d/%d%s): %s",
                self.service,
                method,
                log_path,
                status if status is not None else "no response",
                duration * 1000,
                attempt,
                attempts,
                ", will retry" if will_retry else "",
                redact_text(str(error), secrets),
            )
            if not will_retry:
                raise error
            self._sleep(min(self.max_backoff_s, self.backoff_s * (2 ** (attempt - 1))))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- hooks for subclasses -------------------------------------------------------------------

    def _observe_response(self, response: requests.Response) -> None:
        """Called for every HTTP response (any status); Amber reads its rate-limit headers here."""

    def _error_for_status(self, response: requests.Response, secrets: list[str | None]) -> ClientError:
        """Map a non-2xx response to a typed error."""
        status = response.status_code
        code, detail = self._error_details(response, secrets)
        kwargs: dict[str, Any] = {"detail": detail, "code": code}
        if status in (401, 403):
            if status == 403:
                name = service_display_name(self.service)
                kwargs["user_message"] = (
                    f"{name} refused access: the connection is missing a permission. "
                    f"Please reconnect your {name} account and allow energy access."
                )
            return AuthenticationError(self.service, status, **kwargs)
        if status == 402:
            return PaymentRequiredError(self.service, status, **kwargs)
        if status == 404:
            return NotFoundError(self.service, status, **kwargs)
        if status == 408:
            return DeviceOfflineError(self.service, status, **kwargs)
        if status == 412:
            return AppNotRegisteredError(self.service, status, **kwargs)
        if status == 421:
            return WrongRegionError(self.service, status, **kwargs)
        if status == 429:
            retry_after = parse_retry_after(response.headers)
            if retry_after is None:
                retry_after = self.default_retry_after
            return RateLimitedError(self.service, status, retry_after=retry_after, **kwargs)
        if status >= 500:
            return TransientError(self.service, status, **kwargs)
        return UnexpectedStatusError(self.service, status, **kwargs)

    # -- helpers --------------------------------------------------------------------------------

    def _parse_body(self, response: requests.Response, expect_json: bool, secrets: list[str | None]) -> Any:
        try:
            return json_codec.loads(response.content)
        except ValueError:
            if not expect_json:
                return None
            content_type = response.headers.get("Content-Type", "?")
            raise BadResponseError(
                self.service, response.status_code, detail=f"body is not JSON (Content-Type {content_type})"
            ) from None

    def _error_details(self, response: requests.Response, secrets: list[str | None]) -> tuple[str | None, str]:
        """Pull a short error code and a redacted detail string out of an error body."""
        code: str | None = None
        try:
            body = json_codec.loads(response.content)  # as _parse_body reads an answer
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            for key in ("error", "message"):
                if isinstance(body.get(key), str) and body[key]:
                    code = body[key]
                    break
            description = body.get("error_description")
            text = code or ""
            if isinstance(description, str) and description:
                text = f"{text}: {description}" if text else description
        else:
            text = (response.text or "")[:200]
        return (redact_text(code, secrets) if code else None), redact_text(text, secrets)

    def _record(
        self, method: str, path: str, status: int | None, duration: float, attempt: int, error: str | None, reached: bool
    ) -> None:
        """Report one attempt. `reached`: the request got to the server (a status arrived, or the answer
        was lost after sending: a read timeout or a broken reply), so it may have been processed and
        billed; counted as billable then, so the cost estimate errs high, never low."""
        if self._on_call is None:
            return
        record = CallRecord(
            service=self.service,
            method=method,
            path=path,
            status=status,
            duration_s=duration,
            billable=status < 500 if status is not None else reached,
            attempt=attempt,
            error=error,
        )
        try:
            self._on_call(record)
        except Exception:  # a broken counter must not turn a good API call into a failure
            logger.exception("%s on_call hook failed for %s %s", self.service, method, path)

