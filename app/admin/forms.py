"""Forms of the admin pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SubmitField
from wtforms.validators import InputRequired, Length

from app.form_helpers import Cleaned
from app.validation import PASSWORD_MAX, clean_email


class CreateUserForm(FlaskForm):
    """Create an account for somebody else."""

    email = EmailField("Email", validators=[InputRequired("Enter an email address."), Cleaned(clean_email)])
    password = PasswordField(
        "Initial password", validators=[InputRequired("Choose a password."), Length(max=PASSWORD_MAX)]
    )
    is_admin = BooleanField("Administrator")
    submit = SubmitField("Create account")
