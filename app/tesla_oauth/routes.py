"""Views of the tesla_oauth blueprint: Fleet connect / callback / disconnect, the public key, and the
administrators' Tesla app page."""
from __future__ import annotations

import logging

from flask import Response, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from app.households.web import current_household, requires

from app import clock
from app.connections import NotConfigured
from app.extensions import db
from app.form_helpers import ActionForm
from app.security import admin_required, public
from app.tesla_oauth import bp
from app.tesla_oauth.service import (
    PUBLIC_KEY_PATH,
    REGION_NAMES,
    ConnectFailed,
    KeyExists,
    OAuthStateError,
    RegistrationNotReady,
    complete_authorization,
    consume_state,
    current_key,
    disconnect_fleet,
    fleet_app_config,
    fleet_panel,
    generate_key_pair,
    region_name,
    register_region,
    registrations,
    start_authorization,
    tesla_error_message,
)

log = logging.getLogger(__name__)

# The state of the sign-in this browser started; the database keeps only its hash.
SESSION_STATE_KEY = "tesla_oauth_state"


@bp.app_context_processor
def _fleet_panel_helper() -> dict:
    # A callable, so pages that never show the Fleet panel never compute it.
    return {"tesla_fleet_panel": lambda: fleet_panel(current_household(), clock.now())}


def _settings():
    return redirect(url_for("settings.index"))


# -- a user's Fleet connection ----------------------------------------------------------------------------


@bp.route("/tesla-fleet/connect", methods=["GET"])
@requires("manage")
def connect_page():
    """Explain what connecting does, with the button that starts it."""
    return render_template("tesla_oauth/connect.html", fleet=fleet_app_config())


@bp.route("/tesla-fleet/connect", methods=["POST"])
@requires("manage")
def connect():
    """Start the Tesla sign-in: remember a single-use state with its PKCE verifier and redirect to Tesla."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        url, state = start_authorization(current_user, clock.now())
    except NotConfigured:
        flash("Tesla Fleet is not set up on this installation; use Teslemetry instead.", "error")
        return _settings()
    db.session.commit()
    session[SESSION_STATE_KEY] = state
    log.info("User %s started the Tesla Fleet sign-in", current_user.id)
    return redirect(url, code=302)


def _callback_failed(message: str, status: int):
    return (
        render_template(
            "tesla_oauth/callback_error.html", message=message, fleet=fleet_app_config()
        ),
        status,
    )


@bp.route("/tesla-fleet/callback", methods=["GET"])
@requires("manage")
def callback():
    """Tesla's redirect back: check the state, exchange the code, save the tokens, list the energy sites."""
    now = clock.now()
    session_state = session.pop(SESSION_STATE_KEY, None)
    state = request.args.get("state")
    error = request.args.get("error")
    if error:
        try:  # spend the state so it cannot be used later; the answer is the same either way
            consume_state(current_user, state, session_state, now)
            db.session.commit()
        except OAuthStateError:
            db.session.rollback()
        log.info("User %s: Tesla sign-in ended with an error", current_user.id)
        return _callback_failed(tesla_error_message(error), 400)
    try:
        verifier = consume_state(current_user, state, session_state, now)
    except OAuthStateError as exc:
        db.session.rollback()
        log.warning("User %s: rejected a Tesla callback: %s", current_user.id, exc)
        return _callback_failed(str(exc), 400)
    db.session.commit()  # single use, even when the exchange below fails
    code = request.args.get("code")
    if not code:
        return _callback_failed("Tesla sent no sign-in code. Please connect again.", 400)
    try:
        result = complete_authorization(current_household(), code, verifier, now)
    except NotConfigured as exc:
        db.session.rollback()
        return _callback_failed(str(exc), 400)
    except ConnectFailed as exc:
        db.session.rollback()
        return _callback_failed(str(exc), 502)
    flash(" ".join(result.messages), "success" if result.ok else "error")
    return _settings()


@bp.route("/tesla-fleet/disconnect", methods=["POST"])
@requires("manage")
def disconnect():
    """Forget the user's Fleet tokens."""
    if not ActionForm().validate_on_submit():
        abort(400)
    disconnect_fleet(current_household(), clock.now())
    db.session.commit()
    flash(
        "Tesla Fleet disconnected: its tokens are removed from this app. To withdraw the app's access at Tesla as "
        "well, remove it under third-party apps in your Tesla account.",
        "info",
    )
    return _settings()


# -- the installation's Tesla app -------------------------------------------------------------------------


@bp.route(PUBLIC_KEY_PATH, methods=["GET"])
@public
def public_key():
    """The app's EC public key (PEM), where Tesla looks for it."""
    key = current_key()
    if key is None:
        return Response("No public key has been generated for this installation yet.\n", 404, mimetype="text/plain")
    response = Response(key.public_key_pem, mimetype="application/x-pem-file")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.route("/admin/tesla-app", methods=["GET"])
@admin_required
def admin_app():
    """Fleet app settings (set or not), the key pair and the partner registration per region."""
    fleet = fleet_app_config()
    return render_template(
        "tesla_oauth/admin_app.html",
        fleet=fleet,
        key=current_key(),
        local_key_url=url_for("tesla_oauth.public_key", _external=True),
        registrations=registrations(),
        region_names=REGION_NAMES,
    )


def _admin_page():
    return redirect(url_for("tesla_oauth.admin_app"))


@bp.route("/admin/tesla-app/key", methods=["POST"])
@admin_required
def generate_key():
    """Generate the key pair (refused when one exists)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        generate_key_pair(clock.now())
    except KeyExists as exc:
        db.session.rollback()
        flash(f"{exc} Use “Replace key pair” if you really want a new one.", "error")
        return _admin_page()
    db.session.commit()
    flash("Key pair generated. The public key is now served at the address below.", "success")
    return _admin_page()


@bp.route("/admin/tesla-app/key/replace", methods=["POST"])
@admin_required
def replace_key():
    """Replace the key pair (every region must be registered again)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    generate_key_pair(clock.now(), replace=True)
    db.session.commit()
    flash("Key pair replaced. Register every region again so Tesla has the new public key.", "success")
    return _admin_page()


@bp.route("/admin/tesla-app/register/<region>", methods=["POST"])
@admin_required
def register(region: str):
    """Register this installation's domain with Tesla for one region."""
    if region not in REGION_NAMES:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        row = register_region(region, clock.now())
    except (RegistrationNotReady, NotConfigured) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _admin_page()
    db.session.commit()
    if row.ok:
        flash(row.message or f"Registered for {region_name(region)}.", "success")
    else:
        flash(f"Registration for {region_name(region)} failed: {row.message}", "error")
    return _admin_page()
