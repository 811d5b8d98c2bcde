"""Views of the auth blueprint."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app import accounts, clock
from app.auth import bp
from app.auth.forms import ChangePasswordForm, LoginForm, RegisterForm
from app.extensions import db
from app.form_helpers import ActionForm
from app.security import public, safe_next


def _sign_in(user) -> None:
    login_user(user)
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Sign in; the first visitor of a new install is sent to sign-up."""
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")) or url_for("dashboard.index"))
    policy = current_app.config["REGISTRATION"]
    if request.method == "GET" and accounts.user_count() == 0 and accounts.registration_open(policy):
        return redirect(url_for("auth.register"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        result = accounts.authenticate(
            form.email.data, form.password.data, request.remote_addr or "unknown", clock.now()
        )
        db.session.commit()  # failures count even though the sign-in fails
        if result.user is not None:
            _sign_in(result.user)
            return redirect(safe_next(request.args.get("next")) or url_for("dashboard.index"))
        form.form_errors.append(result.message)
        if result.retry_after:
            status = 429
    elif request.method == "POST":
        status = 400
    response = current_app.make_response(
        (render_template("auth/login.html", form=form, registration_open=accounts.registration_open(policy)), status)
    )
    if status == 429:
        response.headers["Retry-After"] = str(result.retry_after)
    return response


@bp.route("/register", methods=["GET", "POST"])
@public
def register():
    """Create an account, when the registration policy allows it."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    policy = current_app.config["REGISTRATION"]
    is_open = accounts.registration_open(policy)
    form = RegisterForm()
    status = 200
    if not is_open:
        status = 403 if request.method == "POST" else 200
    elif form.validate_on_submit():
        try:
            user = accounts.register(form.email.data, form.password.data, policy)
        except accounts.AccountError as exc:
            db.session.rollback()
            (getattr(form, exc.field).errors if exc.field else form.form_errors).append(str(exc))
            status = 400
        else:
            db.session.commit()
            _sign_in(user)
            flash("Welcome! Add your Amber and Tesla details to get started.", "success")
            return redirect(url_for("settings.index"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/register.html", form=form, is_open=is_open, first=accounts.user_count() == 0), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, with the CSRF token)."""
    form = ActionForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Change one's own password; other sessions are signed out."""
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.change_password(current_user, form.current_password.data, form.new_password.data)
        except accounts.AccountError as exc:
            db.session.rollback()
            (form.new_password.errors if exc.field == "password" else form.form_errors).append(str(exc))
            status = 400
        else:
            db.session.commit()
            _sign_in(current_user)  # keep this session valid under the new nonce
            flash("Your password was changed. Other devices have been signed out.", "success")
            return redirect(url_for("dashboard.index"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/change_password.html", form=form), status
