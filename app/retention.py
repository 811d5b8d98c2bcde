"""Retention: delete old sync runs, tariff pushes and stored prices, in small committed batches.

The scheduler leader runs `purge_old_rows` every hour (app/sync/scheduler.py LEADER_JOBS); `flask db purge`
runs it once. Each batch deletes at most `RETENTION_BATCH_SIZE` rows and is committed on its own, so a
SQLite writer (the sync) never waits long for the lock. Running it twice at once is safe: a row is
counted only by the statement that actually deleted it.

What is deleted, by age (config, in days):
- sync_runs older than SYNC_RUN_RETENTION_DAYS; their counts per outcome move to sync_run_totals in the
  same transaction, so the `tas_sync_runs_total` counter on /metrics never goes down;
- tariff_pushes older than TARIFF_PUSH_RETENTION_DAYS (sync_runs.tariff_push_id becomes NULL);
- price_intervals older than PRICE_RETENTION_DAYS;
- the Money page's metered usage and Powerwall energy history (usage_intervals, energy_intervals) older
  than MONEY_RETENTION_DAYS (three years by default: a year-on-year comparison needs two).

What is never deleted:
- for each household and Tesla site, the newest push and the two newest pushes Tesla accepted, however
  old: the sync compares new tariffs with the newest accepted one, the dashboard and the tariff page
  show it and what changed from the one before;
- any push of a household while a force session of theirs is live (starting, active or restoring): the
  restore ends with a sync that compares against the household's pushes;
- api_call_counts: a few rows per household and day, and /metrics reports their sums as counters.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select

from app.control import LIVE_STATES
from app.extensions import db
from app.models import EnergyInterval, ForceSession, MeteredUsage, StoredPrice, SyncRun, SyncRunTotal, TariffPush
from app.upserts import upsert

log = logging.getLogger(__name__)

# Pushes this close to the newest ones a household must keep are kept too: the sync orders pushes by
# creation time, the pages by id, and the two orders can differ by the length of a sync.
KEEP_SLACK = timedelta(hours=1)
KEEP_ACCEPTED = 2  # the newest accepted push and the one before it (the tariff page's diff)


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days each kind of row is kept, and how many rows one DELETE may take."""

    sync_run_days: int
    tariff_push_days: int
    price_days: int
    batch_size: int = 5000
    money_days: int = 1100

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetentionPolicy:
        """The policy from app config (validated by config.py; checked again here for direct callers)."""
        values = {
            "sync_run_days": config["SYNC_RUN_RETENTION_DAYS"],
            "tariff_push_days": config["TARIFF_PUSH_RETENTION_DAYS"],
            "price_days": config["PRICE_RETENTION_DAYS"],
            "batch_size": config.get("RETENTION_BATCH_SIZE", 5000),
            "money_days": config.get("MONEY_RETENTION_DAYS", 1100),
        }
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"retention setting {name} must be a whole number of at least 1 (got {value!r})")
        return cls(**values)


@dataclass
class PurgeResult:
    """Rows deleted by one purge, per table (and sync runs per outcome)."""

    sync_runs: int = 0
    tariff_pushes: int = 0
    price_intervals: int = 0
    usage_intervals: int = 0
    energy_intervals: int = 0
    sync_runs_by_outcome: Counter[str] = field(default_factory=Counter)
    batches: int = 0

    def summary(self) -> str:
        return (
            f"deleted {self.sync_runs} sync runs, {self.tariff_pushes} tariff pushes and "
            f"{self.price_intervals} stored prices"
            + (f", {self.usage_intervals + self.energy_intervals} usage and energy intervals"
               if self.usage_intervals + self.energy_intervals else "")
            + f" in {self.batches} batches"
        )


def purge_old_rows(now: datetime, config: Mapping[str, Any] | None = None) -> PurgeResult:
    """Delete rows past their retention period (see the module docstring); commits after each batch."""
    policy = RetentionPolicy.from_config(config if config is not None else current_app.config)
    result = PurgeResult()
    _purge_sync_runs(now - timedelta(days=policy.sync_run_days), policy.batch_size, result)
    _purge_tariff_pushes(now - timedelta(days=policy.tariff_push_days), policy.batch_size, result)
    _purge_prices(now - timedelta(days=policy.price_days), policy.batch_size, result)
    money_cutoff = now - timedelta(days=policy.money_days)
    result.usage_intervals = _purge_older(MeteredUsage, MeteredUsage.start_at, money_cutoff, policy.batch_size, result)
    result.energy_intervals = _purge_older(EnergyInterval, EnergyInterval.start_at, money_cutoff, policy.batch_size, result)
    log.info(
        "Retention: %s", result.summary(),
        extra={"fields": {"sync_runs": result.sync_runs, "tariff_pushes": result.tariff_pushes,
                          "price_intervals": result.price_intervals, "batches": result.batches}},
    )
    return result


# -- sync runs ------------------------------------------------------------------------------------------------


def _purge_sync_runs(cutoff: datetime, batch_size: int, result: PurgeResult) -> None:
    while True:
        # No ORDER BY: every old row goes, and the started_at index finds them without sorting.
        rows = db.session.execute(
            select(SyncRun.id, SyncRun.outcome).where(SyncRun.started_at < cutoff).limit(batch_size)
        ).all()
        if not rows:
            return
        by_outcome: dict[str, list[int]] = {}
        for row in rows:
            by_outcome.setdefault(row.outcome, []).append(row.id)
        counts: Counter[str] = Counter()
        try:
            # One DELETE per outcome: its row count is exactly what this purge removed of that outcome,
            # even if another purge took some of the same rows first.
            for outcome, ids in sorted(by_outcome.items()):
                counts[outcome] = db.session.execute(
                    delete(SyncRun).where(SyncRun.id.in_(ids)).execution_options(synchronize_session=False)
                ).rowcount or 0
            counts = +counts  # drop zeros
            _add_to_totals(counts)
            db.session.commit()  # the delete and the totals together: the counter never dips
        except Exception:
            db.session.rollback()
            raise
        deleted = sum(counts.values())
        result.sync_runs += deleted
        result.sync_runs_by_outcome.update(counts)
        result.batches += 1
        if len(rows) < batch_size or not deleted:
            return


def _add_to_totals(counts: Counter[str]) -> None:
    if not counts:
        return
    upsert(SyncRunTotal, [{"outcome": outcome, "purged": n} for outcome, n in sorted(counts.items())], ["outcome"], add=["purged"])


# -- tariff pushes --------------------------------------------------------------------------------------------


def _purge_tariff_pushes(cutoff: datetime, batch_size: int, result: PurgeResult) -> None:
    keep_from = _keep_from(cutoff)
    last_id = 0
    while True:
        # Keyset by id: kept rows stay behind us instead of filling every batch again.
        rows = db.session.execute(
            select(TariffPush.id, TariffPush.household_id, TariffPush.tesla_site_id, TariffPush.created_at)
            .where(TariffPush.created_at < cutoff, TariffPush.id > last_id)
            .order_by(TariffPush.id)
            .limit(batch_size)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        live = _households_in_force_sessions()  # asked per batch: a session may start while we run
        doomed = [
            row.id for row in rows
            if row.household_id not in live
            and (row.household_id, row.tesla_site_id) in keep_from
            and row.created_at < keep_from[(row.household_id, row.tesla_site_id)]
        ]
        if doomed:
            result.tariff_pushes += _delete_batch(TariffPush, doomed)
            result.batches += 1
        if len(rows) < batch_size:
            return


def _keep_from(cutoff: datetime) -> dict[tuple[int, str], datetime]:
    """For each (household, site) with pushes older than `cutoff`: the time from which its pushes are kept."""
    groups = db.session.execute(
        select(TariffPush.household_id, TariffPush.tesla_site_id).where(TariffPush.created_at < cutoff).distinct()
    ).all()
    keep: dict[tuple[int, str], datetime] = {}
    for household_id, site_id in groups:
        newest_first = (TariffPush.created_at.desc(), TariffPush.id.desc())
        same = (TariffPush.household_id == household_id, TariffPush.tesla_site_id == site_id)
        newest = db.session.scalar(select(TariffPush.created_at).where(*same).order_by(*newest_first).limit(1))
        accepted = db.session.scalars(
            select(TariffPush.created_at).where(*same, TariffPush.accepted.is_(True))
            .order_by(*newest_first).limit(KEEP_ACCEPTED)
        ).all()
        times = [t for t in (newest, *accepted) if t is not None]
        keep[(household_id, site_id)] = min(cutoff, min(times) - KEEP_SLACK) if times else cutoff
    return keep


def _households_in_force_sessions() -> set[int]:
    return set(db.session.scalars(select(ForceSession.household_id).where(ForceSession.state.in_(LIVE_STATES))))


# -- stored prices --------------------------------------------------------------------------------------------


def _purge_prices(cutoff: datetime, batch_size: int, result: PurgeResult) -> None:
    result.price_intervals += _purge_older(StoredPrice, StoredPrice.start_at, cutoff, batch_size, result)


def _purge_older(model: type[db.Model], column: Any, cutoff: datetime, batch_size: int, result: PurgeResult) -> int:
    """Delete the rows of `model` whose `column` is before `cutoff`, a committed batch at a time; return how many."""
    total = 0
    while True:
        ids: Sequence[int] = db.session.scalars(select(model.id).where(column < cutoff).limit(batch_size)).all()
        if not ids:
            return total
        deleted = _delete_batch(model, ids)
        total += deleted
        result.batches += 1
        if len(ids) < batch_size or not deleted:
            return total


def _delete_batch(model: type[db.Model], ids: Sequence[int]) -> int:
    """Delete these rows of `model` and commit; return how many this statement deleted."""
    try:
        deleted = db.session.execute(
            delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
        ).rowcount or 0
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return deleted
