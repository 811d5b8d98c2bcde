"""History as data: GET /api/history?days=N for the signed-in household (pushes with why and who, force
sessions, changes), times with their offset; and the History page grouped by day and filtered by kind."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db as _db
from app.households import add_member, record_event
from app.models import ForceSession, Household, SyncRun, TariffPush, User
from tests.conftest import create_user, household_id_for, login


@pytest.fixture()
def lived_in(app, clock, household_id):
    """A week of history for alice's household in Sydney, and a neighbour's push she must not see."""
    now = clock()
    neighbour = household_id_for(app, create_user(app, "bob@example.com"))
    with app.app_context():
        household = _db.session.get(Household, household_id)
        household.settings.site_timezone = "Australia/Sydney"
        for days_ago, by, tick in ((0, None, True), (1, "alice@example.com", False), (3, "command line", False), (9, None, True)):
            at = now - timedelta(days=days_ago, minutes=5)
            push = TariffPush(household_id=household_id, tesla_site_id="1", created_at=at, kind="normal", tariff={"n": days_ago},
                              tariff_hash=f"{days_ago:064d}", accepted=True)
            _db.session.add(push)
            _db.session.flush()
            _db.session.add(SyncRun(household_id=household_id, tick_at=at if tick else None, started_at=at, outcome="pushed",
                                    reason=f"Prices moved ({days_ago} days ago).", pushed=True, tariff_push_id=push.id,
                                    triggered_by=by if not tick else "schedule"))
        _db.session.add(TariffPush(household_id=neighbour, tesla_site_id="2", created_at=now, kind="normal", tariff={},
                                   tariff_hash="b" * 64, accepted=True))
        _db.session.add(ForceSession(household_id=household_id, tesla_site_id="1", action="force_charge", state="ended", minutes=30,
                                     started_at=now - timedelta(days=2), ends_at=now - timedelta(days=2) + timedelta(minutes=30),
                                     ended_at=now - timedelta(days=2) + timedelta(minutes=30), started_by="op@example.com",
                                     end_reason="Finished; the previous settings were put back."))
        record_event(household, "alice@example.com", "settings", "Changed sync enabled.", now - timedelta(days=1))
        _db.session.commit()
    return household_id


def test_api_history_gives_a_weeks_pushes_sessions_and_changes_with_who(app, user_client, lived_in):
    body = user_client.get("/api/history?days=7").get_json()
    assert body["days"] == 7 and body["time_zone"] == "Australia/Sydney"
    pushes = body["pushes"]
    assert [p["by"] for p in pushes] == ["schedule", "alice@example.com", "command line"]  # not the 9-day-old one
    assert pushes[0]["at"].endswith("+11:00") and pushes[0]["reason"] == "Prices moved (0 days ago)."
    assert all(p["tesla_site_id"] == "1" for p in pushes)  # never the neighbour's
    [session] = body["force_sessions"]
    assert (session["action"], session["minutes"], session["by"]) == ("force_charge", 30, "op@example.com")
    assert [c["message"] for c in body["changes"]] == ["Household created.", "Changed sync enabled."]  # newest first
    longer = user_client.get("/api/history?days=10").get_json()
    assert len(longer["pushes"]) == 4


@pytest.mark.parametrize("days", ["0", "91", "abc", "-1", "7.5"])
def test_api_history_refuses_a_bad_number_of_days(user_client, lived_in, days):
    response = user_client.get(f"/api/history?days={days}")
    assert response.status_code == 400 and "from 1 to 90" in response.get_json()["error"]


def test_api_history_needs_a_member_and_a_viewer_may_read(app, client, lived_in, clock):
    assert client.get("/api/history").status_code == 401
    viewer = create_user(app, "viewer@example.com")
    with app.app_context():
        add_member(_db.session.get(Household, lived_in), _db.session.get(User, viewer), "viewer", "test", clock())
        _db.session.commit()
    c = app.test_client()
    assert login(c, "viewer@example.com").status_code == 302
    assert len(c.get("/api/history").get_json()["pushes"]) == 3


def test_the_history_page_groups_by_day_and_filters_by_kind(user_client, lived_in, clock):
    everything = user_client.get("/history").get_data(as_text=True)
    assert everything.count('class="day-row"') == 4  # four days with runs
    pushes = user_client.get("/history?kind=pushes").get_data(as_text=True)
    assert pushes.count('class="card day-group"') == 3 and "by alice@example.com" in pushes and "by command line" in pushes
    force = user_client.get("/history?kind=force").get_data(as_text=True)
    assert "Force charge 30 min by op@example.com" in force and "Prices moved" not in force
    changes = user_client.get("/history?kind=changes").get_data(as_text=True)
    assert "alice@example.com: Changed sync enabled." in changes
    assert user_client.get("/history?kind=nonsense").status_code == 200
