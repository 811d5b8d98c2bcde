"""Tesla Fleet sign-in and this installation's Tesla app: single-use OAuth state with PKCE, the code
exchange and what follows it, the EC key pair, and partner registration per region.

Routes call these functions and commit; times come in as `now`. Nothing here logs or returns a token,
the client secret, the authorization code or the PKCE verifier."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import delete, or_, select, update

from app.clients.errors import AppNotRegisteredError, AuthenticationError, ClientError
from app.clients.tesla import FLEET_API_HOSTS, fleet_api_host
from app.clients.tesla_auth import (
    build_authorize_url,
    discover_region,
    make_pkce_pair,
    make_state,
    region_from_token,
    register_partner_account,
)
from app.clients.tesla_auth import bare_domain as _bare_domain
from app.connections import (
    NotConfigured,
    check_connections,
    clear_fleet_tokens,
    fleet_candidate_hosts,
    fleet_configured,
    record_status,
    save_fleet_tokens,
    statuses,
    tesla_auth_client,
)
from app.credentials import CredentialUnreadable, get_secret, settings_for
from app.crypto import DecryptionError, get_crypto
from app.extensions import db
from app.models import Household, OAuthState, PartnerRegistration, TeslaAppKey, User

log = logging.getLogger(__name__)

# How long a started sign-in may take; Tesla's codes live about as long.
STATE_TTL = timedelta(minutes=10)
PUBLIC_KEY_PATH = "/.well-known/appspecific/com.tesla.3p.public-key.pem"
CALLBACK_PATH = "/tesla-fleet/callback"
REGION_NAMES: dict[str, str] = {
    "na": "North America and Asia-Pacific (including Australia)",
    "eu": "Europe, the Middle East and Africa",
    "cn": "China",
}


# -- installation configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetAppConfig:
    """Which Fleet app settings this installation has; booleans only for the id and secret."""

    client_id_set: bool
    client_secret_set: bool
    redirect_uri: str | None
    app_domain: str | None
    fleet_api_override: str | None

    @property
    def oauth_ready(self) -> bool:
        """Users can connect: the app has a client id and a redirect URI."""
        return self.client_id_set and bool(self.redirect_uri)

    @property
    def domain(self) -> str | None:
        """The bare domain of APP_DOMAIN, None when unset or unusable."""
        if not self.app_domain:
            return None
        try:
            return _bare_domain(self.app_domain)
        except ValueError:
            return None

    @property
    def redirect_uri_matches(self) -> bool:
        """Whether TESLA_REDIRECT_URI ends in this app's callback path."""
        return bool(self.redirect_uri) and self.redirect_uri.split("?", 1)[0].rstrip("/").endswith(CALLBACK_PATH)

    @property
    def public_key_url(self) -> str | None:
        """Where Tesla will look for the public key (https on APP_DOMAIN)."""
        return f"https://{self.domain}{PUBLIC_KEY_PATH}" if self.domain else None


def fleet_app_config() -> FleetAppConfig:
    """This installation's Fleet app settings, from the environment."""
    config = current_app.config
    return FleetAppConfig(
        client_id_set=bool(config.get("TESLA_CLIENT_ID")),
        client_secret_set=bool(config.get("TESLA_CLIENT_SECRET")),
        redirect_uri=config.get("TESLA_REDIRECT_URI") or None,
        app_domain=config.get("APP_DOMAIN") or None,
        fleet_api_override=config.get("TESLA_FLEET_API_URL") or None,
    )


def region_name(region: str | None) -> str:
    """A region code in words ("na" -> "North America and Asia-Pacific (including Australia)")."""
    if not region:
        return "unknown"
    return REGION_NAMES.get(region.lower(), region.upper())


# -- sign-in state ----------------------------------------------------------------------------------------


class OAuthStateError(Exception):
    """The callback's `state` is missing, foreign, used or expired; the message is fit to show."""


def hash_state(state: str) -> str:
    """What the database keeps of a state value (SHA-256, hex)."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def purge_states(now: datetime) -> int:
    """Delete sign-in states that can no longer be used (expired, or used a while ago). The caller commits."""
    cutoff = now - STATE_TTL
    result = db.session.execute(
        delete(OAuthState).where(or_(OAuthState.created_at < cutoff, OAuthState.used_at < cutoff))
    )
    return result.rowcount or 0


def start_authorization(user: User, now: datetime) -> tuple[str, str]:
    """Record a new single-use state with its PKCE verifier; return (Tesla authorize URL, state).

    The caller keeps the state in the user's session and commits."""
    config = current_app.config
    if not fleet_app_config().oauth_ready:
        raise NotConfigured("This installation has no Tesla Fleet app (TESLA_CLIENT_ID or TESLA_REDIRECT_URI is not set).")
    purge_states(now)
    verifier, challenge = make_pkce_pair()
    state = make_state()
    db.session.add(
        OAuthState(
            state_hash=hash_state(state),
            user_id=user.id,
            code_verifier_enc=get_crypto().encrypt(verifier),
            created_at=now,
        )
    )
    url = build_authorize_url(
        config["TESLA_CLIENT_ID"], config["TESLA_REDIRECT_URI"], state, challenge, auth_url=config["TESLA_AUTH_URL"]
    )
    return url, state


def consume_state(user: User, state: str | None, session_state: str | None, now: datetime) -> str:
    """Check the callback's state against the session and the database, mark it used, return the PKCE verifier.

    Raises OAuthStateError. The caller commits at once, before the code exchange, so a state works once."""
    if not state:
        raise OAuthStateError("Tesla's answer carried no state, so it cannot be matched to your sign-in. Please connect again.")
    if not session_state or not hmac.compare_digest(session_state.encode("utf-8"), state.encode("utf-8")):
        raise OAuthStateError(
            "This Tesla sign-in was not started from this browser session. Please start again from Settings."
        )
    row = db.session.scalar(
        select(OAuthState).where(OAuthState.state_hash == hash_state(state), OAuthState.user_id == user.id)
    )
    if row is None or row.used_at is not None:
        raise OAuthStateError("This Tesla sign-in has already been used or is unknown. Please start again from Settings.")
    if row.created_at < now - STATE_TTL:
        raise OAuthStateError("This Tesla sign-in took too long and has expired. Please start again from Settings.")
    # Conditional update: of two requests racing with the same state, exactly one wins.
    claimed = db.session.execute(
        update(OAuthState)
        .where(OAuthState.id == row.id, OAuthState.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise OAuthStateError("This Tesla sign-in has already been used. Please start again from Settings.")
    try:
        return get_crypto().decrypt(row.code_verifier_enc)
    except DecryptionError as exc:
        raise OAuthStateError("This Tesla sign-in can no longer be completed. Please start again from Settings.") from exc


def tesla_error_message(error: str) -> str:
    """Plain words for an `error` Tesla put on the callback (its description is never shown)."""
    if error == "access_denied":
        return "You did not allow access at Tesla, so nothing was connected. You can connect again whenever you like."
    code = error if re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", error) else "unknown error"
    return f"Tesla did not complete the sign-in ({code}). Nothing was connected; please try again."


# -- code exchange and what follows -----------------------------------------------------------------------


class ConnectFailed(Exception):
    """The code exchange (or the first use of the new token) failed; the message is fit to show."""


@dataclass
class ConnectResult:
    """What a successful callback did, in sentences for the user; `ok` is False when Tesla needs attention."""

    messages: list[str] = field(default_factory=list)
    ok: bool = True


def _exchange_failure_message(exc: ClientError) -> str:
    code = (exc.code or "").lower()
    if code in ("invalid_auth_code", "invalid_grant", "login_required"):
        return "Tesla did not accept the sign-in code (it may have expired or been used already). Please connect again."
    if code in ("invalid_client", "unauthorized_client"):
        return (
            "Tesla did not accept this installation's Fleet app credentials. "
            "Ask the administrator to check TESLA_CLIENT_ID and TESLA_CLIENT_SECRET."
        )
    if code == "invalid_redirect_url":
        return (
            "Tesla says the redirect address does not match the Fleet app's settings. "
            "Ask the administrator to check TESLA_REDIRECT_URI."
        )
    if isinstance(exc, AuthenticationError):
        return "Tesla refused the sign-in. Please connect again."
    return exc.user_message


def _region_of_host(host: str) -> str | None:
    for region, region_host in FLEET_API_HOSTS.items():
        if region_host == host.rstrip("/"):
            return region
    return None


def complete_authorization(household: Household, code: str, code_verifier: str, now: datetime) -> ConnectResult:
    """Exchange the code, find the household's region, save the tokens (committed at once), choose the path,
    and check the connections so the energy sites are listed. Raises ConnectFailed or NotConfigured."""
    config = current_app.config
    override = config.get("TESLA_FLEET_API_URL")
    region = region_from_token(code) or "na"
    audience = fleet_api_host(region, override)
    try:
        tokens = tesla_auth_client().exchange_code(code, config["TESLA_REDIRECT_URI"], audience, code_verifier=code_verifier)
    except ClientError as exc:
        log.warning("Household %s: the Tesla code exchange failed (%s)", household.id, exc.code or exc.status or type(exc).__name__)
        raise ConnectFailed(_exchange_failure_message(exc)) from exc

    if not tokens.refresh_token:
        # Without one the connection would die with the access token, hours from now.
        log.warning("Household %s: the Tesla code exchange returned no refresh token", household.id)
        raise ConnectFailed(
            "Tesla did not allow offline access, so the connection could not be kept. "
            "Please connect again and allow all the requested permissions."
        )
    result = ConnectResult()
    notes: list[str] = []
    try:
        found = discover_region(tokens.access_token, fleet_candidate_hosts(), requests.Session())
    except AppNotRegisteredError:
        result.ok = False
        notes.append(
            f"Tesla says this app is not registered for your region ({region_name(region)}) yet, so your Powerwall "
            "cannot be reached. The administrator must register the app for that region (Tesla app page); "
            "then use Test connection."
        )
    except AuthenticationError as exc:
        log.warning("Household %s: Tesla refused the new Fleet token at users/region (%s)", household.id, exc.status)
        raise ConnectFailed(
            "Tesla signed you in but then refused the new token. Please connect again and allow the energy permissions."
        ) from exc
    except ClientError as exc:
        result.ok = False
        notes.append(f"Your Tesla region could not be confirmed: {exc.user_message}")
    else:
        # Only a known region is stored: fleet_host() must be able to map it back to a host.
        region = found.region if found.region in FLEET_API_HOSTS else (_region_of_host(found.host) or region)

    save_fleet_tokens(household, tokens, now, region)
    settings = settings_for(household)
    if not settings.teslemetry_token_enc:
        settings.tesla_path = "fleet"
        path_note = "Tesla calls now go through the Fleet API."
    elif settings.tesla_path == "fleet":
        path_note = "Tesla calls go through the Fleet API, with Teslemetry as the fallback."
    else:
        path_note = (
            "Your Teslemetry token stays your first choice, with the Fleet API as the fallback; "
            "you can switch to the Fleet API under Tesla Powerwall."
        )
    # Commit before anything else can fail: the code is spent, the tokens are all we have.
    db.session.commit()
    log.info("Household %s connected Tesla through the Fleet API (region %s)", household.id, region)

    expires = settings.tesla_token_expires_at
    result.messages.append(
        f"Tesla account connected through the Fleet API (region {region.upper()})"
        + (f"; access token valid until {expires:%Y-%m-%d %H:%M} UTC." if expires else ".")
    )
    result.messages.extend(notes)
    result.messages.append(path_note)
    tesla = check_connections(household, now)["tesla"]
    db.session.commit()
    sites = (tesla.details or {}).get("sites", [])
    if sites:
        names = ", ".join(s.get("name") or s["id"] for s in sites)
        result.messages.append(f"Energy sites found: {names}.")
    result.messages.append(f"Tesla status: {tesla.message or tesla.state}")
    if tesla.state != "connected":
        result.ok = False
    return result


def disconnect_fleet(household: Household, now: datetime) -> None:
    """Forget the household's Fleet tokens and say so in the Tesla status. The caller commits."""
    settings = settings_for(household)
    clear_fleet_tokens(household)
    row = statuses(household)["tesla"]
    if not settings.teslemetry_token_enc:
        record_status(household, "tesla", "not_configured", "Tesla Fleet was disconnected; add a Teslemetry token or connect again.", now)
    elif row is not None and row.via == "fleet":
        record_status(household, "tesla", "attention", "Tesla Fleet was disconnected; use Test connection to check Teslemetry.", now)
    log.info("Household %s disconnected Tesla Fleet", household.id)


@dataclass(frozen=True)
class FleetPanel:
    """What the settings page shows about the user's Fleet connection (never a token)."""

    config: FleetAppConfig
    state: str  # "missing" | "connected" | "unreadable"
    region: str | None = None
    expires_at: datetime | None = None
    expired: bool = False
    path: str = "teslemetry"

    @property
    def region_label(self) -> str:
        return f"{self.region.upper()} · {region_name(self.region)}" if self.region else "not known yet"


def fleet_panel(household: Household, now: datetime) -> FleetPanel:
    """Describe the household's Fleet connection for the settings page."""
    config = fleet_app_config()
    settings = household.settings
    if not fleet_configured(settings):
        return FleetPanel(config, "missing", path=settings.tesla_path if settings else "teslemetry")
    try:
        get_secret(settings, "tesla_refresh_token")
        get_secret(settings, "tesla_access_token")
    except CredentialUnreadable:
        return FleetPanel(config, "unreadable", region=settings.tesla_region, path=settings.tesla_path)
    expires = settings.tesla_token_expires_at
    return FleetPanel(
        config,
        "connected",
        region=settings.tesla_region,
        expires_at=expires,
        expired=expires is not None and expires <= now,
        path=settings.tesla_path,
    )


# -- the installation's key pair --------------------------------------------------------------------------


class KeyExists(Exception):
    """A key pair exists; replacing it needs the explicit replace action."""


def current_key() -> TeslaAppKey | None:
    """The newest key pair, if any."""
    return db.session.scalar(select(TeslaAppKey).order_by(TeslaAppKey.id.desc()).limit(1))


def generate_key_pair(now: datetime, *, replace: bool = False) -> TeslaAppKey:
    """Create the EC P-256 key pair (private key PKCS#8, encrypted at rest). The caller commits.

    Refuses (KeyExists) to replace an existing pair unless `replace`: Tesla keeps the registered public key,
    so a new pair means registering every region again."""
    existing = db.session.scalars(select(TeslaAppKey)).all()
    if existing and not replace:
        raise KeyExists("A key pair already exists. Replacing it means registering every region again.")
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    for row in existing:
        db.session.delete(row)
    if existing:
        for registration in db.session.scalars(select(PartnerRegistration)):
            registration.ok = False
            registration.message = "The key pair was replaced; register this region again so Tesla has the new public key."
    key = TeslaAppKey(private_key_enc=get_crypto().encrypt(private_pem), public_key_pem=public_pem, created_at=now)
    db.session.add(key)
    log.info("Generated a new Tesla app key pair%s", " (replacing the old one)" if existing else "")
    return key


# -- partner registration ---------------------------------------------------------------------------------


class RegistrationNotReady(Exception):
    """Registration cannot be attempted yet (configuration or key missing); the message says what to do."""


def registrations() -> dict[str, PartnerRegistration]:
    """The last registration outcome per region."""
    return {row.region: row for row in db.session.scalars(select(PartnerRegistration))}


def _registration_failure_message(exc: ClientError, domain: str) -> str:
    if exc.service == "tesla_auth":
        if isinstance(exc, AuthenticationError) or (exc.code or "") in ("invalid_client", "unauthorized_client"):
            return (
                "Tesla did not give a partner token: it did not accept this installation's client id and secret "
                "(TESLA_CLIENT_ID, TESLA_CLIENT_SECRET)."
            )
        return f"Tesla did not give a partner token. {exc.user_message}"
    if exc.status in (401, 403):
        return f"Tesla refused the partner token (HTTP {exc.status}). Check the app's client id, secret and scopes."
    if exc.status is not None and 400 <= exc.status < 500:
        return (
            f"Tesla refused to register {domain} (HTTP {exc.status}). Check that {domain} is the allowed origin of "
            f"your app on developer.tesla.com and that https://{domain}{PUBLIC_KEY_PATH} serves the public key."
        )
    return exc.user_message


def register_region(region: str, now: datetime) -> PartnerRegistration:
    """Register this installation's domain as a partner account in `region`; the outcome is stored and
    returned (ok or not). Raises RegistrationNotReady before calling Tesla. The caller commits."""
    if region not in REGION_NAMES:
        raise ValueError(f"unknown region {region!r}")
    config = fleet_app_config()
    if not config.client_id_set or not config.client_secret_set:
        raise RegistrationNotReady("Set TESLA_CLIENT_ID and TESLA_CLIENT_SECRET first: registration needs a partner token.")
    domain = config.domain
    if not domain:
        raise RegistrationNotReady("Set APP_DOMAIN to this app's public HTTPS domain first.")
    if current_key() is None:
        raise RegistrationNotReady(
            "Generate the key pair first: Tesla checks the public key on your domain when it registers the app."
        )
    host = fleet_api_host(region, config.fleet_api_override)
    row = db.session.get(PartnerRegistration, region)
    if row is None:
        row = PartnerRegistration(region=region)
        db.session.add(row)
    row.domain, row.attempted_at = domain, now
    session = requests.Session()
    try:
        token = tesla_auth_client().partner_token(audience=host)
        register_partner_account(host, token.access_token, domain, session)
    except ClientError as exc:
        row.ok = False
        row.message = _registration_failure_message(exc, domain)
        log.warning("Tesla partner registration for region %s failed: %s", region, exc)
    else:
        row.ok = True
        row.message = f"Registered {domain} with Tesla for {region_name(region)}."
        log.info("Registered %s as a Tesla partner account in region %s", domain, region)
    return row
