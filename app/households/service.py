"""Households and members: create, find, roles and what each may do, the one-controller rule, audit."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.models import Household, HouseholdEvent, HouseholdMember, HouseholdSettings, User

log = logging.getLogger(__name__)

ROLES = ("owner", "operator", "viewer")
# What each role may do; a role may do everything a lower one may.
RANK = {"viewer": 0, "operator": 1, "owner": 2}
NEEDS = {
    "view": "viewer",  # dashboard, tariff, history
    "control": "operator",  # force charge / discharge / cancel, sync now
    "manage": "owner",  # tokens, settings, members, invitations
}
ACTOR_SCHEDULE = "schedule"
ACTOR_COMMAND_LINE = "command line"
ACTOR_HOME_ASSISTANT = "Home Assistant"
ROLE_WORDS = {"owner": "owner", "operator": "operator", "viewer": "viewer"}


class HouseholdError(Exception):
    """A household change that cannot be made; the message is fit to show."""


class PowerwallTaken(HouseholdError):
    """The Tesla energy site is already controlled by another household."""

    def __init__(self) -> None:
        super().__init__(
            "This Powerwall is already managed here by another household; ask its owner to invite you."
        )


def can(role: str | None, what: str) -> bool:
    """Whether `role` may do `what` (view | control | manage)."""
    return role is not None and RANK[role] >= RANK[NEEDS[what]]


def role_in(user: User, household: Household) -> str | None:
    """The person's role in the household, or None."""
    return db.session.scalar(
        select(HouseholdMember.role).where(
            HouseholdMember.household_id == household.id, HouseholdMember.user_id == user.id
        )
    )


def households_of(user: User) -> list[tuple[Household, str]]:
    """The households the person belongs to with their role, oldest membership first."""
    rows = db.session.execute(
        select(Household, HouseholdMember.role)
        .join(HouseholdMember, HouseholdMember.household_id == Household.id)
        .where(HouseholdMember.user_id == user.id)
        .order_by(HouseholdMember.id)
    ).all()
    return [(household, role) for household, role in rows]


def household_of(user: User, household_id: int | None = None) -> tuple[Household, str] | None:
    """The household `household_id` if the person belongs to it, else their first; None when they have none."""
    mine = households_of(user)
    for household, role in mine:
        if household.id == household_id:
            return household, role
    return mine[0] if mine else None


def find_owned(user: User) -> Household | None:
    """The first household the person owns, if any."""
    return db.session.scalar(
        select(Household)
        .join(HouseholdMember, HouseholdMember.household_id == Household.id)
        .where(HouseholdMember.user_id == user.id, HouseholdMember.role == "owner")
        .order_by(HouseholdMember.id)
        .limit(1)
    )


def create_household(owner: User, now: datetime, name: str | None = None) -> Household:
    """A new household with `owner` as its owner and empty settings. The caller commits."""
    household = Household(name=(name or f"{owner.email}'s household")[:120], created_at=now)
    household.settings = HouseholdSettings()
    db.session.add(household)
    db.session.flush()
    db.session.add(HouseholdMember(household_id=household.id, user_id=owner.id, role="owner", created_at=now))
    record_event(household, owner.email, "household_created", "Household created.", now)
    return household


def owned_or_new(user: User, now: datetime) -> Household:
    """The household the person owns, made on first use (the command line configures this one)."""
    return find_owned(user) or create_household(user, now)


def members_of(household: Household) -> list[tuple[User, str]]:
    """Every member with their role, owners first."""
    rows = db.session.execute(
        select(User, HouseholdMember.role)
        .join(HouseholdMember, HouseholdMember.user_id == User.id)
        .where(HouseholdMember.household_id == household.id)
        .order_by(HouseholdMember.role != "owner", HouseholdMember.role != "operator", User.email)
    ).all()
    return [(user, role) for user, role in rows]


def _owner_count(household: Household) -> int:
    return db.session.scalar(
        select(func.count()).select_from(HouseholdMember).where(
            HouseholdMember.household_id == household.id, HouseholdMember.role == "owner"
        )
    ) or 0


def _membership(household: Household, user: User) -> HouseholdMember | None:
    return db.session.scalar(
        select(HouseholdMember).where(HouseholdMember.household_id == household.id, HouseholdMember.user_id == user.id)
    )


def add_member(household: Household, user: User, role: str, actor: str, now: datetime) -> HouseholdMember:
    """Add a person with a role (or change the role of one already there). The caller commits."""
    if role not in ROLES:
        raise HouseholdError(f"Unknown role {role!r}: choose owner, operator or viewer.")
    member = _membership(household, user)
    if member is not None:
        if member.role != role:
            change_role(household, user, role, actor, now)
        return member
    member = HouseholdMember(household_id=household.id, user_id=user.id, role=role, created_at=now)
    db.session.add(member)
    db.session.flush()
    record_event(household, actor, "member_added", f"{user.email} joined as {role}.", now)
    return member


def change_role(household: Household, user: User, role: str, actor: str, now: datetime) -> None:
    """Give a member another role; the last owner cannot be demoted. The caller commits."""
    if role not in ROLES:
        raise HouseholdError(f"Unknown role {role!r}: choose owner, operator or viewer.")
    member = _membership(household, user)
    if member is None:
        raise HouseholdError(f"{user.email} is not a member of this household.")
    if member.role == role:
        return
    if member.role == "owner" and _owner_count(household) <= 1:
        raise HouseholdError("A household needs an owner: make someone else an owner first.")
    before, member.role = member.role, role
    record_event(household, actor, "member_role", f"{user.email}: {before} -> {role}.", now)


def remove_member(household: Household, user: User, actor: str, now: datetime) -> None:
    """Remove a member (or let one leave); the last owner cannot. The caller commits."""
    member = _membership(household, user)
    if member is None:
        raise HouseholdError(f"{user.email} is not a member of this household.")
    if member.role == "owner" and _owner_count(household) <= 1:
        raise HouseholdError("The last owner cannot leave: make someone else an owner first, or delete the household.")
    db.session.delete(member)
    record_event(household, actor, "member_removed", f"{user.email} left the household.", now)


def claim_tesla_site(household: Household, site_id: str | None) -> None:
    """Refuse a Tesla energy site that another household already controls (PowerwallTaken)."""
    if not site_id:
        return
    other = db.session.scalar(
        select(HouseholdSettings.household_id).where(
            HouseholdSettings.tesla_site_id == str(site_id), HouseholdSettings.household_id != household.id
        )
    )
    if other is not None:
        log.info("Household %s: refused Tesla site already controlled by household %s", household.id, other)
        raise PowerwallTaken()


def record_event(household: Household, actor: str, action: str, message: str, now: datetime) -> None:
    """Remember who did what (history shows it). The caller commits."""
    db.session.add(HouseholdEvent(household_id=household.id, at=now, actor=actor[:254], action=action[:48], message=message))


def recent_events(household: Household, limit: int = 50) -> list[HouseholdEvent]:
    """The household's latest audit events (who did what), newest first."""
    return list(db.session.scalars(
        select(HouseholdEvent).where(HouseholdEvent.household_id == household.id)
        .order_by(HouseholdEvent.at.desc(), HouseholdEvent.id.desc()).limit(limit)
    ))


def release_memberships(user: User, actor: str, now: datetime) -> None:
    """Before an account is deleted: delete the households it alone belongs to; in a shared one whose
    last owner it is, the longest-standing other member becomes owner. The caller commits."""
    for household, role in households_of(user):
        others = db.session.scalars(
            select(HouseholdMember)
            .where(HouseholdMember.household_id == household.id, HouseholdMember.user_id != user.id)
            .order_by(HouseholdMember.id)
        ).all()
        if not others:
            log.info("Household %s: deleted with its only member's account", household.id)
            db.session.delete(household)
            continue
        if role == "owner" and not any(member.role == "owner" for member in others):
            heir = others[0]
            heir.role = "owner"
            record_event(household, actor, "member_role", f"{heir.user.email} became owner: {user.email}'s account was deleted.", now)
        record_event(household, actor, "member_removed", f"{user.email}'s account was deleted.", now)
