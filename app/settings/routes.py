"""Views of the settings blueprint."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, url_for

from app import clock
from app.connections import check_connections, effective_timezone, fleet_configured, statuses
from app.credentials import SettingsError, apply_settings, secret_status
from app.extensions import db
from app.form_helpers import ActionForm
from app.households.web import actor, current_household, requires
from app.settings import bp
from app.settings.forms import AmberForm, PreferencesForm, TeslaForm

REMOVABLE_SECRETS = ("amber_token", "teslemetry_token")
STATE_WORDS = {"connected": "Connected", "attention": "Needs attention", "not_configured": "Not configured"}


def _site_choices(status, current: str | None) -> list[tuple[str, str]]:
    """Sites found by the last connection check, as (id, label); the current choice is always listed."""
    sites = list((status.details or {}).get("sites", [])) if status else []
    choices = [(s["id"], " · ".join(str(v) for v in (s["id"], s.get("name") or s.get("nmi"), s.get("status")) if v)) for s in sites]
    if current and current not in {c[0] for c in choices}:
        choices.append((current, f"{current} (not found in the last check)"))
    return choices


def _render(status: int = 200, **forms):
    settings = current_household().settings
    amber = forms.get("amber") or AmberForm(formdata=None, site_id=settings.amber_site_id if settings else "")
    tesla = forms.get("tesla") or TeslaForm(
        formdata=None,
        site_id=settings.tesla_site_id if settings else "",
        path=settings.tesla_path if settings else "teslemetry",
    )
    prefs = forms.get("prefs") or PreferencesForm(
        formdata=None,
        site_timezone=(settings.site_timezone if settings else "") or "",
        forecast_estimate=settings.forecast_estimate if settings else "predicted",
        sync_enabled=settings.sync_enabled if settings else False,
        change_threshold_cents=f"{settings.change_threshold_cents:g}" if settings else "0.5",
        export_protection=settings.export_protection if settings else True,
        export_protection_rule=settings.export_protection_rule if settings else "never",
        discharge_floor_percent=str(settings.discharge_floor_percent) if settings else "20",
    )
    if settings and settings.site_timezone and settings.site_timezone not in dict(prefs.site_timezone.choices):
        prefs.site_timezone.choices = list(prefs.site_timezone.choices) + [(settings.site_timezone,) * 2]
    service_status = statuses(current_household())
    return (
        render_template(
            "settings/index.html",
            amber_form=amber,
            tesla_form=tesla,
            prefs_form=prefs,
            amber_status=secret_status(settings, "amber_token"),
            teslemetry_status=secret_status(settings, "teslemetry_token"),
            fleet_connected=fleet_configured(settings),
            service_status=service_status,
            state_words=STATE_WORDS,
            amber_sites=_site_choices(service_status["amber"], settings.amber_site_id if settings else None),
            tesla_sites=_site_choices(service_status["tesla"], settings.tesla_site_id if settings else None),
            tesla_timezone=settings.tesla_reported_timezone if settings else None,
            effective_timezone=effective_timezone(settings),
            tz=ZoneInfo(effective_timezone(settings) or "Australia/Sydney"),
        ),
        status,
    )


def _save(form, form_key: str, changes: dict[str, object], field_map: dict[str, str]):
    """Apply validated changes, or show the page again with the problem next to its field."""
    try:
        changed = apply_settings(current_household(), by=actor(), **changes)
    except SettingsError as exc:
        db.session.rollback()
        field = getattr(form, field_map.get(exc.field, exc.field), None)
        (field.errors if field is not None else form.form_errors).append(str(exc))
        return _render(400, **{form_key: form})
    db.session.commit()
    flash("Saved." if changed else "Nothing changed.", "success")
    return redirect(url_for("settings.index"))


@bp.route("", methods=["GET"])
@requires("manage")
def index():
    """The settings page."""
    return _render()


@bp.route("/amber", methods=["POST"])
@requires("manage")
def save_amber():
    """Save the Amber token (when a new one is typed) and site id."""
    form = AmberForm()
    if not form.validate_on_submit():
        return _render(400, amber=form)
    changes: dict[str, object] = {"amber_site_id": form.site_id.data}
    if form.token.data:
        changes["amber_token"] = form.token.data
    elif not secret_status(current_household().settings, "amber_token").saved:
        form.token.errors.append("Enter the Amber API token.")
        return _render(400, amber=form)
    return _save(form, "amber", changes, {"amber_token": "token", "amber_site_id": "site_id"})


@bp.route("/tesla", methods=["POST"])
@requires("manage")
def save_tesla():
    """Save the Teslemetry token (when a new one is typed), the energy site id and the path."""
    form = TeslaForm()
    if not form.validate_on_submit():
        return _render(400, tesla=form)
    changes: dict[str, object] = {"tesla_site_id": form.site_id.data, "tesla_path": form.path.data}
    if form.token.data:
        changes["teslemetry_token"] = form.token.data
    return _save(form, "tesla", changes, {"teslemetry_token": "token", "tesla_site_id": "site_id", "tesla_path": "path"})


@bp.route("/preferences", methods=["POST"])
@requires("manage")
def save_preferences():
    """Save the time zone and sync preferences."""
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _render(400, prefs=form)
    changes = {
        "site_timezone": form.site_timezone.data,
        "forecast_estimate": form.forecast_estimate.data,
        "sync_enabled": form.sync_enabled.data,
        "change_threshold_cents": form.change_threshold_cents.data,
        "export_protection": form.export_protection.data,
        "export_protection_rule": form.export_protection_rule.data,
        "discharge_floor_percent": form.discharge_floor_percent.data,
    }
    return _save(form, "prefs", changes, {})


@bp.route("/remove/<name>", methods=["POST"])
@requires("manage")
def remove_secret(name: str):
    """Remove a saved token."""
    if name not in REMOVABLE_SECRETS:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    apply_settings(current_household(), by=actor(), **{name: None})
    db.session.commit()
    flash(f"{secret_status(None, name).label} removed.", "info")
    return redirect(url_for("settings.index"))


@bp.route("/test", methods=["POST"])
@requires("manage")
def test_connection():
    """Check Amber and Tesla with the saved credentials, list the sites, choose single ones."""
    if not ActionForm().validate_on_submit():
        abort(400)
    results = check_connections(current_household(), clock.now())
    db.session.commit()
    for service, row in results.items():
        name = "Amber" if service == "amber" else "Tesla"
        flash(f"{name}: {STATE_WORDS[row.state].lower()}. {row.message or ''}", "success" if row.state == "connected" else "error")
    return redirect(url_for("settings.index"))
