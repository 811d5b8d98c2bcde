"""Forms of the auth pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import EqualTo, InputRequired, Length

from app.form_helpers import Cleaned
from app.validation import EMAIL_MAX, PASSWORD_MAX, clean_email


class LoginForm(FlaskForm):
    """Sign in with email and password."""

    email = StringField("Email", validators=[InputRequired("Enter your email address."), Length(max=EMAIL_MAX)])
    password = PasswordField("Password", validators=[InputRequired("Enter your password."), Length(max=PASSWORD_MAX)])
    submit = SubmitField("Sign in")


class RegisterForm(FlaskForm):
    """Create an account."""

    email = EmailField("Email", validators=[InputRequired("Enter your email address."), Cleaned(clean_email)])
    password = PasswordField("Password", validators=[InputRequired("Choose a password."), Length(max=PASSWORD_MAX)])
    confirm = PasswordField(
        "Repeat password",
        validators=[InputRequired("Repeat the password."), EqualTo("password", "The passwords do not match.")],
    )
    submit = SubmitField("Create account")


class ChangePasswordForm(FlaskForm):
    """Change one's own password."""

    current_password = PasswordField(
        "Current password", validators=[InputRequired("Enter your current password."), Length(max=PASSWORD_MAX)]
    )
    new_password = PasswordField(
        "New password", validators=[InputRequired("Choose a new password."), Length(max=PASSWORD_MAX)]
    )
    confirm = PasswordField(
        "Repeat new password",
        validators=[InputRequired("Repeat the new password."), EqualTo("new_password", "The passwords do not match.")],
    )
    submit = SubmitField("Change password")
