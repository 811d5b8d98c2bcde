"""Security headers on every response, a CSP the templates can live with, and proxy headers only when trusted."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import create_app
from app.security import content_security_policy
from tests.conftest import csrf_token, login, make_config
from tests.sync_env import env, simulator  # noqa: F401  (fixtures)
from tests.test_security import concrete_path

TEMPLATES = Path(__file__).resolve().parents[1] / "app" / "templates"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self' https://auth.tesla.com; frame-ancestors 'none'"
)
# Inline code a strict CSP would block: <script> without src, on*= handlers, style= attributes, <style>,
# javascript: URLs.
INLINE_SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
HANDLER_RE = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTR_RE = re.compile(r"<[^>]*\sstyle\s*=", re.IGNORECASE)
STYLE_TAG_RE = re.compile(r"<style[\s>]", re.IGNORECASE)
JS_URL_RE = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def assert_security_headers(response, where: str) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CSP, where
    assert headers["X-Frame-Options"] == "DENY", where
    assert headers["X-Content-Type-Options"] == "nosniff", where
    assert headers["Referrer-Policy"] == "same-origin", where


def assert_no_inline_code(html: str, where: str) -> None:
    for pattern in (INLINE_SCRIPT_RE, HANDLER_RE, STYLE_ATTR_RE, STYLE_TAG_RE, JS_URL_RE):
        match = pattern.search(html)
        assert match is None, f"{where}: {match.group(0) if match else ''}"


def test_the_policy_has_no_inline_scripts_or_styles_and_denies_frames():
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert content_security_policy("https://auth.tesla.com") == CSP
    # The simulator (or a proxy) in TESLA_AUTH_URL: only its origin is allowed, never a path.
    assert "form-action 'self' http://127.0.0.1:5055;" in content_security_policy("http://127.0.0.1:5055/oauth")
    assert "form-action 'self';" in content_security_policy("")
    assert "form-action 'self';" in content_security_policy("not a url")


def test_every_get_route_answers_with_the_security_headers(app, client, admin_client):
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods]
    for rule in rules:
        path = concrete_path(rule)
        assert_security_headers(client.get(path), f"anonymous {rule.rule}")
        assert_security_headers(admin_client.get(path), f"admin {rule.rule}")
    for path in ("/nowhere", "/api/nowhere"):
        assert_security_headers(client.get(path), path)
    assert_security_headers(client.post("/login", data={}), "POST /login without CSRF")


def test_a_server_error_still_has_the_headers(app, client):
    from app.security import public

    @public
    def boom():
        raise RuntimeError("boom")

    app.add_url_rule("/boom", "boom", boom)
    response = client.get("/boom")
    assert response.status_code == 500
    assert_security_headers(response, "500")


def test_hsts_only_over_https(app, client, admin_id):
    assert "Strict-Transport-Security" not in client.get("/login").headers
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")))
def test_templates_have_no_inline_scripts_handlers_or_styles(template):
    assert_no_inline_code((TEMPLATES / template).read_text(encoding="utf-8"), template)


def test_rendered_pages_have_no_inline_code(app, client, admin_client, user_client):
    for c in (client, admin_client, user_client):
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            response = c.get(concrete_path(rule))
            if response.mimetype == "text/html":
                assert_no_inline_code(response.get_data(as_text=True), rule.rule)


def test_pages_with_charts_and_data_have_no_inline_code(env):
    """The dashboard, tariff and history pages after a real sync (server-rendered SVG charts included)."""
    from tests.amber_fake import flat

    env.amber.price_fn = flat(31.5, -7.25)
    env.tick()
    c = env.app.test_client()
    assert login(c, "alice@example.com").status_code == 302
    for path in ("/", "/tariff", "/history", "/settings"):
        html = c.get(path).get_data(as_text=True)
        assert "<svg" in html or path != "/", path
        assert_no_inline_code(html, path)
    for part, html in c.get("/api/dashboard").get_json()["html"].items():
        assert_no_inline_code(html, f"/api/dashboard {part}")


def test_the_only_script_is_our_own_file(app, client, admin_id):
    html = client.get("/login").get_data(as_text=True)
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']


# -- behind a reverse proxy -----------------------------------------------------------------------------------


def proxied_app(tmp_path, database_url, trust: int):
    return create_app(make_config(tmp_path, database_url, TRUST_PROXY=trust))


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "powerwall.example.com"}


def test_forwarded_headers_are_ignored_unless_trusted(app, client, admin_id):
    response = client.get("/login", headers=FORWARDED)
    assert "Strict-Transport-Security" not in response.headers
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": "admin@example.com", "password": "correct horse battery", "csrf_token": token}, headers=FORWARDED)
    assert response.status_code == 302 and "Secure" not in response.headers["Set-Cookie"]
    assert response.headers["Location"] == "/"  # never the forwarded host


def test_trusted_proxy_headers_make_the_request_https(app, tmp_path, database_url, admin_id):
    proxied = proxied_app(tmp_path, database_url, 1)
    c = proxied.test_client()
    response = c.get("/login", headers=FORWARDED)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    token = csrf_token(c, "/login")
    form = {"email": "admin@example.com", "password": "correct horse battery", "csrf_token": token}
    # Over HTTPS Flask-WTF also wants a same-origin Referer, which Referrer-Policy: same-origin keeps sending.
    response = c.post("/login", data=form, headers=FORWARDED)
    assert response.status_code == 400
    response = c.post("/login", data=form, headers={**FORWARDED, "Referer": "https://powerwall.example.com/login"})
    assert response.status_code == 302 and "Secure" in response.headers["Set-Cookie"]


def test_trusted_hops_decide_which_client_address_counts(app, tmp_path, database_url, admin_id):
    from flask import request

    seen = []
    for trust, expected in ((0, "127.0.0.1"), (1, "198.51.100.7"), (2, "203.0.113.9")):
        proxied = proxied_app(tmp_path, database_url, trust)

        @proxied.before_request
        def remember():
            seen.append(request.remote_addr)

        proxied.test_client().get("/login", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"})
        assert seen[-1] == expected, trust


def test_a_forged_forwarded_for_cannot_dodge_the_login_throttle(app, client, admin_id):
    statuses = []
    for i in range(25):
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", data={"email": f"nobody{i}@example.com", "password": "wrong password", "csrf_token": token},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        statuses.append(response.status_code)
    assert 429 in statuses  # per-address limit (20) still applies to the real peer


def test_session_cookie_secure_forces_the_flag(tmp_path, database_url, app, admin_id):
    forced = create_app(make_config(tmp_path, database_url, SESSION_COOKIE_SECURE=True))
    c = forced.test_client()
    response = login(c, "admin@example.com")
    assert "Secure" in response.headers["Set-Cookie"]


def test_trust_proxy_setting(monkeypatch):
    from config import ConfigError, config_for

    for raw, hops in (("", 0), ("false", 0), ("0", 0), ("true", 1), ("1", 1), ("2", 2)):
        monkeypatch.setenv("TRUST_PROXY", raw)
        assert config_for("testing").TRUST_PROXY == hops, raw
    for raw in ("maybe", "-1", "99"):
        monkeypatch.setenv("TRUST_PROXY", raw)
        with pytest.raises(ConfigError, match="TRUST_PROXY"):
            config_for("testing")
