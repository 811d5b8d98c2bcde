"""Views of the admin blueprint."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from app import accounts
from app.admin import bp
from app.admin.forms import CreateUserForm
from app.extensions import db
from app.form_helpers import ActionForm
from app.models import User
from app.security import admin_required, is_db_id


def _render(form: CreateUserForm | None = None, status: int = 200):
    users = db.session.scalars(select(User).order_by(User.email)).all()
    return (
        render_template("admin/users.html", users=users, form=form or CreateUserForm()),
        status,
    )


@bp.route("/users", methods=["GET"])
@admin_required
def users():
    """List every account."""
    return _render()


@bp.route("/users", methods=["POST"])
@admin_required
def create_user():
    """Create an account."""
    form = CreateUserForm()
    if not form.validate_on_submit():
        return _render(form, 400)
    try:
        user = accounts.create_user(form.email.data, form.password.data, is_admin=form.is_admin.data)
    except accounts.AccountError as exc:
        db.session.rollback()
        (getattr(form, exc.field).errors if exc.field else form.form_errors).append(str(exc))
        return _render(form, 400)
    db.session.commit()
    flash(f"Account {user.email} created.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/<action>", methods=["POST"])
@admin_required
def user_action(user_id: int, action: str):
    """Disable, enable or delete an account."""
    if action not in ("disable", "enable", "delete"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    user = (db.session.get(User, user_id) if is_db_id(user_id) else None) or abort(404)
    email = user.email
    try:
        if action == "delete":
            accounts.delete_user(current_user, user)
        else:
            accounts.set_disabled(current_user, user, action == "disable")
    except accounts.AccountError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.users"))
    db.session.commit()
    flash(f"Account {email} {action}d.", "success")
    return redirect(url_for("admin.users"))
