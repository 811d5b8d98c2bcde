"""Access control helpers: public views, admin-only views, safe redirects, HTTPS-aware cookies, security
headers on every response and proxy headers honoured only when TRUST_PROXY says so."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask, Response, abort, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

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


HSTS = "max-age=31536000"


def content_security_policy(tesla_auth_url: str | None) -> str:
    """The CSP: scripts and styles from this site only (no inline), no frames, forms to us or Tesla's sign-in.

    The Tesla connect form posts to our own route, which redirects to Tesla's authorize page; browsers
    apply `form-action` to that redirect too, so Tesla's sign-in origin is allowed."""
    form_action = "'self'"
    parts = urlsplit(tesla_auth_url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        form_action += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
        f"base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    )


def install_security_headers(app: Flask) -> None:
    """Add the CSP, frame denial, nosniff, referrer policy (and HSTS over HTTPS) to every response."""
    headers = {
        "Content-Security-Policy": content_security_policy(app.config.get("TESLA_AUTH_URL")),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # The callback URL carries Tesla's code: never send our URLs to other sites.
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response


def install_proxy_fix(app: Flask) -> None:
    """Trust X-Forwarded-For/-Proto/-Host/-Port/-Prefix from TRUST_PROXY hops (0: trust none)."""
    hops = int(app.config.get("TRUST_PROXY") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)  # type: ignore[method-assign]


# Integer primary keys are 32-bit on PostgreSQL: a larger id in a URL names nothing.
MAX_DB_ID = 2**31 - 1


def is_db_id(value: int) -> bool:
    """Whether `value` can be a row id (so it is safe to look up)."""
    return 0 < value <= MAX_DB_ID


def reject_nul_bytes() -> None:
    """400 for a form field or query argument holding a NUL character: no field of ours takes one,
    and PostgreSQL refuses NUL in text, so it must not reach a query."""
    for source in (request.args, request.form if request.method in ("POST", "PUT", "PATCH") else {}):
        for values in (source.listvalues() if hasattr(source, "listvalues") else []):
            if any("\x00" in value for value in values):
                abort(400)
