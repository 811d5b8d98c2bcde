"""Pure: the MQTT topics, Home Assistant discovery configs and state payloads of a household, and what an
incoming command means. Plain data in, (topic, payload, retain) out; nothing of Flask, the database or paho."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

ROOT = "tesla_amber_sync"  # our own topics: states, commands and the availability of the app
AVAILABILITY_TOPIC = f"{ROOT}/status"
ONLINE, OFFLINE = "online", "offline"
PRESS = "PRESS"
MANUFACTURER = "Tesla-Amber-Sync"
MODEL = "Amber price sync for Powerwall"
DEFAULT_FORCE_MINUTES = 60
FORCE_MINUTES_STEP = 15

# Buttons: object id -> (name, what pressing it does: an action of app.control, or "cancel").
BUTTONS: dict[str, tuple[str, str]] = {
    "force_charge": ("Force charge", "force_charge"),
    "force_discharge": ("Force discharge", "force_discharge"),
    "cancel_force": ("Cancel force", "cancel"),
}

MODE_WORDS = {"self_consumption": "Self-powered", "autonomous": "Time-based control", "backup": "Backup only"}


class Message(NamedTuple):
    """One MQTT publication."""

    topic: str
    payload: str
    retain: bool = True


@dataclass(frozen=True)
class Sensor:
    """One sensor of the household's device: its key in the state payload and its Home Assistant config."""

    key: str
    name: str
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    icon: str | None = None
    precision: int | None = None


# Prices in AUD/kWh as Home Assistant's Amber integration shows them. No device_class: "monetary" allows only
# state_class "total", and a price is a measurement (it goes up and down), which is what graphs need.
SENSORS: tuple[Sensor, ...] = (
    Sensor("general_price", "General price", "AUD/kWh", None, "measurement", "mdi:cash", 4),
    Sensor("feed_in_price", "Feed-in price", "AUD/kWh", None, "measurement", "mdi:cash-plus", 4),
    # A forecast is no measurement (Home Assistant's statistics would average predictions as if they happened).
    Sensor("next_general_price", "General price next half hour", "AUD/kWh", None, None, "mdi:cash-clock", 4),
    Sensor("renewables", "Renewables", "%", None, "measurement", "mdi:leaf", 0),
    Sensor("battery_level", "Battery level", "%", "battery", "measurement", None, 0),
    Sensor("solar_power", "Solar power", "W", "power", "measurement", None, 0),
    Sensor("home_power", "Home power", "W", "power", "measurement", None, 0),
    Sensor("battery_power", "Battery power", "W", "power", "measurement", None, 0),  # + discharging, - charging
    Sensor("grid_power", "Grid power", "W", "power", "measurement", None, 0),  # + importing, - exporting
    Sensor("operation_mode", "Operation mode", icon="mdi:home-battery"),
    Sensor("backup_reserve", "Backup reserve", "%", None, "measurement", "mdi:battery-lock", 0),
    Sensor("force_session", "Force session", icon="mdi:battery-sync"),
    Sensor("last_sync_outcome", "Last sync outcome", icon="mdi:sync"),
    Sensor("last_sync_at", "Last sync", device_class="timestamp"),
)
BINARY_SENSORS: tuple[Sensor, ...] = (Sensor("spike", "Price spike", None, None, None, "mdi:flash-alert"),)


@dataclass(frozen=True)
class HouseholdState:
    """What Home Assistant shows for one household, as plain values (None: unknown)."""

    general_price: float | None = None  # AUD/kWh
    feed_in_price: float | None = None  # AUD/kWh earned per exported kWh (negative: exporting costs)
    next_general_price: float | None = None
    renewables: float | None = None  # %
    spike: bool = False
    battery_level: float | None = None  # %
    solar_power: float | None = None  # W
    home_power: float | None = None
    battery_power: float | None = None  # + discharging, - charging
    grid_power: float | None = None  # + importing, - exporting
    operation_mode: str | None = None  # Tesla's name (self_consumption, autonomous, backup)
    backup_reserve: float | None = None  # %
    force_session: str | None = None  # e.g. "Force charge until 15:12"; None when none runs
    last_sync_outcome: str | None = None  # pushed | unchanged | skipped | failed
    last_sync_at: datetime | None = None


def node_id(household_id: int) -> str:
    """The household's part of every discovery topic and unique_id."""
    return f"{ROOT}_household_{int(household_id)}"


def base_topic(household_id: int) -> str:
    """Where the household's state and commands live."""
    return f"{ROOT}/household_{int(household_id)}"


def state_topic(household_id: int) -> str:
    return f"{base_topic(household_id)}/state"


def button_topic(household_id: int, button: str) -> str:
    return f"{base_topic(household_id)}/{button}/press"


def minutes_command_topic(household_id: int) -> str:
    return f"{base_topic(household_id)}/force_minutes/set"


def minutes_state_topic(household_id: int) -> str:
    return f"{base_topic(household_id)}/force_minutes/state"


# What the bridge subscribes to: every household's buttons and minutes, and the retained minutes (read back
# after a restart or a change of leader, so the broker keeps them and the database needs no column).
COMMAND_SUBSCRIPTIONS = (f"{ROOT}/+/+/press", f"{ROOT}/+/force_minutes/set", f"{ROOT}/+/force_minutes/state")


def _device(household_id: int, name: str, configuration_url: str | None) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [node_id(household_id)],
        "name": name,
        "manufacturer": MANUFACTURER,
        "model": MODEL,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url
    return device


def _config_topic(prefix: str, component: str, household_id: int, object_id: str) -> str:
    return f"{prefix}/{component}/{node_id(household_id)}/{object_id}/config"


def _common(household_id: int, object_id: str, name: str, device: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{node_id(household_id)}_{object_id}",
        "device": device,
        "availability_topic": AVAILABILITY_TOPIC,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "origin": {"name": MANUFACTURER},
    }


def discovery_configs(
    prefix: str, household_id: int, name: str, configuration_url: str | None = None
) -> dict[str, dict[str, Any]]:
    """Discovery config topic -> config, for every entity of the household's device."""
    device = _device(household_id, name, configuration_url)
    configs: dict[str, dict[str, Any]] = {}
    for sensor in SENSORS:
        config = _common(household_id, sensor.key, sensor.name, device)
        config.update(state_topic=state_topic(household_id), value_template=f"{{{{ value_json.{sensor.key} }}}}")
        for field_name, value in (("unit_of_measurement", sensor.unit), ("device_class", sensor.device_class),
                                  ("state_class", sensor.state_class), ("icon", sensor.icon),
                                  ("suggested_display_precision", sensor.precision)):
            if value is not None:
                config[field_name] = value
        configs[_config_topic(prefix, "sensor", household_id, sensor.key)] = config
    for sensor in BINARY_SENSORS:
        config = _common(household_id, sensor.key, sensor.name, device)
        config.update(state_topic=state_topic(household_id), value_template=f"{{{{ value_json.{sensor.key} }}}}",
                      payload_on="ON", payload_off="OFF", icon=sensor.icon)
        configs[_config_topic(prefix, "binary_sensor", household_id, sensor.key)] = config
    for button, (label, _) in BUTTONS.items():
        config = _common(household_id, button, label, device)
        config.update(command_topic=button_topic(household_id, button), payload_press=PRESS,
                      icon="mdi:battery-off" if button == "cancel_force" else "mdi:battery-charging")
        configs[_config_topic(prefix, "button", household_id, button)] = config
    minutes = _common(household_id, "force_minutes", "Force minutes", device)
    minutes.update(
        command_topic=minutes_command_topic(household_id), state_topic=minutes_state_topic(household_id),
        min=MIN_MINUTES, max=MAX_MINUTES, step=FORCE_MINUTES_STEP, mode="box", unit_of_measurement="min",
        icon="mdi:timer-outline",
    )
    configs[_config_topic(prefix, "number", household_id, "force_minutes")] = minutes
    return configs


def discovery_messages(prefix: str, household_id: int, name: str, configuration_url: str | None = None) -> list[Message]:
    """The retained discovery config messages that make the household's device appear in Home Assistant."""
    return [Message(topic, json.dumps(config, sort_keys=True))
            for topic, config in discovery_configs(prefix, household_id, name, configuration_url).items()]


def removal_messages(prefix: str, household_id: int) -> list[Message]:
    """Empty retained configs: Home Assistant removes the device (sync turned off); the retained state goes too."""
    topics = list(discovery_configs(prefix, household_id, "-"))
    return [Message(topic, "") for topic in topics] + [Message(state_topic(household_id), "")]


def _rounded(value: float | None, places: int) -> float | None:
    return None if value is None else round(float(value), places)


def state_payload(state: HouseholdState) -> dict[str, Any]:
    """The JSON the sensors read (value_json.<key>); None renders as "None", which Home Assistant shows as unknown."""
    values = asdict(state)
    for key in ("general_price", "feed_in_price", "next_general_price"):
        values[key] = _rounded(values[key], 5)
    for key in ("renewables", "battery_level", "solar_power", "home_power", "battery_power", "grid_power", "backup_reserve"):
        values[key] = _rounded(values[key], 1)
    values["spike"] = "ON" if state.spike else "OFF"
    values["operation_mode"] = MODE_WORDS.get(state.operation_mode, state.operation_mode) if state.operation_mode else None
    values["force_session"] = state.force_session or "None running"
    at = state.last_sync_at
    values["last_sync_at"] = at.astimezone(timezone.utc).isoformat() if at is not None else None
    return values


def state_message(household_id: int, state: HouseholdState) -> Message:
    """The retained state message of one household."""
    return Message(state_topic(household_id), json.dumps(state_payload(state), sort_keys=True))


def minutes_message(household_id: int, minutes: int) -> Message:
    """The retained state of the household's force-minutes number."""
    return Message(minutes_state_topic(household_id), str(int(minutes)))


def cents_to_dollars(cents: float | None) -> float | None:
    """Amber's c/kWh -> AUD/kWh."""
    return None if cents is None else cents / 100


# -- incoming ------------------------------------------------------------------------------------------------

MIN_MINUTES, MAX_MINUTES = 15, 240  # as app.control.rules (checked by a test; imported there would pull models in)
_TOPIC = re.compile(rf"{ROOT}/household_([0-9]{{1,12}})/([a-z_]+)/(press|set|state)")


class Command(NamedTuple):
    """What an incoming message asks: press a button, set the minutes, or (retained) what the minutes are."""

    household_id: int
    kind: str  # press | set_minutes | minutes
    button: str | None = None  # for a press: a key of BUTTONS
    minutes: int | None = None


def parse_minutes(payload: str) -> int:
    """Home Assistant's number payload ("60", "60.0") -> whole minutes in range, else ValueError."""
    value = float(payload.strip())
    if value != int(value) or not MIN_MINUTES <= value <= MAX_MINUTES:
        raise ValueError(f"force minutes must be a whole number from {MIN_MINUTES} to {MAX_MINUTES}")
    return int(value)


def parse_command(topic: str, payload: str) -> Command | None:
    """What a message on one of COMMAND_SUBSCRIPTIONS means, or None when it means nothing (ignored)."""
    match = _TOPIC.fullmatch(topic)
    if match is None:
        return None
    household_id, entity, verb = int(match.group(1)), match.group(2), match.group(3)
    if verb == "press":
        return Command(household_id, "press", entity) if entity in BUTTONS and payload.strip() == PRESS else None
    if entity != "force_minutes":
        return None
    try:
        minutes = parse_minutes(payload)
    except ValueError:
        return None
    return Command(household_id, "set_minutes" if verb == "set" else "minutes", minutes=minutes)
