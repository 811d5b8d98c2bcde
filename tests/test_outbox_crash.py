"""The notification outbox survives a killed process: a real `flask notifications test` is killed (SIGKILL)
just before it sends and just after it sent (before marking the message delivered). The message is never
lost, and after the crash it is delivered once more at most (at least once, with its key), never again."""
from __future__ import annotations

import json
import subprocess
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import OutboxMessage, User
from app.notify.outbox import deliver_due
from app.notify.targets import add_target
from tests.conftest import create_user, make_config
from tests.db_backends import BACKENDS, fresh_database
from tests.process_support import flask_env, run_flask

EMAIL = "owner@example.com"


class Receiver(BaseHTTPRequestHandler):
    """Apprise's json:// target posts here; every message body received is kept."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/hook", Receiver.received
    server.shutdown()
    server.server_close()


@pytest.fixture(params=BACKENDS)
def home(request, tmp_path, receiver):
    url, received = receiver
    with fresh_database(request.param, tmp_path) as database_url:
        app = create_app(make_config(tmp_path, database_url))
        with app.app_context():
            db.create_all()
        uid = create_user(app, EMAIL)
        with app.app_context():
            add_target(db.session.get(User, uid), url, datetime.now(timezone.utc))
            db.session.commit()
        yield app, flask_env(database_url, tmp_path / "data"), received
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def killed_at(env: dict, step: str) -> subprocess.CompletedProcess:
    result = run_flask(env, "notifications", "test", EMAIL, kill_at=step)
    assert result.returncode == -9, (result.returncode, result.stdout, result.stderr)
    return result


def outbox(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return rows


def deliver(app) -> dict:
    with app.app_context():
        return deliver_due(datetime.now(timezone.utc))


def test_killed_before_sending_the_message_waits_and_goes_once(home):
    app, _, received = home
    killed_at(home[1], "outbox_before_send")
    [row] = outbox(app)
    assert row.delivered_at is None and received == []  # queued, committed, not lost
    assert deliver(app)["sent"] == 1  # the restarted leader's delivery job
    assert deliver(app)["sent"] == 0
    assert [m["title"] for m in received] == ["Tesla-Amber-Sync test"]


def test_killed_after_sending_the_message_is_repeated_once_and_never_again(home):
    app, _, received = home
    killed_at(home[1], "outbox_after_send")
    [row] = outbox(app)
    assert row.delivered_at is None and len(received) == 1  # sent, but the process died before marking it
    assert deliver(app)["sent"] == 1  # at least once: sent again with the same key
    assert deliver(app)["sent"] == 0 and len(received) == 2  # and never a third time
    [row] = outbox(app)
    assert row.delivered_at is not None and row.attempts == 1
