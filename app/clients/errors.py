"""Typed errors raised by the outside-service HTTP clients.

Every error carries the service it came from, the HTTP status (None when no response arrived), and a
short `user_message` that is safe to show a user: it never contains a payload, a URL with secrets or a
token. `detail` is a redacted, truncated technical note for logs only.
"""
from __future__ import annotations

SERVICE_NAMES: dict[str, str] = {
    "amber": "Amber Electric",
    "tesla": "Tesla",
    "teslemetry": "Teslemetry",
    "tesla_auth": "Tesla sign-in",
}


def service_display_name(service: str) -> str:
    """Human name of a service id ("amber" -> "Amber Electric")."""
    return SERVICE_NAMES.get(service, service)


class ClientError(Exception):
    """Root of every error raised by `app.clients`."""

    default_message = "{name} could not be reached or gave an unexpected answer. Please try again later."

    def __init__(
        self,
        service: str,
        status: int | None = None,
        *,
        detail: str | None = None,
        code: str | None = None,
        user_message: str | None = None,
    ) -> None:
        self.service = service
        self.status = status
        # `detail` is already redacted by the caller (the chokepoint); keep it short for log lines.
        self.detail = (detail or "")[:300]
        # Machine-readable error string from the body when the service sends one (Tesla `error`).
        self.code = code
        self.user_message = user_message or self.default_message.format(name=service_display_name(service))
        super().__init__(self._summary())

    def _summary(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        parts = [f"{self.service}: {type(self).__name__} ({status})"]
        if self.code:
            parts.append(f"error={self.code!r}")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


class AuthenticationError(ClientError):
    """401/403: the token is missing, expired, revoked, or lacks a scope."""

    default_message = "{name} did not accept the saved credentials. Please reconnect your {name} account."


class PaymentRequiredError(ClientError):
    """402: the account needs a paid plan or credits (Teslemetry subscription, Fleet API billing)."""

    default_message = "{name} requires an active subscription or credits for this. Please check your {name} account."


class NotFoundError(ClientError):
    """404: the site (or other resource) does not exist for this account."""

    default_message = "{name} could not find the requested site. Please check the site chosen in settings."


class RateLimitedError(ClientError):
    """429: too many requests; `retry_after` is the suggested wait in seconds (None if unknown)."""

    default_message = "{name} asked us to slow down. The next sync will try again automatically."

    def __init__(self, service: str, status: int | None = 429, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(service, status, **kwargs)  # type: ignore[arg-type]


class DeviceOfflineError(ClientError):
    """408: the Powerwall gateway is offline or asleep."""

    default_message = "Your Powerwall did not respond (it may be offline). Please check its internet connection."


class WrongRegionError(ClientError):
    """421: the user's Tesla account lives in another Fleet API region; switch host."""

    default_message = (
        "Your Tesla account belongs to a different region than the one we called. "
        "Please reconnect Tesla so we can find the right region."
    )


class AppNotRegisteredError(ClientError):
    """412: this app (client_id) is not registered as a partner in that Fleet API region."""

    default_message = (
        "This app is not yet registered with Tesla for your region. "
        "The site administrator needs to register it (partner account) before Tesla can be used."
    )


class CommandRejectedError(ClientError):
    """HTTP 200 with `result: false`: the device refused the command; `reason` is Tesla's text."""

    default_message = "Your Powerwall refused the requested change."

    def __init__(self, service: str, status: int | None = 200, *, reason: str = "", **kwargs: object) -> None:
        self.reason = reason
        super().__init__(service, status, **kwargs)  # type: ignore[arg-type]


class TransientError(ClientError):
    """5xx, timeouts and connection failures: worth trying again later."""

    default_message = "{name} is temporarily unavailable. The next sync will try again automatically."


class BadResponseError(ClientError):
    """The response was not JSON or did not have the expected shape."""

    default_message = "{name} sent an answer we could not understand. Please try again later."


class UnexpectedStatusError(ClientError):
    """Any other 4xx (400, 405, 422, ...): the request itself was refused."""

    default_message = "{name} refused the request. Please try again later or contact support if it persists."
