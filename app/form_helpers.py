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


class IdPrefixedForm(FlaskForm):
    """A form whose element ids (not names) carry a prefix, so several forms on one page never share
    an id and every label points at its own field."""

    id_prefix = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self:
            field.id = f"{self.id_prefix}-{field.name}"
            field.label.field_id = field.id  # the label was bound to the old id
