"""Households: roles on every page and API, one controller per Powerwall, invitations, members, audit, CLI."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db as _db
from app.households import HouseholdError, add_member, owned_or_new
from app.households import invitations
from app.models import Household, HouseholdEvent, HouseholdInvitation, HouseholdMember, HouseholdSettings, User
from tests.conftest import create_user, csrf_token, household_id_for, login

SITE = "99887766"


def _members(app, household_id: int) -> dict[str, str]:
    with app.app_context():
        rows = _db.session.execute(
            select(User.email, HouseholdMember.role).join(HouseholdMember, HouseholdMember.user_id == User.id)
            .where(HouseholdMember.household_id == household_id)
        ).all()
        return {email: role for email, role in rows}


@pytest.fixture()
def house(app, clock):
    """An owner's household with an operator and a viewer; an outsider with a household of their own."""
    owner = create_user(app, "owner@example.com")
    operator = create_user(app, "op@example.com")
    viewer = create_user(app, "viewer@example.com")
    outsider = create_user(app, "outsider@example.com")
    hid = household_id_for(app, owner)
    with app.app_context():
        household = _db.session.get(Household, hid)
        household.settings.tesla_site_id = SITE
        add_member(household, _db.session.get(User, operator), "operator", "test", clock())
        add_member(household, _db.session.get(User, viewer), "viewer", "test", clock())
        _db.session.commit()
    return {"household": hid, "outsider_household": household_id_for(app, outsider)}


def signed_in(app, email):
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


# -- roles -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "page", "status"),
    [
        ("viewer@example.com", "/", 200), ("viewer@example.com", "/tariff", 200), ("viewer@example.com", "/history", 200),
        ("viewer@example.com", "/household", 200), ("viewer@example.com", "/settings", 403),
        ("op@example.com", "/", 200), ("op@example.com", "/settings", 403),
        ("owner@example.com", "/settings", 200),
    ],
)
def test_pages_check_the_role_on_the_server(app, house, email, page, status):
    assert signed_in(app, email).get(page).status_code == status


def test_a_viewer_is_refused_control_and_sync_with_a_json_403(app, house):
    viewer = signed_in(app, "viewer@example.com")
    token = csrf_token(viewer, "/household")
    for path, body in (("/api/control", {"action": "force_charge", "minutes": 30}), ("/api/sync", None)):
        response = viewer.post(path, json=body, headers={"X-CSRFToken": token})
        assert response.status_code == 403
        assert response.is_json and "viewer" in response.get_json()["error"]
    form = viewer.post("/control", data={"action": "force_charge", "minutes": "30", "csrf_token": token})
    assert form.status_code == 403


def test_buttons_a_person_cannot_use_are_not_shown(app, house):
    viewer_page = signed_in(app, "viewer@example.com").get("/").get_data(as_text=True)
    operator_page = signed_in(app, "op@example.com").get("/").get_data(as_text=True)
    assert 'action="/control"' not in viewer_page and "/sync-now" not in viewer_page
    assert 'href="/settings"' not in viewer_page
    assert 'action="/control"' in operator_page and "/sync-now" in operator_page
    assert 'href="/settings"' not in operator_page
    assert 'href="/settings"' in signed_in(app, "owner@example.com").get("/").get_data(as_text=True)


def test_a_viewer_never_sees_secrets_or_owner_forms_on_the_household_page(app, house):
    page = signed_in(app, "viewer@example.com").get("/household").get_data(as_text=True)
    assert "owner@example.com" in page and "op@example.com" in page
    assert "/household/invite" not in page and "/role" not in page


# -- one controller per Powerwall ------------------------------------------------------------------------


def test_a_second_household_cannot_take_the_powerwall_in_settings(app, house):
    outsider = signed_in(app, "outsider@example.com")
    token = csrf_token(outsider, "/settings")
    response = outsider.post("/settings/tesla", data={"site_id": SITE, "path": "teslemetry", "csrf_token": token})
    assert response.status_code == 400
    assert "already managed here by another household; ask its owner to invite you" in response.get_data(as_text=True)
    with app.app_context():
        assert _db.session.get(Household, house["outsider_household"]).settings.tesla_site_id is None


def test_the_command_line_refuses_a_taken_powerwall_with_a_non_zero_exit(app, house):
    result = app.test_cli_runner().invoke(args=["users", "configure", "outsider@example.com", "--tesla-site-id", SITE])
    assert result.exit_code != 0
    assert "already managed here by another household" in result.output


def test_the_database_allows_one_household_per_tesla_site(app, house):
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        settings = _db.session.get(Household, house["outsider_household"]).settings
        settings.tesla_site_id = SITE
        with pytest.raises(IntegrityError):
            _db.session.commit()
        _db.session.rollback()


# -- invitations -----------------------------------------------------------------------------------------


def invite_link(client, email, role):
    token = csrf_token(client, "/household")
    response = client.post("/household/invite", data={"email": email, "role": role, "csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert client.get("/household").get_data(as_text=True).count("/invite/") == 0  # the link is shown once
    return re.search(r'value="http://localhost(/invite/[^"]+)"', response.get_data(as_text=True)).group(1)


def test_an_invitation_signs_up_a_new_person_even_with_registration_closed_and_works_once(app, house):
    app.config["REGISTRATION"] = "closed"
    owner = signed_in(app, "owner@example.com")
    link = invite_link(owner, "Partner@Example.com", "operator")
    with app.app_context():
        stored = _db.session.scalar(select(HouseholdInvitation))
        assert link.rsplit("/", 1)[1] not in stored.token_hash  # only a hash is kept
    guest = app.test_client()
    page = guest.get(link).get_data(as_text=True)
    assert "partner@example.com" in page and "Create your account and join" in page
    token = csrf_token(guest, link + "/register")
    response = guest.post(link + "/register", data={"password": "a long enough pw", "confirm": "a long enough pw", "csrf_token": token})
    assert response.status_code == 302
    assert _members(app, house["household"])["partner@example.com"] == "operator"
    assert guest.get("/").status_code == 200  # signed in, on the household's dashboard
    # single use
    assert app.test_client().get(link).status_code == 404
    # nobody else can use registration to sign up
    assert app.test_client().post("/register", data={"email": "x@example.com"}).status_code in (400, 403)


def test_an_existing_account_signs_in_and_joins_and_another_account_cannot(app, house, clock):
    create_user(app, "friend@example.com")
    owner = signed_in(app, "owner@example.com")
    link = invite_link(owner, "friend@example.com", "viewer")
    wrong = signed_in(app, "outsider@example.com")
    token = csrf_token(wrong, link)
    assert wrong.post(link, data={"csrf_token": token}).status_code == 403
    assert "friend@example.com" not in _members(app, house["household"])
    friend = signed_in(app, "friend@example.com")
    token = csrf_token(friend, link)
    assert friend.post(link, data={"csrf_token": token}).status_code == 302
    assert _members(app, house["household"])["friend@example.com"] == "viewer"


def test_an_invitation_expires_and_can_be_revoked(app, house, clock):
    owner = signed_in(app, "owner@example.com")
    link = invite_link(owner, "late@example.com", "viewer")
    clock.advance(days=7, seconds=1)
    assert "expired" in app.test_client().get(link).get_data(as_text=True)
    clock.advance(days=-8)
    link2 = invite_link(owner, "later@example.com", "viewer")
    with app.app_context():
        pending = _db.session.scalar(select(HouseholdInvitation).where(HouseholdInvitation.email == "later@example.com"))
    token = csrf_token(owner, "/household")
    assert owner.post(f"/household/invitations/{pending.id}/revoke", data={"csrf_token": token}).status_code == 302
    assert "withdrawn" in app.test_client().get(link2).get_data(as_text=True)


def test_invitation_service_refuses_unknown_roles_and_members_already_in(app, house, clock):
    with app.app_context():
        household = _db.session.get(Household, house["household"])
        with pytest.raises(HouseholdError):
            invitations.invite(household, "x@example.com", "admin", "owner@example.com", clock(), 7)
        with pytest.raises(HouseholdError, match="already a member"):
            invitations.invite(household, "viewer@example.com", "viewer", "owner@example.com", clock(), 7)
        with pytest.raises(invitations.InvitationInvalid):
            invitations.find("not-a-token", clock())


# -- members ---------------------------------------------------------------------------------------------


def test_owners_change_roles_and_remove_members_but_the_last_owner_stays(app, house):
    owner = signed_in(app, "owner@example.com")
    with app.app_context():
        ids = {u.email: u.id for u in _db.session.scalars(select(User))}
    token = csrf_token(owner, "/household")
    owner.post(f"/household/members/{ids['viewer@example.com']}/role", data={"role": "operator", "csrf_token": token})
    assert _members(app, house["household"])["viewer@example.com"] == "operator"
    owner.post(f"/household/members/{ids['op@example.com']}/remove", data={"csrf_token": token})
    assert "op@example.com" not in _members(app, house["household"])
    response = owner.post(f"/household/members/{ids['owner@example.com']}/role", data={"role": "viewer", "csrf_token": token}, follow_redirects=True)
    assert "needs an owner" in response.get_data(as_text=True)
    response = owner.post("/household/leave", data={"csrf_token": token}, follow_redirects=True)
    assert "last owner cannot leave" in response.get_data(as_text=True)
    assert _members(app, house["household"])["owner@example.com"] == "owner"


def test_a_person_in_two_households_switches_and_it_is_remembered(app, house, clock):
    with app.app_context():
        outsider_home = _db.session.get(Household, house["outsider_household"])
        add_member(outsider_home, _db.session.scalar(select(User).where(User.email == "viewer@example.com")), "operator", "test", clock())
        _db.session.commit()
    viewer = signed_in(app, "viewer@example.com")
    assert 'action="/control"' not in viewer.get("/").get_data(as_text=True)  # first household: viewer
    token = csrf_token(viewer, "/household")
    viewer.post("/household/switch", data={"household_id": str(house["outsider_household"]), "csrf_token": token})
    assert 'action="/control"' in viewer.get("/").get_data(as_text=True)  # now operator, remembered
    assert "outsider@example.com" in viewer.get("/household").get_data(as_text=True)
    # a household the person does not belong to cannot be chosen
    other = create_user(app, "stranger@example.com")
    hid = household_id_for(app, other)
    viewer.post("/household/switch", data={"household_id": str(hid), "csrf_token": token})
    assert "stranger@example.com" not in viewer.get("/household").get_data(as_text=True)


# -- who did what ----------------------------------------------------------------------------------------


def test_settings_and_member_changes_are_recorded_with_the_person(app, house):
    owner = signed_in(app, "owner@example.com")
    token = csrf_token(owner, "/settings")
    owner.post("/settings/amber", data={"token": "psk_" + "ab" * 16, "site_id": "", "csrf_token": token})
    invite_link(owner, "new@example.com", "viewer")
    with app.app_context():
        events = _db.session.scalars(select(HouseholdEvent).where(HouseholdEvent.household_id == house["household"])).all()
        by_action = {(e.action, e.actor) for e in events}
    assert ("settings", "owner@example.com") in by_action and ("invited", "owner@example.com") in by_action
    assert ("member_added", "test") in by_action
    history = owner.get("/history").get_data(as_text=True)
    assert "Amber API token saved" in history and "Invited new@example.com as viewer" in history
    assert "psk_" not in history


# -- command line ----------------------------------------------------------------------------------------


def test_households_cli_lists_adds_and_removes_members(app, house):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["households", "list"])
    assert result.exit_code == 0
    assert f"tesla_site={SITE}" in result.output and "op@example.com  operator" in result.output
    create_user(app, "newbie@example.com")
    result = runner.invoke(args=["households", "add-member", "owner@example.com", "newbie@example.com", "--role", "viewer"])
    assert result.exit_code == 0, result.output
    assert _members(app, house["household"])["newbie@example.com"] == "viewer"
    result = runner.invoke(args=["households", "remove-member", "owner@example.com", "newbie@example.com"])
    assert result.exit_code == 0 and "newbie@example.com" not in _members(app, house["household"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add-member", "owner@example.com", "ghost@example.com", "--role", "viewer"], "No account"),
        (["add-member", "owner@example.com", "outsider@example.com", "--role", "admin"], "Unknown role"),
        (["add-member", "op@example.com", "outsider@example.com", "--role", "viewer"], "does not own a household"),
        (["remove-member", "owner@example.com", "owner@example.com"], "last owner"),
    ],
)
def test_households_cli_errors_are_clear_and_non_zero(app, house, args, message):
    result = app.test_cli_runner().invoke(args=["households", *args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_users_configure_makes_the_owned_household_on_first_use(app):
    create_user(app, "solo@example.com")
    result = app.test_cli_runner().invoke(args=["users", "configure", "solo@example.com", "--tesla-site-id", "123", "--sync"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = _db.session.scalar(select(User).where(User.email == "solo@example.com"))
        household = owned_or_new(user, None)
        assert household.settings.tesla_site_id == "123" and household.settings.sync_enabled
        assert _db.session.scalar(select(HouseholdSettings.household_id).where(HouseholdSettings.tesla_site_id == "123")) == household.id
