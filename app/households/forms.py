"""Forms of the household pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, SubmitField
from wtforms.validators import EqualTo, InputRequired, Length

from app.form_helpers import Cleaned
from app.validation import PASSWORD_MAX, clean_email

ROLE_CHOICES = [
    ("viewer", "Viewer: sees the dashboard, tariff and history"),
    ("operator", "Operator: also forces charge or discharge and syncs now"),
    ("owner", "Owner: everything, including tokens and members"),
]


class InviteForm(FlaskForm):
    """Invite someone by e-mail with a role."""

    email = EmailField("Their email", validators=[InputRequired("Enter the email address to invite."), Cleaned(clean_email)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")
    submit = SubmitField("Create invitation link")


class RoleForm(FlaskForm):
    """Change a member's role."""

    role = SelectField("Role", choices=[(value, value.capitalize()) for value, _ in ROLE_CHOICES])
    submit = SubmitField("Change")


class InvitedRegisterForm(FlaskForm):
    """Create an account for the invited address (the address is fixed by the invitation)."""

    password = PasswordField("Password", validators=[InputRequired("Choose a password."), Length(max=PASSWORD_MAX)])
    confirm = PasswordField(
        "Repeat password",
        validators=[InputRequired("Repeat the password."), EqualTo("password", "The passwords do not match.")],
    )
    submit = SubmitField("Create account and join")
