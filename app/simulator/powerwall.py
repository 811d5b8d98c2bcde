"""The simulated Powerwall site: settings, state of charge advanced with simulated time, power flows,
the stored tariff, and the site_info / live_status / products views of it.

Sign conventions are Tesla's: battery_power + discharging / - charging, grid_power + importing /
- exporting, so load = solar + battery + grid holds exactly."""
from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import identity
from .household import load_w, solar_w
from .tou_tariff import CompiledTariff, compile_tariff

CAPACITY_WH = 27000.0  # 2 x Powerwall 2
MAX_POWER_W = 10000.0  # 2 x 5 kW
STEP = timedelta(seconds=60)  # integration step
MAX_CATCH_UP = timedelta(days=7)  # a bigger clock jump only integrates its last week
MODES = ("autonomous", "self_consumption", "backup")
EXPORT_RULES = ("battery_ok", "pv_only", "never")


@dataclass(frozen=True)
class Flows:
    """Instantaneous power flows in W (Tesla signs)."""

    solar: float
    load: float
    battery: float
    grid: float


@dataclass
class Powerwall:
    """State of one Powerwall site; `advance(now)` integrates it up to `now`."""

    seed: int
    tz: ZoneInfo
    energy_wh: float = 0.6 * CAPACITY_WH
    backup_reserve_percent: int = 20
    mode: str = "autonomous"
    export_rule: str = "battery_ok"
    grid_charging_allowed: bool = True
    storm_mode_enabled: bool = False
    grid_up: bool = True
    tariff: dict | None = None
    last_update: datetime | None = None
    energy_history: dict[datetime, dict[str, float]] = field(default_factory=dict)  # Wh per local hour
    _compiled: CompiledTariff | None = field(default=None, repr=False)
    _day_prices: dict[date, tuple[list[float], list[float]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.tariff is None:
            self.set_tariff(default_site_tariff())

    @property
    def percentage_charged(self) -> float:
        """State of charge in %."""
        return self.energy_wh / CAPACITY_WH * 100

    def set_tariff(self, tariff: dict, compiled: CompiledTariff | None = None, *, owned: bool = False) -> None:
        """Store a (validated) tariff_content_v2 as the site's rate plan.

        `compiled` is `compile_tariff(tariff)` when the caller has it already; `owned` says the caller
        hands the document over (nobody else changes it), so no copy is needed."""
        self.tariff = tariff if owned else copy.deepcopy(tariff)
        self._compiled = compiled if compiled is not None else compile_tariff(self.tariff)
        self._day_prices.clear()

    def set_percentage(self, percent: float) -> None:
        """Set the state of charge directly (test control)."""
        self.energy_wh = max(0.0, min(100.0, percent)) / 100 * CAPACITY_WH

    # --- behaviour -----------------------------------------------------------------------------

    def _prices_of_day(self, day: date) -> tuple[list[float], list[float]]:
        if day not in self._day_prices:
            assert self._compiled is not None
            slots = [datetime(day.year, day.month, day.day) + timedelta(minutes=30 * i) for i in range(48)]
            buys = [self._compiled.buy_at(s) or 0.0 for s in slots]
            sells = [self._compiled.sell_at(s) for s in slots]
            self._day_prices[day] = (sorted(buys), sorted(sells))
        return self._day_prices[day]

    def price_signal(self, now: datetime) -> tuple[bool, bool]:
        """(buy price is among the day's cheapest, sell price is high) under the stored tariff."""
        if self._compiled is None:
            return False, False
        local = now.astimezone(self.tz).replace(tzinfo=None)
        buys, sells = self._prices_of_day(local.date())
        buy = self._compiled.buy_at(local) or 0.0
        sell = self._compiled.sell_at(local)
        # Quantiles alone would call every slot of a flat tariff "cheap"; require a real difference.
        cheap = buy <= buys[len(buys) // 4 - 1] and buy < statistics.median(buys)
        high = sell > 0 and sell >= sells[3 * len(sells) // 4] and sell >= 1.5 * statistics.median(sells)
        return cheap, high

    def flows_at(self, now: datetime, seconds: float) -> Flows:
        """Power flows at `now`, limited so that `seconds` of them keep the SoC within bounds."""
        solar = solar_w(self.seed, now, self.tz)
        load = load_w(self.seed, now, self.tz)
        if not self.grid_up:
            return self._islanded(solar, load, seconds)
        surplus = solar - load
        can_discharge = self.mode != "backup" and self.percentage_charged > self.backup_reserve_percent
        battery = _self_powered(surplus, can_discharge)
        if self.mode == "backup":
            battery = -MAX_POWER_W
        elif self.mode == "autonomous":
            cheap, high_sell = self.price_signal(now)
            if high_sell and can_discharge:
                battery = MAX_POWER_W
            elif cheap:
                battery = -MAX_POWER_W if self.grid_charging_allowed else min(0.0, -surplus)
        if battery < 0 and not self.grid_charging_allowed:
            battery = max(battery, -max(surplus, 0.0))  # charge from solar only
        if battery > 0 and self.export_rule != "battery_ok":
            battery = min(battery, max(-surplus, 0.0))  # battery may cover the home, not export
        battery = max(-MAX_POWER_W, min(MAX_POWER_W, battery))
        battery = self._within_energy_bounds(battery, seconds)
        grid = load - solar - battery
        if grid < 0 and self.export_rule == "never":
            solar += grid  # curtail solar instead of exporting
            grid = 0.0
        return Flows(solar=solar, load=load, battery=battery, grid=grid)

    def _islanded(self, solar: float, load: float, seconds: float) -> Flows:
        # Grid down: the reserve exists for this, so the battery may go to empty; what it cannot absorb
        # is curtailed, what it cannot supply is load the home goes without.
        wanted = max(-MAX_POWER_W, min(MAX_POWER_W, load - solar))
        battery = self._within_energy_bounds(wanted, seconds, floor_wh=0.0)
        if battery < load - solar:
            load = solar + battery
        else:
            solar = load - battery
        return Flows(solar=solar, load=load, battery=battery, grid=0.0)

    def _within_energy_bounds(self, battery: float, seconds: float, floor_wh: float | None = None) -> float:
        if floor_wh is None:
            floor_wh = 0.0 if self.mode == "backup" else self.backup_reserve_percent / 100 * CAPACITY_WH
        if battery > 0:
            return min(battery, max(0.0, (self.energy_wh - floor_wh) * 3600 / seconds))
        return max(battery, -max(0.0, (CAPACITY_WH - self.energy_wh) * 3600 / seconds))

    def advance(self, now: datetime) -> None:
        """Integrate energy flows from the last update to `now` (a clock moved back just resyncs)."""
        if self.last_update is None or now <= self.last_update:
            self.last_update = now
            return
        moment = max(self.last_update, now - MAX_CATCH_UP)
        while moment < now:
            step = min(STEP, now - moment)
            seconds = step.total_seconds()
            flows = self.flows_at(moment, seconds)
            self.energy_wh = max(0.0, min(CAPACITY_WH, self.energy_wh - flows.battery * seconds / 3600))
            self._record(moment, flows, seconds)
            moment += step
        self.last_update = now

    def _record(self, moment: datetime, flows: Flows, seconds: float) -> None:
        # Five-minute buckets, as Tesla's day history comes (and as Amber's meter bills).
        local = moment.astimezone(self.tz)
        bucket = local.replace(minute=local.minute - local.minute % 5, second=0, microsecond=0)
        totals = self.energy_history.setdefault(bucket, dict.fromkeys(ENERGY_KEYS, 0.0))
        for key, watts in energy_split(flows).items():
            totals[key] += watts * seconds / 3600

    def metered_kwh(self, start: datetime, minutes: int) -> tuple[float, float] | None:
        """Grid import and export (kWh) the Powerwall's history recorded in [start, start + minutes), or None
        when the model has not run through all of it (the meter then falls back to the household curves)."""
        if self.last_update is None or start + timedelta(minutes=minutes) > self.last_update:
            return None
        imported = exported = 0.0
        for k in range(minutes // 5):
            totals = self.energy_history.get((start + timedelta(minutes=5 * k)).astimezone(self.tz))
            if totals is None:
                return None
            imported += totals["grid_energy_imported"]
            exported += totals["total_grid_energy_exported"]
        return imported / 1000, exported / 1000

    def energy_between(self, end: datetime, period: str, start: datetime | None = None) -> list[dict[str, object]]:
        """calendar_history rows from `start` (default: the local day of `end`) up to `end`, in Wh:
        five-minute rows for period "day" (as Tesla's day history comes), daily otherwise."""
        local_end = end.astimezone(self.tz)
        first = _local_midnight(local_end) if start is None else start.astimezone(self.tz)
        first = first.replace(minute=first.minute - first.minute % 5, second=0, microsecond=0)
        rows: dict[datetime, dict[str, float]] = {}
        for bucket, totals in sorted(self.energy_history.items()):
            if not first <= bucket <= local_end:
                continue
            key = bucket if period == "day" else _local_midnight(bucket)
            bucket = rows.setdefault(key, dict.fromkeys(ENERGY_KEYS, 0.0))
            for name, value in totals.items():
                bucket[name] += value
        return [
            {"timestamp": key.isoformat(), **{name: round(value, 2) for name, value in totals.items()}}
            for key, totals in rows.items()
        ]

    # --- wire views ----------------------------------------------------------------------------

    def live_status(self, now: datetime) -> dict[str, object]:
        """`live_status` response body (inside the envelope); integer W, exact power balance."""
        flows = self.flows_at(now, STEP.total_seconds())
        solar, load, battery = round(flows.solar), round(flows.load), round(flows.battery)
        return {
            "solar_power": solar,
            "energy_left": round(self.energy_wh, 1),
            "total_pack_energy": int(CAPACITY_WH),
            "percentage_charged": self.percentage_charged,
            "backup_capable": True,
            "battery_power": battery,
            "load_power": load,
            "grid_status": "Active" if self.grid_up else "Inactive",
            "grid_services_active": False,
            "grid_power": load - solar - battery,
            "grid_services_power": 0,
            "generator_power": 0,
            "island_status": "on_grid" if self.grid_up else "off_grid_unintentional",
            "storm_mode_active": False,
            "timestamp": now.astimezone(self.tz).replace(microsecond=0).isoformat(),
            "wall_connectors": [],
        }

    def site_info(self) -> dict[str, object]:
        """`site_info` response body: the AU fixture's shape with the live settings and tariff."""
        info = copy.deepcopy(SITE_INFO_TEMPLATE)
        info["backup_reserve_percent"] = self.backup_reserve_percent
        info["default_real_mode"] = self.mode
        info["installation_time_zone"] = self.tz.key
        info["user_settings"]["storm_mode_enabled"] = self.storm_mode_enabled
        components = info["components"]
        components["customer_preferred_export_rule"] = self.export_rule
        components["net_meter_mode"] = self.export_rule
        if self.export_rule == "never":
            components["non_export_configured"] = True
        if not self.grid_charging_allowed:
            components["disallow_charge_from_grid_with_solar_installed"] = True  # absent when allowed
        if self.tariff is not None:
            info["tariff_content_v2"] = copy.deepcopy(self.tariff)
        return info

    def product(self, now: datetime) -> dict[str, object]:
        """The energy-site element of `/api/1/products`."""
        return {
            "energy_site_id": identity.TESLA_ENERGY_SITE_ID,
            "resource_type": "battery",
            "site_name": "Simulated Home",
            "id": SITE_INFO_TEMPLATE["id"],
            "gateway_id": "1232100-00-E--TG000000000001",
            "asset_site_id": SITE_INFO_TEMPLATE["asset_site_id"],
            "warp_site_number": "STE20240314-00123",
            "energy_left": round(self.energy_wh, 1),
            "total_pack_energy": int(CAPACITY_WH),
            "percentage_charged": self.percentage_charged,
            "battery_type": "ac_powerwall",
            "backup_capable": True,
            "battery_power": round(self.flows_at(now, STEP.total_seconds()).battery),
            "storm_mode_enabled": self.storm_mode_enabled,
            "powerwall_onboarding_settings_set": True,
            "sync_grid_alert_enabled": True,
            "breaker_alert_enabled": False,
            "components": {
                "battery": True,
                "battery_type": "ac_powerwall",
                "solar": True,
                "solar_type": "pv_panel",
                "grid": True,
                "load_meter": True,
                "market_type": "residential",
                "wall_connectors": [],
            },
            "features": {"rate_plan_manager_no_pricing_constraint": True},
        }

    def state(self) -> dict[str, object]:
        """Everything about the site, for `GET /_sim/state`."""
        return {
            "percentage_charged": self.percentage_charged,
            "energy_left_wh": self.energy_wh,
            "capacity_wh": CAPACITY_WH,
            "max_power_w": MAX_POWER_W,
            "backup_reserve_percent": self.backup_reserve_percent,
            "default_real_mode": self.mode,
            "customer_preferred_export_rule": self.export_rule,
            "grid_charging_allowed": self.grid_charging_allowed,
            "storm_mode_enabled": self.storm_mode_enabled,
            "grid_up": self.grid_up,
            "last_update": self.last_update.isoformat() if self.last_update else None,
            "tariff_content_v2": self.tariff,
            "energy_today_wh": self.energy_between(self.last_update, "month")[0] if self.energy_history else None,
        }


def _local_midnight(local: datetime) -> datetime:
    return datetime(local.year, local.month, local.day, tzinfo=local.tzinfo)


def energy_split(flows: Flows) -> dict[str, float]:
    """Who fed whom, in W, with solar serving the home first, then the battery, then the grid."""
    charge, discharge = max(-flows.battery, 0.0), max(flows.battery, 0.0)
    solar_to_home = min(flows.solar, flows.load)
    solar_to_battery = min(flows.solar - solar_to_home, charge)
    solar_to_grid = flows.solar - solar_to_home - solar_to_battery
    battery_to_home = min(discharge, flows.load - solar_to_home)
    battery_to_grid = discharge - battery_to_home
    grid_to_home = flows.load - solar_to_home - battery_to_home
    grid_to_battery = charge - solar_to_battery
    return {
        "solar_energy_exported": flows.solar,
        "grid_energy_imported": grid_to_home + grid_to_battery,
        "grid_energy_exported_from_solar": solar_to_grid,
        "grid_energy_exported_from_battery": battery_to_grid,
        "battery_energy_exported": discharge,
        "battery_energy_imported_from_grid": grid_to_battery,
        "battery_energy_imported_from_solar": solar_to_battery,
        "consumer_energy_imported_from_grid": grid_to_home,
        "consumer_energy_imported_from_solar": solar_to_home,
        "consumer_energy_imported_from_battery": battery_to_home,
        "total_home_usage": flows.load,
        "total_battery_charge": charge,
        "total_battery_discharge": discharge,
        "total_solar_generation": flows.solar,
        "total_grid_energy_exported": solar_to_grid + battery_to_grid,
    }


def _self_powered(surplus: float, can_discharge: bool) -> float:
    if surplus >= 0:
        return -min(surplus, MAX_POWER_W)
    return min(-surplus, MAX_POWER_W) if can_discharge else 0.0


ENERGY_KEYS = tuple(energy_split(Flows(0.0, 0.0, 0.0, 0.0)))


def _periods(*windows: tuple[int, int]) -> dict[str, list[dict[str, int]]]:
    return {
        "periods": [
            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": start, "fromMinute": 0, "toHour": end, "toMinute": 0}
            for start, end in windows
        ]
    }


def default_site_tariff() -> dict:
    """The plan the site starts with (what the app backs up before overwriting): a flat-feed-in ToU plan."""
    tou_periods = {
        "OFF_PEAK": _periods((22, 7)),
        "SHOULDER": _periods((7, 15), (21, 22)),
        "ON_PEAK": _periods((15, 21)),
    }
    seasons = {"All Year": {"fromMonth": 1, "fromDay": 1, "toMonth": 12, "toDay": 31, "tou_periods": tou_periods}}
    return {
        "version": 1,
        "code": "SIM:RETAILER-TOU",
        "name": "Retailer Time of Use",
        "utility": "Simulated Energy Retailer",
        "currency": "AUD",
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "All Year": {}},
        "energy_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "All Year": {"rates": {"OFF_PEAK": 0.2211, "SHOULDER": 0.3052, "ON_PEAK": 0.5467}},
        },
        "seasons": seasons,
        "sell_tariff": {
            "name": "Retailer feed-in",
            "utility": "Simulated Energy Retailer",
            "daily_charges": [{"name": "Charge", "amount": 0}],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "All Year": {}},
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "All Year": {"rates": {"OFF_PEAK": 0.05, "SHOULDER": 0.05, "ON_PEAK": 0.05}},
            },
            "seasons": copy.deepcopy(seasons),
        },
    }


def _battery(serial: str) -> dict[str, object]:
    return {
        "device_id": f"00000000-0000-4000-8000-00000000000{serial[-1]}",
        "din": f"3012170-10-B--{serial}",
        "serial_number": serial,
        "part_number": "3012170-10-B",
        "part_type": 2,
        "part_name": "Powerwall 2",
        "nameplate_max_charge_power": 5000,
        "nameplate_max_discharge_power": 5000,
        "nameplate_energy": 13500,
    }


SITE_INFO_TEMPLATE: dict = {
    "id": "STE20240314-00123",
    "site_name": "Simulated Home",
    "asset_site_id": "a1b2c3d4-0000-4000-8000-00000000abcd",
    "backup_reserve_percent": 20,
    "default_real_mode": "autonomous",
    "installation_date": "2024-03-14T10:21:07+11:00",
    "user_settings": {
        "go_off_grid_test_banner_enabled": False,
        "storm_mode_enabled": False,
        "powerwall_onboarding_settings_set": True,
        "powerwall_tesla_electric_interested_in": False,
        "vpp_tour_enabled": True,
        "sync_grid_alert_enabled": True,
        "breaker_alert_enabled": False,
    },
    "components": {
        "solar": True,
        "solar_type": "pv_panel",
        "battery": True,
        "grid": True,
        "backup": True,
        "gateway": "teg",
        "load_meter": True,
        "tou_capable": True,
        "storm_mode_capable": True,
        "flex_energy_request_capable": False,
        "car_charging_data_supported": False,
        "off_grid_vehicle_charging_reserve_supported": True,
        "battery_type": "ac_powerwall",
        "configurable": True,
        "grid_services_enabled": False,
        "gateways": [
            {
                "device_id": "00000000-0000-4000-8000-000000000001",
                "din": "1232100-00-E--TG000000000001",
                "serial_number": "TG000000000001",
                "part_number": "1232100-00-E",
                "part_type": 10,
                "part_name": "Tesla Backup Gateway 2",
                "is_active": True,
                "site_id": "a1b2c3d4-0000-4000-8000-00000000abcd",
                "firmware_version": "25.18.4 1e5c1a2b",
                "updated_datetime": "2025-11-02T03:11:45.000Z",
            }
        ],
        "batteries": [_battery("TG000000000002"), _battery("TG000000000003")],
        "wall_connectors": [],
        "customer_preferred_export_rule": "battery_ok",
        "net_meter_mode": "battery_ok",
        "system_alerts_enabled": True,
    },
    "version": "25.18.4 1e5c1a2b",
    "battery_count": 2,
    "tou_settings": {"optimization_strategy": "economics", "schedule": []},
    "nameplate_power": 10000,
    "nameplate_energy": 27000,
    "installation_time_zone": identity.SITE_TIME_ZONE,
    "max_site_meter_power_ac": 1000000000,
    "min_site_meter_power_ac": -1000000000,
    "vpp_backup_reserve_percent": 0,
}
