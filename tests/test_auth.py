"""Sign-up, sign-in, sign-out, password change and failed-login throttling."""
from __future__ import annotations

from sqlalchemy import select

from app.models import User
from tests.conftest import TEST_PASSWORD, create_user, csrf_token, login


def register(client, email, password=TEST_PASSWORD, confirm=None):
    token = csrf_token(client, "/register")
    return client.post(
        "/register",
        data={"email": email, "password": password, "confirm": confirm or password, "csrf_token": token},
    )


def test_first_visitor_lands_on_sign_up_and_becomes_admin(app, client):
    response = client.get("/", follow_redirects=True)
    assert "Create an account" in response.get_data(as_text=True)
    assert "first account becomes its administrator" in response.get_data(as_text=True)

    response = register(client, "Owner@Example.com")
    assert response.status_code == 302 and response.headers["Location"].endswith("/settings")
    with app.app_context():
        user = app.extensions["sqlalchemy"].session.scalar(select(User))
        assert user.email == "owner@example.com" and user.is_admin
    assert "Settings" in client.get("/settings").get_data(as_text=True)


def test_first_user_policy_closes_sign_up_after_the_first_account(app, client, admin_id):
    page = client.get("/register").get_data(as_text=True)
    assert "Sign-up is closed" in page
    token = csrf_token(client, "/login")
    response = client.post(
        "/register",
        data={"email": "late@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 403
    assert login(client, "late@example.com").status_code == 200  # no such account was made


def test_two_simultaneous_first_sign_ups_make_one_administrator(app, monkeypatch):
    """Two people sign up on a new install at the same moment: both saw no account yet."""
    import threading

    from app import accounts

    seen_empty = threading.Barrier(2, timeout=10)
    real_count = accounts.user_count

    waited = threading.local()

    def count_then_wait():
        n = real_count()
        if not getattr(waited, "done", False):
            waited.done = True
            seen_empty.wait()  # both requests have read "no accounts" before either goes on
        return n

    clients = [app.test_client(), app.test_client()]
    tokens = [csrf_token(c, "/register") for c in clients]
    monkeypatch.setattr(accounts, "user_count", count_then_wait)
    statuses: dict[str, int] = {}

    def sign_up(i: int) -> None:
        email = f"racer{i}@example.com"
        statuses[email] = clients[i].post(
            "/register", data={"email": email, "password": TEST_PASSWORD, "confirm": TEST_PASSWORD, "csrf_token": tokens[i]},
        ).status_code

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with app.app_context():
        users = app.extensions["sqlalchemy"].session.scalars(select(User)).all()
        assert len(users) == 1 and users[0].is_admin and users[0].founder
    assert statuses[users[0].email] == 302
    loser = next(email for email in statuses if email != users[0].email)
    # PostgreSQL: the unique founder flag refuses the second insert (400, "try again"); SQLite: the
    # second writer's snapshot is stale and the database refuses it (the error page, 503).
    assert statuses[loser] in (400, 503)


def test_a_sign_up_that_loses_the_race_is_told_to_try_again(app, client, admin_id, monkeypatch):
    """The check said "no account yet" but the first account was committed before this insert."""
    from app import accounts

    monkeypatch.setattr(accounts, "user_count", lambda: 0)
    response = register(client, "second@example.com")
    assert response.status_code == 400
    assert "Another account was created at the same moment. Please try again." in response.get_data(as_text=True)
    with app.app_context():
        session = app.extensions["sqlalchemy"].session
        assert session.scalar(select(User).where(User.email == "second@example.com")) is None
        assert [u.id for u in session.scalars(select(User).where(User.is_admin.is_(True)))] == [admin_id]


def test_a_first_user_sign_up_whose_check_came_before_the_first_account_is_refused(app, client, admin_id, monkeypatch):
    """Under "first-user", the policy check read no account a moment before another sign-up committed the
    first: the second is refused, not made an ordinary account on an install that takes only one."""
    from app import accounts

    assert app.config["REGISTRATION"] == "first-user"
    monkeypatch.setattr(accounts, "registration_open", lambda policy: True)  # read before the first commit
    response = register(client, "second@example.com")
    assert response.status_code == 400
    assert "Sign-up is closed" in response.get_data(as_text=True)
    with app.app_context():
        assert [u.id for u in app.extensions["sqlalchemy"].session.scalars(select(User))] == [admin_id]


def test_open_policy_allows_more_accounts_and_they_are_not_admins(app, client, admin_id):
    app.config["REGISTRATION"] = "open"
    assert register(client, "bob@example.com").status_code == 302
    with app.app_context():
        bob = app.extensions["sqlalchemy"].session.scalar(select(User).where(User.email == "bob@example.com"))
        assert not bob.is_admin


def test_closed_policy_refuses_even_the_first_account(app, client):
    app.config["REGISTRATION"] = "closed"
    assert "Sign-up is closed" in client.get("/register").get_data(as_text=True)
    token = csrf_token(client, "/login")
    response = client.post(
        "/register", data={"email": "a@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 403


def test_emails_are_unique_whatever_their_case(app, client):
    app.config["REGISTRATION"] = "open"
    create_user(app, "carol@example.com")
    response = register(client, "CAROL@example.COM")
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


def test_sign_in_works_with_any_letter_case(client, user_id):
    response = login(client, "ALICE@Example.com")
    assert response.status_code == 302
    assert "Getting started" in client.get("/").get_data(as_text=True)


def test_weak_and_mismatched_passwords_are_refused_with_a_reason(app, client):
    response = register(client, "a@example.com", "short")
    assert response.status_code == 400 and "at least 8 characters" in response.get_data(as_text=True)
    response = register(client, "a@example.com", "password123")
    assert response.status_code == 400 and "too easy to guess" in response.get_data(as_text=True)
    response = register(client, "a@example.com", TEST_PASSWORD, confirm="something else entirely")
    assert response.status_code == 400 and "do not match" in response.get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, user_id):
    for email in ("alice@example.com", "nobody@example.com"):
        response = login(client, email, "wrong password!")
        assert response.status_code == 200
        assert "Email or password is not correct." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_password_hashes_use_scrypt_and_never_store_the_password(app, user_id):
    with app.app_context():
        user = app.extensions["sqlalchemy"].session.get(User, user_id)
        assert user.password_hash.startswith("scrypt:")
        assert TEST_PASSWORD not in user.password_hash


def test_logout_is_post_only_and_needs_the_csrf_token(user_client):
    assert user_client.get("/logout").status_code == 405
    assert user_client.post("/logout").status_code == 400  # no token
    assert user_client.get("/").status_code == 200  # still signed in
    token = csrf_token(user_client, "/")
    response = user_client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert user_client.get("/").status_code == 302


def test_next_redirects_only_to_local_paths(client, user_id):
    token = csrf_token(client, "/login")
    data = {"email": "alice@example.com", "password": TEST_PASSWORD, "csrf_token": token}
    assert client.post("/login?next=/settings", data=data).headers["Location"] == "/settings"
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", query_string={"next": hostile}, data={**data, "csrf_token": token}
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/", hostile


def test_protected_page_sends_to_login_and_back(client, user_id):
    response = client.get("/settings")
    assert response.status_code == 302 and "/login?next=/settings" in response.headers["Location"]
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=/settings",
        data={"email": "alice@example.com", "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/settings"


def test_failed_logins_are_throttled_per_account(app, client, user_id, clock):
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
        assert login(client, "alice@example.com", "wrong password!").status_code == 200
    response = login(client, "alice@example.com")  # even the right password waits now
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    clock.advance(seconds=app.config["LOGIN_WINDOW_SECONDS"] + 1)
    assert login(client, "alice@example.com").status_code == 302


def test_failed_logins_are_throttled_per_address_across_accounts(app, client, user_id):
    app.config["LOGIN_MAX_FAILURES_PER_IP"] = 3
    for n in range(3):
        login(client, f"guess{n}@example.com", "wrong password!")
    assert login(client, "alice@example.com").status_code == 429
    other = app.test_client()
    response = login(other, "alice@example.com", environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 302


def test_successful_login_clears_the_account_counter(app, client, user_id):
    limit = app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
    for _ in range(limit - 1):
        login(client, "alice@example.com", "wrong password!")
    assert login(client, "alice@example.com").status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(limit - 1):
        login(client, "alice@example.com", "wrong password!")
    assert login(client, "alice@example.com").status_code == 302


def test_change_password_signs_out_other_sessions(app, user_client):
    other = app.test_client()
    assert login(other, "alice@example.com").status_code == 302
    token = csrf_token(user_client, "/account/password")
    response = user_client.post(
        "/account/password",
        data={
            "current_password": TEST_PASSWORD,
            "new_password": "a brand new secret",
            "confirm": "a brand new secret",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    assert user_client.get("/").status_code == 200  # this session continues
    assert other.get("/").status_code == 302  # the other one is signed out
    fresh = app.test_client()
    assert login(fresh, "alice@example.com").status_code == 200
    assert login(fresh, "alice@example.com", "a brand new secret").status_code == 302


def test_change_password_needs_the_current_one(user_client):
    token = csrf_token(user_client, "/account/password")
    response = user_client.post(
        "/account/password",
        data={"current_password": "not it at all", "new_password": "another secret!", "confirm": "another secret!", "csrf_token": token},
    )
    assert response.status_code == 400
    assert "current password is not correct" in response.get_data(as_text=True)
