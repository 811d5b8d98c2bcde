"""Bad input and failures: a clear message and the right status, never a stack trace."""
from __future__ import annotations

import pytest

from app import create_app
from app.security import public
from tests.conftest import csrf_token, make_config

UNREACHABLE_DATABASES = {
    "sqlite": "sqlite:////nonexistent-directory/for/sure/tas.db",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2",
}


def assert_no_trace(response):
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and 'File "' not in body


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing at this address." in response.get_data(as_text=True)


def test_unknown_api_path_answers_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json() == {"error": "There is nothing at this address.", "status": 404}


def test_wrong_method_is_405(client):
    response = client.put("/login")
    assert response.status_code == 405
    assert_no_trace(response)


def test_oversized_body_is_413_and_nothing_is_created(app, client):
    token = csrf_token(client, "/register")
    response = client.post(
        "/register", data={"email": "a@example.com", "password": "x" * (2 * 1024 * 1024), "csrf_token": token}
    )
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert client.get("/register").status_code == 200  # still the first-account sign-up


def test_non_utf8_multipart_field_gets_a_clear_message(app, client):
    token = csrf_token(client, "/register")
    boundary = "XyZ"
    parts = [("email", b"\xff\xfeowner@example.com"), ("password", b"long enough pw"),
             ("confirm", b"long enough pw"), ("csrf_token", token.encode())]
    body = b"".join(
        b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"
        for name, value in parts
    ) + b"--" + boundary.encode() + b"--\r\n"
    response = client.post("/register", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    assert "could not be read" in response.get_data(as_text=True)
    assert client.get("/register").status_code == 200  # no account was created


def test_non_utf8_urlencoded_values_are_refused_and_raw_garbage_is_400(user_client):
    token = csrf_token(user_client, "/settings")
    body = b"token=&site_id=%FF%FE01&csrf_token=" + token.encode()
    response = user_client.post("/settings/amber", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "only letters and digits" in response.get_data(as_text=True)
    raw = user_client.post("/settings/amber", data=b"\xff\xfe\x00garbage", content_type="application/x-www-form-urlencoded")
    assert raw.status_code == 400
    assert_no_trace(raw)


def test_oversized_and_empty_fields_are_refused_with_messages(client):
    token = csrf_token(client, "/register")
    response = client.post(
        "/register", data={"email": "a" * 300 + "@example.com", "password": "", "confirm": "", "csrf_token": token}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "at most 254 characters" in page and "Choose a password." in page


def test_hostile_strings_are_rendered_escaped(client, user_id):
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": "<script>alert(1)</script>", "password": "x", "csrf_token": token}
    )
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body


def test_unexpected_error_is_a_500_page_without_a_trace(tmp_path, database_url):
    app = create_app(make_config(tmp_path, database_url))

    @public
    def boom():
        raise RuntimeError("internal detail that must not leak")

    app.add_url_rule("/boom", "boom", boom)
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert "internal detail" not in response.get_data(as_text=True)
    assert "Nothing you saved was lost" in response.get_data(as_text=True)


@pytest.mark.parametrize("backend", sorted(UNREACHABLE_DATABASES))
def test_database_down_gives_503_pages_and_health(tmp_path, backend):
    app = create_app(make_config(tmp_path, UNREACHABLE_DATABASES[backend]))
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["database"]) == ("error", "unavailable") and body["reason"]
    page = client.get("/login")
    assert page.status_code == 503
    assert "The database is not answering" in page.get_data(as_text=True)
    assert_no_trace(page)


def test_health_is_public_and_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


DOWN_MESSAGE = (
    "The database is not answering. The Powerwall keeps the last tariff it was given; nothing was lost. "
    "Try again in a minute."
)


@pytest.fixture()
def database_gone_for_users(monkeypatch):
    """Flask-Login's user loader fails as it does when the database went away before the request."""
    from sqlalchemy.exc import OperationalError

    from app.extensions import login_manager

    calls: list[str] = []

    def loader(identity: str):
        calls.append(identity)
        raise OperationalError("SELECT users", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(login_manager, "_user_callback", loader)
    return calls


def test_a_signed_in_page_is_the_503_page_when_the_user_cannot_be_loaded(user_client, database_gone_for_users):
    page = user_client.get("/")
    assert page.status_code == 503
    body = page.get_data(as_text=True)
    assert DOWN_MESSAGE in body and "Log out" not in body  # the bare layout: no menu of the signed-in user
    assert_no_trace(page)
    assert len(database_gone_for_users) == 1  # tried once; the error page itself did not ask again


def test_a_signed_in_api_call_is_a_json_503_when_the_user_cannot_be_loaded(user_client, database_gone_for_users):
    response = user_client.get("/api/dashboard")
    assert response.status_code == 503
    assert response.get_json() == {"error": DOWN_MESSAGE, "status": 503}


def test_other_error_pages_still_render_for_a_signed_in_user_when_the_database_is_gone(
    user_client, database_gone_for_users
):
    # A 404 or a refused form is decided before anyone loads the user; the error page's menu would.
    missing = user_client.get("/no/such/page")
    assert missing.status_code == 404
    assert "There is nothing at this address." in missing.get_data(as_text=True)
    assert "Log out" not in missing.get_data(as_text=True)
    wrong_method = user_client.put("/login")
    assert wrong_method.status_code == 405
    assert_no_trace(wrong_method)
