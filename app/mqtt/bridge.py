"""The MQTT connection (paho-mqtt) of the process that runs the scheduler, and `flask mqtt publish`'s one-off.

The leader's bridge connects with a last will ("offline", retained, on the availability topic), says "online",
publishes every synced household's discovery configs and state (retained), and acts on button presses. Work
that needs the database runs on one worker thread of its own, never on paho's network thread, so a force
charge that takes seconds never stalls the connection. A process that stops being the leader (its leader
job stops calling) disconnects cleanly (no will), so it neither acts on presses nor marks the device offline.

The broker's password is only ever handed to paho: logs and errors name the broker by `MqttBroker.where`."""
from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as mqtt
from flask import Flask, current_app

from app import clock
from app.extensions import db
from app.mqtt import household_state
from app.mqtt.messages import (
    AVAILABILITY_TOPIC,
    COMMAND_SUBSCRIPTIONS,
    DEFAULT_FORCE_MINUTES,
    OFFLINE,
    ONLINE,
    ROOT,
    Command,
    Message,
    discovery_messages,
    minutes_message,
    parse_command,
    removal_messages,
    state_message,
)
from app.models import Household
from config import MqttBroker, parse_mqtt_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
PUBLISH_TIMEOUT_SECONDS = 10
# The leader job (LEADER_JOBS in app/sync/scheduler.py) runs every LEADER_JOB_SECONDS; a bridge that has not
# heard from it for LEADER_GRACE_SECONDS belongs to a process that is no longer the leader.
LEADER_JOB_SECONDS = 15
LEADER_GRACE_SECONDS = 3 * LEADER_JOB_SECONDS


class MqttUnavailable(Exception):
    """The broker could not be reached or refused us; the message names the broker, never its password."""


def broker_from_config(config: Any) -> MqttBroker | None:
    """The configured broker, or None when MQTT_URL is not set (Home Assistant over MQTT is off)."""
    url = config.get("MQTT_URL")
    return parse_mqtt_url(url) if url else None


class Bridge:
    """One connection to the broker, for the leader (`leader=True`: availability, commands) or a one-off publish."""

    def __init__(self, app: Flask, broker: MqttBroker, prefix: str, *, leader: bool) -> None:
        self.app = app
        self.broker = broker
        self.prefix = prefix
        self.leader = leader
        self.client_id = f"{ROOT}-{'leader' if leader else 'publish'}-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311
        )
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self.client.tls_set()  # the system's CA certificates
        self.client.connect_timeout = CONNECT_TIMEOUT_SECONDS
        if leader:
            self.client.will_set(AVAILABILITY_TOPIC, OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        # The leader's bridge publishes only once the broker has sent back the retained force minutes (the probe),
        # so a default never overwrites what a household chose before a restart or a change of leader.
        self.ready = threading.Event()
        self._refused: str | None = None
        self._probe_topic = f"{ROOT}/_probe/{self.client_id}"
        self._subscribe_mid: int | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mqtt-work")
        self._lock = threading.Lock()
        self.minutes: dict[int, int] = {}  # the force minutes per household, read back from the broker (retained)
        self.published: set[int] = set()  # households whose device this bridge has published
        self.marks: dict[int, tuple[int, int]] = {}  # their change marks when last published
        self.leader_until = 0.0
        self._watchdog: threading.Timer | None = None
        self.closed = False
        self.all_pending = False  # a publish_all after a tick is queued and has not started
        self.stopped = threading.Event()  # set once close() has disconnected

    # Connection ------------------------------------------------------------------------------------

    def connect(self, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        """Connect and wait for the broker's answer; MqttUnavailable (naming the broker) when it fails."""
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=60)
        except (OSError, ValueError) as exc:
            raise MqttUnavailable(f"Could not reach the MQTT broker at {self.broker.where} ({_reason(exc)}).") from None
        self.client.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            why = self._refused or "no answer"
            self.client.loop_stop()
            self.client.disconnect()
            raise MqttUnavailable(f"The MQTT broker at {self.broker.where} did not accept the connection ({why}).")

    def close(self, *, say_offline: bool = False) -> None:
        """Disconnect cleanly (the broker then sends no last will); `say_offline` marks the devices unavailable first."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._watchdog is not None:
                self._watchdog.cancel()
        self._worker.shutdown(wait=True, cancel_futures=True)
        if say_offline and self._connected.is_set():
            try:
                self._publish([Message(AVAILABILITY_TOPIC, OFFLINE)], wait=True)
            except MqttUnavailable:  # the broker is gone: our last will says offline when it notices
                log.info("MQTT: could not say offline to %s before disconnecting", self.broker.where)
        self.client.disconnect()
        self.client.loop_stop()
        self.stopped.set()

    def keep_leading(self) -> None:
        """The leader job ran: this process still leads. Without it for LEADER_GRACE_SECONDS the bridge closes."""
        with self._lock:
            if self.closed:
                return
            self.leader_until = time.monotonic() + LEADER_GRACE_SECONDS
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = threading.Timer(LEADER_GRACE_SECONDS, self._no_longer_leader)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _no_longer_leader(self) -> None:
        log.info("MQTT: this process no longer runs the scheduler; disconnecting from %s", self.broker.where)
        _forget(self)
        self.close()

    def leads(self) -> bool:
        return self.leader and not self.closed and time.monotonic() < self.leader_until

    # paho callbacks (network thread: no database here) ----------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._connected.set()
            log.warning("MQTT: %s refused the connection (%s)", self.broker.where, reason_code)
            return
        log.info("MQTT: connected to %s", self.broker.where)
        self._refused = None
        self._connected.set()
        if not self.leader:
            return
        client.publish(AVAILABILITY_TOPIC, ONLINE, qos=1, retain=True)
        # The retained minutes first; the probe, published after the broker has sent them, says they all arrived.
        result, self._subscribe_mid = client.subscribe(
            [(topic, 1) for topic in (*COMMAND_SUBSCRIPTIONS, self._probe_topic, f"{self.prefix}/status")]
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._subscribe_mid:
            client.publish(self._probe_topic, "probe", qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self.closed:
            log.warning("MQTT: disconnected from %s (%s); reconnecting", self.broker.where, reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        payload = message.payload.decode("utf-8", "replace")
        if message.topic == self._probe_topic:
            self.ready.set()
            self.submit(self.publish_all, True)  # every retained minutes value is known now; a fresh battery reading
            return
        if message.topic == f"{self.prefix}/status":
            if payload == "online" and not message.retain:  # Home Assistant restarted: discovery again
                self.submit(self.publish_all, False)
            return
        command = parse_command(message.topic, payload)
        if command is None:
            if not message.topic.endswith("/state"):
                log.info("MQTT: ignored a message on %s", message.topic)
            return
        if command.kind == "minutes":
            self.minutes[command.household_id] = command.minutes
        elif message.retain:
            # A retained command is an old one replayed by the broker: pressing again would surprise everyone.
            log.warning("MQTT: ignored a retained command on %s", message.topic)
        elif not self.leads():
            log.info("MQTT: ignored a command on %s (this process no longer runs the scheduler)", message.topic)
        elif command.kind == "set_minutes":
            self.minutes[command.household_id] = command.minutes
            self._publish([minutes_message(command.household_id, command.minutes)])
        else:
            self.submit(self.handle_press, command)

    # Work on the worker thread (inside an app context) ----------------------------------------------

    def submit(self, func: Callable[..., Any], *args: Any) -> Future | None:
        """Run func(*args) on the bridge's worker thread inside an app context; errors are logged, never raised."""

        def run() -> Any:
            with self.app.app_context():
                try:
                    return func(*args)
                except Exception:
                    log.exception("MQTT: %s failed", getattr(func, "__name__", "work"))
                    db.session.rollback()
                    return None

        try:
            return self._worker.submit(run)
        except RuntimeError:  # shut down meanwhile
            return None

    def handle_press(self, command: Command) -> None:
        """A button pressed in Home Assistant: force control as the household, then its new state."""
        from app.control import ControlError

        minutes = self.minutes.get(command.household_id, DEFAULT_FORCE_MINUTES)
        try:
            done = household_state.press(command.household_id, command.button, minutes, clock.now())
        except ControlError as exc:
            db.session.rollback()
            log.warning("MQTT: household %s pressed %s: %s", command.household_id, command.button, exc)
            done = "refused"
        if done is None:
            log.info("MQTT: ignored %s for household %s (no such device: unknown, or its sync is off)",
                     command.button, command.household_id)
            return
        log.info("MQTT: household %s pressed %s: %s", command.household_id, command.button, done)
        self.publish_household(command.household_id, refresh_battery=False)

    def publish_all(self, refresh_battery: bool, *, wait: bool = False) -> int:
        """Discovery, force minutes and state of every household with sync on; devices of households whose
        sync went off are removed. Returns how many households were published."""
        self.all_pending = False
        if self.leader and not self.ready.is_set():
            return 0  # the probe's own publish_all follows
        ids = household_state.synced_household_ids()
        marks = household_state.change_marks(ids)
        messages: list[Message] = []
        for hid in sorted(self.published - set(ids)):
            messages += removal_messages(self.prefix, hid)
        for hid in ids:
            messages += self._household_messages(hid, refresh_battery, discovery=True)
        self.published = set(ids)
        self.marks = marks
        self._publish(messages, wait=wait)
        return len(ids)

    def publish_changed(self) -> int:
        """States of households whose force control or sync moved since last published (from any process),
        devices of households whose sync was turned on, removals for those turned off. Cheap when nothing moved."""
        if self.leader and not self.ready.is_set():
            return 0
        ids = household_state.synced_household_ids()
        marks = household_state.change_marks(ids)
        messages: list[Message] = []
        for hid in sorted(self.published - set(ids)):
            messages += removal_messages(self.prefix, hid)
        changed = [hid for hid in ids if hid not in self.published or marks[hid] != self.marks.get(hid)]
        for hid in changed:
            messages += self._household_messages(hid, False, discovery=hid not in self.published)
        self.published, self.marks = set(ids), marks
        self._publish(messages)
        return len(changed)

    def publish_household(self, household_id: int, refresh_battery: bool) -> None:
        """One household's state now (after a button press)."""
        if household_id in self.published:
            self._publish(self._household_messages(household_id, refresh_battery, discovery=False))

    def _household_messages(self, household_id: int, refresh_battery: bool, *, discovery: bool) -> list[Message]:
        household = db.session.get(Household, household_id)
        if household is None:
            return []
        messages: list[Message] = []
        if discovery:
            domain = current_app.config.get("APP_DOMAIN")
            messages += discovery_messages(self.prefix, household_id, household.name, f"https://{domain}/" if domain else None)
            if self.leader and household_id not in self.minutes:
                self.minutes[household_id] = DEFAULT_FORCE_MINUTES
                messages.append(minutes_message(household_id, DEFAULT_FORCE_MINUTES))
        try:
            state = household_state.read_state(household, clock.now(), refresh_battery=refresh_battery)
            db.session.commit()  # what the battery read stored
        except Exception:  # one household's trouble never keeps the others from Home Assistant
            log.exception("MQTT: could not read household %s's state", household_id)
            db.session.rollback()
            return messages
        messages.append(state_message(household_id, state))
        return messages

    def _publish(self, messages: list[Message], *, wait: bool = False) -> None:
        infos = [self.client.publish(m.topic, m.payload, qos=1, retain=m.retain) for m in messages]
        if wait:
            deadline = time.monotonic() + PUBLISH_TIMEOUT_SECONDS
            for info in infos:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                if not info.is_published():
                    raise MqttUnavailable(f"The MQTT broker at {self.broker.where} did not confirm what was published.")


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in words that hold no credentials (an OSError's strerror, or its type)."""
    return getattr(exc, "strerror", None) or type(exc).__name__


# --- The leader's bridge (one per process) ------------------------------------------------------------

_leader: Bridge | None = None
_leader_lock = threading.Lock()
_last_failure: str | None = None


def _forget(bridge: Bridge) -> None:
    global _leader
    with _leader_lock:
        if _leader is bridge:
            _leader = None


def leader_bridge(app: Flask | None = None) -> Bridge | None:
    """This process's connected leader bridge, connecting first if needed; None when MQTT is off or the
    broker cannot be reached (said once in the log until it works again; paho reconnects a lost connection)."""
    global _leader, _last_failure
    app = app or current_app._get_current_object()
    broker = broker_from_config(app.config)
    if broker is None:
        return None
    with _leader_lock:
        if _leader is not None and not _leader.closed:
            return _leader
        bridge = Bridge(app, broker, app.config["MQTT_DISCOVERY_PREFIX"], leader=True)
        try:
            bridge.connect()
        except MqttUnavailable as exc:
            (log.debug if _last_failure == str(exc) else log.warning)("MQTT: %s Trying again shortly.", exc)
            _last_failure = str(exc)
            return None
        _last_failure = None
        bridge.keep_leading()
        _leader = bridge
        if not getattr(leader_bridge, "_atexit", False):
            atexit.register(stop_leader)
            leader_bridge._atexit = True  # type: ignore[attr-defined]
        return bridge


def stop_leader(*, say_offline: bool = True) -> None:
    """Close this process's leader bridge (at exit: the devices show as unavailable until a leader is back)."""
    global _leader
    with _leader_lock:
        bridge, _leader = _leader, None
    if bridge is not None:
        bridge.close(say_offline=say_offline and bridge.leads())


def publish_changes(now=None) -> Future | None:
    """The scheduler's MQTT job (leader only, every LEADER_JOB_SECONDS): keep the connection, publish what moved."""
    bridge = leader_bridge()
    if bridge is None:
        return None
    bridge.keep_leading()
    return bridge.submit(bridge.publish_changed)


def after_tick() -> Future | None:
    """After every tick (leader): every household's state, with a fresh battery reading, on the bridge's thread.

    It never connects (the leader job does, every LEADER_JOB_SECONDS, and publishes everything once connected), so
    an unreachable broker never delays a tick; and a publication still queued from the last tick is not doubled."""
    with _leader_lock:
        bridge = _leader
    if bridge is None or bridge.closed:
        return None
    try:
        bridge.keep_leading()
        with bridge._lock:
            if bridge.all_pending:
                return None
            bridge.all_pending = True
        return bridge.submit(bridge.publish_all, True)
    except Exception:  # Home Assistant never breaks a tick
        log.exception("MQTT: publishing after the tick failed")
        return None


def publish_once(app: Flask) -> tuple[int, str]:
    """`flask mqtt publish`: discovery and states of every household with sync on, then disconnect.

    Returns (households, broker as named in messages); MqttUnavailable when off or unreachable."""
    broker = broker_from_config(app.config)
    if broker is None:
        raise MqttUnavailable("MQTT_URL is not set: Home Assistant over MQTT is off. Set it to mqtt://user:password@host:1883.")
    bridge = Bridge(app, broker, app.config["MQTT_DISCOVERY_PREFIX"], leader=False)
    bridge.connect()
    try:
        count = bridge.publish_all(True, wait=True)
    finally:
        bridge.close()
    return count, broker.where
