"""Home Assistant over MQTT: the pure payloads table-driven, then the bridge against a real mosquitto broker
(started per test on a free port), the sync simulator as the Powerwall and Amber through `responses`."""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from app import control
from app.extensions import db as _db
from app.models import ControlEvent, ForceSession, Household
from app.mqtt import bridge as mqtt_bridge
from app.mqtt import messages
from app.mqtt.messages import HouseholdState
from app.sync import scheduler
from config import ConfigError, config_for, parse_mqtt_url
from tests.sync_env import SHARED, configure, env, simulator  # noqa: F401  (fixtures)

PASSWORD = "s3cret-broker-pw"
MOSQUITTO = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
WAIT = 15.0  # seconds: the most any condition below is waited for (they normally hold within milliseconds)


# -- pure: configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        ("mqtt://ha:pw@broker.local:1883", "broker.local", 1883, False, "ha", "pw"),
        ("mqtt://broker.local", "broker.local", 1883, False, None, None),
        ("mqtts://ha:p%40ss@broker.local", "broker.local", 8883, True, "ha", "p@ss"),
        ("mqtts://10.0.0.5:9999/", "10.0.0.5", 9999, True, None, None),
    ],
)
def test_mqtt_url_is_parsed(url, host, port, tls, user, password):
    broker = parse_mqtt_url(url)
    assert (broker.host, broker.port, broker.tls, broker.username, broker.password) == (host, port, tls, user, password)
    assert broker.where == f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
    assert password is None or password not in repr(broker)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://ha:hunter2@broker:1883", "must start with mqtt:// or mqtts://"),
        ("tcp://ha:hunter2@broker", "must start with mqtt:// or mqtts://"),
        ("mqtt://ha:hunter2@broker:notaport", "invalid port"),
        ("mqtt://ha:hunter2@:1883", "no host"),
        ("mqtt://ha:hunter2@broker:1883/topic", "only mqtt(s)://"),
    ],
)
def test_a_bad_mqtt_url_is_a_config_error_without_the_password(monkeypatch, url, words):
    monkeypatch.setenv("MQTT_URL", url)
    with pytest.raises(ConfigError) as caught:
        config_for("testing")
    assert words in str(caught.value) and "MQTT_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value.__cause__)


def test_mqtt_is_off_by_default_with_home_assistants_prefix(monkeypatch):
    monkeypatch.delenv("MQTT_URL", raising=False)
    monkeypatch.delenv("MQTT_DISCOVERY_PREFIX", raising=False)
    config = config_for("testing")
    assert config.MQTT_URL is None and config.MQTT_DISCOVERY_PREFIX == "homeassistant"
    monkeypatch.setenv("MQTT_DISCOVERY_PREFIX", "ha/discovery/")
    assert config_for("testing").MQTT_DISCOVERY_PREFIX == "ha/discovery"
    monkeypatch.setenv("MQTT_DISCOVERY_PREFIX", "home#assistant")
    with pytest.raises(ConfigError, match="MQTT_DISCOVERY_PREFIX"):
        config_for("testing")


def test_env_example_documents_the_mqtt_settings():
    lines = (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines()
    for name in ("MQTT_URL", "MQTT_DISCOVERY_PREFIX"):
        index = next((i for i, line in enumerate(lines) if line.startswith(f"{name}=")), None)
        assert index is not None and lines[index - 1].startswith("# "), f"{name} is not documented in .env.example"


# -- pure: discovery, states, commands -----------------------------------------------------------------------


def test_minutes_range_is_force_controls():
    assert (messages.MIN_MINUTES, messages.MAX_MINUTES) == (control.MIN_MINUTES, control.MAX_MINUTES)


CONFIGS = messages.discovery_configs("homeassistant", 7, "Alice's home", "https://sync.example/")


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("homeassistant/sensor/tesla_amber_sync_household_7/general_price/config",
         {"name": "General price", "unit_of_measurement": "AUD/kWh", "state_class": "measurement",
          "value_template": "{{ value_json.general_price }}", "state_topic": "tesla_amber_sync/household_7/state"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/feed_in_price/config",
         {"unit_of_measurement": "AUD/kWh", "state_class": "measurement"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/next_general_price/config",
         {"unit_of_measurement": "AUD/kWh", "state_class": None}),  # a forecast is no measurement
        ("homeassistant/sensor/tesla_amber_sync_household_7/renewables/config", {"unit_of_measurement": "%"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/battery_level/config",
         {"device_class": "battery", "unit_of_measurement": "%"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/grid_power/config",
         {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/operation_mode/config", {"name": "Operation mode"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/backup_reserve/config", {"unit_of_measurement": "%"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/last_sync_outcome/config", {"name": "Last sync outcome"}),
        ("homeassistant/sensor/tesla_amber_sync_household_7/last_sync_at/config", {"device_class": "timestamp"}),
        ("homeassistant/binary_sensor/tesla_amber_sync_household_7/spike/config",
         {"payload_on": "ON", "payload_off": "OFF", "value_template": "{{ value_json.spike }}"}),
        ("homeassistant/button/tesla_amber_sync_household_7/force_charge/config",
         {"name": "Force charge", "payload_press": "PRESS", "command_topic": "tesla_amber_sync/household_7/force_charge/press"}),
        ("homeassistant/button/tesla_amber_sync_household_7/force_discharge/config", {"name": "Force discharge"}),
        ("homeassistant/button/tesla_amber_sync_household_7/cancel_force/config",
         {"name": "Cancel force", "command_topic": "tesla_amber_sync/household_7/cancel_force/press"}),
        ("homeassistant/number/tesla_amber_sync_household_7/force_minutes/config",
         {"min": 15, "max": 240, "unit_of_measurement": "min", "command_topic": "tesla_amber_sync/household_7/force_minutes/set",
          "state_topic": "tesla_amber_sync/household_7/force_minutes/state"}),
    ],
)
def test_discovery_config(topic, expected):
    config = CONFIGS[topic]
    assert {k: config.get(k) for k in expected} == expected
    object_id = topic.split("/")[3]
    assert config["unique_id"] == f"tesla_amber_sync_household_7_{object_id}"
    assert config["device"] == {"identifiers": ["tesla_amber_sync_household_7"], "name": "Alice's home",
                                "manufacturer": "Tesla-Amber-Sync", "model": "Amber price sync for Powerwall",
                                "configuration_url": "https://sync.example/"}
    assert config["availability_topic"] == "tesla_amber_sync/status"
    # Home Assistant refuses device_class monetary with state_class measurement.
    assert not (config.get("device_class") == "monetary" and config.get("state_class") == "measurement")


def test_every_entity_has_its_own_unique_id_and_removal_clears_them_all():
    assert len(CONFIGS) == len(messages.SENSORS) + len(messages.BINARY_SENSORS) + len(messages.BUTTONS) + 1
    assert len({c["unique_id"] for c in CONFIGS.values()}) == len(CONFIGS)
    removal = messages.removal_messages("homeassistant", 7)
    assert {m.topic for m in removal} == set(CONFIGS) | {"tesla_amber_sync/household_7/state"}
    assert all(m.payload == "" and m.retain for m in removal)


AT = datetime(2026, 11, 24, 3, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (HouseholdState(), {"general_price": None, "spike": "OFF", "battery_level": None, "operation_mode": None,
                            "force_session": "None running", "last_sync_at": None, "last_sync_outcome": None}),
        (HouseholdState(general_price=0.301234567, feed_in_price=-0.05, next_general_price=1.5, spike=True, renewables=41.26),
         {"general_price": 0.30123, "feed_in_price": -0.05, "next_general_price": 1.5, "spike": "ON", "renewables": 41.3}),
        (HouseholdState(battery_level=81.449, battery_power=-3300.04, grid_power=120.0, operation_mode="autonomous",
                        backup_reserve=20.0),
         {"battery_level": 81.4, "battery_power": -3300.0, "grid_power": 120.0, "operation_mode": "Time-based control",
          "backup_reserve": 20.0}),
        (HouseholdState(operation_mode="self_consumption", force_session="Force charge until 15:12",
                        last_sync_outcome="pushed", last_sync_at=AT.astimezone(timezone(timedelta(hours=11)))),
         {"operation_mode": "Self-powered", "force_session": "Force charge until 15:12", "last_sync_outcome": "pushed",
          "last_sync_at": "2026-11-24T03:10:00+00:00"}),
    ],
)
def test_state_payload(state, expected):
    message = messages.state_message(3, state)
    assert message.topic == "tesla_amber_sync/household_3/state" and message.retain
    payload = json.loads(message.payload)
    assert {k: payload[k] for k in expected} == expected
    assert {s.key for s in messages.SENSORS + messages.BINARY_SENSORS} <= set(payload)


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("tesla_amber_sync/household_4/force_charge/press", "PRESS", messages.Command(4, "press", "force_charge")),
        ("tesla_amber_sync/household_4/cancel_force/press", "PRESS", messages.Command(4, "press", "cancel_force")),
        ("tesla_amber_sync/household_4/force_charge/press", "press", None),
        ("tesla_amber_sync/household_4/explode/press", "PRESS", None),
        ("tesla_amber_sync/household_4/force_minutes/set", "45", messages.Command(4, "set_minutes", minutes=45)),
        ("tesla_amber_sync/household_4/force_minutes/set", "90.0", messages.Command(4, "set_minutes", minutes=90)),
        ("tesla_amber_sync/household_4/force_minutes/state", "30", messages.Command(4, "minutes", minutes=30)),
        ("tesla_amber_sync/household_4/force_minutes/set", "10", None),
        ("tesla_amber_sync/household_4/force_minutes/set", "241", None),
        ("tesla_amber_sync/household_4/force_minutes/set", "20.5", None),
        ("tesla_amber_sync/household_4/force_minutes/set", "nan", None),
        ("tesla_amber_sync/household_x/force_charge/press", "PRESS", None),
        ("other/household_4/force_charge/press", "PRESS", None),
    ],
)
def test_parse_command(topic, payload, expected):
    assert messages.parse_command(topic, payload) == expected


# -- a real broker ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def broker(tmp_path):
    """A mosquitto of its own on a free port (anonymous, no persistence): its port."""
    yield from run_mosquitto(tmp_path, "allow_anonymous true\n")


def run_mosquitto(tmp_path, settings: str):
    if MOSQUITTO is None:
        why = "mosquitto is not installed (Debian: apt-get install mosquitto); the MQTT broker tests need it"
        if os.environ.get("REQUIRE_MOSQUITTO", "").strip() == "1":  # CI (.ci/run) installs it: missing is a failure
            pytest.fail(f"REQUIRE_MOSQUITTO=1 but {why}", pytrace=False)
        pytest.skip(why)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\npersistence false\n{settings}")
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT
    while True:  # until it accepts connections (each attempt waits for the kernel's answer, not a fixed time)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"mosquitto did not start: {process.stderr.read().decode(errors='replace')}")
    try:
        yield port
    finally:  # also when the generator is closed (a test's own brokers.close() raises GeneratorExit at the yield)
        process.terminate()
        process.wait(timeout=10)


class Watcher:
    """A Home Assistant stand-in: subscribes to everything, keeps the last message per topic, waits for conditions."""

    def __init__(self, port: int) -> None:
        self.latest: dict[str, mqtt.MQTTMessage] = {}
        self.retained: dict[str, mqtt.MQTTMessage] = {}  # what the broker had kept when this watcher subscribed
        self.condition = threading.Condition()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{port}-{id(self)}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("#", 1)])
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(WAIT), "the watcher could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.condition:
            self.latest[message.topic] = message
            if message.retain:
                self.retained[message.topic] = message
            self.condition.notify_all()

    def wait(self, topic: str, test=lambda payload: True, timeout: float = WAIT, *, retained: bool = False) -> str:
        """The payload on `topic` once `test(payload)` holds (the latest message, or with `retained` the one the
        broker had kept for a new subscriber)."""
        seen = self.retained if retained else self.latest

        def found():
            message = seen.get(topic)
            return message is not None and test(message.payload.decode())

        with self.condition:
            assert self.condition.wait_for(found, timeout), (
                f"{topic}: {seen[topic].payload.decode() if topic in seen else 'nothing retained' if retained else 'nothing'}")
            return seen[topic].payload.decode()

    def state(self, household_id: int, test=lambda state: True) -> dict:
        return json.loads(self.wait(messages.state_topic(household_id), lambda p: bool(p) and test(json.loads(p))))

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def ha(app, env, broker):  # noqa: F811
    """MQTT on for the app (with a password in the URL), and a watcher on the broker; the leader bridge is closed after."""
    app.config.update(MQTT_URL=f"mqtt://homeassistant:{PASSWORD}@127.0.0.1:{broker}", MQTT_DISCOVERY_PREFIX="homeassistant")
    watcher = Watcher(broker)
    yield watcher
    mqtt_bridge.stop_leader(say_offline=False)
    watcher.stop()


def retained(app, topic: str) -> str:
    """What a subscriber arriving now gets on `topic`: it must be a retained message."""
    late = Watcher(int(app.config["MQTT_URL"].rsplit(":", 1)[1]))
    try:
        return late.wait(topic, retained=True)
    finally:
        late.stop()


def leader_online(app, watcher: Watcher, household_id: int) -> mqtt_bridge.Bridge:
    """Run the scheduler's MQTT job as the leader would and wait until the device is published."""
    with app.app_context():
        mqtt_bridge.publish_changes(SHARED.current)
        bridge = mqtt_bridge.leader_bridge()
    assert bridge is not None and bridge.ready.wait(WAIT)  # ready: it has read back what the broker kept
    watcher.wait(messages.AVAILABILITY_TOPIC, lambda p: p == "online")
    watcher.state(household_id)
    return bridge


def test_a_tick_publishes_discovery_and_states_retained(app, env, ha, household_id):
    with app.app_context():
        assert scheduler.run_sync_tick(SHARED.current)  # not connected yet: the tick does not wait for the broker
    leader_online(app, ha, household_id)  # the leader job connects
    SHARED.advance(minutes=5)
    with app.app_context():
        scheduler.run_sync_tick(SHARED.current)  # the scheduler's tick job: the sync, then Home Assistant
    state = ha.state(household_id, lambda s: s["last_sync_at"] is not None
                     and datetime.fromisoformat(s["last_sync_at"]) > SHARED.current - timedelta(minutes=1))
    # Home Assistant connecting later still finds everything: configs, availability and states are retained.
    late = Watcher(int(app.config["MQTT_URL"].rsplit(":", 1)[1]))
    try:
        topic = f"homeassistant/sensor/tesla_amber_sync_household_{household_id}/general_price/config"
        config = json.loads(late.wait(topic, retained=True))
        assert config["unique_id"] == f"tesla_amber_sync_household_{household_id}_general_price"
        assert config["device"]["identifiers"] == [f"tesla_amber_sync_household_{household_id}"]
        assert config["availability_topic"] == messages.AVAILABILITY_TOPIC and config["unit_of_measurement"] == "AUD/kWh"
        for component, object_id in (("binary_sensor", "spike"), ("button", "force_charge"), ("button", "cancel_force"),
                                     ("number", "force_minutes"), ("sensor", "last_sync_at")):
            late.wait(f"homeassistant/{component}/tesla_amber_sync_household_{household_id}/{object_id}/config", retained=True)
        assert late.wait(messages.AVAILABILITY_TOPIC, retained=True) == "online"
        assert late.wait(messages.minutes_state_topic(household_id), retained=True) == "60"
        kept = json.loads(late.wait(messages.state_topic(household_id), retained=True))
    finally:
        late.stop()
    assert kept == state
    assert state["general_price"] == pytest.approx(0.30) and state["feed_in_price"] == pytest.approx(0.08)  # fake Amber: 30 and -8 c/kWh
    assert state["next_general_price"] == pytest.approx(0.30) and state["spike"] == "OFF"
    assert state["last_sync_outcome"] == "unchanged"  # the second tick: the same flat prices, nothing to push
    assert datetime.fromisoformat(state["last_sync_at"]) <= SHARED.current
    powerwall = env.sim()
    assert state["battery_level"] == pytest.approx(powerwall["live_status"]["percentage_charged"], abs=0.1)
    assert state["backup_reserve"] == pytest.approx(powerwall["powerwall"]["backup_reserve_percent"])
    assert state["operation_mode"] in messages.MODE_WORDS.values() and state["force_session"] == "None running"


def test_a_button_press_force_charges_as_home_assistant_and_cancel_restores(app, env, ha, household_id, user_client):
    env.tick()
    before = env.sim()["powerwall"]["backup_reserve_percent"]
    leader_online(app, ha, household_id)
    ha.publish(messages.button_topic(household_id, "force_charge"), "PRESS")
    state = ha.state(household_id, lambda s: s["force_session"].startswith("Force charge until"))
    ends = (SHARED.current + timedelta(minutes=60)).astimezone(messages_zone()).strftime("%H:%M")
    assert state["force_session"] == f"Force charge until {ends}"  # the default 60 minutes
    powerwall = env.sim()["powerwall"]
    assert powerwall["backup_reserve_percent"] == 100 and powerwall["grid_charging_allowed"] is True
    assert powerwall["tariff_content_v2"]["name"] == "Tesla-Amber-Sync forced window"
    with app.app_context():
        session = _db.session.scalar(select(ForceSession))
        assert (session.action, session.minutes, session.started_by) == ("force_charge", 60, "Home Assistant")
    page = user_client.get("/history?kind=force").get_data(as_text=True)
    assert "by Home Assistant" in page

    ha.publish(messages.button_topic(household_id, "cancel_force"), "PRESS")
    ha.state(household_id, lambda s: s["force_session"] == "None running")
    assert env.sim()["powerwall"]["backup_reserve_percent"] == before
    with app.app_context():
        cancel = _db.session.scalar(select(ControlEvent).where(ControlEvent.step == "cancel"))
        assert cancel.actor == "Home Assistant" and cancel.message == "Cancelled by Home Assistant."
        assert _db.session.scalar(select(ForceSession)).state == "ended"


def messages_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Australia/Sydney")


def test_the_number_entity_sets_the_force_minutes(app, env, ha, household_id):
    env.tick()
    leader_online(app, ha, household_id)
    ha.publish(messages.minutes_command_topic(household_id), "30")
    assert ha.wait(messages.minutes_state_topic(household_id), lambda p: p == "30") == "30"
    assert retained(app, messages.minutes_state_topic(household_id)) == "30"
    ha.publish(messages.button_topic(household_id, "force_discharge"), "PRESS")
    state = ha.state(household_id, lambda s: s["force_session"].startswith("Force discharge until"))
    with app.app_context():
        session = _db.session.scalar(select(ForceSession))
        assert (session.action, session.minutes, session.started_by) == ("force_discharge", 30, "Home Assistant")
        assert session.ends_at == SHARED.current + timedelta(minutes=30)
    assert state["force_session"].endswith((SHARED.current + timedelta(minutes=30)).astimezone(messages_zone()).strftime("%H:%M"))
    # Minutes out of range change nothing.
    ha.publish(messages.minutes_command_topic(household_id), "5")
    ha.publish(messages.minutes_command_topic(household_id), "45")
    assert ha.wait(messages.minutes_state_topic(household_id), lambda p: p != "30") == "45"


def test_the_chosen_minutes_survive_a_new_leader(app, env, ha, household_id):
    env.tick()
    leader_online(app, ha, household_id)
    ha.publish(messages.minutes_command_topic(household_id), "120")
    ha.wait(messages.minutes_state_topic(household_id), lambda p: p == "120")
    mqtt_bridge.stop_leader()  # this process stops; another one takes over
    ha.wait(messages.AVAILABILITY_TOPIC, lambda p: p == "offline")
    bridge = leader_online(app, ha, household_id)
    assert bridge.minutes[household_id] == 120  # read back from the broker, not reset to the default
    assert ha.latest[messages.minutes_state_topic(household_id)].payload.decode() == "120"


def test_a_retained_press_is_never_acted_on(app, env, ha, household_id):
    env.tick()
    ha.publish(messages.button_topic(household_id, "force_charge"), "PRESS", retain=True)
    leader_online(app, ha, household_id)  # it subscribes and gets the retained press before its first states
    with app.app_context():
        mqtt_bridge.publish_changes(SHARED.current).result(WAIT)
        assert _db.session.scalar(select(ForceSession)) is None
    assert env.sim()["powerwall"]["tariff_content_v2"]["name"] != "Tesla-Amber-Sync forced window"


def test_a_force_started_elsewhere_reaches_home_assistant_at_the_next_job(app, env, ha, household_id):
    env.tick()
    leader_online(app, ha, household_id)
    with app.app_context():
        control.start(_db.session.get(Household, household_id), "force_charge", 30, actor="alice@example.com")
        mqtt_bridge.publish_changes(SHARED.current)
    state = ha.state(household_id, lambda s: s["force_session"].startswith("Force charge until"))
    assert state["backup_reserve"] is not None


def test_the_last_will_marks_the_device_offline_when_the_process_dies(app, env, ha, household_id):
    env.tick()
    bridge = leader_online(app, ha, household_id)
    # As a killed process: the connection drops without an MQTT DISCONNECT.
    bridge.client.loop_stop()
    bridge.client.socket().shutdown(socket.SHUT_RDWR)
    assert ha.wait(messages.AVAILABILITY_TOPIC, lambda p: p == "offline") == "offline"
    assert retained(app, messages.AVAILABILITY_TOPIC) == "offline"


def test_flask_mqtt_publish_publishes_once_and_exits(app, env, ha, household_id, runner, caplog):
    env.tick()
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(args=["mqtt", "publish"])
    assert result.exit_code == 0, result.output
    port = app.config["MQTT_URL"].rsplit(":", 1)[1]
    assert f"for 1 household(s) with sync on to mqtt://127.0.0.1:{port}" in result.output
    assert json.loads(ha.wait(f"homeassistant/button/tesla_amber_sync_household_{household_id}/force_charge/config"))["payload_press"] == "PRESS"
    assert ha.state(household_id)["last_sync_outcome"] == "pushed"
    assert json.loads(retained(app, messages.state_topic(household_id)))["last_sync_outcome"] == "pushed"
    assert messages.AVAILABILITY_TOPIC not in ha.latest  # availability is the scheduler's process's to say
    assert PASSWORD not in result.output and PASSWORD not in caplog.text


def test_flask_mqtt_publish_fails_clearly(app, runner, caplog):
    caplog.set_level(logging.DEBUG)
    app.config["MQTT_URL"] = None
    result = runner.invoke(args=["mqtt", "publish"])
    assert result.exit_code != 0 and "MQTT_URL is not set" in result.output
    port = free_port()  # nothing listens there
    app.config["MQTT_URL"] = f"mqtt://homeassistant:{PASSWORD}@127.0.0.1:{port}"
    result = runner.invoke(args=["mqtt", "publish"])
    assert result.exit_code != 0
    assert f"Could not reach the MQTT broker at mqtt://127.0.0.1:{port}" in result.output
    assert PASSWORD not in result.output and PASSWORD not in caplog.text


def test_an_unreachable_broker_never_breaks_the_leader_job(app, caplog):
    app.config["MQTT_URL"] = f"mqtt://homeassistant:{PASSWORD}@127.0.0.1:{free_port()}"
    with app.app_context():
        assert mqtt_bridge.publish_changes(SHARED.current) is None
        assert mqtt_bridge.after_tick() is None
    assert "Could not reach the MQTT broker" in caplog.text and PASSWORD not in caplog.text


def test_with_mqtt_off_the_jobs_do_nothing(app):
    app.config["MQTT_URL"] = None
    with app.app_context():
        assert mqtt_bridge.publish_changes(SHARED.current) is None and mqtt_bridge.after_tick() is None


def test_a_household_whose_sync_goes_off_loses_its_device(app, env, ha, household_id):
    env.tick()
    leader_online(app, ha, household_id)
    config = f"homeassistant/button/tesla_amber_sync_household_{household_id}/force_charge/config"
    assert ha.wait(config)
    configure(app, household_id, sync_enabled=False)
    with app.app_context():
        mqtt_bridge.publish_changes(SHARED.current)
    assert ha.wait(config, lambda p: p == "") == ""  # an empty retained config: Home Assistant removes the entity
    assert ha.wait(messages.state_topic(household_id), lambda p: p == "") == ""
    configure(app, household_id, sync_enabled=True)
    with app.app_context():
        mqtt_bridge.publish_changes(SHARED.current)
    assert json.loads(ha.wait(config, lambda p: p != ""))["payload_press"] == "PRESS"


def test_home_assistant_restarting_gets_the_discovery_again(app, env, ha, household_id):
    env.tick()
    leader_online(app, ha, household_id)
    config = f"homeassistant/sensor/tesla_amber_sync_household_{household_id}/general_price/config"
    ha.publish(config, "", retain=True)  # as if the broker had lost it
    ha.wait(config, lambda p: p == "")
    ha.publish("homeassistant/status", "online")  # what Home Assistant says when it starts
    assert json.loads(ha.wait(config, lambda p: p != ""))["unit_of_measurement"] == "AUD/kWh"


def test_a_process_that_no_longer_leads_disconnects_without_marking_the_device_offline(app, env, ha, household_id, monkeypatch):
    env.tick()
    monkeypatch.setattr(mqtt_bridge, "LEADER_GRACE_SECONDS", 1.0)
    bridge = leader_online(app, ha, household_id)
    # The leader job stops calling (another process leads now): the bridge closes itself after the grace period.
    assert bridge.stopped.wait(WAIT)
    assert not bridge.leads() and mqtt_bridge._leader is None
    ha.publish("test/barrier", "after")  # the broker has handled the disconnect by the time this comes back
    ha.wait("test/barrier")
    assert ha.latest[messages.AVAILABILITY_TOPIC].payload.decode() == "online"  # no last will for a clean disconnect


def test_a_broker_refusing_the_password_is_a_clear_error_without_it(app, tmp_path, runner, caplog):
    passwd = shutil.which("mosquitto_passwd") or shutil.which("/usr/bin/mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with Debian's mosquitto)")
    passwords = tmp_path / "passwords"
    subprocess.run([passwd, "-b", "-c", str(passwords), "homeassistant", PASSWORD], check=True, capture_output=True)
    passwords.chmod(0o600)
    # Run as root (CI), mosquitto drops to its own user, which cannot read pytest's private tmp_path: it stays root.
    as_root = "user root\n" if os.geteuid() == 0 else ""
    brokers = run_mosquitto(tmp_path, f"{as_root}allow_anonymous false\npassword_file {passwords}\n")
    port = next(brokers)
    try:
        caplog.set_level(logging.DEBUG)
        app.config["MQTT_URL"] = f"mqtt://homeassistant:wrong-{PASSWORD}@127.0.0.1:{port}"
        result = runner.invoke(args=["mqtt", "publish"])
        assert result.exit_code != 0, result.output
        assert f"The MQTT broker at mqtt://127.0.0.1:{port} did not accept the connection (Not authorized)" in result.output
        assert PASSWORD not in result.output and PASSWORD not in caplog.text
        app.config["MQTT_URL"] = f"mqtt://homeassistant:{PASSWORD}@127.0.0.1:{port}"
        result = runner.invoke(args=["mqtt", "publish"])
        assert result.exit_code == 0 and "for 0 household(s)" in result.output, result.output
    finally:
        brokers.close()
