"""A household's connections to Amber and Tesla: build clients from stored credentials, keep Fleet tokens
fresh, choose the Tesla path (with fallback), and record each service's status in plain words.

Routes, the CLI and (later) the sync call this module; clients stay free of Flask and models."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
from flask import current_app
from sqlalchemy import select

from app import clock
from app.clients.amber import AmberClient, AmberSite
from app.clients.base import CallRecord
from app.clients.errors import AuthenticationError, ClientError, WrongRegionError
from app.clients.tesla import EnergySite, TeslaClient, fleet_api_host, teslemetry_client
from app.clients.tesla_auth import TeslaAuthClient, TokenSet, discover_region
from app.credentials import CredentialUnreadable, get_secret, set_secret, settings_for, unblock_tesla
from app.extensions import db
from app.households.service import PowerwallTaken, claim_tesla_site
from app.models import ServiceStatus, Household, HouseholdSettings, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")
OnCall = Callable[[CallRecord], None] | None  # observes every HTTP call (the sync counts them)

# Refresh a Fleet access token this long before it expires, so no call races its expiry.
REFRESH_MARGIN = timedelta(minutes=5)


class ReconnectNeeded(AuthenticationError):
    """The Fleet refresh token is gone or refused: only the household can fix it, by connecting again."""

    def __init__(self, detail: str = "refresh token missing or refused") -> None:
        super().__init__(
            "tesla_auth",
            401,
            detail=detail,
            user_message="Your Tesla Fleet connection has expired. Please connect Tesla again in Settings.",
        )


class NotConfigured(Exception):
    """The household has not given what this call needs; the message says what is missing."""


_THREAD = threading.local()


class _Session(requests.Session):
    """A requests session that reads the proxy and CA-bundle settings from the environment once per host
    instead of on every request (requests walks os.environ and matches no_proxy each time: about half a
    millisecond a call, four calls a household a tick), and never adds ~/.netrc credentials (our clients
    send their own Authorization header)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # the environment is read here, below, once per host
        self._proxies_by_host: dict[tuple[str, str], dict[str, str]] = {}
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        parts = urlsplit(url)
        host = (parts.scheme, parts.netloc)
        environment = self._proxies_by_host.get(host)
        if environment is None:
            environment = self._proxies_by_host[host] = requests.utils.get_environ_proxies(url)
        proxies = dict(proxies or {})
        for scheme, proxy in environment.items():
            proxies.setdefault(scheme, proxy)
        if (verify is True or verify is None) and self._ca_bundle:
            verify = self._ca_bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def _session() -> requests.Session:
    """This thread's HTTP session: a sync worker reuses its open connections from one household to the next
    instead of opening new ones (TCP, and TLS in production) for every client.

    The cookie jar is emptied each time a session is handed out, so a client starts as clean as with a
    new session and nothing one household's calls received is ever sent with another household's."""
    session = getattr(_THREAD, "session", None)
    if session is None:
        session = _THREAD.session = _Session()
    session.cookies.clear()
    return session


# -- Amber ------------------------------------------------------------------------------------------------


def amber_client(household: Household, on_call: OnCall = None) -> AmberClient:
    """An Amber client with the household's token (NotConfigured / CredentialUnreadable when it can't be had)."""
    token = get_secret(household.settings, "amber_token")
    if not token:
        raise NotConfigured("Add your Amber API token in Settings.")
    return AmberClient(
        token, _session(), base_url=current_app.config["AMBER_API_URL"], on_call=on_call, sleep=clock.sleeper()
    )


# -- Tesla: Fleet tokens ----------------------------------------------------------------------------------


def tesla_auth_client(on_call: OnCall = None) -> TeslaAuthClient:
    """The token-endpoint client for this installation's Fleet app."""
    config = current_app.config
    if not config.get("TESLA_CLIENT_ID"):
        raise NotConfigured("This installation has no Tesla Fleet app (TESLA_CLIENT_ID is not set).")
    return TeslaAuthClient(
        config["TESLA_CLIENT_ID"],
        config.get("TESLA_CLIENT_SECRET"),
        _session(),
        token_url=config["TESLA_TOKEN_URL"],
        on_call=on_call,
        sleep=clock.sleeper(),
    )


def fleet_host(settings: HouseholdSettings) -> str:
    """The Fleet API base URL for the household's region (TESLA_FLEET_API_URL overrides every region)."""
    return fleet_api_host(settings.tesla_region or "na", current_app.config.get("TESLA_FLEET_API_URL"))


def fleet_candidate_hosts() -> list[str] | None:
    """Hosts to try in region discovery: just the override when one is configured."""
    override = current_app.config.get("TESLA_FLEET_API_URL")
    return [override] if override else None


def save_fleet_tokens(household: Household, tokens: TokenSet, now: datetime, region: str | None = None) -> None:
    """Store a token set; a refresh that returned no new refresh token keeps the old one."""
    settings = settings_for(household)
    set_secret(settings, "tesla_access_token", tokens.access_token)
    if tokens.refresh_token:
        set_secret(settings, "tesla_refresh_token", tokens.refresh_token)
    settings.tesla_token_expires_at = tokens.expires_at(now)
    if region:
        settings.tesla_region = region.lower()
    unblock_tesla(household)


def clear_fleet_tokens(household: Household) -> None:
    """Forget the Fleet connection (tokens, expiry, region)."""
    settings = settings_for(household)
    for name in ("tesla_access_token", "tesla_refresh_token"):
        set_secret(settings, name, None)
    settings.tesla_token_expires_at = None
    settings.tesla_region = None
    if settings.tesla_path == "fleet":
        settings.tesla_path = "teslemetry"


def fleet_configured(settings: HouseholdSettings | None) -> bool:
    """Whether Fleet tokens are stored (readable or not)."""
    return bool(settings and settings.tesla_refresh_token_enc)


def fleet_access_token(household: Household, now: datetime, *, force_refresh: bool = False, on_call: OnCall = None) -> str:
    """A Fleet access token valid for at least REFRESH_MARGIN, refreshing (and saving the rotated
    refresh token at once) when needed."""
    settings = household.settings
    if not fleet_configured(settings):
        raise NotConfigured("Connect your Tesla account through the Fleet API in Settings.")
    access = get_secret(settings, "tesla_access_token")
    expires = settings.tesla_token_expires_at
    if access and not force_refresh and expires is not None and expires - now > REFRESH_MARGIN:
        return access
    # Lock the row (PostgreSQL) so two processes do not spend the single-use refresh token twice;
    # flush first so the re-read keeps this request's own pending changes.
    db.session.flush()
    db.session.refresh(settings, with_for_update=True)
    expires = settings.tesla_token_expires_at
    access = get_secret(settings, "tesla_access_token")
    if access and not force_refresh and expires is not None and expires - now > REFRESH_MARGIN:
        db.session.commit()
        return access  # another process refreshed while we waited
    refresh = get_secret(settings, "tesla_refresh_token")
    if not refresh:
        raise ReconnectNeeded()
    try:
        tokens = tesla_auth_client(on_call).refresh(refresh)
    except AuthenticationError as exc:
        db.session.rollback()
        log.warning("Household %s: Tesla refused the Fleet refresh token (%s)", household.id, exc.code or exc.status)
        raise ReconnectNeeded(exc.detail or "refresh refused") from exc
    save_fleet_tokens(household, tokens, now)
    # Commit now, not at the edge: a rotated refresh token that is not saved is lost for good.
    db.session.commit()
    log.info("Household %s: refreshed the Tesla Fleet access token", household.id)
    return tokens.access_token


# -- Tesla: clients and path choice -----------------------------------------------------------------------


def configured_tesla_paths(settings: HouseholdSettings | None) -> list[str]:
    """The Tesla paths the household has credentials for, the chosen one first."""
    if settings is None:
        return []
    available = []
    if settings.teslemetry_token_enc:
        available.append("teslemetry")
    if fleet_configured(settings):
        available.append("fleet")
    return sorted(available, key=lambda path: path != settings.tesla_path)


def tesla_client(
    household: Household, path: str, now: datetime, *, force_refresh: bool = False, on_call: OnCall = None
) -> TeslaClient:
    """A Tesla client for one path ("teslemetry" or "fleet")."""
    settings = household.settings
    if path == "teslemetry":
        token = get_secret(settings, "teslemetry_token")
        if not token:
            raise NotConfigured("Add your Teslemetry token in Settings.")
        return teslemetry_client(
            token, _session(), base_url=current_app.config["TESLEMETRY_API_URL"], on_call=on_call, sleep=clock.sleeper()
        )
    token = fleet_access_token(household, now, force_refresh=force_refresh, on_call=on_call)
    return TeslaClient(fleet_host(settings), token, _session(), on_call=on_call, sleep=clock.sleeper())


@dataclass(frozen=True)
class TeslaOutcome:
    """What a Tesla call returned, which path answered, and why the chosen path was not used (if so)."""

    value: object
    via: str
    fallback_reason: str | None = None


def call_tesla(
    household: Household, operation: Callable[[TeslaClient], T], now: datetime, on_call: OnCall = None
) -> TeslaOutcome:
    """Run `operation` on the household's chosen Tesla path; on a Fleet 401 refresh once, on 421 find the
    region again, and when the chosen path fails authentication use the other configured path."""
    paths = configured_tesla_paths(household.settings)
    if not paths:
        raise NotConfigured("Add a Teslemetry token or connect Tesla through the Fleet API in Settings.")
    fallback_reason = None
    last_error: Exception | None = None
    for path in paths:
        try:
            value = _call_one_path(household, path, operation, now, on_call)
        except (AuthenticationError, CredentialUnreadable) as exc:
            last_error = exc
            fallback_reason = _plain_message(exc)
            log.warning("Household %s: Tesla %s path failed authentication; trying the other path if any", household.id, path)
            continue
        return TeslaOutcome(value, path, fallback_reason if path != paths[0] else None)
    assert last_error is not None
    raise last_error


def _call_one_path(
    household: Household, path: str, operation: Callable[[TeslaClient], T], now: datetime, on_call: OnCall
) -> T:
    client = tesla_client(household, path, now, on_call=on_call)
    if path == "teslemetry":
        return operation(client)
    try:
        return operation(client)
    except WrongRegionError:
        token = fleet_access_token(household, now, on_call=on_call)
        discovery = discover_region(token, fleet_candidate_hosts(), _session(), on_call=on_call, sleep=clock.sleeper())
        household.settings.tesla_region = discovery.region.lower()
        db.session.commit()
        return operation(tesla_client(household, path, now, on_call=on_call))
    except AuthenticationError as exc:
        if exc.status != 401:
            raise
        return operation(tesla_client(household, path, now, force_refresh=True, on_call=on_call))


# -- Status and discovery ---------------------------------------------------------------------------------


def _plain_message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.user_message
    return str(exc)


def record_status(
    household: Household,
    service: str,
    state: str,
    message: str | None,
    now: datetime,
    *,
    via: str | None = None,
    details: dict | None = None,
    row: ServiceStatus | None = None,
) -> ServiceStatus:
    """Create or update the household's status row for `service` (`row`, when the caller has read it
    already). The caller commits."""
    if row is None:
        row = db.session.scalar(select(ServiceStatus).where(ServiceStatus.household_id == household.id, ServiceStatus.service == service))
    if row is None:
        row = ServiceStatus(household_id=household.id, service=service)
        db.session.add(row)
    row.state, row.message, row.via, row.checked_at = state, message, via, now
    if details is not None:
        row.details = details
    return row


def statuses(household: Household) -> dict[str, ServiceStatus | None]:
    """The last recorded status per service ("amber", "tesla")."""
    rows = db.session.scalars(select(ServiceStatus).where(ServiceStatus.household_id == household.id)).all()
    by_service = {row.service: row for row in rows}
    return {"amber": by_service.get("amber"), "tesla": by_service.get("tesla")}


def effective_timezone(settings: HouseholdSettings | None) -> str | None:
    """The zone the tariff is laid out in: Tesla's installation zone, else the household's pick."""
    if settings is None:
        return None
    return settings.tesla_reported_timezone or settings.site_timezone


def _site_dict(site: AmberSite) -> dict:
    return {"id": site.id, "nmi": site.nmi, "network": site.network, "status": site.status}


def check_amber(household: Household, now: datetime, on_call: OnCall = None) -> ServiceStatus:
    """Check the Amber token, list the sites (active first), choose the only one automatically."""
    settings = settings_for(household)
    try:
        sites = amber_client(household, on_call).sites()
    except NotConfigured as exc:
        return record_status(household, "amber", "not_configured", str(exc), now, details={"sites": []})
    except (CredentialUnreadable, ClientError) as exc:
        return record_status(household, "amber", "attention", _plain_message(exc), now)
    sites = sorted(sites, key=lambda s: (not s.is_active, s.id))
    details = {"sites": [_site_dict(s) for s in sites]}
    active = [s for s in sites if s.is_active]
    if not settings.amber_site_id and len(active) == 1:
        settings.amber_site_id = active[0].id
        log.info("Household %s: chose the only active Amber site automatically", household.id)
    if not sites:
        return record_status(household, "amber", "attention", "Your Amber account has no sites.", now, details=details)
    if not settings.amber_site_id:
        return record_status(household, "amber", "attention", "Choose which Amber site to use.", now, details=details)
    if settings.amber_site_id not in {s.id for s in sites}:
        return record_status(
            household, "amber", "attention", "The chosen Amber site is not on this Amber account; choose another.", now, details=details
        )
    chosen = next(s for s in sites if s.id == settings.amber_site_id)
    if not chosen.is_active:
        return record_status(household, "amber", "attention", f"The chosen Amber site is {chosen.status}.", now, details=details)
    return record_status(household, "amber", "connected", f"Connected; using site {chosen.id}.", now, details=details)


def _energy_site_dict(site: EnergySite) -> dict:
    return {"id": str(site.energy_site_id), "name": site.site_name}


def check_tesla(household: Household, now: datetime, on_call: OnCall = None) -> ServiceStatus:
    """Check the Tesla path(s), list the energy sites with a battery, choose the only one, read its zone."""
    settings = settings_for(household)
    try:
        outcome = call_tesla(household, lambda client: client.energy_sites(), now, on_call)
    except NotConfigured as exc:
        return record_status(household, "tesla", "not_configured", str(exc), now, details={"sites": []})
    except (CredentialUnreadable, ClientError) as exc:
        return record_status(household, "tesla", "attention", _plain_message(exc), now)
    sites: list[EnergySite] = outcome.value  # type: ignore[assignment]
    details = {"sites": [_energy_site_dict(s) for s in sites]}
    via, note = outcome.via, _fallback_note(outcome)
    if not settings.tesla_site_id and len(sites) == 1:
        try:
            claim_tesla_site(household, str(sites[0].energy_site_id))
        except PowerwallTaken as exc:
            return record_status(household, "tesla", "attention", str(exc), now, via=via, details=details)
        settings.tesla_site_id = str(sites[0].energy_site_id)
        log.info("Household %s: chose the only Tesla energy site automatically", household.id)
    if not sites:
        return record_status(household, "tesla", "attention", "No Powerwall was found on this Tesla account." + note, now, via=via, details=details)
    if not settings.tesla_site_id:
        return record_status(household, "tesla", "attention", "Choose which Tesla energy site to use." + note, now, via=via, details=details)
    if settings.tesla_site_id not in {d["id"] for d in details["sites"]}:
        return record_status(
            household, "tesla", "attention", "The chosen Tesla energy site is not on this account; choose another." + note,
            now, via=via, details=details,
        )
    try:
        info = call_tesla(household, lambda client: client.site_info(settings.tesla_site_id), now, on_call).value
    except (CredentialUnreadable, ClientError) as exc:
        return record_status(household, "tesla", "attention", _plain_message(exc), now, via=via, details=details)
    settings.tesla_reported_timezone = info.time_zone or None  # type: ignore[attr-defined]
    if effective_timezone(settings) is None:
        return record_status(
            household, "tesla", "attention", "Tesla does not report your site's time zone: choose it under Preferences." + note,
            now, via=via, details=details,
        )
    unblock_tesla(household)
    return record_status(
        household, "tesla", "connected", f"Connected through {_path_name(via)}; using site {settings.tesla_site_id}." + note,
        now, via=via, details=details,
    )


def _path_name(path: str) -> str:
    return "Teslemetry" if path == "teslemetry" else "the Tesla Fleet API"


def _fallback_note(outcome: TeslaOutcome) -> str:
    if not outcome.fallback_reason:
        return ""
    return f" (Your chosen path failed: {outcome.fallback_reason} Using {_path_name(outcome.via)} instead.)"


@dataclass
class HouseholdConnections:
    """A household's connections resolved once and handed down: its settings, sites and zone, and its
    calls to Tesla and Amber, all observed by one `on_call` (the caller's counter) at one `now`."""

    household: Household
    now: datetime
    on_call: OnCall = None
    _amber: AmberClient | None = field(default=None, repr=False)

    @property
    def settings(self) -> HouseholdSettings:
        return settings_for(self.household)

    @property
    def tesla_site_id(self) -> str | None:
        return self.settings.tesla_site_id

    @property
    def zone(self) -> ZoneInfo:
        """The zone the household's tariff is laid out in (Sydney until one is known)."""
        return ZoneInfo(effective_timezone(self.settings) or "Australia/Sydney")

    def tesla(self, operation: Callable[[TeslaClient], T]) -> T:
        """Call Tesla on the household's path (with its fallback); raises the client's typed errors."""
        return call_tesla(self.household, operation, self.now, self.on_call).value

    def amber(self) -> AmberClient:
        """The household's Amber client (made once)."""
        if self._amber is None:
            self._amber = amber_client(self.household, self.on_call)
        return self._amber


def resolve(household: Household, now: datetime, on_call: OnCall = None) -> HouseholdConnections:
    """The household's connections, resolved once for one action (a force start, a restore, a check)."""
    return HouseholdConnections(household, now, on_call)


def check_connections(household: Household, now: datetime | None = None) -> dict[str, ServiceStatus]:
    """Check both services and record their status (the 'Test connection' button). The caller commits."""
    now = now or utcnow()
    return {"amber": check_amber(household, now), "tesla": check_tesla(household, now)}
