"""`flask mqtt publish`: Home Assistant discovery and states, once, for every household with sync on."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.mqtt.bridge import MqttUnavailable, publish_once

mqtt_cli = AppGroup("mqtt", help="Home Assistant over MQTT (MQTT_URL).")


@mqtt_cli.command("publish")
def publish() -> None:
    """Publish discovery and states once and exit (1 when MQTT_URL is unset or the broker cannot be reached)."""
    try:
        count, where = publish_once(current_app._get_current_object())
    except MqttUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Published Home Assistant discovery and states for {count} household(s) with sync on to {where}. "
               "The devices show as available while the process running the scheduler is connected.")
