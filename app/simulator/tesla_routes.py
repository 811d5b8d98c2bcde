"""The Tesla Fleet API energy endpoints, mounted at /tesla (Fleet) and /teslemetry (Teslemetry proxy),
plus Teslemetry's own /api/metadata. Envelope {"response": ...}; errors carry `error`/`error_description`."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request

from . import identity
from .powerwall import EXPORT_RULES, MODES, Powerwall
from .state import SimulatorState
from .tou_tariff import TariffError, compile_tariff, normalise, price_problems

tesla = Blueprint("tesla", __name__)  # registered twice: as "tesla" and as "teslemetry"
teslemetry_extra = Blueprint("teslemetry_extra", __name__)
READ_SCOPE, WRITE_SCOPE = "energy_device_data", "energy_cmds"
MAX_TOU_HISTORY = 50
PARTNER_REGISTRATION_ERROR = (
    f"Account {identity.FLEET_CLIENT_ID} must be registered in the current region {{host}}, please see "
    "https://developer.tesla.com/docs/fleet-api/endpoints/partner-endpoints#register"
)


class TeslaError(Exception):
    """An error answer in the Fleet API envelope."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str = "",
        *,
        headers: dict[str, str] | None = None,
        bare: bool = False,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}
        self.bare = bare  # the real 412 body has only "error"


def tesla_error_response(error: TeslaError) -> Response:
    """Render a TeslaError."""
    body: dict[str, object] = (
        {"error": error.error}
        if error.bare
        else {"response": None, "error": error.error, "error_description": error.description}
    )
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


tesla.register_error_handler(TeslaError, tesla_error_response)
teslemetry_extra.register_error_handler(TeslaError, tesla_error_response)


def _sim() -> SimulatorState:
    return current_app.extensions["simulator"]


def _envelope(payload: object, **extra: object) -> Response:
    return jsonify({"response": payload, **extra})


def _command_result(result: bool = True, reason: str = "") -> Response:
    return _envelope({"reason": reason, "result": result})


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""


def _rate_limit(sim: SimulatorState, name: str, token: str) -> None:
    limiter = sim.limiters[name]
    if limiter.limit == 0:
        return
    decision = limiter.hit(token, sim.now())
    if not decision.allowed:
        raise TeslaError(
            429,
            "rate limited",
            headers={
                "Retry-After": str(decision.reset_seconds),
                "RateLimit-Limit": str(decision.limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(decision.reset_seconds),
            },
        )


def authenticate_teslemetry(sim: SimulatorState) -> None:
    """Teslemetry: a static console token, as a bearer header or ?token=."""
    token = _bearer() or request.args.get("token", "")
    if not token:
        raise TeslaError(401, "missing_token", "No access token was provided")
    if token != identity.TESLEMETRY_TOKEN:
        raise TeslaError(401, "invalid_token", "The access token is invalid")
    with sim.lock:
        _rate_limit(sim, "teslemetry", token)


def _authenticate_fleet(sim: SimulatorState) -> None:
    token = _bearer()
    with sim.lock:
        found, reason = sim.tokens.lookup(token, sim.now())
        if found is None:
            error = "token expired (401)" if reason == "expired" else "invalid bearer token"
            raise TeslaError(401, error)
        if request.endpoint == "tesla.partner_accounts":
            if found.kind != "partner":
                raise TeslaError(403, "Expected partner account")
            return
        if found.kind != "user":
            raise TeslaError(401, "invalid bearer token", "a partner token cannot read user data")
        if sim.config.fleet_region == "wrong_region":
            raise TeslaError(421, "user out of region")
        if sim.config.fleet_region == "unregistered" and not sim.partner_registered:
            host = request.host_url.rstrip("/") + "/tesla"
            raise TeslaError(412, PARTNER_REGISTRATION_ERROR.format(host=host), bare=True)
        needed = READ_SCOPE if request.method == "GET" else WRITE_SCOPE
        if request.endpoint in ("tesla.products", "tesla.users_region"):
            needed = None  # any user token
        if needed is not None and needed not in found.scopes:
            raise TeslaError(403, "Unauthorized missing scopes")
        _rate_limit(sim, "fleet", token)


@tesla.before_request
def _authenticate() -> None:
    sim = _sim()
    if request.blueprint == "teslemetry":
        authenticate_teslemetry(sim)
    else:
        _authenticate_fleet(sim)


@teslemetry_extra.before_request
def _authenticate_extra() -> None:
    if request.endpoint != "teslemetry_extra.ping":
        authenticate_teslemetry(_sim())


def _base_url() -> str:
    prefix = "/teslemetry" if request.blueprint == "teslemetry" else "/tesla"
    return request.host_url.rstrip("/") + prefix


def _site(site_id: str) -> tuple[SimulatorState, Powerwall]:
    sim = _sim()
    powerwall = sim.powerwall_for(site_id)
    if powerwall is None:
        raise TeslaError(404, "not_found", f"energy site {site_id} not found")
    with sim.lock:
        powerwall.advance(sim.now())
    return sim, powerwall


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise TeslaError(400, "invalid_request", "body must be a JSON object")
    return body


@tesla.get("/api/1/products")
def products() -> Response:
    """GET /api/1/products: a vehicle, the Powerwall site and a sparse site."""
    sim = _sim()
    with sim.lock:
        now = sim.now()
        sim.powerwall.advance(now)
        site = sim.powerwall.product(now)
    vehicle = {
        "id": identity.TESLA_VEHICLE_ID,
        "vehicle_id": identity.TESLA_VEHICLE_ID,
        "vin": "LRW3F7EK4NC700000",
        "display_name": "Simulated Model 3",
        "state": "asleep",
        "in_service": False,
        "id_s": str(identity.TESLA_VEHICLE_ID),
        "access_type": "OWNER",
    }
    sparse = {
        "energy_site_id": identity.TESLA_SPARSE_SITE_ID,
        "components": {
            "battery": False, "solar": False, "grid": False, "load_meter": False, "market_type": "residential",
        },
    }
    return _envelope([vehicle, site, sparse], count=3)


@tesla.get("/api/1/users/region")
def users_region() -> Response:
    """GET /api/1/users/region: always NA, pointing back at this simulator."""
    return _envelope({"region": identity.FLEET_REGION, "fleet_api_base_url": _base_url()})


@tesla.get("/api/1/energy_sites/<site_id>/site_info")
def site_info(site_id: str) -> Response:
    """GET site_info: settings, components and the stored tariff_content_v2."""
    sim, powerwall = _site(site_id)
    with sim.lock:
        return _envelope(powerwall.site_info())


@tesla.get("/api/1/energy_sites/<site_id>/live_status")
def live_status(site_id: str) -> Response:
    """GET live_status: power flows (load = solar + battery + grid) and state of charge."""
    sim, powerwall = _site(site_id)
    with sim.lock:
        return _envelope(powerwall.live_status(sim.now()))


@tesla.post("/api/1/energy_sites/<site_id>/time_of_use_settings")
def time_of_use_settings(site_id: str) -> Response:
    """POST time_of_use_settings: validate (tesla-energy-api.md §6.3), store, or refuse per config."""
    sim, powerwall = _site(site_id)
    body = _json_body()
    tou = body.get("tou_settings")
    tariff = tou.get("tariff_content_v2") if isinstance(tou, dict) else None
    with sim.lock:
        mode = sim.config.tou_invalid
        record: dict[str, object] = {"at": sim.now().isoformat(), "site_id": site_id, "name": (tariff or {}).get("name")}
        sim.tou_pushes = (sim.tou_pushes + [record])[-MAX_TOU_HISTORY:]
        try:
            if tariff is None:
                raise TariffError("body must be {\"tou_settings\": {\"tariff_content_v2\": {...}}}")
            compiled = compile_tariff(tariff)
        except TariffError as error:
            record.update(accepted=False, problems=[str(error)])
            return _refuse(mode if mode != "normalise" else "result_false", str(error))
        problems = price_problems(compiled)
        record["problems"] = problems
        if problems and mode != "normalise":
            record["accepted"] = False
            return _refuse(mode, "; ".join(problems[:5]))
        if problems:
            powerwall.set_tariff(normalise(tariff, compiled), owned=True)
        else:
            # The body was parsed for this request alone and is only read afterwards: no copy needed.
            powerwall.set_tariff(tariff, compiled, owned=True)
        record.update(accepted=True, normalised=bool(problems), received=tariff)
        return _command_result()


def _refuse(mode: str, reason: str) -> Response:
    if mode == "result_false":
        return _command_result(False, reason)
    status = int(mode)
    response = _envelope(None, error="invalid_field", error_description=reason)
    if status == 422:
        response = _envelope(None, error="invalid_field", error_description=reason, messages={"tou_settings": [reason]})
    response.status_code = status
    return response


@tesla.post("/api/1/energy_sites/<site_id>/operation")
def operation(site_id: str) -> Response:
    """POST operation {"default_real_mode": autonomous|self_consumption|backup}."""
    sim, powerwall = _site(site_id)
    mode = _json_body().get("default_real_mode")
    if mode not in MODES:
        raise TeslaError(400, "invalid_field", f"default_real_mode must be one of {', '.join(MODES)}")
    with sim.lock:
        powerwall.mode = mode
    return _command_result()


@tesla.post("/api/1/energy_sites/<site_id>/backup")
def backup(site_id: str) -> Response:
    """POST backup {"backup_reserve_percent": 0..100}."""
    sim, powerwall = _site(site_id)
    percent = _json_body().get("backup_reserve_percent")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise TeslaError(400, "invalid_field", "backup_reserve_percent must be an integer 0-100")
    with sim.lock:
        powerwall.backup_reserve_percent = percent
    return _command_result()


@tesla.post("/api/1/energy_sites/<site_id>/grid_import_export")
def grid_import_export(site_id: str) -> Response:
    """POST grid_import_export: disallow_charge_from_grid_with_solar_installed and/or the export rule."""
    sim, powerwall = _site(site_id)
    body = _json_body()
    disallow = body.get("disallow_charge_from_grid_with_solar_installed")
    rule = body.get("customer_preferred_export_rule")
    if disallow is None and rule is None:
        raise TeslaError(400, "invalid_request", "nothing to change")
    if disallow is not None and not isinstance(disallow, bool):
        raise TeslaError(400, "invalid_field", "disallow_charge_from_grid_with_solar_installed must be a boolean")
    if rule is not None and rule not in EXPORT_RULES:
        choices = ", ".join(EXPORT_RULES)
        raise TeslaError(400, "invalid_field", f"customer_preferred_export_rule must be one of {choices}")
    with sim.lock:
        if disallow is not None:
            powerwall.grid_charging_allowed = not disallow
        if rule is not None:
            powerwall.export_rule = rule
    return _command_result()


@tesla.post("/api/1/energy_sites/<site_id>/storm_mode")
def storm_mode(site_id: str) -> Response:
    """POST storm_mode {"enabled": bool}."""
    sim, powerwall = _site(site_id)
    enabled = _json_body().get("enabled")
    if not isinstance(enabled, bool):
        raise TeslaError(400, "invalid_field", "enabled must be a boolean")
    with sim.lock:
        powerwall.storm_mode_enabled = enabled
    return _command_result()


@tesla.post("/api/1/energy_sites/<site_id>/off_grid_vehicle_charging_reserve")
def off_grid_vehicle_charging_reserve(site_id: str) -> Response:
    """POST off_grid_vehicle_charging_reserve: accepted and ignored (no vehicle model)."""
    _site(site_id)  # 404 for an unknown site
    _json_body()
    return _command_result()


@tesla.get("/api/1/energy_sites/<site_id>/calendar_history")
def calendar_history(site_id: str) -> Response:
    """GET calendar_history?kind=energy|backup: energy the model integrated (hourly for a day, else daily)."""
    sim, powerwall = _site(site_id)
    kind = request.args.get("kind")
    period = request.args.get("period", "day")
    if kind not in ("energy", "backup"):
        raise TeslaError(400, "invalid_field", "kind must be energy or backup")
    if period not in ("day", "week", "month", "year", "lifetime"):
        raise TeslaError(400, "invalid_field", "period must be day, week, month, year or lifetime")
    if kind == "backup":
        return _envelope({"events": [], "total_events": 0})
    start, end = _time_arg("start_date"), _time_arg("end_date")
    with sim.lock:
        series = powerwall.energy_between(end or sim.now(), period, start)
    return _envelope({"period": period, "installation_time_zone": sim.tz.key, "time_series": series})


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as error:
        raise TeslaError(400, "invalid_field", f"{name} must be an RFC 3339 timestamp") from error
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=_sim().tz)


@tesla.post("/api/1/partner_accounts")
def partner_accounts() -> Response:
    """POST /api/1/partner_accounts {"domain": ...} with a partner token: registers this region."""
    domain = _json_body().get("domain")
    if not isinstance(domain, str) or not domain:
        raise TeslaError(400, "invalid_field", "domain is required")
    sim = _sim()
    with sim.lock:
        sim.partner_registered = True
        sim.partner_domains.append(domain)
    return _envelope({"client_id": identity.FLEET_CLIENT_ID, "domain": domain, "public_key": "simulated"})


@teslemetry_extra.get("/api/metadata")
def metadata() -> Response:
    """GET /api/metadata (Teslemetry): a bare object, no envelope."""
    return jsonify(
        {
            "uid": "sim-0000-user",
            "region": "NA",
            "scopes": ["openid", "offline_access", "user_data", "energy_device_data", "energy_cmds"],
            "vehicles": {},
            "energy_sites": {str(identity.TESLA_ENERGY_SITE_ID): {"access": True, "name": "Simulated Home"}},
        }
    )


@teslemetry_extra.get("/api/ping")
def ping() -> Response:
    """GET /api/ping (Teslemetry, no auth)."""
    return jsonify({"response": True})


@teslemetry_extra.get("/api/test")
def test() -> Response:
    """GET /api/test (Teslemetry auth check)."""
    return jsonify({"response": True})
