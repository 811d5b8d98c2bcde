"""Retention: old sync runs, tariff pushes and prices go in small batches; what the app still needs stays;
the sync-runs counter on /metrics never goes down."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, event, func, select

from app.models import ApiCallCount, ForceSession, StoredPrice, SyncRun, SyncRunTotal, TariffPush
from app.retention import RetentionPolicy, purge_old_rows
from tests.test_observability import METRICS_TOKEN, parse_exposition, scrape

ROOT = Path(__file__).resolve().parents[1]
DAY = timedelta(days=1)


def policy(**overrides) -> dict:
    """Config values as config.py makes them by default, with `overrides`."""
    values = {"SYNC_RUN_RETENTION_DAYS": 90, "TARIFF_PUSH_RETENTION_DAYS": 365, "PRICE_RETENTION_DAYS": 90,
              "RETENTION_BATCH_SIZE": 5000}
    values.update(overrides)
    return values


def add_run(db, household_id: int, started: datetime, outcome: str = "unchanged", push_id: int | None = None) -> int:
    run = SyncRun(household_id=household_id, started_at=started, outcome=outcome, pushed=outcome == "pushed", tariff_push_id=push_id)
    db.session.add(run)
    db.session.flush()
    return run.id


def add_push(db, household_id: int, created: datetime, *, accepted: bool = True, site: str = "1234") -> int:
    push = TariffPush(
        household_id=household_id, tesla_site_id=site, created_at=created, kind="normal", tariff={"name": "t"},
        tariff_hash="0" * 64, explanation={"slots": [{"why": "x" * 100}]}, accepted=accepted,
    )
    db.session.add(push)
    db.session.flush()
    return push.id


def add_price(db, start: datetime, site: str = "SITE") -> None:
    db.session.add(StoredPrice(amber_site_id=site, channel="general", start_at=start, duration_minutes=30,
                               kind="actual", per_kwh=30.0))


def ids(db, model) -> set[int]:
    return set(db.session.scalars(select(model.id)))


# -- what goes and what stays ---------------------------------------------------------------------------------


def test_old_rows_go_and_young_rows_stay(app, db, clock, household_id):
    now = clock()
    old_run = add_run(db, household_id, now - 91 * DAY)
    young_run = add_run(db, household_id, now - 89 * DAY)
    old_push = add_push(db, household_id, now - 400 * DAY)
    kept_pushes = {add_push(db, household_id, now - days * DAY) for days in (300, 10, 1)}
    add_price(db, now - 91 * DAY)
    add_price(db, now - 89 * DAY)
    db.session.commit()

    result = purge_old_rows(now, policy())

    assert (result.sync_runs, result.tariff_pushes, result.price_intervals) == (1, 1, 1)
    assert ids(db, SyncRun) == {young_run} and old_run not in ids(db, SyncRun)
    assert ids(db, TariffPush) == kept_pushes and old_push not in ids(db, TariffPush)
    assert db.session.scalars(select(StoredPrice.start_at)).all() == [now - 89 * DAY]
    assert purge_old_rows(now, policy()).summary().startswith("deleted 0 sync runs, 0 tariff pushes and 0 stored prices")


def test_the_periods_come_from_config(app, db, clock, household_id):
    now = clock()
    add_run(db, household_id, now - 8 * DAY)
    add_price(db, now - 8 * DAY)
    db.session.commit()
    assert purge_old_rows(now, policy(SYNC_RUN_RETENTION_DAYS=9, PRICE_RETENTION_DAYS=9)).sync_runs == 0
    result = purge_old_rows(now, policy(SYNC_RUN_RETENTION_DAYS=7, PRICE_RETENTION_DAYS=7))
    assert (result.sync_runs, result.price_intervals) == (1, 1)


def test_the_latest_pushes_of_an_idle_user_stay_however_old(app, db, clock, household_id, admin_household_id):
    now = clock()
    # An idle household: nothing pushed for two years. The newest accepted push is what the sync compares with
    # and the dashboard shows; the one before it is what the tariff page diffs against; the newest of
    # all (here a refused one) is the household's latest push.
    gone = add_push(db, household_id, now - 800 * DAY)
    before_last = add_push(db, household_id, now - 760 * DAY)
    last_accepted = add_push(db, household_id, now - 750 * DAY)
    refused = add_push(db, household_id, now - 740 * DAY, accepted=False)
    # On an old site the household left, the same: the sync and the pages look up pushes by site.
    other_site_gone = add_push(db, household_id, now - 800 * DAY, site="999")
    other_site_kept = {add_push(db, household_id, now - days * DAY, site="999") for days in (795, 790)}
    # An active household's old pushes go: newer accepted ones exist.
    admin_old = add_push(db, admin_household_id, now - 400 * DAY)
    admin_new = {add_push(db, admin_household_id, now - days * DAY) for days in (2, 1)}
    db.session.commit()

    result = purge_old_rows(now, policy())

    assert result.tariff_pushes == 3
    left = ids(db, TariffPush)
    assert {before_last, last_accepted, refused} | other_site_kept | admin_new == left
    assert not {gone, other_site_gone, admin_old} & left


def test_pushes_stay_while_a_force_session_is_live(app, db, clock, household_id):
    now = clock()
    old = [add_push(db, household_id, now - days * DAY) for days in (500, 450, 400)]
    newer = [add_push(db, household_id, now - days * DAY) for days in (3, 2, 1)]
    session = ForceSession(household_id=household_id, tesla_site_id="1234", action="force_charge", state="restoring", minutes=30,
                           started_at=now - timedelta(minutes=40), ends_at=now - timedelta(minutes=10))
    db.session.add(session)
    db.session.commit()

    assert purge_old_rows(now, policy()).tariff_pushes == 0
    assert ids(db, TariffPush) == set(old + newer)

    session.state = "ended"  # once it is over, the old pushes go at the next run
    db.session.commit()
    assert purge_old_rows(now, policy()).tariff_pushes == 3
    assert ids(db, TariffPush) == set(newer)


def test_api_call_counts_are_never_purged(app, db, clock, household_id):
    now = clock()
    db.session.add(ApiCallCount(household_id=household_id, day=(now - 2000 * DAY).date(), service="amber", kind="prices",
                                status_class="2xx", calls=5, billable=0))
    db.session.commit()
    purge_old_rows(now, policy())
    assert db.session.scalar(select(func.count(ApiCallCount.id))) == 1


# -- the counter ----------------------------------------------------------------------------------------------


def test_the_sync_runs_counter_never_goes_down_across_purges(app, db, clock, household_id, client):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    now = clock()
    for days, outcome in ((200, "pushed"), (150, "pushed"), (120, "failed"), (100, "skipped"), (5, "pushed"), (1, "unchanged")):
        add_run(db, household_id, now - days * DAY, outcome)
    db.session.commit()

    def totals() -> dict[str, float]:
        samples = parse_exposition(scrape(client).get_data(as_text=True))
        return {o: samples[f'tas_sync_runs_total{{outcome="{o}"}}'] for o in ("pushed", "unchanged", "skipped", "failed")}

    before = totals()
    assert before == {"pushed": 3, "unchanged": 1, "skipped": 1, "failed": 1}
    result = purge_old_rows(now, policy(SYNC_RUN_RETENTION_DAYS=140))
    assert result.sync_runs_by_outcome == {"pushed": 2}
    assert totals() == before
    result = purge_old_rows(now, policy(SYNC_RUN_RETENTION_DAYS=2))  # adds to the rows already there
    assert result.sync_runs_by_outcome == {"pushed": 1, "failed": 1, "skipped": 1}
    assert totals() == before
    assert dict(db.session.execute(select(SyncRunTotal.outcome, SyncRunTotal.purged)).all()) == {
        "pushed": 3, "failed": 1, "skipped": 1,
    }
    assert db.session.scalar(select(func.count(SyncRun.id))) == 1
    add_run(db, household_id, now, "pushed")
    db.session.commit()
    assert totals()["pushed"] == 4


def test_a_run_another_purge_deleted_first_is_not_counted_again(app, db, clock, household_id):
    # Two purges at once (the hourly job and `flask db purge`): each counts only what it deleted.
    now = clock()
    runs = [add_run(db, household_id, now - 100 * DAY, "pushed") for _ in range(3)]
    db.session.commit()
    taken: list[int] = []

    def other_purge_first(conn, cursor, statement, parameters, context, executemany):
        if not taken and statement.lstrip().upper().startswith("DELETE FROM SYNC_RUNS"):
            taken.append(runs[0])  # first: the other purge's own DELETE passes through here too
            with db.engine.connect() as other:
                other.execute(delete(SyncRun).where(SyncRun.id == runs[0]))
                other.commit()

    event.listen(db.engine, "before_cursor_execute", other_purge_first)
    try:
        result = purge_old_rows(now, policy())
    finally:
        event.remove(db.engine, "before_cursor_execute", other_purge_first)
    assert taken and result.sync_runs == 2 and result.sync_runs_by_outcome == {"pushed": 2}
    assert db.session.scalar(select(SyncRunTotal.purged)) == 2


# -- batches --------------------------------------------------------------------------------------------------


def test_deletes_go_in_batches_of_the_configured_size(app, db, clock, household_id):
    now = clock()
    for n in range(7):
        add_run(db, household_id, now - (100 + n) * DAY, "pushed" if n % 2 else "failed")
        add_price(db, now - (100 + n) * DAY)
        add_push(db, household_id, now - (400 + n) * DAY)
    for days in (2, 1):
        add_push(db, household_id, now - days * DAY)
    db.session.commit()

    deletes: list[tuple[str, int]] = []
    commits: list[int] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((statement.split()[2], len(parameters)))  # one bound id per row

    def on_commit(session):
        commits.append(len(deletes))

    engine, session = db.engine, db.session()
    event.listen(engine, "after_cursor_execute", on_execute)
    event.listen(session, "after_commit", on_commit)
    try:
        result = purge_old_rows(now, policy(RETENTION_BATCH_SIZE=3))
    finally:
        event.remove(engine, "after_cursor_execute", on_execute)
        event.remove(session, "after_commit", on_commit)
    assert (result.sync_runs, result.tariff_pushes, result.price_intervals) == (7, 7, 7)
    assert result.sync_runs_by_outcome == {"failed": 4, "pushed": 3}
    # Each batch is committed on its own and deletes at most 3 rows (sync runs: one DELETE per outcome).
    batches, start = [], 0
    for end in commits:
        [table] = {t for t, _ in deletes[start:end]}
        batches.append((table, sum(n for _, n in deletes[start:end])))
        start = end
    assert start == len(deletes)
    assert batches == [(table, n) for table in ("sync_runs", "tariff_pushes", "price_intervals") for n in (3, 3, 1)]
    assert db.session.scalar(select(SyncRunTotal.purged).where(SyncRunTotal.outcome == "failed")) == 4


# -- what the pages show afterwards ---------------------------------------------------------------------------


def test_history_and_tariff_pages_work_after_a_runs_push_was_purged(app, db, clock, household_id, user_client):
    now = clock()
    old_push = add_push(db, household_id, now - 400 * DAY)
    kept = [add_push(db, household_id, now - days * DAY) for days in (2, 1)]
    run_old_push = add_run(db, household_id, now - 3 * DAY, "pushed", push_id=old_push)
    add_run(db, household_id, now - DAY, "pushed", push_id=kept[1])
    db.session.commit()

    assert purge_old_rows(now, policy()).tariff_pushes == 1
    db.session.expire_all()
    assert db.session.get(SyncRun, run_old_push).tariff_push_id is None  # ON DELETE SET NULL

    page = user_client.get("/history")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "2 run(s)" in text and f"/tariff/{kept[1]}" in text and f"/tariff/{old_push}" not in text
    assert user_client.get(f"/tariff/{old_push}").status_code == 404  # gone, and said so


# -- running it ---------------------------------------------------------------------------------------------


def test_the_scheduler_runs_it_hourly_on_the_leader(app, db, clock, household_id):
    from app.sync.scheduler import LEADER_JOBS, Scheduler

    [job] = [j for j in LEADER_JOBS if j.name == "retention"]
    assert job.target == "app.retention:purge_old_rows" and job.every_seconds == 3600
    add_run(db, household_id, clock() - 200 * DAY)
    db.session.commit()
    scheduler = Scheduler(app, holder="test:1:a")
    scheduler.renew_lease()
    assert scheduler.is_leader and scheduler.run_leader_job(job)
    assert db.session.scalar(select(func.count(SyncRun.id))) == 0


def test_cli_purge_prints_what_it_deleted(app, db, clock, runner, household_id, caplog):
    now = clock()
    add_run(db, household_id, now - 100 * DAY, "pushed")
    add_run(db, household_id, now - 100 * DAY, "failed")
    add_price(db, now - 401 * DAY)
    add_price(db, now - 100 * DAY)  # prices are kept 400 days by default
    db.session.commit()
    with caplog.at_level("INFO", logger="app.retention"):
        result = runner.invoke(args=["db", "purge"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 sync runs older than 90 days (failed 1, pushed 1)" in result.output
    assert "Deleted 0 tariff pushes older than 365 days" in result.output
    assert "Deleted 1 stored prices older than 400 days" in result.output
    assert "Retention: deleted 2 sync runs, 0 tariff pushes and 1 stored prices" in caplog.text


# -- settings -----------------------------------------------------------------------------------------------


RETENTION_VARIABLES = ("SYNC_RUN_RETENTION_DAYS", "TARIFF_PUSH_RETENTION_DAYS", "PRICE_RETENTION_DAYS", "MONEY_RETENTION_DAYS")


def test_defaults(monkeypatch):
    from config import config_for

    for name in RETENTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config = config_for("testing")
    assert (config.SYNC_RUN_RETENTION_DAYS, config.TARIFF_PUSH_RETENTION_DAYS, config.PRICE_RETENTION_DAYS) == (90, 365, 400)
    assert RetentionPolicy.from_config(vars(config)) == RetentionPolicy(90, 365, 400, 5000)
    monkeypatch.setenv("TARIFF_PUSH_RETENTION_DAYS", " 30 ")
    assert config_for("testing").TARIFF_PUSH_RETENTION_DAYS == 30


@pytest.mark.parametrize("name", RETENTION_VARIABLES)
@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "at least 1"), ("-5", "at least 1"), ("1.5", "must be an integer"), ("ninety", "must be an integer"),
     ("99999999999", "at most 36500")],
)
def test_bad_values_are_refused_naming_the_variable(monkeypatch, name, value, message):
    from config import ConfigError, config_for

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name) as caught:
        config_for("testing")
    assert message in str(caught.value)


@pytest.mark.parametrize("bad", [0, -1, "90", None, True, 2.5])
def test_a_direct_caller_cannot_pass_a_bad_policy(bad):
    with pytest.raises(ValueError, match="SYNC_RUN|sync_run_days"):
        RetentionPolicy.from_config(policy(SYNC_RUN_RETENTION_DAYS=bad))


def test_settings_are_documented():
    example = (ROOT / ".env.example").read_text().splitlines()
    guide = (ROOT / "docs" / "deployment.md").read_text()
    for name in RETENTION_VARIABLES:
        index = next((i for i, line in enumerate(example) if line.startswith(f"{name}=")), None)
        assert index is not None and example[index - 1].startswith("# "), f"{name} is not in .env.example"
        assert name in guide, f"{name} is not in docs/deployment.md"
    assert "flask db purge" in guide


def test_money_history_is_kept_three_years_by_default_then_deleted(app, db, household_id):
    from datetime import date

    from app.models import EnergyInterval, MeteredUsage

    now = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)
    for days_ago in (10, 1000, 1200):
        start = now - days_ago * DAY
        db.session.add(MeteredUsage(household_id=household_id, site_id="S", channel="general", identifier="E1", start_at=start,
                                    end_at=start + timedelta(minutes=30), billing_date=date(2020, 1, 1), kwh_micro=1, price_micro=1,
                                    cost_micro=1, quality="billable", imported_at=now))
        db.session.add(EnergyInterval(household_id=household_id, start_at=start, end_at=start + timedelta(minutes=5), imported_at=now))
    db.session.commit()
    result = purge_old_rows(now, policy())  # MONEY_RETENTION_DAYS unset: 1100 days
    assert (result.usage_intervals, result.energy_intervals) == (1, 1)
    assert "2 usage and energy intervals" in result.summary()
    assert purge_old_rows(now, policy(MONEY_RETENTION_DAYS=30)).usage_intervals == 1
    assert db.session.query(MeteredUsage).count() == 1 and db.session.query(EnergyInterval).count() == 1
