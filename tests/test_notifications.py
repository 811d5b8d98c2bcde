"""Notifications through Apprise: targets validated and stored encrypted, a test message, one message when a
problem starts and one when it clears (not one per tick), retries with backoff, the command line."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import responses
from sqlalchemy import select

from app.extensions import db as _db
from app.models import HouseholdProblem, NotificationTarget, OutboxMessage
from app.notify.events import in_quiet_hours, transitions
from app.notify.outbox import deliver_due
from tests.sync_env import SHARED, env, simulator  # noqa: F401 (fixtures)

HOOK = "json://notify.test/hook"
T = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


# -- pure ------------------------------------------------------------------------------------------------


def test_a_problem_starts_once_and_clears_once():
    assert [(t.key, t.started) for t in transitions({}, {"amber_token": None}, T)] == [("amber_token", True)]
    assert transitions({"amber_token": T}, {"amber_token": None}, T + timedelta(minutes=5)) == []  # while it lasts
    [cleared] = transitions({"amber_token": T}, {}, T + timedelta(minutes=10))
    assert (cleared.key, cleared.started, cleared.episode_start) == ("amber_token", False, T)


@pytest.mark.parametrize(("minute", "start", "end", "quiet"), [
    (23 * 60, 22 * 60, 7 * 60, True), (6 * 60 + 59, 22 * 60, 7 * 60, True), (7 * 60, 22 * 60, 7 * 60, False),
    (12 * 60, 22 * 60, 7 * 60, False), (13 * 60, 12 * 60, 14 * 60, True), (12 * 60, None, None, False),
])
def test_quiet_hours_may_wrap_past_midnight(minute, start, end, quiet):
    assert in_quiet_hours(minute, start, end) is quiet


# -- targets and the command line -------------------------------------------------------------------------


def test_an_invalid_url_is_refused_with_a_clear_message(runner, user_id):
    result = runner.invoke(args=["notifications", "add", "alice@example.com", "not a url at all"])
    assert result.exit_code != 0 and "Apprise does not recognise that URL" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(args=["notifications", "add", "nobody@example.com", HOOK])
    assert result.exit_code != 0 and "No account" in result.output


def test_a_target_is_stored_encrypted_and_listed_without_its_url(app, runner, user_id, database_url):
    secret = "ntfy://ntfy.example/alice-topic-8f2c0e5a"
    result = runner.invoke(args=["notifications", "add", "alice@example.com", secret, "--events", "token_refused,force",
                                 "--quiet", "22:00-07:00"])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(args=["notifications", "list", "alice@example.com"]).output
    assert "1. ntfy … 0e5a  (token_refused, force, quiet 22:00-07:00)" in listing and "alice-topic" not in listing
    with app.app_context():
        row = _db.session.scalar(select(NotificationTarget))
        assert "alice-topic" not in row.url_enc
    if database_url.startswith("sqlite:///"):
        raw = Path(database_url.removeprefix("sqlite:///")).read_bytes()
        assert b"alice-topic" not in raw and b"ntfy.example" not in raw  # not in the database file in plain text
    assert runner.invoke(args=["notifications", "remove", "alice@example.com", "2"]).exit_code != 0
    assert runner.invoke(args=["notifications", "remove", "alice@example.com", "1"]).exit_code == 0
    assert "no notification targets" in runner.invoke(args=["notifications", "list", "alice@example.com"]).output


@responses.activate
def test_the_test_message_arrives(app, runner, user_id):
    responses.post("http://notify.test/hook", json={})
    assert runner.invoke(args=["notifications", "add", "alice@example.com", HOOK]).exit_code == 0
    result = runner.invoke(args=["notifications", "test", "alice@example.com"])
    assert result.exit_code == 0, result.output
    assert "Sent 1 message(s); 0 failed" in result.output
    [call] = responses.calls
    body = json.loads(call.request.body)
    assert body["title"] == "Tesla-Amber-Sync test" and "notifications reach you here" in body["message"]


@responses.activate
def test_a_failed_delivery_is_retried_with_backoff_and_shown(app, runner, user_id, clock):
    responses.post("http://notify.test/hook", status=500)
    assert runner.invoke(args=["notifications", "add", "alice@example.com", HOOK]).exit_code == 0
    result = runner.invoke(args=["notifications", "test", "alice@example.com"])
    assert result.exit_code == 1 and "1 failed" in result.output
    with app.app_context():
        message = _db.session.scalar(select(OutboxMessage))
        assert (message.attempts, message.delivered_at, message.next_attempt_at) == (1, None, clock() + timedelta(minutes=1))
        assert "Delivery failed" in _db.session.scalar(select(NotificationTarget)).last_error
        assert deliver_due(clock()) == {"sent": 0, "failed": 0, "held": 0}  # not before its time
        responses.replace(responses.POST, "http://notify.test/hook", json={})
        clock.advance(minutes=1)
        assert deliver_due(clock())["sent"] == 1
        assert _db.session.scalar(select(NotificationTarget)).last_error is None
    assert "last error" not in runner.invoke(args=["notifications", "list", "alice@example.com"]).output


# -- problems from the sync ----------------------------------------------------------------------------------


def next_tick_delivered(env, app) -> None:
    """Five minutes on: a tick, then the outbox's delivery job (as the leader runs it)."""
    SHARED.advance(minutes=5)
    env.tick()
    with app.app_context():
        deliver_due(SHARED.current)


def hook_messages(env):
    return [json.loads(c.request.body) for c in env.mock.calls if c.request.url == "http://notify.test/hook"]


def test_a_refused_amber_token_sends_one_message_over_three_ticks_and_one_when_fixed(env, app, runner):  # noqa: F811
    env.mock.add(responses.POST, "http://notify.test/hook", json={})
    assert runner.invoke(args=["notifications", "add", "alice@example.com", HOOK]).exit_code == 0
    env.tick()
    env.amber.fail_status = 401  # Amber refuses the token
    for _ in range(3):
        next_tick_delivered(env, app)
    sent = hook_messages(env)
    assert len(sent) == 1 and "Amber refused the saved API token" in sent[0]["message"]
    with app.app_context():
        assert [p.key for p in _db.session.scalars(select(HouseholdProblem))] == ["amber_token"]
    env.amber.fail_status = None  # the owner enters a working token
    next_tick_delivered(env, app)
    sent = hook_messages(env)
    assert len(sent) == 2 and "Amber accepts the token again" in sent[1]["message"]
    next_tick_delivered(env, app)
    with app.app_context():
        assert _db.session.scalars(select(HouseholdProblem)).all() == []
    assert len(hook_messages(env)) == 2  # nothing more while all is well


def test_a_sync_reads_the_open_episodes_only_when_one_opens_or_closes(env, app):  # noqa: F811
    # The sync reads the open episodes' keys with the household; the rows only when one must open or close.
    from sqlalchemy import event

    env.tick()
    with app.app_context():
        engine = _db.engine
    reads: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT HOUSEHOLD_PROBLEMS."):
            reads.append(statement)

    counts = []
    event.listen(engine, "before_cursor_execute", seen)
    try:
        env.amber.fail_status = 401
        for _ in range(3):  # opens, stays open, stays open
            next_tick_delivered(env, app)
            counts.append(len(reads))
        env.amber.fail_status = None
        next_tick_delivered(env, app)  # closes
        counts.append(len(reads))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert counts == [1, 1, 1, 2]
    with app.app_context():
        assert _db.session.scalars(select(HouseholdProblem)).all() == []


def test_a_sync_that_stops_working_for_an_hour_is_told_once_and_its_recovery_once(env, app, runner):  # noqa: F811
    """Amber refuses the token for 80 minutes: the token message comes at once; the "sync stopped working"
    message comes once, after an hour without a successful sync; both clear together when it works again."""
    env.mock.add(responses.POST, "http://notify.test/hook", json={})
    assert runner.invoke(args=["notifications", "add", "alice@example.com", HOOK, "--events", "sync_off"]).exit_code == 0
    env.tick()
    env.amber.fail_status = 401
    for minutes in range(5, 85, 5):
        next_tick_delivered(env, app)
        if minutes < 60:
            assert hook_messages(env) == [], minutes  # not yet: under an hour
    sent = hook_messages(env)
    assert len(sent) == 1 and "The sync has stopped working" in sent[0]["message"] and "last attempt:" in sent[0]["message"]
    env.amber.fail_status = None
    next_tick_delivered(env, app)
    sent = hook_messages(env)
    assert len(sent) == 2 and "The sync works again" in sent[1]["message"]


@responses.activate
def test_the_notifications_page_adds_tests_and_removes_a_target(app, user_client):
    from tests.conftest import csrf_token

    responses.post("http://notify.test/hook", json={})
    token = csrf_token(user_client, "/settings/notifications")
    bad = user_client.post("/settings/notifications", data={"url": "definitely not", "csrf_token": token})
    assert bad.status_code == 400 and "Apprise does not recognise that URL" in bad.get_data(as_text=True)
    added = user_client.post("/settings/notifications", data={"url": HOOK, "events": ["force", "off_grid"], "quiet_start": "22:00",
                                                              "quiet_end": "07:00", "csrf_token": token}, follow_redirects=True)
    page = added.get_data(as_text=True)
    assert "json … hook" in page and "notify.test" not in page and "quiet 22:00–07:00" in page
    sent = user_client.post("/settings/notifications/test", data={"csrf_token": token}, follow_redirects=True)
    assert "Test message sent to every target" in sent.get_data(as_text=True) and len(responses.calls) == 1
    user_client.post("/settings/notifications/1/remove", data={"csrf_token": token})
    assert "No notification targets yet" in user_client.get("/settings/notifications").get_data(as_text=True)


def test_a_household_message_reaches_each_members_chosen_targets_once_and_nobody_else(app, household_id):
    from app.households.service import add_member
    from app.models import Household, User
    from app.notify.outbox import enqueue
    from app.notify.targets import add_target
    from tests.conftest import create_user, household_id_for

    bob_id, eve_id = create_user(app, "bob@example.com"), create_user(app, "eve@example.com")
    household_id_for(app, eve_id)  # eve has a household of her own
    with app.app_context():
        household = _db.session.get(Household, household_id)
        alice = _db.session.scalar(select(User).where(User.email == "alice@example.com"))
        bob, eve = _db.session.get(User, bob_id), _db.session.get(User, eve_id)
        add_member(household, bob, "viewer", "alice@example.com", T)
        alice_all = add_target(alice, "json://alice.test/all", T)
        alice_force = add_target(alice, "json://alice.test/force", T, events=["force"])
        bob_alerts = add_target(bob, "json://bob.test/alerts", T, events=["price_alert"])
        add_target(eve, "json://eve.test/all", T)  # not a member of this one
        _db.session.commit()
        for _ in range(2):  # asked twice: queued once
            added = enqueue(household, "price_alert", f"h{household.id}:spike", "Spike", "A spike at 18:00", T)
            _db.session.commit()
        assert added == 0
        queued = sorted(_db.session.scalars(select(OutboxMessage.target_id)))
        assert queued == sorted([alice_all.id, bob_alerts.id])
        assert alice_force.id not in queued
