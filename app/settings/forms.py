"""Forms of the settings page. Token fields are write-only: they never carry a stored value."""
from __future__ import annotations

from wtforms import BooleanField, PasswordField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import Length, Optional

from app.form_helpers import Cleaned, IdPrefixedForm
from app.validation import (
    AUSTRALIAN_TIMEZONES,
    TOKEN_MAX,
    clean_amber_site_id,
    clean_estimate,
    clean_export_protection_rule,
    clean_percent,
    clean_threshold_cents,
    clean_tesla_path,
    clean_tesla_site_id,
    clean_timezone,
)


class AmberForm(IdPrefixedForm):
    """Amber API token (write-only) and the Amber site to use."""

    id_prefix = "amber"

    token = PasswordField("New Amber API token", validators=[Optional(), Length(max=TOKEN_MAX)])
    site_id = StringField("Amber site id", validators=[Length(max=64), Cleaned(clean_amber_site_id)])
    submit = SubmitField("Save Amber settings")


class TeslaForm(IdPrefixedForm):
    """Teslemetry token (write-only), the Tesla energy site and which path to use first."""

    id_prefix = "tesla"

    token = PasswordField("New Teslemetry token", validators=[Optional(), Length(max=TOKEN_MAX)])
    site_id = StringField("Tesla energy site id", validators=[Length(max=20), Cleaned(clean_tesla_site_id)])
    path = RadioField(
        "Talk to Tesla through",
        choices=[("teslemetry", "Teslemetry"), ("fleet", "Tesla Fleet API")],
        default="teslemetry",
        validators=[Cleaned(clean_tesla_path)],
        validate_choice=False,
    )
    submit = SubmitField("Save Tesla settings")


class PreferencesForm(IdPrefixedForm):
    """Time zone and sync preferences."""

    id_prefix = "prefs"

    site_timezone = SelectField(
        "Site time zone",
        choices=[("", "The zone Tesla reports for the site")] + [(tz, tz) for tz in AUSTRALIAN_TIMEZONES],
        validators=[Cleaned(clean_timezone)],
        validate_choice=False,  # clean_timezone decides (an operator may have set another zone)
    )
    forecast_estimate = SelectField(
        "Amber forecast to plan with",
        choices=[
            ("low", "Low (optimistic)"),
            ("predicted", "Predicted (recommended)"),
            ("high", "High (cautious)"),
        ],
        validators=[Cleaned(clean_estimate)],
        validate_choice=False,
    )
    sync_enabled = BooleanField("Keep my Powerwall's tariff in sync with Amber prices")
    change_threshold_cents = StringField(
        "Push when a price moves by at least (c/kWh)", validators=[Length(max=16), Cleaned(clean_threshold_cents)]
    )
    export_protection = BooleanField("Stop exports while exporting costs money (negative feed-in)")
    export_protection_rule = SelectField(
        "While exporting costs money",
        choices=[("never", "Export nothing"), ("pv_only", "Export solar only (battery keeps its charge)")],
        validators=[Cleaned(clean_export_protection_rule)],
        validate_choice=False,
    )
    discharge_floor_percent = StringField(
        "Force discharge stops at (% charge)", validators=[Length(max=3), Cleaned(clean_percent)]
    )
    submit = SubmitField("Save preferences")
