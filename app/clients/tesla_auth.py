"""Tesla Fleet OAuth: authorize URL + PKCE helpers, token endpoint calls, partner registration, region discovery.

Only the pure HTTP part; the Flask routes that store state and tokens live elsewhere. Every call to the
token endpoint goes through `TeslaAuthClient._post_token`, the one place to change if Tesla's token
endpoint turns out to require HTTP/2 (unconfirmed at the time of writing).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from app.clients.base import HttpClient
from app.clients.errors import (
    AppNotRegisteredError,
    AuthenticationError,
    BadResponseError,
    ClientError,
    WrongRegionError,
)
from app.clients.tesla import FLEET_API_HOSTS, TeslaClient, UserRegion

logger = logging.getLogger("app.clients.tesla_auth")

AUTH_URL = "https://auth.tesla.com"  # browser authorize; China: https://auth.tesla.cn
# Full token endpoint URL (our config's TESLA_TOKEN_URL has the same form). Older docs: auth.tesla.com.
TOKEN_URL = "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/token"
DEFAULT_SCOPES: tuple[str, ...] = ("openid", "offline_access", "energy_device_data", "energy_cmds")
PARTNER_SCOPES: tuple[str, ...] = ("openid", "energy_device_data", "energy_cmds")

# Token-endpoint `error` values that mean "the grant or client is no good": the user must reconnect
# (or the admin must fix the app credentials). Tesla sends some of them with HTTP 400.
_AUTH_FAILURE_CODES = frozenset(
    {"invalid_grant", "invalid_auth_code", "login_required", "invalid_client", "unauthorized_client", "invalid_redirect_url"}
)


# -- PKCE and authorize URL ---------------------------------------------------------------------------


def make_code_verifier() -> str:
    """A fresh PKCE code verifier (43+ URL-safe characters, RFC 7636)."""
    return secrets.token_urlsafe(64)


def code_challenge_s256(verifier: str) -> str:
    """The S256 PKCE challenge of `verifier` (base64url of SHA-256, no padding)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = make_code_verifier()
    return verifier, code_challenge_s256(verifier)


def make_state() -> str:
    """A random `state` value to bind the callback to the session that started the flow."""
    return secrets.token_urlsafe(32)


def build_authorize_url(
    client_id: str,
    redirect_uri: str,
    state: str,
    code_challenge: str,
    *,
    auth_url: str = AUTH_URL,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    prompt_missing_scopes: bool = True,
    locale: str | None = None,
    nonce: str | None = None,
) -> str:
    """`{auth_url}/oauth2/v3/authorize?...` for the browser redirect (authorization code + PKCE S256)."""
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if prompt_missing_scopes:
        params["prompt_missing_scopes"] = "true"
    if locale:
        params["locale"] = locale
    if nonce:
        params["nonce"] = nonce
    return f"{auth_url.rstrip('/')}/oauth2/v3/authorize?{urlencode(params)}"


def region_from_token(token: str) -> str | None:
    """Region hint from a code/refresh-token prefix ("NA_..." -> "na"); None if there is no known prefix."""
    prefix, sep, _ = token.partition("_")
    region = prefix.lower()
    return region if sep and region in FLEET_API_HOSTS else None


# -- token endpoint -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """Token-endpoint answer. Secrets are hidden from repr so a logged TokenSet leaks nothing."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)  # a NEW one on every refresh: save it
    expires_in: int | None = None  # seconds
    id_token: str | None = field(default=None, repr=False)
    token_type: str | None = None
    scope: str | None = None

    def expires_at(self, now: datetime) -> datetime | None:
        """When the access token expires, counted from `now` (the moment the response arrived)."""
        return now + timedelta(seconds=self.expires_in) if self.expires_in is not None else None


class TeslaAuthClient(HttpClient):
    """Calls Tesla's OAuth token endpoint (code exchange, refresh, partner token); holds no bearer token."""

    service = "tesla_auth"

    def __init__(
        self,
        client_id: str,
        client_secret: str | None = None,
        session: requests.Session | None = None,
        *,
        token_url: str = TOKEN_URL,
        **kwargs: Any,
    ) -> None:
        parts = urlsplit(token_url)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"token_url must be an absolute URL, got {token_url!r}")
        super().__init__(f"{parts.scheme}://{parts.netloc}", None, session, **kwargs)
        self.token_path = parts.path or "/oauth2/v3/token"
        self.client_id = client_id
        self.client_secret = client_secret

    def __repr__(self) -> str:
        return f"TeslaAuthClient(client_id={self.client_id!r}, token_url={self.base_url + self.token_path!r})"

    def exchange_code(
        self,
        code: str,
        redirect_uri: str,
        audience: str,
        *,
        code_verifier: str | None = None,
        scopes: Iterable[str] | None = None,
    ) -> TokenSet:
        """Trade the callback `code` for tokens; `audience` is the user's regional Fleet API base URL."""
        form = {"grant_type": "authorization_code", "client_id": self.client_id, "code": code, "audience": audience, "redirect_uri": redirect_uri}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        if code_verifier:
            form["code_verifier"] = code_verifier
        if scopes is not None:
            form["scope"] = " ".join(scopes)
        return self._post_token(form)

    def refresh(self, refresh_token: str, *, scopes: Iterable[str] | None = None) -> TokenSet:
        """New access token from a refresh token; the result carries a NEW refresh token the caller must save."""
        form = {"grant_type": "refresh_token", "client_id": self.client_id, "refresh_token": refresh_token}
        if scopes is not None:
            form["scope"] = " ".join(scopes)
        token = self._post_token(form)
        if not token.refresh_token:
            # Tesla rotates on every refresh; if it ever doesn't, the old one stays valid and must be kept.
            logger.warning("tesla_auth: refresh response carried no new refresh token")
        return token

    def partner_token(self, audience: str, *, scopes: Iterable[str] = PARTNER_SCOPES) -> TokenSet:
        """Client-credentials partner token for one region (`audience` = that region's Fleet API base URL)."""
        if not self.client_secret:
            raise ValueError("a partner token needs the app's client_secret")
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "audience": audience,
            "scope": " ".join(scopes),
        }
        return self._post_token(form)

    def _post_token(self, form: Mapping[str, str]) -> TokenSet:
        """The ONLY function that POSTs to the token endpoint (swap its transport here if HTTP/2 is required)."""
        try:
            body = self.request("POST", self.token_path, form=form, extra_secrets=[self.client_secret]).body
        except ClientError as exc:
            if exc.code in _AUTH_FAILURE_CODES and not isinstance(exc, AuthenticationError):
                raise AuthenticationError(self.service, exc.status, detail=exc.detail, code=exc.code) from exc
            raise
        if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise BadResponseError(self.service, 200, detail="token response has no access_token")
        expires_in = body.get("expires_in")
        refresh_token = body.get("refresh_token")
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
            expires_in=int(expires_in) if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) else None,
            id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
            token_type=body.get("token_type") if isinstance(body.get("token_type"), str) else None,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        )


# -- partner registration and region discovery -----------------------------------------------------------


def bare_domain(domain_or_url: str) -> str:
    """`https://App.Example.com:443/x` -> `app.example.com` (what partner registration expects)."""
    text = domain_or_url.strip()
    host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    if not host:
        raise ValueError(f"no domain in {domain_or_url!r}")
    return host.lower()


def register_partner_account(
    fleet_host: str,
    partner_access_token: str,
    domain: str,
    session: requests.Session | None = None,
    **kwargs: Any,
) -> Any:
    """`POST {fleet_host}/api/1/partner_accounts` with the bare domain; returns the (unconfirmed) body, None if not JSON."""
    client = HttpClient(fleet_host, partner_access_token, session, service="tesla", **kwargs)
    return client.request("POST", "/api/1/partner_accounts", json={"domain": bare_domain(domain)}, expect_json=False).body


@dataclass(frozen=True)
class RegionDiscovery:
    """Where the user's account lives: the region, Tesla's advertised base URL and the host that answered."""

    region: str
    fleet_api_base_url: str | None
    host: str


def discover_region(
    access_token: str,
    hosts: Mapping[str, str] | Sequence[str] | None = None,
    session: requests.Session | None = None,
    **kwargs: Any,
) -> RegionDiscovery:
    """Ask each regional host for `/api/1/users/region` until one answers: 421 = try the next, 412 = app unregistered there.

    Raises AppNotRegisteredError if no host answered and at least one said 412 (the user may live there),
    else WrongRegionError. Any other error (401, 5xx, ...) is raised at once.
    """
    if hosts is None:
        hosts = FLEET_API_HOSTS
    host_list = list(hosts.values()) if isinstance(hosts, Mapping) else list(hosts)
    not_registered: list[str] = []
    last_error: ClientError | None = None
    for host in host_list:
        client = TeslaClient(host, access_token, session, **kwargs)
        try:
            answer: UserRegion = client.user_region()
        except WrongRegionError as exc:
            last_error = exc
            continue
        except AppNotRegisteredError as exc:
            not_registered.append(host)
            last_error = exc
            continue
        return RegionDiscovery(region=answer.region, fleet_api_base_url=answer.fleet_api_base_url, host=client.base_url)
    if not_registered:
        raise AppNotRegisteredError(
            "tesla", 412, detail=f"app not registered at {', '.join(not_registered)}; no other host knew the user"
        ) from last_error
    raise WrongRegionError("tesla", 421, detail="no regional host knew this user") from last_error
