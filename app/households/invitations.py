"""Invitations: a single-use link that lets one e-mail address join a household with a role.

The token is shown once to the owner (no mail server is assumed) and stored only as its SHA-256."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.extensions import db
from app.households.service import ROLES, HouseholdError, add_member, record_event, role_in
from app.models import Household, HouseholdInvitation, User
from app.validation import clean_email


class InvitationInvalid(HouseholdError):
    """The link is unknown, used, revoked or expired; the message says which, never whose it was."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just made, with the token the owner copies (shown once)."""

    invitation: HouseholdInvitation
    token: str


def invite(household: Household, email: object, role: str, actor: str, now: datetime, days: int) -> NewInvitation:
    """Invite `email` to the household as `role`, valid `days` days. The caller commits."""
    if role not in ROLES:
        raise HouseholdError("Choose a role: owner, operator or viewer.")
    try:
        address = clean_email(email)
    except ValueError as exc:
        raise HouseholdError(str(exc)) from exc
    member = db.session.scalar(select(User).where(User.email == address))
    if member is not None and role_in(member, household) is not None:
        raise HouseholdError(f"{address} is already a member of this household.")
    token = secrets.token_urlsafe(32)
    invitation = HouseholdInvitation(
        household_id=household.id, email=address, role=role, token_hash=_hash(token), invited_by=actor,
        created_at=now, expires_at=now + timedelta(days=days),
    )
    db.session.add(invitation)
    db.session.flush()
    record_event(household, actor, "invited", f"Invited {address} as {role} (valid {days} days).", now)
    return NewInvitation(invitation, token)


def find(token: str | None, now: datetime) -> HouseholdInvitation:
    """The invitation behind a link, if it can still be used (InvitationInvalid otherwise)."""
    if not token or len(token) > 200:
        raise InvitationInvalid("This invitation link is not valid. Ask the household's owner for a new one.")
    invitation = db.session.scalar(select(HouseholdInvitation).where(HouseholdInvitation.token_hash == _hash(token)))
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid. Ask the household's owner for a new one.")
    if invitation.used_at is not None:
        raise InvitationInvalid("This invitation has already been used.")
    if invitation.revoked_at is not None:
        raise InvitationInvalid("This invitation was withdrawn by the household's owner.")
    if invitation.expires_at <= now:
        raise InvitationInvalid("This invitation has expired. Ask the household's owner for a new one.")
    return invitation


def accept(token: str | None, user: User, now: datetime) -> Household:
    """Join the household as the invitation says; only the invited address may. The caller commits."""
    invitation = find(token, now)
    if user.email != invitation.email:
        raise InvitationInvalid(f"This invitation is for {invitation.email}; sign in with that address to accept it.")
    household = db.session.get(Household, invitation.household_id)
    add_member(household, user, invitation.role, user.email, now)
    invitation.used_at = now
    return household


def pending(household: Household, now: datetime) -> list[HouseholdInvitation]:
    """Invitations that can still be accepted, newest first."""
    return list(db.session.scalars(
        select(HouseholdInvitation)
        .where(
            HouseholdInvitation.household_id == household.id,
            HouseholdInvitation.used_at.is_(None),
            HouseholdInvitation.revoked_at.is_(None),
            HouseholdInvitation.expires_at > now,
        )
        .order_by(HouseholdInvitation.created_at.desc(), HouseholdInvitation.id.desc())
    ))


def revoke(household: Household, invitation_id: int, actor: str, now: datetime) -> None:
    """Withdraw a pending invitation of this household. The caller commits."""
    invitation = db.session.get(HouseholdInvitation, invitation_id)
    if invitation is None or invitation.household_id != household.id or invitation.used_at or invitation.revoked_at:
        raise HouseholdError("That invitation is not pending.")
    invitation.revoked_at = now
    record_event(household, actor, "invitation_revoked", f"Withdrew the invitation for {invitation.email}.", now)
