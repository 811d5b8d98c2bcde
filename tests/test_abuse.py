"""The abuse suite: what a hostile visitor or a hostile signed-in user tries, on every route of the URL map.

tests/test_security.py holds the basics (login required, CSRF missing or forged on every POST, public
endpoints, `safe_next`); this module goes further: other methods, other sessions' CSRF tokens, one user
reaching for another's data through every route that takes an id, open redirects through the real login,
brute force, oversized, malformed and non-UTF-8 bodies, and hostile strings in every form field. Tables
below name every route; a route added to the app without an entry here fails `test_*_covers_the_url_map`.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from app.models import HouseholdSettings, LoginThrottle, SyncRun, TariffPush, User
from tests.conftest import TEST_PASSWORD, csrf_token, login
from tests.test_security import PUBLIC_ENDPOINTS, concrete_path

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' autofocus onfocus='alert(1)",
    "{{7*7}}{% raw %}",
    "'; DROP TABLE users; --",
    "\u202egnp.exe",
    "\x00nul",
    "x" * 5000,
]
# What must never appear in a page: markup that only exists if a payload went out unescaped.
UNESCAPED = ("<script>alert(1)", "<img src=x onerror", "onfocus='alert(1)", "onerror=alert(1)>")

# Every POST route: the page its CSRF token comes from, who may use it, and a valid form to start from.
# None as a field list = the route takes no fields but the CSRF token.
FORMS: dict[str, tuple[str, str, dict[str, str] | None]] = {
    "auth.login": ("/login", "anonymous", {"email": "alice@example.com", "password": "wrong password"}),
    "auth.register": ("/register", "anonymous", {"email": "new@example.com", "password": "long enough password", "confirm": "long enough password"}),
    "auth.logout": ("/", "user", None),
    "auth.change_password": ("/account/password", "user", {"current_password": "not the password", "new_password": "another long password", "confirm": "another long password"}),
    "settings.save_amber": ("/settings", "user", {"token": "psk_0123456789", "site_id": ""}),
    "settings.save_tesla": ("/settings", "user", {"token": "teslemetry-token", "site_id": "", "path": "teslemetry"}),
    "settings.save_preferences": ("/settings", "user", {"site_timezone": "Australia/Sydney", "forecast_estimate": "predicted", "change_threshold_cents": "0.5", "discharge_floor_percent": "20", "export_protection_rule": "never"}),
    "settings.remove_secret": ("/settings", "user", None),
    "settings.test_connection": ("/settings", "user", None),
    "dashboard.sync_now_form": ("/", "user", None),
    "dashboard.control_start": ("/", "user", {"action": "force_charge", "minutes": "60", "custom_minutes": ""}),
    "dashboard.control_cancel": ("/", "user", None),
    "api.sync": ("/", "user", None),
    "api.control_action": ("/", "user", None),
    "admin.create_user": ("/admin/users", "admin", {"email": "created@example.com", "password": "long enough password"}),
    "admin.user_action": ("/admin/users", "admin", None),
    "tesla_oauth.connect": ("/settings", "user", None),
    "tesla_oauth.disconnect": ("/settings", "user", None),
    "tesla_oauth.generate_key": ("/admin/tesla-app", "admin", None),
    "tesla_oauth.replace_key": ("/admin/tesla-app", "admin", None),
    "tesla_oauth.register": ("/admin/tesla-app", "admin", None),
    "households.invite": ("/household", "user", {"email": "invited@example.com", "role": "viewer"}),
    "households.revoke": ("/household", "user", None),
    "households.set_role": ("/household", "user", {"role": "viewer"}),
    "households.remove": ("/household", "user", None),
    "households.leave": ("/household", "user", None),
    "households.switch": ("/household", "user", {"household_id": "1"}),
    "households.dismiss_notice": ("/household", "user", None),
    "households.invitation": ("/login", "anonymous", None),
    "households.invitation_register": ("/login", "anonymous", {"password": "long enough password", "confirm": "long enough password"}),
    "notify.add": ("/settings/notifications", "user", {"url": "json://notify.test/hook", "quiet_start": "22:00", "quiet_end": "07:00"}),
    "notify.remove": ("/settings/notifications", "user", None),
    "notify.test": ("/settings/notifications", "user", None),
    "money.fixed_costs": ("/money", "user", {"supply_cents_per_day": "110.5", "membership_dollars_per_month": "18.25"}),
}

# Every route whose URL carries a value a user could change to reach someone else's data, and the test
# that proves they cannot.
ID_ROUTES = {
    "/tariff/<int:push_id>": "test_another_households_tariff_push_is_not_found",
    "/admin/users/<int:user_id>/<action>": "test_non_admins_cannot_act_on_any_account",
    "/settings/remove/<name>": "test_removing_a_token_touches_only_your_own",
    "/admin/tesla-app/register/<region>": "test_non_admins_cannot_register_the_tesla_app",
    "/static/<path:filename>": "test_static_files_cannot_escape_their_folder",
    "/household/invitations/<int:invitation_id>/revoke": "test_an_owner_cannot_touch_another_households_invitations_or_members",
    "/household/members/<int:user_id>/remove": "test_an_owner_cannot_touch_another_households_invitations_or_members",
    "/household/members/<int:user_id>/role": "test_an_owner_cannot_touch_another_households_invitations_or_members",
    "/invite/<token>": "test_a_guessed_invitation_token_opens_nothing",
    "/invite/<token>/register": "test_a_guessed_invitation_token_opens_nothing",
    "/settings/notifications/<int:number>/remove": "test_a_person_removes_only_their_own_notification_targets",
}

OTHER_METHODS = ("PUT", "PATCH", "DELETE")


def post_rules(app):
    return [r for r in app.url_map.iter_rules() if "POST" in r.methods]


def reset_throttle(app) -> None:
    from app.extensions import db

    with app.app_context():
        db.session.execute(delete(LoginThrottle))
        db.session.commit()


def assert_escaped(response, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code}"
    body = response.get_data(as_text=True)
    for marker in UNESCAPED:
        assert marker not in body, f"{where}: {marker}"
    assert "Traceback" not in body, where


# -- the URL map --------------------------------------------------------------------------------------------


def test_every_post_route_has_an_abuse_entry(app):
    missing = {r.endpoint for r in post_rules(app)} - set(FORMS)
    assert not missing, f"add these POST routes to FORMS in tests/test_abuse.py: {sorted(missing)}"


def test_every_route_with_a_variable_has_an_isolation_test(app):
    variable = {r.rule for r in app.url_map.iter_rules() if r.arguments}
    missing = variable - set(ID_ROUTES)
    assert not missing, f"add an isolation test to ID_ROUTES in tests/test_abuse.py for: {sorted(missing)}"
    for name in ID_ROUTES.values():
        assert callable(globals().get(name)), name


def test_other_methods_are_refused_everywhere(app, client, user_client):
    anonymous = app.test_client()
    for rule in app.url_map.iter_rules():
        path = concrete_path(rule)
        for method in OTHER_METHODS:
            for who, c in (("anonymous", anonymous), ("user", user_client)):
                response = c.open(path, method=method)
                assert response.status_code == 405, f"{who} {method} {rule.rule}: {response.status_code}"


def test_non_public_routes_give_nothing_away_to_anonymous_visitors(app, client, household_id):
    from app import clock
    from app.extensions import db

    with app.app_context():
        db.session.add(SyncRun(household_id=household_id, started_at=clock.now(), outcome="failed", reason="ALICE-PRIVATE-REASON"))
        db.session.commit()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"OPTIONS"}):
            response = client.open(concrete_path(rule), method=method)
            assert response.status_code in (302, 400, 401), f"{method} {rule.rule}: {response.status_code}"
            assert "ALICE-PRIVATE-REASON" not in response.get_data(as_text=True)


# -- CSRF beyond missing or forged ----------------------------------------------------------------------------


def test_a_csrf_token_from_another_session_is_refused(app, user_client, admin_client):
    alice_token = csrf_token(user_client, "/settings")
    for rule in post_rules(app):
        if FORMS[rule.endpoint][1] == "anonymous":
            continue
        response = admin_client.post(concrete_path(rule), data={"csrf_token": alice_token})
        assert response.status_code == 400, rule.rule
        response = admin_client.post(concrete_path(rule), headers={"X-CSRFToken": alice_token})
        assert response.status_code == 400, rule.rule


def test_json_endpoints_need_the_csrf_header(app, user_client):
    for path in ("/api/sync", "/api/control"):
        for headers in ({}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": ""}):
            response = user_client.post(path, json={"action": "cancel"}, headers=headers)
            assert response.status_code == 400, (path, headers)
            assert response.is_json and "did not come from this site" in response.get_json()["error"]
    # A token in the query string does not count (it would leak into logs and Referer headers).
    token = csrf_token(user_client, "/")
    assert user_client.post(f"/api/sync?csrf_token={token}").status_code == 400


# -- one user reaching for another's data ----------------------------------------------------------------------


def _push_for(app, household_id: int, marker: str) -> int:
    from app.extensions import db

    with app.app_context():
        push = TariffPush(household_id=household_id, tesla_site_id="9999999999", kind="normal", tariff={"name": marker},
                          tariff_hash=marker, explanation={"why": marker}, accepted=True)
        db.session.add(push)
        db.session.commit()
        return push.id


def test_another_households_tariff_push_is_not_found(app, user_client, admin_id, admin_household_id):
    theirs = _push_for(app, admin_household_id, "ADMIN-TARIFF-MARKER")
    response = user_client.get(f"/tariff/{theirs}")
    assert response.status_code == 404
    assert "ADMIN-TARIFF-MARKER" not in response.get_data(as_text=True)
    # The same answer as for an id that does not exist: no way to tell which ids are taken.
    missing = user_client.get(f"/tariff/{theirs + 1000}")
    assert missing.status_code == 404
    assert missing.get_data(as_text=True) == response.get_data(as_text=True)
    for path in (f"/tariff/{theirs}?user_id={admin_id}", "/tariff/-1", "/tariff/0", f"/tariff/{2**31 - 1}"):
        assert user_client.get(path).status_code == 404, path


def test_an_id_beyond_the_column_range_is_not_found(user_client):
    for push_id in (2**31, 2**63 - 1, 2**64):
        assert user_client.get(f"/tariff/{push_id}").status_code == 404, push_id


def test_non_admins_cannot_act_on_any_account(app, user_client, user_id, admin_id):
    token = csrf_token(user_client, "/settings")
    for target in (admin_id, user_id, 999999):
        for action in ("disable", "enable", "delete", "make-admin", "x"):
            response = user_client.post(f"/admin/users/{target}/{action}", data={"csrf_token": token})
            assert response.status_code == 403, (target, action)
    from app.extensions import db

    with app.app_context():
        admin = db.session.get(User, admin_id)
        assert admin is not None and not admin.is_disabled
        assert not db.session.get(User, user_id).is_admin


def test_removing_a_token_touches_only_your_own(app, user_client, admin_client, admin_id, household_id, admin_household_id):
    for c in (user_client, admin_client):
        token = csrf_token(c, "/settings")
        assert c.post("/settings/amber", data={"token": "psk_sharedlength0123456789", "site_id": "", "csrf_token": token}).status_code == 302
    token = csrf_token(user_client, "/settings")
    for name in ("amber_token", f"amber_token?user_id={admin_id}"):
        user_client.post(f"/settings/remove/{name}", data={"csrf_token": token, "user_id": str(admin_id)})
    assert user_client.post("/settings/remove/password_hash", data={"csrf_token": token}).status_code == 404
    from app.extensions import db

    with app.app_context():
        mine = db.session.scalar(select(HouseholdSettings).where(HouseholdSettings.household_id == household_id))
        theirs = db.session.scalar(select(HouseholdSettings).where(HouseholdSettings.household_id == admin_household_id))
        assert mine.amber_token_enc is None and theirs.amber_token_enc is not None


def test_non_admins_cannot_register_the_tesla_app(app, user_client):
    token = csrf_token(user_client, "/settings")
    for path in ("/admin/tesla-app/register/na", "/admin/tesla-app/register/eu", "/admin/tesla-app/key", "/admin/tesla-app/key/replace"):
        assert user_client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert user_client.get("/admin/tesla-app").status_code == 403


def test_static_files_cannot_escape_their_folder(client):
    for path in ("/static/../config.py", "/static/%2e%2e/config.py", "/static/..%2fconfig.py", "/static/..%5cconfig.py",
                 "/static/%2e%2e%2f%2e%2e%2fdata/secret_key", "/static//etc/passwd"):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 404, path
        assert "SECRET_KEY" not in response.get_data(as_text=True)


def test_pages_without_an_id_show_only_your_own_data(app, user_client, admin_id, admin_household_id):
    from app import clock
    from app.extensions import db

    _push_for(app, admin_household_id, "ADMIN-TARIFF-MARKER")
    with app.app_context():
        db.session.add(SyncRun(household_id=admin_household_id, started_at=clock.now() - timedelta(minutes=1), outcome="failed", reason="ADMIN-PRIVATE-REASON"))
        db.session.commit()
    for path in ("/", "/tariff", "/history", "/history?page=1", "/settings", "/api/dashboard", f"/history?user_id={admin_id}"):
        body = user_client.get(path).get_data(as_text=True)
        assert "ADMIN-PRIVATE-REASON" not in body and "ADMIN-TARIFF-MARKER" not in body, path
        assert "admin@example.com" not in body, path


# -- open redirects -----------------------------------------------------------------------------------------


OPEN_REDIRECTS = [
    "https://evil.example/", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "/\n/evil.example", " //evil.example", "http:evil.example", "javascript:alert(1)",
    "data:text/html,hi", "https:/evil.example", "/%09/evil.example".replace("%09", "\t"), "\x00//evil.example",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_next_never_leaves_the_site(client, user_id, target):
    token = csrf_token(client, "/login")
    response = client.post("/login", query_string={"next": target},
                           data={"email": "alice@example.com", "password": TEST_PASSWORD, "csrf_token": token})
    if "\x00" in target:
        assert response.status_code == 400  # no argument of ours holds a NUL: refused before any view
        return
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/", (target, location)
    # Already signed in, GET /login?next=... redirects at once: the same rule.
    response = client.get("/login", query_string={"next": target})
    assert response.headers["Location"] == "/", target


def test_no_redirect_anywhere_points_off_site(app, client, user_client, admin_client):
    for c in (client, user_client, admin_client):
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods:
                continue
            response = c.get(concrete_path(rule), query_string={"next": "https://evil.example/"})
            location = response.headers.get("Location", "/")
            assert location.startswith("/") and not location.startswith("//"), (rule.rule, location)


# -- brute force ----------------------------------------------------------------------------------------------


def test_login_brute_force_is_throttled_even_for_the_right_password(app, client, user_id):
    statuses = []
    for _ in range(7):
        token = csrf_token(client, "/login")
        statuses.append(client.post("/login", data={"email": "alice@example.com", "password": "guess", "csrf_token": token}).status_code)
    assert 429 not in statuses[:5] and statuses[5:] == [429, 429], statuses  # 5 failures per account
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": "alice@example.com", "password": TEST_PASSWORD, "csrf_token": token})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert client.get("/settings").status_code == 302  # not signed in


def test_the_throttle_counts_across_letter_case_and_spaces(app, client, user_id):
    for email in ("alice@example.com", "ALICE@example.com", " Alice@Example.com ", "alice@EXAMPLE.COM", "aLiCe@example.com", "alice@example.com"):
        token = csrf_token(client, "/login")
        response = client.post("/login", data={"email": email, "password": "guess", "csrf_token": token})
    assert response.status_code == 429


# -- oversized, malformed and non-UTF-8 bodies ------------------------------------------------------------------


def test_oversized_bodies_are_413_on_form_and_json_routes(app, user_client):
    token = csrf_token(user_client, "/")
    big = "x" * (2 * 1024 * 1024)
    for path in ("/api/control", "/api/sync"):
        response = user_client.post(path, data=json.dumps({"action": "force_charge", "minutes": 60, "pad": big}),
                                    content_type="application/json", headers={"X-CSRFToken": token})
        assert response.status_code == 413 and response.is_json, path
    for path in ("/control", "/settings/preferences", "/login"):
        response = user_client.post(path, data={"csrf_token": token, "pad": big})
        assert response.status_code == 413, path


MALFORMED_JSON = [
    b"", b"{", b'{"action": ', b"null", b"[]", b'"force_charge"', b"42", b"true",
    b'{"action": ["force_charge"], "minutes": 60}', b'{"action": {"x": 1}, "minutes": 60}',
    b'{"action": "force_charge", "minutes": "abc"}', b'{"action": "force_charge", "minutes": 1e309}',
    b'{"action": "force_charge", "minutes": NaN}', b'{"action": "force_charge", "minutes": -60}',
    b'{"action": "force_charge", "minutes": 60.5}', b'{"action": "force_charge", "minutes": true}',
    b'{"action": "force_charge", "minutes": 100000000000000000000000000000}',
    b'{"action": "force_charge", "minutes": {"$gt": 1}}', b'{"action": "cancel", "minutes": []}',
    b"[" * 500 + b"]" * 500, b'{"action": "\\ud800", "minutes": 60}',
]


@pytest.mark.parametrize("body", MALFORMED_JSON, ids=lambda b: repr(b[:30]))
def test_malformed_json_to_the_control_api_is_a_400_not_a_crash(user_client, body):
    token = csrf_token(user_client, "/")
    response = user_client.post("/api/control", data=body, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code in (200, 400), response.status_code
    assert response.is_json and "Traceback" not in response.get_data(as_text=True)


# Strings that str.isdigit() accepts but int() refuses (found by this suite: they once gave a 500).
INT_TRAPS = [
    pytest.param('{"action": "force_charge", "minutes": "\u00b2"}', id="superscript-two"),
    pytest.param('{"action": "force_charge", "minutes": "' + "9" * 5000 + '"}', id="5000-digits"),
]


@pytest.mark.parametrize("body", INT_TRAPS)
def test_digit_lookalikes_are_a_400_not_a_crash(user_client, body):
    token = csrf_token(user_client, "/")
    response = user_client.post("/api/control", data=body.encode(), content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 400
    response = user_client.post("/control", data={"csrf_token": token, "action": "force_charge", "minutes": "custom",
                                                  "custom_minutes": json.loads(body)["minutes"]})
    assert response.status_code < 500


def test_json_nested_beyond_the_recursion_limit_is_a_400(user_client):
    token = csrf_token(user_client, "/")
    body = b"[" * 100000 + b"]" * 100000
    response = user_client.post("/api/control", data=body, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_the_sync_api_ignores_whatever_body_it_is_sent(user_client, content_type):
    token = csrf_token(user_client, "/")
    response = user_client.post("/api/sync", data=b"\xff\xfe{not json", content_type=content_type, headers={"X-CSRFToken": token})
    assert response.status_code in (200, 400, 429) and response.is_json


NON_UTF8 = [b"\xff\xfe\xfd", b"email=\xff\xfe&password=\xc3\x28", b"%ff%fe=%c3%28", b"\x00\x00\x00"]


@pytest.mark.parametrize("body", NON_UTF8, ids=repr)
def test_non_utf8_bodies_never_crash_a_post_route(app, user_id, admin_id, body):
    for rule in post_rules(app):
        page, who, _ = FORMS[rule.endpoint]
        c = app.test_client()  # a new session per route: the body may well sign out
        if who != "anonymous":
            assert login(c, "admin@example.com" if who == "admin" else "alice@example.com").status_code == 302
        token = csrf_token(c, page) if rule.endpoint != "auth.register" else ""  # sign-up is closed: no form
        for content_type in ("application/x-www-form-urlencoded", "application/json", "text/plain; charset=latin-1"):
            response = c.post(concrete_path(rule), data=body + b"&csrf_token=" + token.encode(), content_type=content_type,
                              headers={"X-CSRFToken": token})
            assert response.status_code < 500, (rule.rule, content_type, response.status_code)
        reset_throttle(app)


def test_non_utf8_in_the_url_and_headers_never_crashes(app, client, user_client):
    for path in ("/%ff%fe", "/login?next=%ff%fe", "/history?page=%ff", "/tariff/%ff", "/static/%ff.css"):
        for c in (client, user_client):
            assert c.get(path).status_code < 500, path
    response = client.get("/login", headers={"X-Request-ID": "\xff\xfe", "Accept": "\xff", "Referer": "\xff"})
    assert response.status_code < 500


@pytest.mark.parametrize("page", ["-1", "0", "99999999999999999999999999", "1e9", "NaN", "\u00b2"])
def test_history_page_numbers_are_clamped(user_client, page):
    assert user_client.get("/history", query_string={"page": page}).status_code == 200


# -- hostile strings in every form field ------------------------------------------------------------------------



def test_a_nul_character_in_the_sign_in_email_is_refused(app, client, user_id):
    # PostgreSQL refuses NUL in text: it once reached the login throttle's query there (503).
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": "alice@example.com\x00", "password": "guess", "csrf_token": token})
    assert response.status_code in (200, 400)


def test_a_very_long_time_zone_is_refused(user_client):
    token = csrf_token(user_client, "/settings")
    data = {**FORMS["settings.save_preferences"][2], "site_timezone": "x" * 5000, "csrf_token": token}
    assert user_client.post("/settings/preferences", data=data).status_code == 400



def test_hostile_strings_in_every_form_field_are_refused_or_rendered_escaped(app, client, user_id, admin_id, database_url):
    app.config["REGISTRATION"] = "open"
    checked, problems = 0, []
    for endpoint, (page, who, fields) in FORMS.items():
        if not fields:
            continue
        path = concrete_path(next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint and "POST" in r.methods))
        for field in fields:
            for payload in HOSTILE:
                c = app.test_client()
                if who == "user":
                    login(c, "alice@example.com")
                elif who == "admin":
                    login(c, "admin@example.com")
                token = csrf_token(c, page)
                data = {**fields, field: payload, "csrf_token": token}
                if endpoint == "auth.register" and field != "email":
                    data["email"] = f"new{checked}@example.com"
                try:
                    assert_escaped(c.post(path, data=data, follow_redirects=True), f"{endpoint} {field}={payload[:20]!r}")
                except AssertionError as exc:
                    problems.append(str(exc).splitlines()[0])
                reset_throttle(app)
                checked += 1
    assert not problems, problems
    assert checked >= 100
    # Whatever was stored is rendered escaped on every page afterwards.
    for email in ("alice@example.com", "admin@example.com"):
        c = app.test_client()
        if login(c, email).status_code != 302:
            continue
        for rule in app.url_map.iter_rules():
            if "GET" in rule.methods and rule.endpoint != "static":
                assert_escaped(c.get(concrete_path(rule)), f"GET {rule.rule} as {email}")


def test_an_owner_cannot_touch_another_households_invitations_or_members(app, user_client, admin_id, admin_household_id):
    """alice owns her household; the administrator's household has an invitation and a member she is not part of."""
    from app import clock
    from app.extensions import db
    from app.households import add_member
    from app.households.invitations import invite
    from app.models import Household, HouseholdInvitation, HouseholdMember
    from tests.conftest import create_user

    bob = create_user(app, "bob@example.com")
    with app.app_context():
        theirs = db.session.get(Household, admin_household_id)
        add_member(theirs, db.session.get(User, bob), "viewer", "admin@example.com", clock.now())
        invitation_id = invite(theirs, "carol@example.com", "viewer", "admin@example.com", clock.now(), 7).invitation.id
        db.session.commit()
    user_client.get("/household")  # alice's own household, of which she is owner
    token = csrf_token(user_client, "/household")
    user_client.post(f"/household/invitations/{invitation_id}/revoke", data={"csrf_token": token})
    user_client.post(f"/household/members/{bob}/role", data={"role": "owner", "csrf_token": token})
    user_client.post(f"/household/members/{bob}/remove", data={"csrf_token": token})
    user_client.post(f"/household/members/{admin_id}/remove", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(HouseholdInvitation, invitation_id).revoked_at is None
        roles = dict(db.session.execute(select(HouseholdMember.user_id, HouseholdMember.role)
                                        .where(HouseholdMember.household_id == admin_household_id)).all())
        assert roles == {admin_id: "owner", bob: "viewer"}


def test_a_guessed_invitation_token_opens_nothing(app, client):
    for token in ("x", "A" * 43, "../../admin", "%00", "A" * 300):
        for path in (f"/invite/{token}", f"/invite/{token}/register"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "invites" not in response.get_data(as_text=True)


def test_a_person_removes_only_their_own_notification_targets(app, user_client, admin_id):
    """Targets are numbered per person: alice's number 1 is hers, never the administrator's."""
    from app import clock
    from app.extensions import db
    from app.models import NotificationTarget
    from app.notify.targets import add_target

    with app.app_context():
        add_target(db.session.get(User, admin_id), "json://admin.test/hook", clock.now())
        db.session.commit()
    token = csrf_token(user_client, "/settings/notifications")
    for number in (1, 2, 0, -1):
        user_client.post(f"/settings/notifications/{number}/remove", data={"csrf_token": token})
    with app.app_context():
        assert db.session.scalar(select(func.count(NotificationTarget.id))) == 1
