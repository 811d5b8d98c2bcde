"""Tick jobs for the scheduler tests (selected in subprocesses with SCHEDULER_TICK_JOB=tests.scheduler_helpers:…).

They record each tick they run in a table of their own, which is not part of the app's models."""
from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import Column, Integer, MetaData, Table, select

from app.extensions import db
from app.models import UTCDateTime

metadata = MetaData()
recorded_ticks = Table(
    "scheduler_test_ticks",
    metadata,
    Column("tick_at", UTCDateTime, nullable=False),  # no unique key: a duplicate must show, not fail
    Column("pid", Integer, nullable=False),
)


def record_tick(tick_at: datetime) -> None:
    """A tick job that records (tick_at, pid) in its own transaction."""
    with db.engine.begin() as conn:
        conn.execute(recorded_ticks.insert().values(tick_at=tick_at, pid=os.getpid()))


def read_ticks(engine) -> list[tuple[datetime, int]]:
    """Every recorded (tick_at, pid), oldest tick first."""
    with engine.connect() as conn:
        return [(row.tick_at, row.pid) for row in conn.execute(select(recorded_ticks).order_by(recorded_ticks.c.tick_at))]
