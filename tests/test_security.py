"""Security basics on every route: login required, CSRF on every POST, cookie flags, isolation.

The route lists come from the app's URL map, so a new route cannot escape these checks."""
from __future__ import annotations

import re

import pytest

from app.security import safe_next
from tests.conftest import csrf_token

# observability.metrics is public to the login check but has its own bearer token (tests/test_observability.py).
# An invitation link is opened signed out (it leads to sign-in or to sign-up for the invited address).
PUBLIC_ENDPOINTS = {"auth.login", "auth.register", "main.healthz", "static", "tesla_oauth.public_key", "observability.metrics",
                    "households.invitation", "households.invitation_register"}


def concrete_path(rule) -> str:
    """A URL for `rule` with its variables filled with plausible values."""
    path = rule.rule
    path = re.sub(r"<int:[^>]+>", "1", path)
    path = re.sub(r"<path:[^>]+>", "app.css", path)
    path = re.sub(r"<(?:string:)?action>", "disable", path)
    path = re.sub(r"<(?:string:)?name>", "amber_token", path)
    path = re.sub(r"<(?:string:)?region>", "na", path)
    return re.sub(r"<[^>]+>", "x", path)


def rules(app, method: str):
    return [r for r in app.url_map.iter_rules() if method in r.methods]


def test_only_login_register_invitations_health_and_static_are_public(app):
    from app.security import is_public_endpoint

    public = {r.endpoint for r in app.url_map.iter_rules() if is_public_endpoint(app, r.endpoint)}
    assert public == PUBLIC_ENDPOINTS


def test_every_non_public_get_route_requires_login(app, client):
    checked = 0
    for rule in rules(app, "GET"):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        response = client.get(concrete_path(rule))
        if rule.rule.startswith("/api/"):
            assert response.status_code == 401, rule.rule
        else:
            assert response.status_code == 302, rule.rule
            assert "/login" in response.headers["Location"], rule.rule
        checked += 1
    assert checked >= 4


def test_every_post_route_requires_login_and_csrf(app, client, user_client):
    anonymous = app.test_client()
    posts = rules(app, "POST")
    assert len(posts) >= 8
    for rule in posts:
        path = concrete_path(rule)
        response = anonymous.post(path, data={})
        assert response.status_code in (302, 400, 401), rule.rule  # never 200, never a change
        response = user_client.post(path, data={"csrf_token": "forged"})
        assert response.status_code == 400, rule.rule
        assert "did not come from this site" in response.get_data(as_text=True), rule.rule
        response = user_client.post(path, data={})
        assert response.status_code == 400, rule.rule


def test_csrf_token_is_accepted_in_the_x_csrftoken_header(app, user_client):
    token = csrf_token(user_client, "/settings")
    response = user_client.post(
        "/settings/preferences",
        data={"site_timezone": "Australia/Brisbane", "forecast_estimate": "predicted", "change_threshold_cents": "0.5", "discharge_floor_percent": "20"},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 302


def test_session_cookie_is_httponly_lax_and_secure_only_over_https(app, client, user_id):
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": "alice@example.com", "password": "correct horse battery", "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    secure_client = app.test_client()
    token = csrf_token(secure_client, "/login")
    response = secure_client.post(
        "/login",
        data={"email": "alice@example.com", "password": "correct horse battery", "csrf_token": token},
        base_url="https://localhost",
    )
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/settings", "/settings"),
        ("/settings?tab=1", "/settings?tab=1"),
        ("https://evil.example/", None),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("javascript:alert(1)", None),
        ("/ok\r\nSet-Cookie: x=1", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_next(target, expected):
    assert safe_next(target) == expected


def test_non_admins_cannot_reach_admin_pages_or_act_on_other_users(app, user_client, admin_id):
    assert user_client.get("/admin/users").status_code == 403
    token = csrf_token(user_client, "/settings")
    for action in ("disable", "delete"):
        response = user_client.post(f"/admin/users/{admin_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403
    response = user_client.post(
        "/admin/users", data={"email": "x@example.com", "password": "long enough pw", "csrf_token": token}
    )
    assert response.status_code == 403
    from tests.conftest import login

    other = app.test_client()
    assert login(other, "admin@example.com").status_code == 302  # the admin was not disabled
