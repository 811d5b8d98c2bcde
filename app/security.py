"""Access control helpers: public views, admin-only views, safe redirects, HTTPS-aware cookies."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user

F = TypeVar("F", bound=Callable)


def public(view: F) -> F:
    """Mark a view as reachable without signing in (every other view requires login)."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def admin_required(view: F) -> F:
    """Allow only administrators (403 for everybody else)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def is_public_endpoint(app: Flask, endpoint: str | None) -> bool:
    """Whether the endpoint may be used without signing in."""
    if endpoint is None or endpoint == "static":
        return True
    return getattr(app.view_functions.get(endpoint), "is_public", False)


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target or len(target) > 2000:
        return None
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return None
    return target


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Adds the Secure flag to the session cookie whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        return has_request_context() and request.is_secure
