"""Glue between the shared `clean_*` validators and WTForms fields."""
from __future__ import annotations

from collections.abc import Callable

from flask_wtf import FlaskForm
from wtforms.validators import ValidationError


class Cleaned:
    """A WTForms validator that runs a `clean_*` function and keeps its normalised value."""

    def __init__(self, clean: Callable[[str], object]) -> None:
        self.clean = clean

    def __call__(self, form, field) -> None:
        try:
            field.data = self.clean(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class ActionForm(FlaskForm):
    """A form with nothing but its CSRF token, for one-button actions (remove, log out, delete)."""
