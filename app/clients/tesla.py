"""Tesla Fleet API client for energy sites; Teslemetry is the same client with another base URL and token.

Reads products / site_info / live_status / calendar_history and sends the energy commands (tariff,
operation mode, backup reserve, grid import/export, storm mode). Every response is unwrapped from Tesla's
`{"response": ...}` envelope; a command answered with HTTP 200 and `result: false` raises
CommandRejectedError.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from app.clients.base import HttpClient, redact_text
from app.clients.errors import BadResponseError, CommandRejectedError

logger = logging.getLogger("app.clients.tesla")

# Fleet API hosts per region. Australia and the rest of Asia-Pacific live in "na" (not "eu").
FLEET_API_HOSTS: dict[str, str] = {
    "na": "https://fleet-api.prd.na.vn.cloud.tesla.com",
    "eu": "https://fleet-api.prd.eu.vn.cloud.tesla.com",
    "cn": "https://fleet-api.prd.cn.vn.cloud.tesla.cn",
}
TESLEMETRY_BASE_URL = "https://api.teslemetry.com"  # routes to the account's region by itself

OPERATION_MODES: frozenset[str] = frozenset({"autonomous", "self_consumption", "backup"})
EXPORT_RULES: frozenset[str] = frozenset({"battery_ok", "pv_only", "never"})


def fleet_api_host(region: str, override: str | None = None) -> str:
    """Fleet API base URL for `region` ("na"/"eu"/"cn", any case); a non-empty `override` wins for every region."""
    if override:
        return override.rstrip("/")
    try:
        return FLEET_API_HOSTS[region.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown Tesla Fleet API region {region!r}") from None


@dataclass(frozen=True)
class EnergySite:
    """An energy product from `/api/1/products` that has a battery; `energy_site_id` is the path id."""

    energy_site_id: int
    site_name: str | None = None
    resource_type: str | None = None
    gateway_id: str | None = None
    battery_type: str | None = None
    has_solar: bool | None = None


@dataclass(frozen=True)
class SiteInfo:
    """The parts of `site_info` the app uses; `tariff_content_v2` is kept raw (None when the site has no plan)."""

    energy_site_id: int | str
    site_name: str | None
    time_zone: str | None  # installation_time_zone; None when Tesla sends "" (fall back to a configured zone)
    operation_mode: str | None  # default_real_mode: autonomous / self_consumption / backup
    backup_reserve_percent: float | None
    export_rule: str  # customer_preferred_export_rule: battery_ok / pv_only / never
    grid_charging_allowed: bool  # absence of disallow_charge_from_grid_with_solar_installed means allowed
    storm_mode_enabled: bool | None
    firmware_version: str | None
    battery_count: int | None
    nameplate_power_w: float | None
    nameplate_energy_wh: float | None
    tou_capable: bool | None
    tariff_content_v2: dict[str, Any] | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LiveStatus:
    """Instant power flows in W (battery + = discharging, grid + = importing) and state of charge."""

    solar_power_w: float | None
    load_power_w: float | None
    battery_power_w: float | None
    grid_power_w: float | None
    generator_power_w: float | None
    percentage_charged: float | None
    energy_left_wh: float | None
    total_pack_energy_wh: float | None
    grid_status: str | None  # Active / Inactive / Unknown
    island_status: str | None
    storm_mode_active: bool | None
    backup_capable: bool | None
    timestamp: datetime | None  # site-local offset as sent by Tesla
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class CommandResult:
    """A command Tesla accepted (`result: true`); `reason` is usually empty."""

    reason: str = ""


@dataclass(frozen=True)
class CalendarHistory:
    """`calendar_history` rows; accepts both the `time_series` and the older `entries` shape."""

    period: str | None
    time_zone: str | None
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class UserRegion:
    """Answer of `GET /api/1/users/region` (`region` lower-cased)."""

    region: str
    fleet_api_base_url: str | None


class TeslaClient(HttpClient):
    """Fleet API (service "tesla") or Teslemetry (service "teslemetry") client for energy sites."""

    service = "tesla"

    def __init__(self, base_url: str, token: str, session: requests.Session | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, token, session, **kwargs)

    # -- reads ------------------------------------------------------------------------------------

    def products(self) -> list[dict[str, Any]]:
        """Raw `/api/1/products` list (vehicles and energy sites)."""
        products = self._get_response("/api/1/products")
        if not isinstance(products, list):
            raise BadResponseError(self.service, 200, detail="products: `response` is not a list")
        return [p for p in products if isinstance(p, Mapping)]

    def energy_sites(self) -> list[EnergySite]:
        """Energy sites that have a battery (Powerwall), parsed from products."""
        return parse_energy_sites(self.products())

    def site_info(self, energy_site_id: int | str) -> SiteInfo:
        """Settings and assets of one site, including the active tariff."""
        data = self._get_response(f"/api/1/energy_sites/{energy_site_id}/site_info")
        if not isinstance(data, Mapping):
            raise BadResponseError(self.service, 200, detail="site_info: `response` is not an object")
        return parse_site_info(energy_site_id, data)

    def live_status(self, energy_site_id: int | str) -> LiveStatus:
        """Current power flows and state of charge of one site."""
        data = self._get_response(f"/api/1/energy_sites/{energy_site_id}/live_status")
        if not isinstance(data, Mapping):
            raise BadResponseError(self.service, 200, detail="live_status: `response` is not an object")
        return parse_live_status(data)

    def calendar_history(
        self,
        energy_site_id: int | str,
        *,
        kind: str = "energy",
        period: str = "day",
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        time_zone: str | None = None,
    ) -> CalendarHistory:
        """Energy (or backup) history; datetimes must be timezone-aware (sent as RFC 3339)."""
        params = {
            "kind": kind,
            "period": period,
            "start_date": _rfc3339(start_date),
            "end_date": _rfc3339(end_date),
            "time_zone": time_zone,
        }
        data = self._get_response(f"/api/1/energy_sites/{energy_site_id}/calendar_history", params=params)
        if not isinstance(data, Mapping):
            raise BadResponseError(self.service, 200, detail="calendar_history: `response` is not an object")
        rows = data.get("time_series", data.get("entries", []))
        if not isinstance(rows, list):
            raise BadResponseError(self.service, 200, detail="calendar_history: rows are not a list")
        return CalendarHistory(
            period=_opt_str(data.get("period")),
            time_zone=_opt_str(data.get("installation_time_zone")) or _opt_str(data.get("time_zone")) or None,
            entries=[dict(r) for r in rows if isinstance(r, Mapping)],
        )

    def user_region(self) -> UserRegion:
        """`GET /api/1/users/region` with a user token (421 here means: wrong regional host)."""
        data = self._get_response("/api/1/users/region")
        if not isinstance(data, Mapping) or not isinstance(data.get("region"), str) or not data["region"]:
            raise BadResponseError(self.service, 200, detail="users/region: no `region`")
        base = data.get("fleet_api_base_url")
        return UserRegion(region=data["region"].lower(), fleet_api_base_url=base if isinstance(base, str) and base else None)

    def metadata(self) -> dict[str, Any]:
        """Teslemetry only: `GET /api/metadata` (bare object: uid, region, scopes, energy_sites)."""
        body = self.request("GET", "/api/metadata").body
        if not isinstance(body, Mapping):
            raise BadResponseError(self.service, 200, detail="metadata is not an object")
        return dict(body)

    # -- commands (POST, never retried) ------------------------------------------------------------

    def set_tariff(self, energy_site_id: int | str, tariff_content_v2: Mapping[str, Any]) -> CommandResult:
        """Upload a `tariff_content_v2` plan as `{"tou_settings": {"tariff_content_v2": ...}}`."""
        tariff = dict(tariff_content_v2)
        # Accept an already wrapped plan too, so it is never double wrapped (HA does the same).
        if set(tariff) == {"tariff_content_v2"} and isinstance(tariff["tariff_content_v2"], Mapping):
            tariff = dict(tariff["tariff_content_v2"])
        body = {"tou_settings": {"tariff_content_v2": tariff}}
        return self._command(f"/api/1/energy_sites/{energy_site_id}/time_of_use_settings", body)

    def set_operation_mode(self, energy_site_id: int | str, mode: str) -> CommandResult:
        """Set `default_real_mode`: autonomous (Time-Based Control), self_consumption or backup."""
        if mode not in OPERATION_MODES:
            raise ValueError(f"unknown operation mode {mode!r}")
        return self._command(f"/api/1/energy_sites/{energy_site_id}/operation", {"default_real_mode": mode})

    def set_backup_reserve(self, energy_site_id: int | str, percent: int) -> CommandResult:
        """Set the backup reserve, an integer 0-100."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"backup reserve must be an integer 0-100, got {percent!r}")
        return self._command(f"/api/1/energy_sites/{energy_site_id}/backup", {"backup_reserve_percent": percent})

    def set_grid_import_export(
        self,
        energy_site_id: int | str,
        *,
        allow_grid_charging: bool | None = None,
        export_rule: str | None = None,
    ) -> CommandResult:
        """Allow/forbid charging from the grid and/or set the export rule (battery_ok / pv_only / never)."""
        body: dict[str, Any] = {}
        if allow_grid_charging is not None:
            # Tesla's flag is the negation: true forbids grid charging.
            body["disallow_charge_from_grid_with_solar_installed"] = not allow_grid_charging
        if export_rule is not None:
            if export_rule not in EXPORT_RULES:
                raise ValueError(f"unknown export rule {export_rule!r}")
            body["customer_preferred_export_rule"] = export_rule
        if not body:
            raise ValueError("give allow_grid_charging and/or export_rule")
        return self._command(f"/api/1/energy_sites/{energy_site_id}/grid_import_export", body)

    def set_storm_mode(self, energy_site_id: int | str, enabled: bool) -> CommandResult:
        """Turn Storm Watch on or off."""
        return self._command(f"/api/1/energy_sites/{energy_site_id}/storm_mode", {"enabled": bool(enabled)})

    # -- envelope helpers ------------------------------------------------------------------------

    def _get_response(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body = self.request("GET", path, params=params).body
        return self._unwrap(body, path)

    def _command(self, path: str, payload: Mapping[str, Any]) -> CommandResult:
        result = self._unwrap(self.request("POST", path, json=payload).body, path)
        if not isinstance(result, Mapping) or "result" not in result:
            raise BadResponseError(self.service, 200, detail=f"{path}: no command `result` in response")
        reason = result.get("reason")
        # The reason is free text from the device: never let it carry our token into a log or a page.
        reason_text = redact_text(reason, [self.token])[:500] if isinstance(reason, str) else ""
        if result["result"] is not True:
            logger.warning("%s command %s rejected: %s", self.service, path, reason_text[:200])
            raise CommandRejectedError(self.service, 200, reason=reason_text, detail=f"{path}: {reason_text[:200]}")
        return CommandResult(reason=reason_text)

    def _unwrap(self, body: Any, path: str) -> Any:
        if not isinstance(body, Mapping) or "response" not in body:
            raise BadResponseError(self.service, 200, detail=f"{path}: no `response` envelope")
        return body["response"]


def teslemetry_client(token: str, session: requests.Session | None = None, base_url: str = TESLEMETRY_BASE_URL, **kwargs: Any) -> TeslaClient:
    """A TeslaClient pointed at Teslemetry, authenticated with a static Teslemetry token."""
    return TeslaClient(base_url, token, session, service="teslemetry", **kwargs)


# -- parsing ----------------------------------------------------------------------------------------


def parse_energy_sites(products: list[Any]) -> list[EnergySite]:
    """Keep the products that are energy sites with a battery (`components.battery`, else `resource_type`)."""
    sites: list[EnergySite] = []
    for product in products:
        if not isinstance(product, Mapping) or "energy_site_id" not in product:
            continue  # vehicles have no energy_site_id
        site_id = product["energy_site_id"]
        # Ids can be 16 digits: keep them as int, never float; accept a digit string too.
        if isinstance(site_id, str) and site_id.isdigit():
            site_id = int(site_id)
        if isinstance(site_id, bool) or not isinstance(site_id, int):
            logger.warning("tesla: skipped an energy product with a non-integer energy_site_id")
            continue
        components = product.get("components") if isinstance(product.get("components"), Mapping) else None
        if components is not None and "battery" in components:
            has_battery = components.get("battery") is True
        else:
            has_battery = product.get("resource_type") == "battery"
        if not has_battery:
            continue
        sites.append(
            EnergySite(
                energy_site_id=site_id,
                site_name=_opt_str(product.get("site_name")),
                resource_type=_opt_str(product.get("resource_type")),
                gateway_id=_opt_str(product.get("gateway_id")),
                battery_type=_opt_str(product.get("battery_type")) or _opt_str((components or {}).get("battery_type")),
                has_solar=(components or {}).get("solar") if isinstance((components or {}).get("solar"), bool) else None,
            )
        )
    return sites


def parse_site_info(energy_site_id: int | str, data: Mapping[str, Any]) -> SiteInfo:
    """Build a SiteInfo from the unwrapped `site_info` object (tolerant of missing fields)."""
    components = data.get("components") if isinstance(data.get("components"), Mapping) else {}
    user_settings = data.get("user_settings") if isinstance(data.get("user_settings"), Mapping) else {}

    def grid_setting(key: str) -> Any:
        # Documented under `components`; accept a top-level copy as well.
        return components.get(key, data.get(key))

    export_rule = grid_setting("customer_preferred_export_rule")
    if not isinstance(export_rule, str) or not export_rule:
        # Absent rule means battery_ok, unless the site says exports are switched off.
        export_rule = "never" if grid_setting("non_export_configured") is True else "battery_ok"
    tariff = data.get("tariff_content_v2")
    return SiteInfo(
        energy_site_id=energy_site_id,
        site_name=_opt_str(data.get("site_name")),
        time_zone=_opt_str(data.get("installation_time_zone")) or None,
        operation_mode=_opt_str(data.get("default_real_mode")),
        backup_reserve_percent=_opt_number(data.get("backup_reserve_percent")),
        export_rule=export_rule,
        grid_charging_allowed=grid_setting("disallow_charge_from_grid_with_solar_installed") is not True,
        storm_mode_enabled=_opt_bool(user_settings.get("storm_mode_enabled")),
        firmware_version=_opt_str(data.get("version")),
        battery_count=int(data["battery_count"]) if _is_number(data.get("battery_count")) else None,
        nameplate_power_w=_opt_number(data.get("nameplate_power")),
        nameplate_energy_wh=_opt_number(data.get("nameplate_energy")),
        tou_capable=_opt_bool(components.get("tou_capable")),
        tariff_content_v2=dict(tariff) if isinstance(tariff, Mapping) and tariff else None,
        raw=dict(data),
    )


def parse_live_status(data: Mapping[str, Any]) -> LiveStatus:
    """Build a LiveStatus from the unwrapped `live_status` object; every field is optional."""
    timestamp: datetime | None = None
    if isinstance(data.get("timestamp"), str):
        try:
            timestamp = datetime.fromisoformat(data["timestamp"])
        except ValueError:
            timestamp = None
    return LiveStatus(
        solar_power_w=_opt_number(data.get("solar_power")),
        load_power_w=_opt_number(data.get("load_power")),
        battery_power_w=_opt_number(data.get("battery_power")),
        grid_power_w=_opt_number(data.get("grid_power")),
        generator_power_w=_opt_number(data.get("generator_power")),
        percentage_charged=_opt_number(data.get("percentage_charged")),
        energy_left_wh=_opt_number(data.get("energy_left")),
        total_pack_energy_wh=_opt_number(data.get("total_pack_energy")),
        grid_status=_opt_str(data.get("grid_status")),
        island_status=_opt_str(data.get("island_status")),
        storm_mode_active=_opt_bool(data.get("storm_mode_active")),
        backup_capable=_opt_bool(data.get("backup_capable")),
        timestamp=timestamp,
        raw=dict(data),
    )


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("calendar_history dates must be timezone-aware")
    return value.isoformat()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_number(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
