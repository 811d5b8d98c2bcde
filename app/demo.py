"""Demo mode: the app and the local simulator in one process, with a demo account ready to use.

Nothing here talks to the real Amber or Tesla: every URL points at the simulator, and the demo keeps
its own database under DATA_DIR/demo so it never touches real accounts."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from app import accounts, clock, create_app
from app.connections import check_connections
from app.credentials import apply_settings
from app.demo_history import already_lived_in, backfill_week
from app.extensions import db
from app.households import owned_or_new
from app.models import Household
from app.simulator import identity
from app.simulator.server import start_simulator_thread
from config import Config, config_for

log = logging.getLogger(__name__)

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-powerwall"


def demo_config(sim_base_url: str, data_dir: Path, host: str, port: int) -> Config:
    """Production settings pointed at the simulator, with a demo database of their own."""
    config = config_for("production")
    config.DATA_DIR = str(data_dir)
    config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{data_dir / 'demo.db'}"
    for name, value in identity.app_settings(sim_base_url).items():
        setattr(config, name, value)
    config.TESLA_REDIRECT_URI = f"http://{host}:{port}/tesla-fleet/callback"
    config.REGISTRATION = "open"  # so visitors of the demo can also try sign-up
    return config


def prepare_demo(app: Flask) -> None:
    """Migrate the demo database and make sure the demo account exists, configured and checked."""
    with app.app_context():
        upgrade()
        user = accounts.find_user(DEMO_EMAIL)
        if user is None:
            user = accounts.create_user(DEMO_EMAIL, DEMO_PASSWORD, is_admin=True)
        household = owned_or_new(user, clock.now())
        connect_to_simulator(household)
        check_connections(household)
        db.session.commit()
        if not already_lived_in(household, clock.now()):
            counts = backfill_week(household, clock.now())
            log.info("Demo: wrote a simulated week (%d syncs, %d pushes, a force charge, a spike)", counts["runs"], counts["pushes"])


def connect_to_simulator(household: Household, tesla_site_id: int | str | None = None) -> None:
    """Give `household` the simulator's Amber and Teslemetry tokens and sites, with sync on (the caller commits)."""
    apply_settings(
        household,
        amber_token=identity.AMBER_TOKEN,
        amber_site_id=identity.AMBER_SITE_ID,
        teslemetry_token=identity.TESLEMETRY_TOKEN,
        tesla_site_id=str(tesla_site_id or identity.TESLA_ENERGY_SITE_ID),
        sync_enabled=True,
    )


def run_demo(host: str = "127.0.0.1", port: int = 5001, sim_port: int = 5055, data_dir: Path | None = None) -> None:
    """Start the simulator and the app; serve until interrupted."""
    sim_base, stop = start_simulator_thread("127.0.0.1", sim_port)
    try:
        config = demo_config(sim_base, data_dir or Path(config_for().DATA_DIR) / "demo", host, port)
        app = create_app(config)
        prepare_demo(app)
        from app.sync.scheduler import start_embedded

        start_embedded(app)  # ticks every 5 minutes; the first one runs now
        print(f"Simulator: {sim_base}  (state: {sim_base}/_sim/state)")
        print(f"Demo:      http://{host}:{port}  sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}")
        # app.run refuses to block inside a `flask` command; run_simple is what it would call.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        stop()
