"""Counting the outside API calls a household's actions cause (sync, dashboard reads, force control), per
local day, service, kind and HTTP status class; Tesla's billable ones marked. The dashboard's cost meter
and /metrics read these."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from datetime import date


from app.clients.base import CallRecord
from app.upserts import upsert
from app.models import ApiCallCount, Household

TESLA_SERVICES = ("tesla", "teslemetry", "tesla_auth")


def call_kind(path: str) -> str:
    """A short name for an API path without ids, e.g. "time_of_use_settings" or "prices_current"."""
    parts = [p for p in path.split("/") if p and p not in ("api", "1", "v1", "oauth2", "v3")]
    named = [p for p in parts if not p.isdigit() and not (len(p) >= 20 and p.isalnum())]
    if not named:
        return "other"
    if named[-1] == "current" and len(named) >= 2:
        return f"{named[-2]}_current"
    return named[-1][:48]


class CallCounter:
    """Collects the HTTP calls of one household's sync (thread-safe)."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self._lock = threading.Lock()

    def __call__(self, record: CallRecord) -> None:
        with self._lock:
            self.records.append(record)

    def count(self, services: Iterable[str]) -> int:
        wanted = set(services)
        return sum(1 for r in self.records if r.service in wanted)

    def by_kind(self) -> Counter[tuple[str, str, str, bool]]:
        """Calls per (service, kind, status class, billable)."""
        return Counter((r.service, call_kind(r.path), status_class(r.status), r.billable) for r in self.records)


def status_class(status: int | None) -> str:
    """"2xx"-style class of an HTTP status; "none" when no response arrived, "other" outside 100-599."""
    if status is None:
        return "none"
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


def record_call_counts(household: Household, counter: CallCounter, day: date) -> None:
    """Add the counter's calls to the household's counts for `day`. The caller commits.

    One upsert that adds to the counts in the database (no read first): two syncs, a dashboard read and a
    force session of one household may count at the same moment without losing each other's calls."""
    kinds = counter.by_kind()
    if not kinds:
        return
    rows = [
        {
            "household_id": household.id, "day": day, "service": service, "kind": kind, "status_class": klass,
            "calls": count, "billable": count if billable and service in TESLA_SERVICES else 0,
        }
        for (service, kind, klass, billable), count in kinds.items()
    ]
    upsert(ApiCallCount, rows, ["household_id", "day", "service", "kind", "status_class"], add=["calls", "billable"])
