"""Database models (SQLAlchemy 2.0 typed mappings). Timestamps are stored as UTC."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask_login import UserMixin
from datetime import date

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.extensions import db

FORECAST_ESTIMATES = ("low", "predicted", "high")
TESLA_PATHS = ("teslemetry", "fleet")
SERVICE_STATES = ("connected", "attention", "not_configured")
EXPORT_PROTECTION_RULES = ("never", "pv_only")
SYNC_OUTCOMES = ("pushed", "unchanged", "skipped", "failed")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def new_session_nonce() -> str:
    """A random value that, when changed, signs the user out of every other session."""
    return secrets.token_hex(16)


class User(UserMixin, db.Model):
    """An account. Emails are stored lower-case, so uniqueness is case-insensitive."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_nonce: Mapped[str] = mapped_column(String(32), default=new_session_nonce)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # True on the account that was created first, NULL on every other: the unique constraint lets
    # only one of two simultaneous sign-ups on a new install become that first administrator.
    founder: Mapped[bool | None] = mapped_column(Boolean, nullable=True, unique=True)

    memberships: Mapped[list[HouseholdMember]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:  # Flask-Login: a disabled user is signed out everywhere
        return not self.is_disabled

    def get_id(self) -> str:
        # The nonce makes a password change or a disable end every other session.
        return f"{self.id}:{self.session_nonce}"

    def __repr__(self) -> str:
        return f"<User {self.id}>"


HOUSEHOLD_ROLES = ("owner", "operator", "viewer")


class Household(db.Model):
    """The unit of control: one Amber meter and one Powerwall, shared by its members.

    It owns the connections, the sync settings and state, pushes, runs, force sessions and their history."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A message every member sees on the dashboard until an owner dismisses it (e.g. after the upgrade
    # found two households on one Powerwall).
    notice: Mapped[str | None] = mapped_column(Text, nullable=True)

    settings: Mapped[HouseholdSettings] = relationship(
        back_populates="household", uselist=False, cascade="all, delete-orphan", passive_deletes=True
    )
    members: Mapped[list[HouseholdMember]] = relationship(
        back_populates="household", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def label(self) -> str:
        """How logs and the command line name the household."""
        return self.name

    def __repr__(self) -> str:
        return f"<Household {self.id}>"


class HouseholdMember(db.Model):
    """A person's place in a household: owner, operator or viewer."""

    __tablename__ = "household_members"
    __table_args__ = (
        UniqueConstraint("household_id", "user_id", name="uq_household_members_household_user"),
        CheckConstraint("role IN ('owner', 'operator', 'viewer')", name="role_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    household: Mapped[Household] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")


class HouseholdInvitation(db.Model):
    """A single-use link that lets one e-mail address join a household with a role; stored hashed."""

    __tablename__ = "household_invitations"
    __table_args__ = (CheckConstraint("role IN ('owner', 'operator', 'viewer')", name="role_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class HouseholdEvent(db.Model):
    """Who did what in a household: settings, tokens, members, sync now (force steps are ControlEvents)."""

    __tablename__ = "household_events"
    __table_args__ = (Index("ix_household_events_household_id_at", "household_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(254))  # an e-mail, or "schedule", "command line", "Home Assistant"
    action: Mapped[str] = mapped_column(String(48))
    message: Mapped[str] = mapped_column(Text)


class HouseholdSettings(db.Model):
    """A household's credentials (encrypted, never rendered) and sync preferences.

    The table keeps its name from before households; one Powerwall belongs to at most one household."""

    __tablename__ = "user_settings"
    __table_args__ = (
        UniqueConstraint("tesla_site_id", name="uq_user_settings_tesla_site_id"),
        # The households of an Amber site (the claiming workers take whole sites at a time).
        Index("ix_user_settings_amber_site_id", "amber_site_id"),
        CheckConstraint(
            "forecast_estimate IN ('low', 'predicted', 'high')", name="forecast_estimate_valid"
        ),
        CheckConstraint("tesla_path IN ('teslemetry', 'fleet')", name="tesla_path_valid"),
        CheckConstraint("export_protection_rule IN ('never', 'pv_only')", name="export_protection_rule_valid"),
        CheckConstraint("change_threshold_cents >= 0", name="change_threshold_cents_valid"),
        CheckConstraint(
            "discharge_floor_percent >= 0 AND discharge_floor_percent <= 100", name="discharge_floor_percent_valid"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), unique=True)

    amber_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    amber_site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    teslemetry_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    tesla_access_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    tesla_refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    tesla_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tesla_region: Mapped[str | None] = mapped_column(String(8), nullable=True)
    tesla_site_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Which way Tesla calls go first; the other one, when configured, is the fallback on auth failure.
    tesla_path: Mapped[str] = mapped_column(String(16), default="teslemetry", server_default="teslemetry")
    site_timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the user's pick
    # installation_time_zone as Tesla last reported it; it wins over the user's pick when present.
    tesla_reported_timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # Off until the user turns it on: pushing a tariff acts on their battery and their bill.
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    forecast_estimate: Mapped[str] = mapped_column(String(10), default="predicted")
    # Push when any slot moved by at least this much (c/kWh); the current slot pushes on any change.
    change_threshold_cents: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    # Stop exports while exporting costs money, then put the user's own export rule back.
    export_protection: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    export_protection_rule: Mapped[str] = mapped_column(String(10), default="never", server_default="never")
    # Force discharge lowers the backup reserve to this, never below.
    discharge_floor_percent: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    # Fixed costs for the Money page, in millionths of a cent (exact): supply per day, membership per month.
    supply_charge_micro: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    membership_micro: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    household: Mapped[Household] = relationship(back_populates="settings")


class LoginThrottle(db.Model):
    """Failed logins per key ("account:<email>" or "ip:<address>") in the current window.

    Kept in the database so the limit holds across gunicorn workers and app instances."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceStatus(db.Model):
    """The last known state of one outside service for one user, in words a user understands.

    `details` keeps what the last check discovered (e.g. the sites to choose from); `via` says which
    Tesla path answered ("teslemetry" or "fleet"), so a fallback is visible."""

    __tablename__ = "service_status"
    __table_args__ = (
        UniqueConstraint("household_id", "service", name="uq_service_status_household_service"),
        CheckConstraint("state IN ('connected', 'attention', 'not_configured')", name="state_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    service: Mapped[str] = mapped_column(String(16))  # "amber" | "tesla"
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    details: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OAuthState(db.Model):
    """A pending Tesla Fleet sign-in: single-use `state` (stored hashed) bound to a user, with its PKCE verifier."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TeslaAppKey(db.Model):
    """This installation's EC P-256 key pair for Tesla partner registration (private key encrypted)."""

    __tablename__ = "tesla_app_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    private_key_enc: Mapped[str] = mapped_column(Text)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerRegistration(db.Model):
    """The outcome of registering this installation's Tesla app in one Fleet API region."""

    __tablename__ = "tesla_partner_registrations"

    region: Mapped[str] = mapped_column(String(8), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncState(db.Model):
    """What the sync remembers per user between ticks (survives restarts)."""

    __tablename__ = "sync_states"

    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last time the Powerwall was known to hold a tariff built from fresh prices.
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_readback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fallback_active: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    export_protection_active: Mapped[bool] = mapped_column(Boolean, default=False)
    export_rule_before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    export_rule_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Tesla said "wait" (429): no Tesla call before this time.
    tesla_retry_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Tesla refused the credentials: no Tesla call until the user fixes them (cleared on change).
    tesla_blocked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class SyncRun(db.Model):
    """One sync of one user: what happened, why, and what it cost."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint("outcome IN ('pushed', 'unchanged', 'skipped', 'failed')", name="outcome_valid"),
        Index("ix_sync_runs_household_id_started_at", "household_id", "started_at"),
        # /metrics reads the last 24 hours across all users; retention deletes by age across all users.
        Index("ix_sync_runs_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    amber_calls: Mapped[int] = mapped_column(Integer, default=0)
    tesla_calls: Mapped[int] = mapped_column(Integer, default=0)
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    push_latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tariff_push_id: Mapped[int | None] = mapped_column(
        ForeignKey("tariff_pushes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Amber intervals refused as impossible in this run (price_sanity.Refusal.to_dict()), for the dashboard.
    refused_prices: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # Who started it: "schedule", a member's e-mail (Sync now), "command line", "force control".
    triggered_by: Mapped[str | None] = mapped_column(String(254), nullable=True)


class SyncRunTotal(db.Model):
    """Sync runs deleted by retention, per outcome, so the `tas_sync_runs_total` counter never goes down.

    /metrics reports rows in sync_runs plus `purged`; retention moves counts here in the same
    transaction as the delete."""

    __tablename__ = "sync_run_totals"
    __table_args__ = (
        CheckConstraint("outcome IN ('pushed', 'unchanged', 'skipped', 'failed')", name="outcome_valid"),
    )

    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    purged: Mapped[int] = mapped_column(BigInteger, default=0)


class TariffPush(db.Model):
    """A tariff sent to a Powerwall, with its hash and the explanation of every slot."""

    __tablename__ = "tariff_pushes"
    __table_args__ = (Index("ix_tariff_pushes_household_id_created_at", "household_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    tesla_site_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="normal")  # normal | fallback | repair
    tariff: Mapped[dict] = mapped_column(JSON)
    tariff_hash: Mapped[str] = mapped_column(String(64))
    explanation: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    tesla_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Sent, but Tesla's answer was lost: the next sync reads the Powerwall back before sending again.
    answer_lost: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class StoredPrice(db.Model):
    """One Amber price interval for one Amber site: actuals, and the latest forecast, upserted."""

    __tablename__ = "price_intervals"
    __table_args__ = (
        UniqueConstraint("amber_site_id", "channel", "start_at", "duration_minutes", name="uq_price_intervals_key"),
        Index("ix_price_intervals_site_start", "amber_site_id", "start_at"),
        # Retention deletes by age across every site.
        Index("ix_price_intervals_start_at", "start_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amber_site_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(10))
    per_kwh: Mapped[float] = mapped_column(Float)
    spot_per_kwh: Mapped[float | None] = mapped_column(Float, nullable=True)
    advanced_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    advanced_predicted: Mapped[float | None] = mapped_column(Float, nullable=True)
    advanced_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    estimate: Mapped[bool] = mapped_column(Boolean, default=False)
    spike_status: Mapped[str] = mapped_column(String(16), default="none")
    descriptor: Mapped[str | None] = mapped_column(String(16), nullable=True)
    renewables: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PriceDigest(db.Model):
    """Signatures of the price intervals last stored for an Amber site (`{"rows": {interval: checksum}}`): a
    sync sends only the intervals whose signature changed, without the database comparing the site's rows."""

    __tablename__ = "price_digests"

    amber_site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    digests: Mapped[dict] = mapped_column(JSON)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiCallCount(db.Model):
    """Outside API calls per user, day, service, kind and status class; `billable` counts the ones Tesla bills.

    `status_class` is the HTTP status class of each attempt ("2xx" ... "5xx"), "none" when no response
    arrived (timeout, connection error), "other" for a code outside 100-599, and "unknown" for calls
    counted before the class was recorded (migration 0007). A class, not the exact code: at most eight
    values by construction, so a user's rows per day and the /metrics label stay small."""

    __tablename__ = "api_call_counts"
    __table_args__ = (
        UniqueConstraint("household_id", "day", "service", "kind", "status_class", name="uq_api_call_counts_key"),
        CheckConstraint(
            "status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx', 'none', 'other', 'unknown')", name="status_class_valid"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    service: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(48))
    status_class: Mapped[str] = mapped_column(String(8), default="unknown", server_default="unknown")
    calls: Mapped[int] = mapped_column(Integer, default=0)
    billable: Mapped[int] = mapped_column(Integer, default=0)


class SchedulerLease(db.Model):
    """A named lease held by one process at a time (the scheduler leader)."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last tick claimed under this lease: a tick runs only if its claim moves this forward.
    last_tick_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SyncClaim(db.Model):
    """When a household is next due for a sync and which worker process has claimed it (SYNC_MODE=claims
    on PostgreSQL: several workers share a tick, app/sync/claims.py). Unused in the single-leader mode."""

    __tablename__ = "sync_claims"
    # The due households in claiming order: a claim reads the first few of them, not every due row.
    __table_args__ = (Index("ix_sync_claims_due_at_household_id", "due_at", "household_id"),)

    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    # The interval (tick) at which the household is next due; moved to the next interval in the same
    # transaction that records its run, so no household is synced twice in one interval.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # A claim whose worker died expires here and another worker takes the household over.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Heartbeat(db.Model):
    """One row per name ("healthz"), rewritten by every health check to prove the database still writes."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TeslaReading(db.Model):
    """The last live status and site info read for a user's Tesla site, shared by every process so
    the dashboard calls Tesla (billed per call) at most once a minute while someone looks.

    Per user, not per site: a reading is only ever shown to the user whose credentials made it."""

    __tablename__ = "tesla_readings"

    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    tesla_site_id: Mapped[str] = mapped_column(String(32))
    live_status: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    live_status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    site_info: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    site_info_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ForceSession(db.Model):
    """A forced charge or discharge: what was done, until when, and the settings to put back.

    At most one active session per user (a partial unique index); the saved settings are those from
    before the first of a chain of sessions, so replacing a session never saves forced settings."""

    __tablename__ = "force_sessions"
    __table_args__ = (
        CheckConstraint("action IN ('force_charge', 'force_discharge')", name="action_valid"),
        CheckConstraint("state IN ('starting', 'active', 'restoring', 'ended', 'failed')", name="state_valid"),
        Index(
            "uq_force_sessions_one_live_per_household",
            "household_id",
            unique=True,
            sqlite_where=text("state IN ('starting', 'active', 'restoring')"),
            postgresql_where=text("state IN ('starting', 'active', 'restoring')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    tesla_site_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12))
    minutes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What to put back (read from the Powerwall before the first session of a chain).
    saved_mode: Mapped[str | None] = mapped_column(String(24), nullable=True)
    saved_reserve: Mapped[float | None] = mapped_column(Float, nullable=True)
    saved_export_rule: Mapped[str | None] = mapped_column(String(16), nullable=True)
    saved_grid_charging: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    saved_tariff: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Did the battery respond?
    verification: Mapped[str] = mapped_column(String(16), default="pending")  # pending|responding|not_responding
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Who asked for it: a member's e-mail, "Home Assistant" or "command line".
    started_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # When the last step was done: a 'starting' or 'restoring' session silent for control.STALE_AFTER
    # lost its process and is taken over (compare-and-set on this value).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Someone cancelled while the session was starting: the starting process puts everything back.
    cancel_requested_by: Mapped[str | None] = mapped_column(String(254), nullable=True)


class ControlEvent(db.Model):
    """One step of force control (audit trail), shown with the sync history."""

    __tablename__ = "control_events"
    __table_args__ = (Index("ix_control_events_household_id_at", "household_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("force_sessions.id", ondelete="SET NULL"), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    step: Mapped[str] = mapped_column(String(48))
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(254), nullable=True)  # who asked, when a person did


class NotificationTarget(db.Model):
    """Where a person wants to hear about their households: one Apprise URL (encrypted), its events and
    quiet hours. The URL is a secret (it holds tokens): never rendered, only its scheme and last characters."""

    __tablename__ = "notification_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url_enc: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(80))  # e.g. "ntfy … 7f3a": safe to show
    events: Mapped[list | None] = mapped_column(JSON, nullable=True)  # None: every event
    quiet_start: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # minutes after local midnight
    quiet_end: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class HouseholdProblem(db.Model):
    """An open problem episode of a household (one message when it starts, one when it clears)."""

    __tablename__ = "household_problems"

    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(48), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class OutboxMessage(db.Model):
    """A notification to deliver to one target, at least once; `dedupe_key` keeps one per event and target."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), nullable=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("notification_targets.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    safety: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class MeteredUsage(db.Model):
    """One of Amber's metered usage intervals for one channel (app/money): kWh, price and cost as Amber
    billed them, kept exact as integer millionths (kWh, c/kWh, cents). Feed-in kWh are stored positive and
    feed-in cost is what the household pays (negative: earned). A billable row is never replaced by an
    estimated one."""

    __tablename__ = "usage_intervals"
    __table_args__ = (
        UniqueConstraint("household_id", "channel", "identifier", "start_at", name="uq_usage_intervals_slot"),
        Index("ix_usage_intervals_household_date", "household_id", "billing_date"),
        CheckConstraint("channel IN ('general', 'controlledLoad', 'feedIn')", name="channel_valid"),
        CheckConstraint("quality IN ('estimated', 'billable')", name="quality_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    identifier: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    billing_date: Mapped[date] = mapped_column(Date)
    kwh_micro: Mapped[int] = mapped_column(BigInteger)
    price_micro: Mapped[int] = mapped_column(BigInteger)
    cost_micro: Mapped[int] = mapped_column(BigInteger)
    quality: Mapped[str] = mapped_column(String(12))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnergyInterval(db.Model):
    """One row of Tesla's calendar_history for a household's Powerwall: energy (Wh) moved in [start, end)."""

    __tablename__ = "energy_intervals"
    __table_args__ = (UniqueConstraint("household_id", "start_at", name="uq_energy_intervals_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    grid_import_wh: Mapped[float] = mapped_column(Float, default=0.0)
    grid_export_wh: Mapped[float] = mapped_column(Float, default=0.0)
    battery_from_grid_wh: Mapped[float] = mapped_column(Float, default=0.0)
    battery_from_solar_wh: Mapped[float] = mapped_column(Float, default=0.0)
    battery_to_home_wh: Mapped[float] = mapped_column(Float, default=0.0)
    battery_to_grid_wh: Mapped[float] = mapped_column(Float, default=0.0)
    home_wh: Mapped[float] = mapped_column(Float, default=0.0)
    solar_wh: Mapped[float] = mapped_column(Float, default=0.0)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MoneyImport(db.Model):
    """When a household's usage and energy were last imported, and what went wrong if it failed."""

    __tablename__ = "money_imports"

    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    usage_rows: Mapped[int] = mapped_column(Integer, default=0)
    energy_rows: Mapped[int] = mapped_column(Integer, default=0)


# Every encrypted column, by model: `flask keys rotate` re-encrypts exactly these.
ENCRYPTED_COLUMNS: dict[type, tuple[str, ...]] = {
    HouseholdSettings: (
        "amber_token_enc",
        "teslemetry_token_enc",
        "tesla_access_token_enc",
        "tesla_refresh_token_enc",
    ),
    OAuthState: ("code_verifier_enc",),
    NotificationTarget: ("url_enc",),
    TeslaAppKey: ("private_key_enc",),
}
