"""Household pages: members and roles, invitations (make, list, revoke, accept), switching households."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user

from app import accounts, clock
from app.extensions import db
from app.form_helpers import ActionForm
from app.households import invitations
from app.households.forms import InvitedRegisterForm, InviteForm, RoleForm
from app.households.service import HouseholdError, change_role, households_of, members_of, remove_member
from app.households.web import actor, allowed, current, current_household, requires, switch_to
from app.models import Household, User
from app.security import public

log = logging.getLogger(__name__)
bp = Blueprint("households", __name__)
NEW_LINK_KEY = "new_invitation_link"


@bp.app_context_processor
def _household_nav() -> dict:
    """`household_nav()` for the layout: (current household, role, every household of the person), read lazily."""

    def household_nav():
        household, role = current()
        return household, role, households_of(current_user)

    return {"household_nav": household_nav, "can": allowed}


def _page(status: int = 200, invite_form: InviteForm | None = None, new_link: str | None = None):
    household, role = current()
    now = clock.now()
    return render_template(
        "households/index.html",
        household=household,
        role=role,
        members=members_of(household),
        pending=invitations.pending(household, now) if role == "owner" else [],
        invite_form=invite_form or InviteForm(formdata=None),
        role_form=RoleForm(formdata=None),
        new_link=new_link,
        invitation_days=current_app.config["INVITATION_DAYS"],
    ), status


@bp.get("/household")
@requires("view")
def index():
    """Who belongs to this household, and (for owners) invitations."""
    return _page(new_link=session.pop(NEW_LINK_KEY, None))


@bp.post("/household/invite")
@requires("manage")
def invite():
    """Make an invitation link for the owner to pass on."""
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(400, invite_form=form)
    try:
        made = invitations.invite(
            current_household(), form.email.data, form.role.data, actor(), clock.now(), current_app.config["INVITATION_DAYS"]
        )
    except HouseholdError as exc:
        db.session.rollback()
        form.email.errors.append(str(exc))
        return _page(400, invite_form=form)
    db.session.commit()
    # Shown once, on the page this redirects to (so a reload never sends the form again).
    session[NEW_LINK_KEY] = url_for("households.invitation", token=made.token, _external=True)
    return redirect(url_for("households.index"))


@bp.post("/household/invitations/<int:invitation_id>/revoke")
@requires("manage")
def revoke(invitation_id: int):
    """Withdraw a pending invitation."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("households.index"))
    try:
        invitations.revoke(current_household(), invitation_id, actor(), clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Invitation withdrawn.", "info")
    return redirect(url_for("households.index"))


def _member_or_404(user_id: int) -> User | None:
    return db.session.get(User, user_id)


@bp.post("/household/members/<int:user_id>/role")
@requires("manage")
def set_role(user_id: int):
    """Give a member another role."""
    form = RoleForm()
    member = _member_or_404(user_id)
    if not form.validate_on_submit() or member is None:
        flash("Choose a role for a member of this household.", "error")
        return redirect(url_for("households.index"))
    try:
        change_role(current_household(), member, form.role.data, actor(), clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{member.email} is now {form.role.data}.", "success")
    return redirect(url_for("households.index"))


@bp.post("/household/members/<int:user_id>/remove")
@requires("manage")
def remove(user_id: int):
    """Remove a member (an owner cannot remove the last owner)."""
    member = _member_or_404(user_id)
    if not ActionForm().validate_on_submit() or member is None:
        return redirect(url_for("households.index"))
    try:
        remove_member(current_household(), member, actor(), clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(f"{member.email} was removed from the household.", "info")
    return redirect(url_for("households.index"))


@bp.post("/household/leave")
@requires("view")
def leave():
    """Leave the current household (the last owner cannot)."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("households.index"))
    household = current_household()
    try:
        remove_member(household, current_user, actor(), clock.now())
    except HouseholdError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("households.index"))
    db.session.commit()
    session.pop("household_id", None)
    flash(f"You left {household.name}.", "info")
    return redirect(url_for("dashboard.index"))


@bp.post("/household/switch")
def switch():
    """Look at another household this person belongs to (remembered for the session)."""
    if not ActionForm().validate_on_submit():
        return redirect(url_for("dashboard.index"))
    try:
        wanted = int(request.form.get("household_id", ""))
    except ValueError:
        wanted = -1
    if not switch_to(wanted):
        flash("You do not belong to that household.", "error")
    return redirect(url_for("dashboard.index"))


@bp.post("/household/notice/dismiss")
@requires("manage")
def dismiss_notice():
    """Hide the household's notice for everyone."""
    if ActionForm().validate_on_submit():
        current_household().notice = None
        db.session.commit()
    return redirect(url_for("dashboard.index"))


# -- accepting an invitation (reachable signed out) ------------------------------------------------------------


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def invitation(token: str):
    """Show an invitation; a signed-in person with the invited address joins with one click."""
    now = clock.now()
    try:
        found = invitations.find(token, now)
    except invitations.InvitationInvalid as exc:
        return render_template("households/invitation.html", problem=str(exc)), 404
    household = db.session.get(Household, found.household_id)
    if request.method == "POST" and current_user.is_authenticated:
        if not ActionForm().validate_on_submit():
            return redirect(url_for("households.invitation", token=token))
        try:
            joined = invitations.accept(token, current_user, now)
        except HouseholdError as exc:
            db.session.rollback()
            return render_template("households/invitation.html", problem=str(exc), invitation=found, household=household), 403
        db.session.commit()
        switch_to(joined.id)
        flash(f"You joined {joined.name} as {found.role}.", "success")
        return redirect(url_for("dashboard.index"))
    existing = accounts.find_user(found.email)
    return render_template(
        "households/invitation.html", invitation=found, household=household, token=token, has_account=existing is not None
    )


@bp.route("/invite/<token>/register", methods=["GET", "POST"])
@public
def invitation_register(token: str):
    """Create an account for the invited address and join, even when sign-up is closed."""
    now = clock.now()
    try:
        found = invitations.find(token, now)
    except invitations.InvitationInvalid as exc:
        return render_template("households/invitation.html", problem=str(exc)), 404
    if current_user.is_authenticated:
        return redirect(url_for("households.invitation", token=token))
    if accounts.find_user(found.email) is not None:
        flash(f"An account for {found.email} exists already: sign in to accept the invitation.", "info")
        return redirect(url_for("auth.login", next=url_for("households.invitation", token=token)))
    form = InvitedRegisterForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.create_user(found.email, form.password.data)
            db.session.flush()
            joined = invitations.accept(token, user, now)
        except (accounts.AccountError, HouseholdError) as exc:
            db.session.rollback()
            (form.password.errors if getattr(exc, "field", None) == "password" else form.form_errors).append(str(exc))
            status = 400
        else:
            db.session.commit()
            login_user(user)
            session.permanent = True
            switch_to(joined.id)
            flash(f"Welcome! You joined {joined.name} as {found.role}.", "success")
            return redirect(url_for("dashboard.index"))
    elif request.method == "POST":
        status = 400
    return render_template("households/invited_register.html", form=form, invitation=found, token=token), status
