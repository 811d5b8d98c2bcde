"""Tesla OAuth: authorization codes (with PKCE), expiring access tokens, single-use refresh tokens,
partner (client-credentials) tokens. Answers are (status, JSON body) pairs in Tesla's token wire format."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from . import identity

TokenReply = tuple[int, dict[str, object]]


@dataclass
class AccessToken:
    """An issued bearer token."""

    kind: str  # "user" (third-party token) or "partner" (client credentials)
    scopes: tuple[str, ...]
    expires_at: datetime | None  # None: never (the documented demo token)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    challenge: str | None
    method: str
    expires_at: datetime


@dataclass
class TokenStore:
    """Every code and token the simulated Tesla auth server has issued."""

    access_ttl_seconds: int
    code_ttl_seconds: int = 600
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, tuple[bool, tuple[str, ...]]] = field(default_factory=dict)  # token -> (used, scopes)
    codes: dict[str, _Code] = field(default_factory=dict)

    def seed_demo(self) -> None:
        """Register the documented demo tokens (identity.DEMO_FLEET_*)."""
        self.access[identity.DEMO_FLEET_ACCESS_TOKEN] = AccessToken("user", identity.FLEET_SCOPES, None)
        self.refresh[identity.DEMO_FLEET_REFRESH_TOKEN] = (False, identity.FLEET_SCOPES)

    def authorize(self, params: dict[str, str], now: datetime) -> tuple[str | None, TokenReply | None]:
        """Auto-approve an authorize request: (redirect URL, None) or (None, error reply)."""
        if params.get("response_type") != "code":
            return None, _error(400, "unsupported_response_type", "response_type must be code")
        if params.get("client_id") != identity.FLEET_CLIENT_ID:
            return None, _error(400, "unauthorized_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return None, _error(400, "invalid_redirect_url", "redirect_uri is required")
        if not params.get("state"):
            return None, _error(400, "invalid_request", "state is required")
        method = params.get("code_challenge_method", "plain") if params.get("code_challenge") else "none"
        if method not in ("S256", "plain", "none"):
            return None, _error(400, "invalid_request", "code_challenge_method must be S256")
        code = f"NA_{secrets.token_hex(24)}"  # region-prefixed like real codes
        self.codes[code] = _Code(
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            scopes=tuple(params.get("scope", "").split()),
            state=params["state"],
            challenge=params.get("code_challenge") or None,
            method=method,
            expires_at=now + timedelta(seconds=self.code_ttl_seconds),
        )
        separator = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{separator}{urlencode({'code': code, 'state': params['state']})}", None

    def token(self, form: dict[str, str], now: datetime, audience_default: str) -> TokenReply:
        """Handle one `POST /oauth2/v3/token` form."""
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._exchange_code(form, now, audience_default)
        if grant == "refresh_token":
            return self._refresh(form, now, audience_default)
        if grant == "client_credentials":
            return self._client_credentials(form, now)
        return _error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _exchange_code(self, form: dict[str, str], now: datetime, audience: str) -> TokenReply:
        if form.get("client_id") != identity.FLEET_CLIENT_ID:
            return _error(400, "unauthorized_client", "unknown client_id")
        secret = form.get("client_secret")
        if secret is not None and secret != identity.FLEET_CLIENT_SECRET:
            return _error(400, "unauthorized_client", "client_secret does not match")
        code = self.codes.pop(form.get("code", ""), None)  # single use: gone even if the rest fails
        if code is None or code.expires_at <= now:
            return _error(400, "invalid_auth_code", "authorization code is invalid, used or expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(400, "invalid_redirect_url", "redirect_uri differs from the authorize request")
        verifier = form.get("code_verifier")
        if code.challenge is not None:
            if not verifier or _challenge(verifier, code.method) != code.challenge:
                return _error(400, "invalid_request", "code_verifier does not match code_challenge")
        elif secret is None:
            return _error(400, "invalid_request", "client_secret or PKCE code_verifier required")
        audience = form.get("audience") or audience
        return 200, self._issue(code.scopes, now, audience, refresh=True, state=code.state)

    def _refresh(self, form: dict[str, str], now: datetime, audience: str) -> TokenReply:
        if form.get("client_id") != identity.FLEET_CLIENT_ID:
            return _error(400, "unauthorized_client", "unknown client_id")
        token = form.get("refresh_token", "")
        used, scopes = self.refresh.get(token, (True, ()))
        if used:
            # Tesla refresh tokens are single use: a second use means "sign in again".
            return _error(401, "login_required", "The refresh_token is invalid or has already been used")
        self.refresh[token] = (True, scopes)
        return 200, self._issue(scopes, now, audience, refresh=True, state=None)

    def _client_credentials(self, form: dict[str, str], now: datetime) -> TokenReply:
        credentials = (form.get("client_id"), form.get("client_secret"))
        if credentials != (identity.FLEET_CLIENT_ID, identity.FLEET_CLIENT_SECRET):
            return _error(400, "unauthorized_client", "unknown client_id or wrong client_secret")
        if not form.get("audience"):
            return _error(400, "invalid_request", "audience is required for client_credentials")
        scopes = tuple(form.get("scope", "openid energy_device_data energy_cmds").split())
        return 200, self._issue(scopes, now, form["audience"], refresh=False, state=None, kind="partner")

    def _issue(
        self,
        scopes: tuple[str, ...],
        now: datetime,
        audience: str,
        *,
        refresh: bool,
        state: str | None,
        kind: str = "user",
    ) -> dict[str, object]:
        expires = now + timedelta(seconds=self.access_ttl_seconds)
        claims = {
            "iss": "https://fleet-auth.prd.vn.cloud.tesla.com/oauth2/v3/nts",
            "azp": identity.FLEET_CLIENT_ID,
            "sub": "00000000-0000-4000-8000-000051a0user",
            "aud": [audience, f"{audience.rstrip('/')}/userinfo"],
            "scp": list(scopes),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "ou_code": "NA",
            "jti": secrets.token_hex(8),
        }
        access = _jwt(claims)
        self.access[access] = AccessToken(kind, scopes, expires)
        body: dict[str, object] = {"access_token": access}
        if refresh:
            refresh_token = f"NA_{secrets.token_hex(32)}"
            self.refresh[refresh_token] = (False, scopes)
            body["refresh_token"] = refresh_token
            body["id_token"] = _jwt({"iss": claims["iss"], "aud": identity.FLEET_CLIENT_ID, "sub": claims["sub"]})
        body["expires_in"] = self.access_ttl_seconds
        if state is not None:
            body["state"] = state
        body["token_type"] = "Bearer"
        return body

    def lookup(self, token: str, now: datetime) -> tuple[AccessToken | None, str]:
        """(token, "") if usable, else (None, reason) with reason "invalid" or "expired"."""
        found = self.access.get(token)
        if found is None:
            return None, "invalid"
        if found.expires_at is not None and found.expires_at <= now:
            return None, "expired"
        return found, ""

    def expire_all(self, now: datetime) -> int:
        """Expire every access token now (the demo token too); returns how many."""
        for token in self.access.values():
            token.expires_at = now
        return len(self.access)


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _jwt(claims: dict[str, object]) -> str:
    # Shaped like Tesla's RS256 JWTs so clients that decode the claims (scp, exp) work; not signed.
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT', 'kid': 'simulator'})}.{_b64(claims)}.{secrets.token_urlsafe(32)}"


def _error(status: int, error: str, description: str) -> TokenReply:
    return status, {"error": error, "error_description": description}
