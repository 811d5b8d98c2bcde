"""`flask households …`: list households, add and remove members (thin: the service does the work)."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app import accounts, clock
from app.extensions import db
from app.households.service import (
    ACTOR_COMMAND_LINE,
    HouseholdError,
    add_member,
    find_owned,
    household_of,
    members_of,
    remove_member,
)
from app.models import Household, User

households_cli = AppGroup("households", help="List households and manage who belongs to them.")


def account_or_fail(email: str) -> User:
    """The account with this e-mail, or a clear error (non-zero exit)."""
    user = accounts.find_user(email)
    if user is None:
        raise click.ClickException(f"No account with email {email!r}.")
    return user


def household_or_fail(email: str) -> Household:
    """The household this account belongs to (the one it owns first), or a clear error."""
    found = household_of(account_or_fail(email))
    if found is None:
        raise click.ClickException(f"{email} belongs to no household yet.")
    return found[0]


def owned_or_fail(owner_email: str) -> Household:
    """The household OWNER_EMAIL owns, or a clear error."""
    household = find_owned(account_or_fail(owner_email))
    if household is None:
        raise click.ClickException(f"{owner_email} does not own a household.")
    return household


@households_cli.command("list")
def list_households() -> None:
    """Each household: its Tesla and Amber sites, sync on/off, members with their roles."""
    households = db.session.scalars(select(Household).order_by(Household.id)).all()
    if not households:
        click.echo("No households yet.")
        return
    for household in households:
        settings = household.settings
        click.echo(
            f"#{household.id} {household.name}  tesla_site={(settings and settings.tesla_site_id) or '-'}  "
            f"amber_site={(settings and settings.amber_site_id) or '-'}  "
            f"sync={'on' if settings and settings.sync_enabled else 'off'}"
        )
        for user, role in members_of(household):
            click.echo(f"    {user.email}  {role}")


@households_cli.command("add-member")
@click.argument("owner_email")
@click.argument("member_email")
@click.option("--role", required=True, help="operator or viewer (or owner).")
def add_member_command(owner_email: str, member_email: str, role: str) -> None:
    """Add an existing account to the household OWNER_EMAIL owns."""
    if role not in ("owner", "operator", "viewer"):
        raise click.ClickException(f"Unknown role {role!r}: choose operator, viewer or owner.")
    household = owned_or_fail(owner_email)
    member = account_or_fail(member_email)
    try:
        add_member(household, member, role, ACTOR_COMMAND_LINE, clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"{member.email} is now {role} of {household.name}.")


@households_cli.command("remove-member")
@click.argument("owner_email")
@click.argument("member_email")
def remove_member_command(owner_email: str, member_email: str) -> None:
    """Remove an account from the household OWNER_EMAIL owns."""
    household = owned_or_fail(owner_email)
    member = account_or_fail(member_email)
    try:
        remove_member(household, member, ACTOR_COMMAND_LINE, clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"{member.email} no longer belongs to {household.name}.")
