"""Operator commands: `flask users …`, `flask keys …` and `flask scheduler …`, plus Flask-Migrate's
`flask db …` group, to which this module adds `flask db backup` and `flask db purge`."""
from __future__ import annotations

import functools
import os
import shlex
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate.cli import db as db_cli
from sqlalchemy import inspect, select
from sqlalchemy.engine import URL

from app import accounts, clock
from app.credentials import SettingsError, apply_settings, rotate_stored_secrets, secret_status
from app.crypto import FERNET_KEY_FILE
from app.db_files import KEEP_UPGRADE_BACKUPS, BackupError, backup_before_upgrade, online_backup, sqlite_file
from app.extensions import db
from app.households.cli import account_or_fail, household_or_fail
from app.households.service import ACTOR_COMMAND_LINE, find_owned, household_of, owned_or_new
from app.models import User

users_cli = AppGroup("users", help="Create, list and configure accounts.")
keys_cli = AppGroup("keys", help="Manage the encryption keys of stored credentials.")
sync_cli = AppGroup("sync", help="Sync tariffs now, outside the scheduler.")
scheduler_cli = AppGroup("scheduler", help="Run the scheduler in its own process, or see who leads it.")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The initial password.")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
def create_user(email: str, password: str, admin: bool) -> None:
    """Create an account."""
    try:
        user = accounts.create_user(email, password, is_admin=admin)
    except accounts.AccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created {user.email}{' (administrator)' if user.is_admin else ''}.")


@users_cli.command("list")
def list_users() -> None:
    """List accounts with their role, state and what is configured (never a secret)."""
    users = db.session.scalars(select(User).order_by(User.email)).all()
    if not users:
        click.echo("No accounts yet.")
        return
    for user in users:
        owned = find_owned(user)
        settings = owned.settings if owned else None
        parts = [
            user.email,
            "admin" if user.is_admin else "user",
            "disabled" if user.is_disabled else "active",
            f"amber={secret_status(settings, 'amber_token').state}",
            f"teslemetry={secret_status(settings, 'teslemetry_token').state}",
            f"sync={'on' if settings and settings.sync_enabled else 'off'}",
        ]
        click.echo("  ".join(parts))


@users_cli.command("set-password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password.")
def set_password(email: str, password: str) -> None:
    """Set a new password (signs the account out everywhere)."""
    user = account_or_fail(email)
    try:
        accounts.set_password(user, password)
    except accounts.AccountError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Password changed for {user.email}.")


@users_cli.command("configure")
@click.argument("email")
@click.option("--amber-token", help="Amber API token (stored encrypted).")
@click.option("--amber-site-id", help="Amber site id.")
@click.option("--teslemetry-token", help="Teslemetry token (stored encrypted).")
@click.option("--tesla-site-id", help="Tesla energy site id.")
@click.option("--timezone", "site_timezone", help="Site time zone, e.g. Australia/Sydney.")
@click.option("--estimate", "forecast_estimate", type=click.Choice(["low", "predicted", "high"]),
              help="Which Amber forecast to plan with.")
@click.option("--sync/--no-sync", "sync_enabled", default=None, help="Turn the tariff sync on or off.")
def configure_user(email: str, **options: object) -> None:
    """Set the credentials and preferences of the household EMAIL owns (made on first use)."""
    user = account_or_fail(email)
    changes = {name: value for name, value in options.items() if value is not None}
    if not changes:
        raise click.UsageError("Nothing to change: give at least one option.")
    try:
        household = owned_or_new(user, clock.now())
        changed = apply_settings(household, by=ACTOR_COMMAND_LINE, **changes)
    except SettingsError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.field.replace('_', '-')}: {exc}") from exc
    db.session.commit()
    click.echo(f"Updated {user.email}: {', '.join(changed)}.")


@keys_cli.command("rotate")
def rotate_keys() -> None:
    """Re-encrypt every stored secret with the newest key (the first in FERNET_ENCRYPTION_KEY)."""
    result = rotate_stored_secrets()
    db.session.commit()
    click.echo(f"Re-encrypted {result.rotated} stored secret(s) with the newest key.")
    if result.unreadable:
        raise click.ClickException(
            f"{result.unreadable} stored secret(s) could not be decrypted with any configured key and were "
            "left unchanged; add the old key to FERNET_ENCRYPTION_KEY or ask those users to re-enter them."
        )


@scheduler_cli.command("run")
def scheduler_run() -> None:
    """Run the scheduler in the foreground until Ctrl-C or SIGTERM (then set SCHEDULER=off on the web workers)."""
    from flask import current_app

    from app.sync.scheduler import run_forever

    run_forever(current_app._get_current_object())


@scheduler_cli.command("status")
def scheduler_status() -> None:
    """Show which process leads the scheduler, the last tick and when the next one is due."""
    from app.sync.scheduler import status

    state = status()
    if state.leader is None:
        click.echo("Leader: none (no scheduler process holds the lease)")
    else:
        click.echo(
            f"Leader: {state.leader.holder} since {state.leader.acquired_at.isoformat()}, "
            f"lease until {state.leader.expires_at.isoformat()}"
        )
    click.echo(f"Last tick: {state.last_tick_at.isoformat() if state.last_tick_at else 'never'}")
    click.echo(f"Next tick: {state.next_tick_at.isoformat()}")


@sync_cli.command("worker")
@click.option("--id", "worker_id", help="This worker's name in the claims (default: host:pid:random).")
def sync_worker(worker_id: str | None) -> None:
    """Claim households in batches and sync them until Ctrl-C or SIGTERM: several workers share each tick
    (SYNC_MODE=claims on PostgreSQL; docs/deployment.md, "More sync workers")."""
    from app.sync.worker import run_worker

    code = run_worker(current_app._get_current_object(), worker_id)
    if code:
        raise SystemExit(code)


@sync_cli.command("run")
@click.option("--user", "email", help="Sync the household this account belongs to (the one it owns first).")
@click.option("--all", "all_users", is_flag=True, help="Sync every household with sync turned on.")
@click.option("--dry-run", is_flag=True, help="Build the tariff and say what would change; push and record nothing.")
def sync_run(email: str | None, all_users: bool, dry_run: bool) -> None:
    """One sync now: prints pushed / unchanged / skipped / failed per household; exits 1 if any failed or
    was skipped (a household whose force session holds the Powerwall is not a problem)."""
    from app.sync import run_tick

    if bool(email) == all_users:
        raise click.UsageError("Give either --user EMAIL or --all.")
    ids = None
    if email:
        found = household_of(account_or_fail(email))
        if found is None:
            raise click.ClickException(f"{email} belongs to no household yet: configure one with 'flask users configure'.")
        ids = [found[0].id]
    results = run_tick(None, household_ids=ids, dry_run=dry_run, actor=ACTOR_COMMAND_LINE)
    if not results:
        click.echo("No household has sync turned on.")
    for result in results:
        click.echo(f"{result.label}: {result.outcome} - {result.reason}")
        if dry_run and result.explanation is not None:
            click.echo(f"  Tariff for the next 24 hours ({result.explanation.site_tz}), $/kWh:")
            for slot in result.explanation.slots:
                flags = ", ".join(flag.value for flag in slot.flags)
                click.echo(f"  {slot.wall_from}-{slot.wall_to}  buy {slot.buy:8.4f}  sell {slot.sell:8.4f}  {flags}")
    if not dry_run:  # what the sync queued is delivered before the command exits
        from app.notify.outbox import deliver_due

        deliver_due(clock.now())
    troubled = [r for r in results if r.outcome == "failed" or (r.outcome == "skipped" and not r.forced)]
    if troubled:
        click.echo(f"Needs attention: {', '.join(f'{r.label} ({r.outcome})' for r in troubled)}.", err=True)
        raise SystemExit(1)


force_cli = AppGroup("force", help="Force charge or discharge a household's Powerwall, or cancel it.")


@force_cli.command("start")
@click.argument("email")
@click.argument("action", type=click.Choice(["force_charge", "force_discharge"]))
@click.argument("minutes", type=int)
def force_start(email: str, action: str, minutes: int) -> None:
    """Force the Powerwall of the household EMAIL belongs to, for MINUTES (15-240)."""
    from app import control

    try:
        session = control.start(household_or_fail(email), action, minutes, actor=ACTOR_COMMAND_LINE)
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{control.ACTION_WORDS[session.action]} {session.state} until {session.ends_at.isoformat()}.")


@force_cli.command("cancel")
@click.argument("email")
def force_cancel(email: str) -> None:
    """Cancel the running force session and put the saved settings back."""
    from app import control

    household = household_or_fail(email)
    try:
        done = control.cancel(household, actor=ACTOR_COMMAND_LINE)
    except control.ControlError as exc:
        raise click.ClickException(str(exc)) from exc
    live = None if done else control.live_session(household)
    click.echo(control.cancel_message(done, live.state if live else None))


# Added to Flask-Migrate's own `db` group (a module-level object), so it is registered once, on import.
@db_cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it already exists.")
@with_appcontext
def db_backup(path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH while the app keeps running (PostgreSQL: use pg_dump)."""
    url = db.engine.url
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise click.ClickException(_pg_dump_hint(url, path))
    if backend != "sqlite":
        raise click.ClickException(f"flask db backup copies SQLite databases only (this one is {backend}).")
    source = _sqlite_file(url)
    target = path.expanduser().absolute()
    _check_target(target, source, force)
    size = _sqlite_online_backup(target)
    click.echo(f"Backed up {source} to {target} ({size / 1_000_000:.1f} MB, integrity checked).")
    key_file = Path(current_app.config["DATA_DIR"]) / FERNET_KEY_FILE
    key = str(key_file) if key_file.is_file() else "your FERNET_ENCRYPTION_KEY"
    click.echo(f"Keep {key} with it: the stored tokens are encrypted with that key, which is not in the database.")


@db_cli.command("purge")
@with_appcontext
def db_purge() -> None:
    """Delete sync runs, tariff pushes and prices past their retention periods now (the scheduler does it hourly)."""
    from app import clock
    from app.retention import purge_old_rows

    config = current_app.config
    result = purge_old_rows(clock.now())
    outcomes = ", ".join(f"{outcome} {n}" for outcome, n in sorted(result.sync_runs_by_outcome.items()))
    click.echo(
        f"Deleted {result.sync_runs} sync runs older than {config['SYNC_RUN_RETENTION_DAYS']} days"
        + (f" ({outcomes})" if outcomes else "")
    )
    click.echo(
        f"Deleted {result.tariff_pushes} tariff pushes older than {config['TARIFF_PUSH_RETENTION_DAYS']} days "
        "(each user's newest pushes are kept)"
    )
    click.echo(f"Deleted {result.price_intervals} stored prices older than {config['PRICE_RETENTION_DAYS']} days")


def _pg_dump_hint(url: URL, path: Path) -> str:
    command = ["pg_dump", "--format=custom", f"--file={path}"]
    if url.host:
        command.append(f"--host={url.host}")
    if url.port:
        command.append(f"--port={url.port}")
    if url.username:
        command.append(f"--username={url.username}")
    command.append(f"--dbname={url.database or ''}")
    return (
        "flask db backup copies SQLite databases only; this app uses PostgreSQL, which pg_dump backs up "
        "consistently while the app runs:\n"
        f"  {shlex.join(command)}\n"
        "With docker compose: docker compose exec -T postgres pg_dump -U tas --format=custom tas > tas.dump\n"
        "Restore with pg_restore (docs/deployment.md, Backup and restore)."
    )


def _sqlite_file(url: URL) -> Path:
    source = sqlite_file(url)
    if source is None:
        raise click.ClickException("The database is in memory: there is no file to back up.")
    if not source.is_file():
        raise click.ClickException(f"There is no database at {source} yet (flask db upgrade creates it).")
    return source


def _check_target(target: Path, source: Path, force: bool) -> None:
    if target.resolve() == source.resolve() or target.name.startswith(f"{source.name}-"):
        raise click.ClickException(f"{target} is the live database (or one of its files); choose another path.")
    if target.is_dir():
        raise click.ClickException(f"{target} is a directory; give a file name, e.g. {target / 'backup.db'}.")
    if target.exists() and not force:
        raise click.ClickException(f"{target} already exists; use --force to replace it.")
    if not target.parent.is_dir():
        raise click.ClickException(f"The directory {target.parent} does not exist.")
    if not os.access(target.parent, os.W_OK):
        raise click.ClickException(f"The directory {target.parent} is not writable by this user (uid {os.getuid()}).")


def _sqlite_online_backup(target: Path) -> int:
    try:
        return online_backup(db.engine, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc


def _backup_before_upgrade(directory: str | None, sql: bool, revision: str) -> None:
    """Before `flask db upgrade` on SQLite: copy the database to DATA_DIR/backups (never for --sql)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from app import clock

    path = sqlite_file(db.engine.url)
    if sql:
        return
    if path is None:
        if db.engine.url.get_backend_name() == "postgresql":
            click.echo("PostgreSQL: no automatic backup before the upgrade; back up with pg_dump (see `flask db backup`).")
        return
    if not path.is_file() or path.stat().st_size == 0:
        click.echo("A new database: nothing to back up before the upgrade.")
        return
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        has_tables = bool(inspect(conn).get_table_names())
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config(directory))
    target = script.get_current_head() if revision in ("head", "heads") else revision
    if current is None and not has_tables:
        click.echo("A new database: nothing to back up before the upgrade.")
        return
    if current == target:
        click.echo(f"The database is up to date ({current}): no backup needed before the upgrade.")
        return
    current = current or "unversioned"  # tables but no revision: not made by these migrations, keep a copy
    try:
        copy = backup_before_upgrade(db.engine, Path(current_app.config["DATA_DIR"]), current, clock.now())
    except BackupError as exc:
        raise click.ClickException(f"{exc} The upgrade did not run: the database is as it was.") from exc
    click.echo(
        f"Backed up the database (at {current}) to {copy} before upgrading; the newest {KEEP_UPGRADE_BACKUPS} are kept. "
        "To go back: stop the app, copy it over the database file, delete its -wal and -shm files, start the previous version."
    )


def _wrap_upgrade() -> None:
    """Make Flask-Migrate's `flask db upgrade` back up a SQLite database first (once, however many apps)."""
    command = db_cli.commands["upgrade"]
    original = command.callback
    if getattr(original, "backs_up_first", False):
        return

    @functools.wraps(original)
    @with_appcontext
    def upgrade_with_backup(*args, **kwargs):
        _backup_before_upgrade(kwargs.get("directory"), bool(kwargs.get("sql")), kwargs.get("revision") or "head")
        return original(*args, **kwargs)

    upgrade_with_backup.backs_up_first = True  # type: ignore[attr-defined]
    command.callback = upgrade_with_backup
    command.help = (command.help or "") + " On SQLite, first copies the database to DATA_DIR/backups."


_wrap_upgrade()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--sim-port", default=5055, show_default=True, type=int, help="Port of the local simulator.")
def demo_command(host: str, port: int, sim_port: int) -> None:
    """Run the app against the local simulator with a ready demo account (no real accounts needed)."""
    from app.demo import run_demo

    run_demo(host, port, sim_port)


def register_cli(app: Flask) -> None:
    """Add the command groups to `app`."""
    from app.simulator.cli import simulator_cli

    from app.households.cli import households_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(households_cli)
    app.cli.add_command(force_cli)
    from app.notify.cli import notifications_cli

    app.cli.add_command(notifications_cli)
    from app.mqtt.cli import mqtt_cli

    app.cli.add_command(mqtt_cli)
    from app.money.cli import money_cli

    app.cli.add_command(money_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(sync_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(simulator_cli)
    app.cli.add_command(demo_command)
