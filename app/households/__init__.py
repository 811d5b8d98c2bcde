"""Households: the unit of control (one Amber meter, one Powerwall) and the people who share it.

Owns the household, its members and their roles, invitations, the audit of who did what, and which
household a signed-in person is looking at. May import the models, the database and `app.validation`;
the sync, control and the pages import it, never the other way round."""
from __future__ import annotations

from app.households.service import (  # noqa: F401 - the package's public face
    ACTOR_COMMAND_LINE,
    ACTOR_HOME_ASSISTANT,
    ACTOR_SCHEDULE,
    ROLES,
    HouseholdError,
    PowerwallTaken,
    add_member,
    can,
    change_role,
    claim_tesla_site,
    create_household,
    find_owned,
    household_of,
    households_of,
    members_of,
    owned_or_new,
    record_event,
    remove_member,
    role_in,
)
