"""The sync: keep one household's Powerwall tariff in step with Amber's prices, and a tick that syncs
everybody. A plain function that the scheduler, the CLI, a "Sync now" button and tests all call.

One household's sync: fetch Amber prices (once per Amber site per tick, shared, re-polled briefly until
the current 5-minute price is confirmed) -> build the tariff -> compare with the last accepted one ->
push if needed -> record. Every failure keeps the last good tariff on the Powerwall and says why."""
from __future__ import annotations

import logging
import marshal
import queue
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import aliased, contains_eager, defer

from app import clock
from app.api_usage import TESLA_SERVICES, CallCounter, record_call_counts
from app.clients.amber import AmberClient
from app.clients.errors import (
    AuthenticationError,
    BadResponseError,
    ClientError,
    CommandRejectedError,
    RateLimitedError,
    TransientError,
)
from app.connections import (
    NotConfigured,
    amber_client,
    call_tesla,
    check_amber,
    check_tesla,
    configured_tesla_paths,
    effective_timezone,
    record_status,
)
from app.credentials import CredentialUnreadable
from app.extensions import db
from app.control import ACTION_WORDS, LIVE_STATES
from app.notify.service import after_sync
from app.models import (
    ForceSession,
    HouseholdProblem,
    PriceDigest,
    ServiceStatus,
    StoredPrice,
    SyncRun,
    SyncState,
    TariffPush,
    Household,
    HouseholdSettings,
)
from app.price_sanity import PriceBounds, Refusal, screen_prices
from app.prices import Channel, IntervalKind, PriceInterval
from app.sync.rules import (
    TESLA_AUTH_RECHECK,
    PushDecision,
    after_lost_answer,
    decide_export_protection,
    decide_push,
    fallback_tariff,
    is_stale,
    tariff_hash,
    tariffs_differ,
    tesla_wait,
)
from app.tariff import SlotFlag, TariffBuildError, TariffExplanation, TariffPolicy, build_tariff
from app.upserts import upsert

log = logging.getLogger(__name__)

# Keep this many Amber requests of the account's 50-per-5-minutes budget for everything else.
AMBER_BUDGET_RESERVE = 10


class DeadlineExceeded(Exception):
    """A household's sync ran past its deadline; it stops before the next outside call."""


# -- results ----------------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    """The outcome of one household's sync, in words for the history, the CLI and the dashboard."""

    household_id: int
    label: str
    outcome: str  # pushed | unchanged | skipped | failed
    reason: str
    pushed: bool = False
    push_latency_ms: int | None = None
    amber_calls: int = 0
    tesla_calls: int = 0
    tariff_push_id: int | None = None
    forced: bool = False  # skipped because a force session owns the Powerwall: expected, not a problem
    amber_refused: bool | None = None  # Amber refused the token (None: Amber was not asked)
    changed_outside: bool = False  # the read-back found the tariff changed outside the app
    refused_prices: list[dict[str, Any]] = field(default_factory=list)  # Refusal.to_dict() of this run
    tariff: dict[str, Any] | None = None  # what was (or, on a dry run, would be) pushed
    explanation: TariffExplanation | None = None
    decision: PushDecision | None = None
    still_running: bool = False  # the tick stopped waiting; the sync records its run when it ends


class _Stop(Exception):
    """Ends a sync early with an outcome (internal control flow)."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


# -- call counting ----------------------------------------------------------------------------------------


# -- Amber prices, fetched once per site per tick ---------------------------------------------------------


@dataclass
class SiteFetch:
    """Amber data for one site in one tick."""

    intervals: list[PriceInterval] = field(default_factory=list)
    confirmed: bool = False
    error: Exception | None = None
    refused: list[Refusal] = field(default_factory=list)  # intervals that cannot be real, never used


def _current_price_confirmed(intervals: list[PriceInterval], now: datetime) -> bool:
    """Whether the 5-minute general price of `now` is confirmed (nothing to wait for if Amber gives
    no 5-minute current interval, e.g. a 30-minute site)."""
    for interval in intervals:
        if (
            interval.channel is Channel.GENERAL
            and interval.kind is IntervalKind.CURRENT
            and interval.duration_minutes == 5
            and interval.start <= now < interval.end
        ):
            return not interval.estimate
    return True


def fetch_site_prices(
    client: AmberClient,
    site_id: str,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    *,
    waits: Sequence[float],
    bounds: PriceBounds | None = None,
) -> SiteFetch:
    """30-minute prices for the next 24 h and 5-minute prices near term; re-poll the 5-minute ones
    (once after each of `waits`, in seconds) until the current price is confirmed, staying inside
    Amber's budget."""
    far = client.current_prices(site_id, next_intervals=48, resolution=30).intervals
    near = client.current_prices(site_id, previous_intervals=6, next_intervals=12, resolution=5).intervals
    for wait in waits:
        if _current_price_confirmed(near, now()):
            break
        budget = client.rate_limit
        if budget is not None and budget.remaining is not None and budget.remaining <= AMBER_BUDGET_RESERVE:
            log.info("Amber budget low (%s left); not waiting for the confirmed price", budget.remaining)
            break
        sleep(wait)
        near = client.current_prices(site_id, previous_intervals=6, next_intervals=12, resolution=5).intervals
    kept, refused = screen_prices(near + far, bounds or PriceBounds())
    if refused:
        log.warning("Amber site %s: refused %d price interval(s): %s", site_id, len(refused), refused[0].describe())
    return SiteFetch(kept, _current_price_confirmed(near, now()), refused=refused)


class PriceFeed:
    """Amber prices for one tick, fetched once per Amber site and shared by every household of that site."""

    def __init__(
        self,
        now: Callable[[], datetime],
        sleep: Callable[[float], None],
        waits: Sequence[float],
        households_per_site: Counter[str] | None = None,
        bounds: PriceBounds | None = None,
    ):
        self._now, self._sleep, self._waits = now, sleep, tuple(waits)
        if bounds is None:
            bounds = PriceBounds(current_app.config["PRICE_MIN_CENTS"], current_app.config["PRICE_MAX_CENTS"])
        self._bounds = bounds
        # How many of the tick's households read each site: a site's data is let go after its last one,
        # so a tick over thousands of sites does not hold all of them in memory at once.
        self._remaining: Counter[str] | None = Counter(households_per_site) if households_per_site is not None else None
        self._lock = threading.Lock()
        self._site_locks: dict[str, threading.Lock] = {}
        self._fetched: dict[str, SiteFetch] = {}
        self._tariff_locks: dict[tuple, threading.Lock] = {}
        self._tariffs: dict[str, dict[tuple, BuiltTariff]] = {}  # by site: dropped with the site's data

    def get(self, site_id: str, client_factory: Callable[[], AmberClient]) -> tuple[SiteFetch, bool]:
        """The site's data and whether this caller fetched it (and so owns storing and counting it)."""
        with self._lock:
            site_lock = self._site_locks.setdefault(site_id, threading.Lock())
        with site_lock:
            if site_id in self._fetched:
                return self._fetched[site_id], False
            try:
                fetch = fetch_site_prices(
                    client_factory(), site_id, self._now, self._sleep, waits=self._waits, bounds=self._bounds
                )
            except (AuthenticationError, CredentialUnreadable, NotConfigured) as exc:
                # This caller's token is the problem: another household of the site may fetch with theirs.
                return SiteFetch(error=exc), True
            except ClientError as exc:
                fetch = SiteFetch(error=exc)
            self._fetched[site_id] = fetch
            return fetch, True

    def done(self, site_id: str) -> None:
        """A household of `site_id` has finished with its data; after the last expected one it is dropped
        (a household who still turns up, e.g. whose site changed meanwhile, fetches it again)."""
        if self._remaining is None:
            return
        with self._lock:
            self._remaining[site_id] -= 1
            if self._remaining[site_id] > 0:
                return
            self._fetched.pop(site_id, None)
            self._tariffs.pop(site_id, None)

    def tariff(self, site_id: str, fetch: SiteFetch, tz: str, estimate: str, now: datetime) -> BuiltTariff:
        """The tariff built from the site's prices for one zone and estimate, built once per tick.

        The builder depends on `now` only through the 15-minute step of the clock that contains it (its
        walk of the local clock moves in 15-minute steps and every slot boundary lies on one), so households
        whose `now` falls in the same step share one build; each still gets its own `now` in the
        explanation. Failures are not kept: each household rebuilds and gets the error."""
        now_utc = now.astimezone(timezone.utc)
        step = now_utc.replace(minute=now_utc.minute // 15 * 15, second=0, microsecond=0)
        key = (tz, estimate, step)
        with self._lock:
            key_lock = self._tariff_locks.setdefault((site_id, *key), threading.Lock())
        with key_lock:
            built = self._tariffs.get(site_id, {}).get(key)
            if built is None or built.fetch is not fetch:
                tariff, explanation = build_tariff(fetch.intervals, ZoneInfo(tz), now, TariffPolicy(estimate=estimate))
                built = BuiltTariff(fetch, tariff, explanation)
                with self._lock:
                    self._tariffs.setdefault(site_id, {})[key] = built
                return built
        return built.for_now(now_utc)


@dataclass(frozen=True)
class BuiltTariff:
    """A tariff with its explanation; shared between households, so read-only. (The explanation becomes a
    dict, and the tariff gets its hash, only for a push: most syncs push nothing.)"""

    fetch: SiteFetch
    tariff: dict[str, Any]
    explanation: TariffExplanation

    def for_now(self, now_utc: datetime) -> BuiltTariff:
        """The same build as seen by a household whose clock read `now_utc`."""
        if now_utc == self.explanation.now:
            return self
        return replace(self, explanation=replace(self.explanation, now=now_utc))


# -- storage helpers --------------------------------------------------------------------------------------


PRICE_KEY = ["amber_site_id", "channel", "start_at", "duration_minutes"]


# The stored values of a price interval (besides its key and `updated_at`), in the order _price_values gives them.
_PRICE_VALUES = (
    "kind", "per_kwh", "spot_per_kwh", "advanced_low", "advanced_predicted", "advanced_high", "estimate", "spike_status",
    "descriptor", "renewables",
)


def _price_values(interval: PriceInterval) -> tuple:
    advanced = interval.advanced_price
    return (
        interval.kind.value, interval.per_kwh, interval.spot_per_kwh,
        advanced.low if advanced else None, advanced.predicted if advanced else None, advanced.high if advanced else None,
        interval.estimate, interval.spike_status, interval.descriptor, interval.renewables,
    )


def _latest(intervals: list[PriceInterval]) -> dict[tuple, PriceInterval]:
    """The intervals by (channel, start, duration), the last interval of a key winning."""
    return {(interval.channel.value, interval.start, interval.duration_minutes): interval for interval in intervals}


def _price_row(site_id: str, key: tuple, values: tuple, now: datetime) -> dict[str, Any]:
    channel, start, minutes = key
    return {"amber_site_id": site_id, "channel": channel, "start_at": start, "duration_minutes": minutes,
            **dict(zip(_PRICE_VALUES, values)), "updated_at": now}


def _price_rows(site_id: str, intervals: list[PriceInterval], now: datetime) -> dict[tuple, dict[str, Any]]:
    """The rows of `intervals` by (channel, start, duration), the last interval of a key winning."""
    return {key: _price_row(site_id, key, _price_values(interval), now) for key, interval in _latest(intervals).items()}


def _write_price_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = [c for c in rows[0] if c not in PRICE_KEY]
    values = [c for c in columns if c != "updated_at"]
    upsert(StoredPrice, rows, PRICE_KEY, columns, compare=values)


def store_prices(site_id: str, intervals: list[PriceInterval], now: datetime) -> None:
    """Upsert the intervals on (site, channel, start, duration): actuals and the latest forecast. Only new
    or changed intervals are written; one whose values Amber repeats keeps its row (and `updated_at`).
    The site's price signatures (price_changes) no longer describe what is stored, so they are dropped."""
    _write_price_rows(list(_price_rows(site_id, intervals, now).values()))
    db.session.execute(delete(PriceDigest).where(PriceDigest.amber_site_id == site_id))


@dataclass
class PriceChanges:
    """What a tick's fetch changes in a site's stored prices: the rows to send, and the signature of every
    row of the fetch (what the site's PriceDigest row holds once they are written)."""

    site_id: str
    rows: list[dict[str, Any]]
    signatures: dict[str, int]
    read_stored_at: datetime | None  # when the signatures compared with were stored (None: the site had none)

    @property
    def pending(self) -> bool:
        """Whether there is anything to write (rows, or the first signatures of a site)."""
        return bool(self.rows) or self.read_stored_at is None


def price_changes(site_id: str, intervals: list[PriceInterval], now: datetime, stored: PriceDigest | None) -> PriceChanges:
    """Compare each fetched interval with the signature of what was last stored for it (the site's
    PriceDigest row, `{"rows": {key: checksum}}`): only new or changed intervals are sent. Without signatures
    (a new site, or a row in an older format) every interval is sent and the database compares them."""
    known = stored.digests.get("rows") if stored is not None and isinstance(stored.digests, dict) else None
    if not isinstance(known, dict):
        known = {}
    rows: list[dict[str, Any]] = []
    signatures: dict[str, int] = {}
    for key, interval in _latest(intervals).items():
        channel, start, minutes = key
        values = _price_values(interval)
        name = f"{channel}@{int(start.timestamp())}/{minutes}"
        # A checksum of the stored values, stable across processes (hash() of a str or None is not). marshal's
        # version 2 writes each value in full (no references to repeated objects, so equal values give equal
        # bytes) and is 4-5x quicker than repr(): floats are written as their 8 bytes, not as shortest
        # decimals. Signatures written by the repr() of earlier versions simply differ: the first fetch after
        # an upgrade sends each site's intervals once.
        signature = signatures[name] = zlib.crc32(marshal.dumps(values, 2))
        if known.get(name) != signature:
            rows.append(_price_row(site_id, key, values, now))
    return PriceChanges(site_id, rows, signatures, stored.stored_at if stored is not None else None)


def write_price_changes(changes: PriceChanges, now: datetime) -> None:
    """Send the changed rows and the fetch's signatures, in the caller's transaction.

    The signatures are replaced only if nobody stored the site's prices since they were read (a compare on
    `stored_at`): two processes whose batches share a site could otherwise leave signatures that describe
    the other's rows. When that happens the site's signatures are dropped instead, and its next fetch sends
    every row for the database to compare."""
    if not changes.pending:
        return
    _write_price_rows(changes.rows)
    table = PriceDigest.__table__
    values = {"amber_site_id": changes.site_id, "digests": {"rows": changes.signatures}, "stored_at": now}
    if changes.read_stored_at is None:
        written = upsert(PriceDigest, [values], ["amber_site_id"])  # unless another sync stored some first
    else:
        written = db.session.execute(
            update(table).where(table.c.amber_site_id == changes.site_id, table.c.stored_at == changes.read_stored_at).values(values)
        ).rowcount
    if not written:
        db.session.execute(delete(table).where(table.c.amber_site_id == changes.site_id))


@dataclass
class _Loaded:
    """What a household's sync reads before it starts, in one query: the household with its settings, its
    sync state, a live force session and the stored price signatures of its Amber site (each may be None)."""

    household: Household
    state: SyncState | None
    forced: ForceSession | None
    digest: PriceDigest | None
    amber_status: ServiceStatus | None
    tesla_status: ServiceStatus | None
    last_push: TariffPush | None  # the last push Tesla accepted for the household's Powerwall (no explanation)
    problem_keys: str | None  # the open problem episodes' keys, comma-separated (notifications read the rows only if one changes)
    has_unconfirmed: bool  # a push whose answer was lost (the sync then reads the pushes again, exactly)

    @property
    def statuses(self) -> dict[str, ServiceStatus]:
        return {row.service: row for row in (self.amber_status, self.tesla_status) if row is not None}

    @property
    def open_problems(self) -> frozenset[str]:
        return frozenset(self.problem_keys.split(",")) if self.problem_keys else frozenset()


# The statements a sync runs for every household are built once, with bound parameters: building a
# select and working out its cache key cost more than running it.
def _load_statement():
    amber, tesla, last_push = aliased(ServiceStatus), aliased(ServiceStatus), aliased(TariffPush)
    pushes_here = (TariffPush.household_id == Household.id, TariffPush.tesla_site_id == HouseholdSettings.tesla_site_id)
    last_push_id = (  # as last_accepted_push orders them
        select(TariffPush.id).where(*pushes_here, TariffPush.accepted.is_(True))
        .order_by(TariffPush.created_at.desc(), TariffPush.id.desc()).limit(1)
        .correlate(Household, HouseholdSettings).scalar_subquery()
    )
    return (
        select(
            Household, SyncState, ForceSession, PriceDigest, amber, tesla, last_push,
            select(func.aggregate_strings(HouseholdProblem.key, ",")).where(HouseholdProblem.household_id == Household.id)
            .scalar_subquery(),
            exists().where(*pushes_here, TariffPush.answer_lost.is_(True)),
        )
        .outerjoin(Household.settings)
        .options(contains_eager(Household.settings))
        .outerjoin(SyncState, SyncState.household_id == Household.id)
        .outerjoin(ForceSession, and_(ForceSession.household_id == Household.id, ForceSession.state.in_(LIVE_STATES)))
        .outerjoin(PriceDigest, PriceDigest.amber_site_id == HouseholdSettings.amber_site_id)
        .outerjoin(amber, and_(amber.household_id == Household.id, amber.service == "amber"))
        .outerjoin(tesla, and_(tesla.household_id == Household.id, tesla.service == "tesla"))
        .outerjoin(last_push, last_push.id == last_push_id)
        .options(defer(last_push.explanation))  # the decision needs the tariff, not its explanation
        .where(Household.id == bindparam("household_id"))
    )


_LOAD = _load_statement()


def _load(household_id: int) -> _Loaded | None:
    """Everything a sync reads first, in one statement. Outside a transaction on PostgreSQL it is read in
    autocommit and the session's transaction ends with it: a read in a transaction of its own costs a BEGIN
    and a COMMIT round trip besides the SELECT (SQLite's driver begins transactions only before writes)."""
    session = db.session()
    if session.in_transaction() or db.engine.dialect.name != "postgresql":
        row = session.execute(_LOAD, {"household_id": household_id}).one_or_none()
    else:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            row = session.execute(_LOAD, {"household_id": household_id}).one_or_none()
        finally:
            session.commit()  # nothing to commit: gives the connection back (to its usual isolation level)
    return None if row is None else _Loaded(*row)


def sync_state(household: Household) -> SyncState:
    """The household's sync state row, created on first use."""
    state = db.session.get(SyncState, household.id)
    if state is None:
        state = SyncState(household_id=household.id)
        db.session.add(state)
    return state


def last_accepted_push(household: Household, site_id: str) -> TariffPush | None:
    """The newest tariff Tesla accepted for this household's site."""
    return db.session.scalar(
        select(TariffPush)
        .options(defer(TariffPush.explanation))  # the decision needs the tariff, not its explanation
        .where(TariffPush.household_id == household.id, TariffPush.tesla_site_id == site_id, TariffPush.accepted.is_(True))
        .order_by(TariffPush.created_at.desc(), TariffPush.id.desc())
        .limit(1)
    )


def unconfirmed_push(household: Household, site_id: str, last_accepted: TariffPush | None) -> TariffPush | None:
    """The newest push whose answer was lost, if it is newer than the last accepted one (else None)."""
    query = (
        select(TariffPush)
        .options(defer(TariffPush.explanation))
        .where(TariffPush.household_id == household.id, TariffPush.tesla_site_id == site_id, TariffPush.answer_lost.is_(True))
    )
    if last_accepted is not None:
        query = query.where(TariffPush.id > last_accepted.id)
    return db.session.scalar(query.order_by(TariffPush.id.desc()).limit(1))


def _set_status(household: Household, service: str, state: str, message: str, now: datetime, rows: dict[str, ServiceStatus]) -> None:
    """Record a service's status when it changed; `rows` is every status row of the household (read with it)."""
    row = rows.get(service)
    if row is None:
        row = rows[service] = ServiceStatus(household_id=household.id, service=service)
        db.session.add(row)
    elif row.state == state and row.message == message:
        return
    record_status(household, service, state, message, now, via=row.via, row=row)


# -- one household's sync --------------------------------------------------------------------------------------


class _HouseholdSync:
    """One run of one household's sync; holds what the steps share."""

    def __init__(self, loaded: _Loaded, now: datetime, feed: PriceFeed, dry_run: bool, deadline: datetime) -> None:
        household = self.household = loaded.household
        self.loaded = loaded
        self.settings: HouseholdSettings = household.settings
        self.now = now
        self.feed = feed
        self.dry_run = dry_run
        self.deadline = deadline
        self.counter = CallCounter()
        self.state = loaded.state
        self.statuses = loaded.statuses
        if self.state is None:
            self.state = SyncState(household_id=household.id)
            db.session.add(self.state)
        if self.state in db.session.new:
            self._commit()  # a first sync: the new state row is written at once, before any outside call
        self.config = current_app.config
        self.accepted_push: TariffPush | None = None  # the last push Tesla accepted in this run
        self.site_read: str | None = None  # the Amber site whose prices this run took from the feed
        self.result = SyncResult(household.id, household.label, "skipped", "")
        self.notes: list[str] = []
        self.last_via: str | None = None
        self.forced: ForceSession | None = None
        self.price_changes: PriceChanges | None = None  # this run's fetch, stored when the run is recorded

    def _commit(self) -> None:
        # Never hold a write transaction across an outside call: on SQLite it would block every
        # other household's sync for as long as Amber or Tesla takes to answer. A dry run writes nothing.
        if not self.dry_run:
            db.session.commit()

    # each outside step checks the deadline first, so a slow household stops instead of running on
    def _check_deadline(self) -> None:
        if clock.now() > self.deadline:
            raise DeadlineExceeded()

    def _before_outside_call(self) -> None:
        """Stop at the deadline; otherwise end the transaction (writing what is pending) so that no
        transaction and no pooled connection is held while Amber or Tesla takes its time."""
        self._check_deadline()
        if db.session().in_transaction():
            self._commit()

    def run(self) -> SyncResult:
        try:
            self._sync()
        except _Stop as stop:
            self.result.outcome, self.result.reason = stop.outcome, stop.reason
        if self.notes:
            self.result.reason = " ".join([self.result.reason, *self.notes]).strip()
        self.result.amber_calls = self.counter.count(["amber"])
        self.result.tesla_calls = self.counter.count(TESLA_SERVICES)
        return self.result

    def _sync(self) -> None:
        settings = self.settings
        if settings is None:
            raise _Stop("skipped", "Nothing is set up yet: add your Amber and Tesla details in Settings.")
        if not settings.sync_enabled and not self.dry_run:
            raise _Stop("skipped", "Sync is turned off in Settings.")
        self._ensure_sites()
        tz = effective_timezone(settings)
        # A force charge/discharge owns the Powerwall's settings: record prices, change nothing.
        self.forced = self.loaded.forced
        fetch = self._prices()
        if self.forced is not None:
            self.result.forced = True
            until = self.forced.ends_at.astimezone(ZoneInfo(tz)).strftime("%H:%M")
            raise _Stop(
                "skipped",
                f"{ACTION_WORDS[self.forced.action]} is running until {until}; prices were recorded and the forced "
                "settings are left in place.",
            )
        try:
            built = self.feed.tariff(settings.amber_site_id, fetch, tz, settings.forecast_estimate, self.now)
        except TariffBuildError as exc:
            self._watchdog()
            raise _Stop("failed", f"{exc} The last good tariff stays on the Powerwall.") from exc
        tariff, explanation = built.tariff, built.explanation
        self.result.tariff, self.result.explanation = tariff, explanation
        self._tesla_gate("Prices were still recorded.")
        decision = self._decide(tariff, explanation)
        self.result.decision = decision
        if self.dry_run:
            raise _Stop("pushed" if decision.push else "unchanged", f"Dry run: {decision.reason}")
        if decision.push:
            self._push(tariff, explanation, "normal", decision.reason, built)
            self.result.outcome, self.result.reason = "pushed", decision.reason
        else:
            self.result.outcome, self.result.reason = "unchanged", decision.reason
        self.state.last_success_at = self.now
        self.state.fallback_active, self.state.fallback_since = False, None
        self._export_protection(explanation)

    # -- steps --

    def _ensure_sites(self) -> None:
        """Choose a single Amber/Tesla site automatically; ask the household when there are several."""
        settings = self.settings
        checked = False
        try:
            if not settings.amber_token_enc:
                raise _Stop("skipped", "Add your Amber API token in Settings.")
            if not settings.amber_site_id:
                self._before_outside_call()
                checked = True
                status = check_amber(self.household, self.now, self.counter)
                self.statuses["amber"] = status
                if not settings.amber_site_id:
                    raise _Stop("skipped", status.message or "Choose your Amber site in Settings.")
            if not configured_tesla_paths(settings):
                raise _Stop("skipped", "Add a Teslemetry token or connect Tesla in Settings.")
            if not settings.tesla_site_id or effective_timezone(settings) is None:
                self._tesla_gate()
                self._before_outside_call()
                checked = True
                status = check_tesla(self.household, self.now, self.counter)
                self.statuses["tesla"] = status
                if not settings.tesla_site_id or effective_timezone(settings) is None:
                    raise _Stop("skipped", status.message or "Choose your Tesla energy site in Settings.")
        except CredentialUnreadable as exc:
            raise _Stop("skipped", str(exc)) from exc
        finally:
            if checked:
                self._commit()  # what the checks found (sites, zone, status), before the next outside call
                # Read again what depends on the sites just chosen (their price signatures and pushes), and
                # whether a force session started meanwhile.
                self.loaded = _load(self.household.id) or self.loaded

    def _prices(self) -> SiteFetch:
        self._check_deadline()
        site_id = self.settings.amber_site_id
        fetch, owner = self.feed.get(site_id, self._amber_client)
        self.site_read = site_id
        self.result.amber_refused = isinstance(fetch.error, AuthenticationError)
        if fetch.error is not None:
            message = fetch.error.user_message if isinstance(fetch.error, ClientError) else str(fetch.error)
            if owner and not self.dry_run:
                _set_status(self.household, "amber", "attention", message, self.now, self.statuses)
            self._watchdog()
            raise _Stop("failed", f"Amber prices could not be read: {message} The last good tariff stays on the Powerwall.")
        if owner and not self.dry_run:
            # Compared with the stored signatures now, written with the run (one short transaction at the end).
            self.price_changes = price_changes(site_id, fetch.intervals, self.now, self.loaded.digest)
            _set_status(self.household, "amber", "connected", f"Connected; using site {site_id}.", self.now, self.statuses)
        if not fetch.confirmed:
            self.notes.append("(Amber had not confirmed the current 5-minute price yet; its estimate was used.)")
        if fetch.refused:
            tz = ZoneInfo(effective_timezone(self.settings) or "Australia/Sydney")
            self.result.refused_prices = [r.to_dict() for r in fetch.refused]
            shown = "; ".join(r.describe(tz) for r in fetch.refused[:3])
            more = f" (and {len(fetch.refused) - 3} more)" if len(fetch.refused) > 3 else ""
            self.notes.append(f"Refused {len(fetch.refused)} impossible Amber price(s), treated as missing: {shown}{more}.")
        return fetch

    def _amber_client(self) -> AmberClient:
        # Called only by the household who fetches the site's prices for the tick.
        self._before_outside_call()
        return amber_client(self.household, self.counter)

    def _tesla_gate(self, note: str = "") -> None:
        """No Tesla call while Tesla asked us to wait, or while refused credentials wait for their next check."""
        reason = tesla_wait(self.state.tesla_blocked_reason, self.state.tesla_retry_after, self.now)
        if reason:
            raise _Stop("skipped", f"{reason} {note}".strip())

    def _decide(self, tariff: dict, explanation: TariffExplanation) -> PushDecision:
        last, lost = self.loaded.last_push, None  # read with the household
        if self.loaded.has_unconfirmed and not self.dry_run:
            lost = unconfirmed_push(self.household, self.settings.tesla_site_id, last)
        if lost is not None:
            # The last push went out but its answer never came back: read what the Powerwall holds before
            # sending anything again (a push is billed and never retried blindly).
            info = self._tesla(lambda c: c.site_info(self.settings.tesla_site_id))
            self.state.last_readback_at = self.now
            lost.answer_lost = False
            check = after_lost_answer(tariff, lost.tariff, last.tariff if last else None, info.tariff_content_v2)
            if check.arrived:
                lost.accepted, lost.tesla_reason = True, "Confirmed by reading the Powerwall back after the answer was lost."
                last = lost
            else:
                lost.tesla_reason = "The answer was lost and reading the Powerwall back showed it did not arrive."
            if check.push is not None:
                self.result.changed_outside = check.changed_outside
                return PushDecision(check.push, check.reason)
            self.notes.append(check.reason)
        decision = decide_push(
            tariff,
            explanation.slots[0].period,
            last.tariff if last else None,
            last.created_at if last else None,
            last.kind if last else None,
            self.now,
            threshold_cents=self.settings.change_threshold_cents,
            refresh_age=timedelta(minutes=self.config["SYNC_REFRESH_MINUTES"]),
        )
        if decision.push or last is None or self.dry_run:
            return decision
        readback_due = self.state.last_readback_at is None or self.now - self.state.last_readback_at >= timedelta(
            hours=self.config["SYNC_READBACK_HOURS"]
        )
        if not readback_due:
            return decision
        info = self._tesla(lambda c: c.site_info(self.settings.tesla_site_id))
        self.state.last_readback_at = self.now
        if tariffs_differ(last.tariff, info.tariff_content_v2):
            self.result.changed_outside = True
            return PushDecision(True, "The tariff on the Powerwall was changed outside this app; putting the synced one back.")
        return decision

    def _tesla(self, operation: Callable[[Any], Any]) -> Any:
        """Call Tesla, turning its errors into a stopped sync that keeps the last good tariff."""
        self._before_outside_call()
        try:
            outcome = call_tesla(self.household, operation, self.now, self.counter)
            self.last_via = outcome.via
            if self.state.tesla_blocked_reason:  # the hourly check: the credentials work again
                log.info("Household %s: Tesla accepts the saved credentials again", self.household.id)
                self.state.tesla_blocked_reason, self.state.tesla_retry_after = None, None
                _set_status(self.household, "tesla", "connected", "Connected again: Tesla accepted the saved credentials.",
                            self.now, self.statuses)
            return outcome.value
        except RateLimitedError as exc:
            wait = exc.retry_after if exc.retry_after is not None else 60.0
            self.state.tesla_retry_after = self.now + timedelta(seconds=wait)
            raise _Stop("failed", f"Tesla asked us to slow down; waiting {int(wait)} s before calling again.") from exc
        except (AuthenticationError, CredentialUnreadable) as exc:
            message = exc.user_message if isinstance(exc, ClientError) else str(exc)
            self.state.tesla_blocked_reason = message
            self.state.tesla_retry_after = self.now + TESLA_AUTH_RECHECK
            _set_status(self.household, "tesla", "attention", message, self.now, self.statuses)
            raise _Stop(
                "failed", f"{message} No more Tesla calls until that is fixed (the app checks again once an hour)."
            ) from exc
        except CommandRejectedError:
            raise
        except ClientError as exc:
            raise _Stop("failed", f"{exc.user_message} The last good tariff stays on the Powerwall.") from exc
        except NotConfigured as exc:
            raise _Stop("skipped", str(exc)) from exc

    def _push(
        self, tariff: dict, explanation: TariffExplanation | None, kind: str, reason: str, built: BuiltTariff | None = None
    ) -> TariffPush:
        push = TariffPush(
            household_id=self.household.id,
            tesla_site_id=self.settings.tesla_site_id,
            created_at=self.now,
            kind=kind,
            tariff=tariff,
            tariff_hash=tariff_hash(tariff),  # only for a push: most syncs push nothing
            explanation=built.explanation.to_dict() if built else explanation.to_dict() if explanation else None,
            accepted=False,
        )
        started = time.monotonic()
        try:
            self._tesla(lambda c: c.set_tariff(self.settings.tesla_site_id, tariff))
        except CommandRejectedError as exc:
            push.tesla_reason = exc.reason or "no reason given"
            db.session.add(push)  # written with the run, in one short transaction at the end
            raise _Stop("failed", f"Tesla refused the tariff: {push.tesla_reason}. The last good tariff stays.") from exc
        except _Stop as stop:
            cause = stop.__cause__
            answer_lost = isinstance(cause, BadResponseError) or (isinstance(cause, TransientError) and cause.status is None)
            if answer_lost:
                # The push went out but its answer was lost (timeout, dropped connection, garbled reply):
                # the Powerwall may hold the new tariff. Recorded as unconfirmed; the next sync reads the
                # Powerwall back before it sends anything (unconfirmed_push).
                push.answer_lost, push.tesla_reason = True, "The answer was lost; the next sync reads the Powerwall back."
                db.session.add(push)
                self.state.last_readback_at = None
                raise _Stop(
                    "failed",
                    "Tesla's answer to the push was lost, so the Powerwall may already have the new tariff; "
                    "the next sync reads it back and corrects it if needed.",
                ) from stop.__cause__
            raise
        # Added only now: a push that never reached Tesla is not recorded as one.
        push.accepted = True
        db.session.add(push)  # its id reaches the result when the run is recorded
        self.accepted_push = push
        self.result.pushed = True
        self.result.push_latency_ms = int((time.monotonic() - started) * 1000)
        via = "Teslemetry" if self.last_via == "teslemetry" else "the Tesla Fleet API"
        _set_status(
            self.household, "tesla", "connected", f"Connected through {via}; using site {self.settings.tesla_site_id}.", self.now,
            self.statuses,
        )
        log.info("Household %s: pushed a %s tariff (%s)", self.household.id, kind, reason)
        return push

    def _watchdog(self) -> None:
        """If the Powerwall has been steering on old prices for too long, push a flat fallback once."""
        if self.dry_run or self.state.fallback_active or self.forced is not None:
            return
        limit = timedelta(minutes=self.config["SYNC_STALE_MINUTES"])
        if not is_stale(self.state.last_success_at, self.now, limit):
            return
        site_id = self.settings.tesla_site_id if self.settings else None
        last = last_accepted_push(self.household, site_id) if site_id else None
        if last is None:
            return
        fallback = fallback_tariff(last.tariff, TariffPolicy(estimate=self.settings.forecast_estimate))
        if fallback is None or tesla_wait(self.state.tesla_blocked_reason, self.state.tesla_retry_after, self.now):
            return
        minutes = self.config["SYNC_STALE_MINUTES"]
        try:
            self._push(fallback, None, "fallback", "stale data")
        except _Stop as stop:
            self.notes.append(f"Prices are over {minutes} minutes old and the safe fallback could not be pushed: {stop.reason}")
            return
        self.state.fallback_active, self.state.fallback_since = True, self.now
        self.notes.append(
            f"Prices could not be refreshed for over {minutes} minutes, so a safe flat tariff (the median price) "
            "was pushed; normal pushes resume when prices return."
        )

    def _export_protection(self, explanation: TariffExplanation) -> None:
        """Stop exports while exporting costs money; put the household's own rule back afterwards."""
        slots = explanation.slots
        current_costs = SlotFlag.EXPORT_COSTS_MONEY in slots[0].flags
        next_costs = len(slots) > 1 and SlotFlag.EXPORT_COSTS_MONEY in slots[1].flags
        settings, state = self.settings, self.state
        site_id = settings.tesla_site_id

        def decide(user_rule: str | None):
            return decide_export_protection(
                enabled=settings.export_protection,
                active=state.export_protection_active,
                current_costs_money=current_costs,
                next_costs_money=next_costs,
                user_rule=user_rule,
                protect_rule=settings.export_protection_rule,
                active_since=state.export_rule_changed_at,
                now=self.now,
                min_hold=timedelta(minutes=self.config["EXPORT_PROTECTION_HOLD_MINUTES"]),
            )

        try:
            if state.export_protection_active:
                action = decide(state.export_rule_before)
                if action.action == "restore":
                    rule = state.export_rule_before or "battery_ok"
                    self._tesla(lambda c: c.set_grid_import_export(site_id, export_rule=rule))
                    state.export_protection_active, state.export_rule_before = False, None
                    state.export_rule_changed_at = self.now
            else:
                if not (settings.export_protection and current_costs):
                    return
                recently_checked = state.export_rule_changed_at is not None and self.now - state.export_rule_changed_at < timedelta(minutes=30)
                if recently_checked and state.export_rule_before in ("never", settings.export_protection_rule):
                    return  # the household's own rule already limits exports; checked a moment ago
                user_rule = self._tesla(lambda c: c.site_info(site_id)).export_rule
                action = decide(user_rule)
                if action.action == "activate":
                    self._tesla(lambda c: c.set_grid_import_export(site_id, export_rule=settings.export_protection_rule))
                    state.export_protection_active = True
                # While inactive, export_rule_before remembers the rule last seen on the Powerwall.
                state.export_rule_before, state.export_rule_changed_at = user_rule, self.now
        except (_Stop, CommandRejectedError) as exc:
            reason = exc.reason if isinstance(exc, _Stop) else f"Tesla refused: {exc.reason}"
            self.notes.append(f"Export protection could not be applied: {reason}")
            return
        if action.action in ("activate", "restore"):
            self.notes.append(action.reason)


def sync_household(
    household_id: int,
    *,
    tick_at: datetime | None = None,
    feed: PriceFeed | None = None,
    dry_run: bool = False,
    sleep: Callable[[float], None] | None = None,
    actor: str | None = None,
    on_record: Callable[[int], object] | None = None,
) -> SyncResult:
    """Sync one household now and record the run (a dry run records nothing and pushes nothing).

    `actor` says who started it (history shows it); a tick's runs are the schedule's. `on_record(household_id)`
    runs in the transaction that records the run (a claiming worker completes its claim there)."""
    config = current_app.config
    sleep = sleep or clock.sleeper()
    now = clock.now()
    feed = feed or PriceFeed(clock.now, sleep, config["AMBER_CONFIRM_POLL_WAITS"])
    loaded = _load(household_id)
    if loaded is None:
        return SyncResult(household_id, "?", "skipped", "No such household.")
    household = loaded.household
    deadline = now + timedelta(seconds=config["SYNC_USER_DEADLINE_SECONDS"])
    run = _HouseholdSync(loaded, now, feed, dry_run, deadline)
    accepted: TariffPush | None = None
    try:
        result = run.run()
        accepted = run.accepted_push
    except DeadlineExceeded:
        db.session.rollback()
        result = SyncResult(household_id, household.label, "failed", "The sync took too long and was stopped; the last good tariff stays.")
    except Exception:
        log.exception("Household %s: unexpected error during sync", household_id)
        db.session.rollback()
        result = SyncResult(household_id, household.label, "failed", "Unexpected error (details in the server log); the last good tariff stays.")
    if run.site_read is not None:
        feed.done(run.site_read)
    if dry_run:
        db.session.rollback()
        return result
    actor = actor or ("schedule" if tick_at else None)
    _record_run(household_id, result, tick_at, now, run.counter, accepted, actor, on_record, run.price_changes)
    after_sync(household_id, result, now, open_problems=loaded.open_problems)
    return result


_INSERT_RUN = insert(SyncRun.__table__)


def _record_run(
    household_id: int,
    result: SyncResult,
    tick_at: datetime | None,
    started: datetime,
    counter: CallCounter,
    accepted: TariffPush | None = None,
    actor: str | None = None,
    on_record: Callable[[int], object] | None = None,
    prices: PriceChanges | None = None,
) -> None:
    """Write the run, its call counts and the sync state, and the prices its fetch changed, in one transaction."""
    household = db.session.get(Household, household_id)
    state = sync_state(household)
    tz = effective_timezone(household.settings)
    day = started.astimezone(ZoneInfo(tz)).date() if tz else started.date()
    record_call_counts(household, counter, day)
    state.last_attempt_at = started
    if accepted is not None:
        if accepted.id is None:
            db.session.flush()  # the run refers to the push
        result.tariff_push_id = accepted.id
    # A plain INSERT (the run is never read back in this session): the unit of work costs more than the row.
    db.session.execute(
        _INSERT_RUN,
        {
            "household_id": household_id,
            "tick_at": tick_at,
            "started_at": started,
            "finished_at": clock.now(),
            "outcome": result.outcome,
            "reason": result.reason[:4000],
            "amber_calls": result.amber_calls,
            "tesla_calls": result.tesla_calls,
            "pushed": result.pushed,
            "push_latency_ms": result.push_latency_ms,
            "tariff_push_id": result.tariff_push_id,
            "refused_prices": result.refused_prices or None,
            "triggered_by": actor,
        },
    )
    if on_record is not None:
        on_record(household_id)
    if prices is not None and prices.pending:
        db.session.flush()  # the state and a push first: prices that cannot be written must not take them with them
        try:
            with db.session.begin_nested():
                write_price_changes(prices, started)
        except Exception:
            log.exception("Household %s: storing the fetched prices failed; the run is recorded without them", household_id)
    db.session.commit()


# -- the tick ---------------------------------------------------------------------------------------------


def households_to_sync() -> list[int]:
    """Ids of the households with sync turned on."""
    return list(
        db.session.scalars(
            select(Household.id)
            .join(HouseholdSettings, HouseholdSettings.household_id == Household.id)
            .where(HouseholdSettings.sync_enabled.is_(True))
            .order_by(Household.id)
        )
    )


def _sync_in_context(
    app: Flask, household_id: int, tick_at: datetime | None, feed: PriceFeed, dry_run: bool, sleep, actor: str | None = None,
    on_record: Callable[[int], object] | None = None,
) -> SyncResult:
    # Each household gets its own app context, hence its own database session. Its commits end the
    # transaction before each outside call; keeping the loaded rows (no expiry) spares reading them again.
    with app.app_context():
        db.session().expire_on_commit = False
        try:
            return sync_household(
                household_id, tick_at=tick_at, feed=feed, dry_run=dry_run, sleep=sleep, actor=actor, on_record=on_record
            )
        finally:
            db.session.remove()


def run_tick(
    tick_at: datetime | None = None,
    *,
    household_ids: list[int] | None = None,
    dry_run: bool = False,
    sleep: Callable[[float], None] | None = None,
    actor: str | None = None,
    on_record: Callable[[int], object] | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> list[SyncResult]:
    """Sync every household (or `household_ids`) over a bounded thread pool; one slow or failing household never
    delays or breaks another. Returns one result per household, in household order (the tariff and its
    explanation only on a dry run).

    `pool` is the caller's, kept from one call to the next (a claiming worker's batches): its threads keep
    their HTTP connections to Amber and Tesla open; without it the tick makes its own and lets it go.

    With SYNC_MODE=claims on PostgreSQL the scheduler's tick (every household, `tick_at` given) only opens
    the interval for the claiming workers (app/sync/claims.py), which call this with their batches."""
    app = current_app._get_current_object()
    config = app.config
    if household_ids is None and tick_at is not None and not dry_run:
        from app.sync import claims

        if claims.enabled(app):
            claims.open_interval(tick_at)
            return []
    sleep = sleep or clock.sleeper()
    ids = households_to_sync() if household_ids is None else household_ids
    wanted = set(ids)
    query = select(HouseholdSettings.household_id, HouseholdSettings.amber_site_id).where(HouseholdSettings.amber_site_id.is_not(None))
    if household_ids is not None and len(wanted) <= 1000:
        query = query.where(HouseholdSettings.household_id.in_(wanted))  # a worker's batch: its own rows only
    households_per_site = Counter(site for household_id, site in db.session.execute(query) if household_id in wanted and site)
    db.session.remove()  # the workers use their own sessions
    feed = PriceFeed(
        clock.now, sleep, config["AMBER_CONFIRM_POLL_WAITS"], households_per_site
    )
    results: dict[int, SyncResult] = {}
    if ids:
        own_pool = pool is None
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=min(config["SYNC_MAX_WORKERS"], len(ids)), thread_name_prefix="sync")
        started: set[int] = set()  # households whose sync began
        running: dict[int, float] = {}  # households whose sync is under way -> when it began (monotonic)
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()

        def task(uid: int) -> SyncResult:
            started.add(uid)
            running[uid] = time.monotonic()
            try:
                result = _sync_in_context(app, uid, tick_at, feed, dry_run, sleep, actor, on_record)
                if not dry_run:
                    # Recorded and notified: the tick's callers need the outcome, not the tariff. Keeping every
                    # household's tariff and 48-slot explanation until the tick ends (each household on its own
                    # Amber site shares none) grew a 10,000-household tick by hundreds of megabytes.
                    result.tariff = result.explanation = result.decision = None
                return result
            finally:
                running.pop(uid, None)

        futures: dict[Future, int] = {}
        for uid in ids:
            future = pool.submit(task, uid)
            futures[future] = uid
            future.add_done_callback(finished.put)

        def collect(future: Future) -> None:
            uid = futures[future]
            try:
                results[uid] = future.result()
            except Exception:  # sync_household catches everything; this is the last line of defence
                log.exception("Household %s: sync crashed", uid)
                results[uid] = SyncResult(uid, "?", "failed", "Unexpected error (details in the server log).")

        # Each sync stops itself at its deadline; this bound only guards against a stuck HTTP call. It
        # counts from when a household's sync began, not from the tick's start, so a tick with more households
        # than the pool gets through in one deadline still waits for the ones queued behind; it gives
        # up only when every sync still under way has run past the bound and none is queued, or when
        # nothing has finished for that long. (Completions arrive through a queue: waiting on every
        # pending future after each completion would cost O(households) each time.)
        limit = config["SYNC_USER_DEADLINE_SECONDS"] + 60
        remaining = len(futures)
        last_progress = time.monotonic()
        while remaining:
            try:
                collect(finished.get(timeout=1.0))
                remaining -= 1
                last_progress = time.monotonic()
                continue
            except queue.Empty:
                pass
            now = time.monotonic()
            under_way = list(running.values())
            stuck = len(under_way) == remaining and all(now - began > limit for began in under_way)
            if stuck or now - last_progress > limit:
                break
        for future, uid in futures.items():
            if uid in results:
                continue
            if future.done():
                collect(future)
            elif uid in started:
                results[uid] = SyncResult(uid, "?", "failed", "Still running after the deadline; it will be recorded when it ends.",
                                          still_running=True)
            else:
                results[uid] = SyncResult(uid, "?", "failed", "Not started: the syncs before it did not finish in time.")
        if own_pool:
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            for future in futures:
                future.cancel()  # the ones not started: the caller's pool must not run them later
    summary = Counter(r.outcome for r in results.values())
    log.info("Tick %s: %s", tick_at.isoformat() if tick_at else "manual", dict(summary) or "no households")
    return [results[uid] for uid in ids if uid in results]
