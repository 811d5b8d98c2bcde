"""A batch job for the claim tests' worker processes (SYNC_WORKER_BATCH_JOB=tests.claims_helpers:record_batch).

It records each household it "syncs" in a table of its own (not one of the app's models), in the same
transaction that completes the household's claim, as the real sync records its run."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Column, Integer, MetaData, Table, select

from app.extensions import db
from app.models import UTCDateTime

metadata = MetaData()
recorded_syncs = Table(
    "claims_test_syncs",
    metadata,
    Column("household_id", Integer, nullable=False),  # no unique key: a duplicate must show, not fail
    Column("tick_at", UTCDateTime, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)
# How long one household's "sync" takes in the worker processes (the outside calls of a real one).
WORK_SECONDS = float(os.environ.get("CLAIMS_TEST_WORK_SECONDS", "0.3"))


def record_batch(tick_at: datetime, household_ids: list[int], complete: Callable[[int], bool]) -> None:
    """Record each household of the batch in turn, completing its claim in the same transaction."""
    from app import clock

    for household_id in household_ids:
        time.sleep(WORK_SECONDS)
        db.session.execute(recorded_syncs.insert().values(household_id=household_id, tick_at=tick_at, pid=os.getpid(), at=clock.now()))
        complete(household_id)
        db.session.commit()


def read_syncs(engine) -> list[tuple[int, datetime, int, datetime]]:
    """Every recorded (household_id, tick_at, pid, at), in the order they were written."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(recorded_syncs).order_by(recorded_syncs.c.at))]
