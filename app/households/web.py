"""Which household the signed-in person is looking at (remembered per session), and role checks for views."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import g, session
from flask_login import current_user

from app import clock
from app.errors import error_response
from app.extensions import db
from app.households.service import can, household_of, owned_or_new
from app.models import Household

F = TypeVar("F", bound=Callable)
SESSION_KEY = "household_id"
ARTICLE = {"owner": "an", "operator": "an", "viewer": "a"}


def current() -> tuple[Household, str]:
    """(household, role) for this request; a person who belongs to none gets their own, empty one."""
    cached = g.get("_household")
    if cached is not None:
        return cached
    found = household_of(current_user, session.get(SESSION_KEY))
    if found is None:
        household = owned_or_new(current_user, clock.now())
        db.session.commit()
        found = (household, "owner")
    if session.get(SESSION_KEY) != found[0].id:
        session[SESSION_KEY] = found[0].id
    g._household = found
    return found


def current_household() -> Household:
    """The household this request acts on."""
    return current()[0]


def current_role() -> str:
    """The signed-in person's role in the current household."""
    return current()[1]


def allowed(what: str) -> bool:
    """Whether the signed-in person may `what` (view | control | manage) in the current household."""
    return current_user.is_authenticated and can(current_role(), what)


def switch_to(household_id: int) -> bool:
    """Remember another household for this session, if the person belongs to it."""
    found = household_of(current_user, household_id)
    if found is None or found[0].id != household_id:
        return False
    session[SESSION_KEY] = household_id
    g.pop("_household", None)
    return True


def requires(what: str) -> Callable[[F], F]:
    """A view decorator: 403 (JSON under /api/) unless the person's role allows `what`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not allowed(what):
                return error_response(403, f"As {ARTICLE[current_role()]} {current_role()} of this household you cannot do that; ask an owner.")
            return view(*args, **kwargs)

        wrapped.requires = what  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def actor() -> str:
    """How the audit names the person acting in this request."""
    return current_user.email
