"""`flask simulator run`: a click group the main app registers with `app.cli.add_command(simulator_cli)`."""
from __future__ import annotations

import click

from . import identity
from .server import run_simulator
from .state import DEFAULT_SEED

simulator_cli = click.Group("simulator", help="Local simulator of the Amber and Tesla APIs.")


@simulator_cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it on loopback).")
@click.option("--port", default=5055, show_default=True, type=int)
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int, help="Fixes prices, weather and faults.")
@click.option("--estimate-seconds", default=20.0, show_default=True, type=float,
              help="Seconds into a 5-minute interval before its price is confirmed.")
@click.option("--access-token-ttl", default=28800, show_default=True, type=int, help="Fleet access token lifetime (s).")
@click.option("--interval-length", default=30, show_default=True, type=click.Choice(["5", "30"]),
              help="The Amber site's billing interval (default resolution).")
@click.option("--no-rate-limits", is_flag=True, help="Disable the Amber and Teslemetry request budgets.")
def run_command(
    host: str,
    port: int,
    seed: int,
    estimate_seconds: float,
    access_token_ttl: int,
    interval_length: str,
    no_rate_limits: bool,
) -> None:
    """Serve the simulator until Ctrl-C."""
    config: dict[str, object] = {
        "estimate_seconds": estimate_seconds,
        "access_token_ttl": access_token_ttl,
        "interval_length": int(interval_length),
    }
    if no_rate_limits:
        config.update(amber_rate_limit=0, teslemetry_rate_limit=0)
    base = f"http://{host}:{port}"
    click.echo(f"Simulator on {base} (all demo constants: {base}/_sim/identity)")
    for name, value in identity.app_settings(base).items():
        click.echo(f"  {name}={value}")
    click.echo(f"  Amber token {identity.AMBER_TOKEN}, site {identity.AMBER_SITE_ID}")
    click.echo(f"  Teslemetry token {identity.TESLEMETRY_TOKEN}, energy site {identity.TESLA_ENERGY_SITE_ID}")
    click.echo(f"  control: {base}/_sim/state  /_sim/clock  /_sim/faults  /_sim/config  /_sim/reset")
    run_simulator(host, port, seed=seed, **config)
