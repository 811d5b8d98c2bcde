"""Administration of accounts."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db as _db
from app.models import User, HouseholdSettings
from tests.conftest import csrf_token, login, owned_household


def act(client, user_id, action):
    return client.post(f"/admin/users/{user_id}/{action}", data={"csrf_token": csrf_token(client, "/admin/users")})


def test_admin_lists_users_without_secrets(admin_client, user_id):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    assert "admin@example.com" in page and "alice@example.com" in page
    assert "scrypt" not in page


def test_admin_creates_an_account_that_can_sign_in(app, admin_client):
    token = csrf_token(admin_client, "/admin/users")
    response = admin_client.post(
        "/admin/users", data={"email": "New@Example.com", "password": "initial secret", "csrf_token": token}
    )
    assert response.status_code == 302
    assert login(app.test_client(), "new@example.com", "initial secret").status_code == 302


def test_admin_create_reports_duplicates_and_weak_passwords(admin_client, user_id):
    token = csrf_token(admin_client, "/admin/users")
    response = admin_client.post("/admin/users", data={"email": "ALICE@example.com", "password": "initial secret", "csrf_token": token})
    assert response.status_code == 400 and "already exists" in response.get_data(as_text=True)
    response = admin_client.post("/admin/users", data={"email": "z@example.com", "password": "123", "csrf_token": token})
    assert response.status_code == 400 and "at least 8 characters" in response.get_data(as_text=True)


def test_disable_signs_the_user_out_and_blocks_sign_in_until_enabled(app, admin_client, user_client, user_id):
    assert user_client.get("/").status_code == 200
    assert act(admin_client, user_id, "disable").status_code == 302
    assert user_client.get("/").status_code == 302
    response = login(app.test_client(), "alice@example.com")
    assert "This account is disabled" in response.get_data(as_text=True)
    act(admin_client, user_id, "enable")
    assert login(app.test_client(), "alice@example.com").status_code == 302


def test_delete_removes_the_account_and_its_settings(app, admin_client, user_id):
    with app.app_context():
        household = owned_household(user_id)
        household.settings.amber_site_id = "X"  # her own household, with her alone in it
        _db.session.commit()
        hid = household.id
    assert act(admin_client, user_id, "delete").status_code == 302
    with app.app_context():
        assert _db.session.get(User, user_id) is None
        assert _db.session.scalar(select(func.count(HouseholdSettings.id)).where(HouseholdSettings.household_id == hid)) == 0


def test_admin_cannot_disable_or_delete_themself(app, admin_client, admin_id):
    for action in ("disable", "delete"):
        response = act(admin_client, admin_id, action)
        assert response.status_code == 302
        assert "cannot" in admin_client.get("/admin/users").get_data(as_text=True)
    with app.app_context():
        assert not _db.session.get(User, admin_id).is_disabled


def test_last_active_admin_is_kept(app, admin_id, user_id):
    # Through the pages an admin always leaves themself; the service guards every other caller too.
    from app import accounts

    with app.app_context():
        actor = _db.session.get(User, user_id)
        admin = _db.session.get(User, admin_id)
        for attempt in (lambda: accounts.delete_user(actor, admin), lambda: accounts.set_disabled(actor, admin, True)):
            try:
                attempt()
            except accounts.AccountError as exc:
                assert "At least one active administrator" in str(exc)
            else:
                raise AssertionError("the last active administrator was removed")


def test_unknown_user_and_unknown_action_are_404(admin_client):
    assert act(admin_client, 9999, "disable").status_code == 404
    assert act(admin_client, 1, "promote").status_code == 404
