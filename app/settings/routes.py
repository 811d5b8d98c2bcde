"""Views of the settings blueprint."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.credentials import SettingsError, apply_settings, secret_status
from app.extensions import db
from app.form_helpers import ActionForm
from app.settings import bp
from app.settings.forms import AmberForm, PreferencesForm, TeslemetryForm

REMOVABLE_SECRETS = ("amber_token", "teslemetry_token")


def _render(status: int = 200, **forms):
    settings = current_user.settings
    amber = forms.get("amber") or AmberForm(formdata=None, site_id=settings.amber_site_id if settings else "")
    tesla = forms.get("tesla") or TeslemetryForm(formdata=None, site_id=settings.tesla_site_id if settings else "")
    prefs = forms.get("prefs") or PreferencesForm(
        formdata=None,
        site_timezone=(settings.site_timezone if settings else "") or "",
        forecast_estimate=settings.forecast_estimate if settings else "predicted",
        sync_enabled=settings.sync_enabled if settings else False,
    )
    if settings and settings.site_timezone and settings.site_timezone not in dict(prefs.site_timezone.choices):
        prefs.site_timezone.choices = list(prefs.site_timezone.choices) + [(settings.site_timezone,) * 2]
    return (
        render_template(
            "settings/index.html",
            amber_form=amber,
            tesla_form=tesla,
            prefs_form=prefs,
            action_form=ActionForm(),
            amber_status=secret_status(settings, "amber_token"),
            teslemetry_status=secret_status(settings, "teslemetry_token"),
            fleet_status=secret_status(settings, "tesla_access_token"),
        ),
        status,
    )


def _save(form, form_key: str, changes: dict[str, object], field_map: dict[str, str]):
    """Apply validated changes, or show the page again with the problem next to its field."""
    try:
        changed = apply_settings(current_user, **changes)
    except SettingsError as exc:
        db.session.rollback()
        field = getattr(form, field_map.get(exc.field, exc.field), None)
        (field.errors if field is not None else form.form_errors).append(str(exc))
        return _render(400, **{form_key: form})
    db.session.commit()
    flash("Saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("settings.index"))


@bp.route("", methods=["GET"])
def index():
    """The settings page."""
    return _render()


@bp.route("/amber", methods=["POST"])
def save_amber():
    """Save the Amber token (when a new one is typed) and site id."""
    form = AmberForm()
    if not form.validate_on_submit():
        return _render(400, amber=form)
    changes: dict[str, object] = {"amber_site_id": form.site_id.data}
    if form.token.data:
        changes["amber_token"] = form.token.data
    elif not secret_status(current_user.settings, "amber_token").saved:
        form.token.errors.append("Enter the Amber API token.")
        return _render(400, amber=form)
    return _save(form, "amber", changes, {"amber_token": "token", "amber_site_id": "site_id"})


@bp.route("/tesla", methods=["POST"])
def save_tesla():
    """Save the Teslemetry token (when a new one is typed) and the Tesla energy site id."""
    form = TeslemetryForm()
    if not form.validate_on_submit():
        return _render(400, tesla=form)
    changes: dict[str, object] = {"tesla_site_id": form.site_id.data}
    if form.token.data:
        changes["teslemetry_token"] = form.token.data
    return _save(form, "tesla", changes, {"teslemetry_token": "token", "tesla_site_id": "site_id"})


@bp.route("/preferences", methods=["POST"])
def save_preferences():
    """Save the time zone and sync preferences."""
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _render(400, prefs=form)
    changes = {
        "site_timezone": form.site_timezone.data,
        "forecast_estimate": form.forecast_estimate.data,
        "sync_enabled": form.sync_enabled.data,
    }
    return _save(form, "prefs", changes, {})


@bp.route("/remove/<name>", methods=["POST"])
def remove_secret(name: str):
    """Remove a saved token."""
    if name not in REMOVABLE_SECRETS:
        abort(404)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    apply_settings(current_user, **{name: None})
    db.session.commit()
    flash(f"{secret_status(None, name).label} removed.", "info")
    return redirect(url_for("settings.index"))
