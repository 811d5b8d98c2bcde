"""`flask notifications …`: add, list, remove and test a person's Apprise targets (thin: targets/outbox do the work)."""
from __future__ import annotations

import re

import click
from flask.cli import AppGroup

from app import clock
from app.extensions import db
from app.households.cli import account_or_fail
from app.notify.events import EVENTS
from app.notify.service import send_test
from app.notify.targets import TargetError, add_target, remove_target, targets_of

notifications_cli = AppGroup("notifications", help="A person's notification targets (Apprise URLs).")


def parse_quiet(text: str | None) -> tuple[int, int] | None:
    """'22:00-07:00' -> (1320, 420) minutes after midnight; None for no quiet hours."""
    if not text:
        return None
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not match:
        raise click.ClickException("Give quiet hours as HH:MM-HH:MM, e.g. 22:00-07:00.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 * 60 + m1, h2 * 60 + m2


@notifications_cli.command("add")
@click.argument("email")
@click.argument("apprise_url")
@click.option("--events", help=f"Comma-separated, from: {', '.join(k for k in EVENTS if k != 'test')} (default: all).")
@click.option("--quiet", help="Quiet hours HH:MM-HH:MM in the household's zone; safety messages still come.")
def add(email: str, apprise_url: str, events: str | None, quiet: str | None) -> None:
    """Add an Apprise URL for EMAIL (validated by Apprise, stored encrypted)."""
    user = account_or_fail(email)
    chosen = [e.strip() for e in events.split(",") if e.strip()] if events else None
    try:
        target = add_target(user, apprise_url, clock.now(), chosen, parse_quiet(quiet))
    except TargetError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Added notification target {len(targets_of(user))} for {user.email}: {target.label}.")


@notifications_cli.command("list")
@click.argument("email")
def list_targets(email: str) -> None:
    """List EMAIL's targets (never the URL: only its service and last characters)."""
    user = account_or_fail(email)
    mine = targets_of(user)
    if not mine:
        click.echo(f"{user.email} has no notification targets.")
    for number, target in enumerate(mine, start=1):
        events = ", ".join(target.events) if target.events is not None else "all events"
        quiet = (f", quiet {target.quiet_start // 60:02d}:{target.quiet_start % 60:02d}-"
                 f"{target.quiet_end // 60:02d}:{target.quiet_end % 60:02d}") if target.quiet_start is not None else ""
        problem = f"  last error: {target.last_error}" if target.last_error else ""
        click.echo(f"{number}. {target.label}  ({events}{quiet}){problem}")


@notifications_cli.command("remove")
@click.argument("email")
@click.argument("number", type=int)
def remove(email: str, number: int) -> None:
    """Remove EMAIL's target NUMBER (as `list` numbers them)."""
    user = account_or_fail(email)
    try:
        target = remove_target(user, number)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Removed {target.label}.")


@notifications_cli.command("test")
@click.argument("email")
def test(email: str) -> None:
    """Send a test message to every target of EMAIL now; exits 1 if any could not be delivered."""
    user = account_or_fail(email)
    if not targets_of(user):
        raise click.ClickException(f"{user.email} has no notification targets; add one first.")
    failed = send_test(user, clock.now())
    click.echo(f"Sent {len(targets_of(user)) - failed} message(s); {failed} failed (retried automatically).")
    if failed:
        raise SystemExit(1)
