"""Views of the dashboard blueprint. The page and its JSON refresh render the same partials."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from app.households.service import recent_events
from app.households.web import actor, current_household, requires
from sqlalchemy import func, select

from app import clock, control
from app.api_usage import CallCounter, record_call_counts
from app.connections import statuses
from app.credentials import secret_status
from app.dashboard import bp, data
from app.dashboard.actions import sync_now
from app.dashboard.charts import TariffSlot, forecast_chart, history_chart
from app.dashboard.tariff_chart import tariff_chart
from app.extensions import db
from app.form_helpers import ActionForm
from app.security import is_db_id
from app.models import SyncRun, TariffPush
from app.notify.targets import targets_of

PARTS = ("now", "battery", "control", "status", "forecast", "history", "health")
HISTORY_PAGE_SIZE = 50
# Charts kept per worker process (each pair is ~100 KB at most).
CHART_CACHE_SIZE = 256


@dataclass(frozen=True)
class SetupStep:
    """One thing a new household does before the sync runs, where it is done, and whether it is."""

    label: str
    done: bool
    anchor: str  # the Settings section where it is done
    unreadable: bool = False  # saved, but the encryption key changed: enter it again
    optional: bool = False  # shown, but the checklist goes away without it
    href: str | None = None  # where it is done, when that is not a Settings section


def setup_steps(household, services: dict | None = None) -> list[SetupStep]:
    """The onboarding checklist: connect Amber, connect Tesla, choose the sites, test, turn sync on; then,
    optionally, notifications and Home Assistant (the checklist goes once the required steps are done)."""
    settings = household.settings
    amber = secret_status(settings, "amber_token")
    teslemetry = secret_status(settings, "teslemetry_token")
    fleet = secret_status(settings, "tesla_access_token")
    services = services if services is not None else statuses(household)
    tested = all(row is not None and row.state == "connected" for row in (services.get("amber"), services.get("tesla")))
    required = [
        SetupStep("Connect Amber (your API token)", amber.state == "saved", "amber-h", amber.state == "unreadable"),
        SetupStep("Connect Tesla (a Teslemetry token or the Tesla Fleet API)", teslemetry.state == "saved" or fleet.state == "saved",
                  "tesla-h", teslemetry.state == "unreadable" or fleet.state == "unreadable"),
        SetupStep("Choose your Amber site and your Powerwall", bool(settings and settings.amber_site_id and settings.tesla_site_id), "amber-h"),
        SetupStep("Test the connection (both say Connected)", tested, "status-h"),
        SetupStep("Turn the sync on", bool(settings and settings.sync_enabled), "prefs-h"),
    ]
    if all(step.done for step in required):
        return required  # the checklist is not shown: the optional steps need no query
    return required + [
        SetupStep("Optionally, get notifications on your phone (an Apprise URL)", current_user.is_authenticated and bool(targets_of(current_user)), "",
                  optional=True, href=url_for("notify.index")),
        SetupStep("Optionally, see it in Home Assistant (over MQTT)", bool(current_app.config.get("MQTT_URL")), "",
                  optional=True, href=url_for("notify.index", _anchor="home-assistant")),
    ]


def dashboard_context(household, now) -> dict:
    """Everything the dashboard partials need. Reads Tesla (cached, counted) for the battery."""

    tz = data.site_zone(household)
    counter = CallCounter()
    battery = data.battery(household, now, on_call=counter)
    if counter.records:
        record_call_counts(household, counter, now.astimezone(tz).date())
    if db.session.new or db.session.dirty or db.session.deleted:
        # A new battery reading (or error) and its call counts. Only then: a commit expires every
        # loaded object, and reloading the household, settings and sync state is a third of a page's queries.
        db.session.commit()
    push = data.last_push(household, explanation=False)
    tariff = data.tariff_timeline(push.tariff, now, tz) if push else []
    prices = data.price_rows(household, now, tz)
    services = statuses(household)
    return {
        "tz": tz,
        "now": now,
        "notice": household.notice,
        "prices": data.now_prices(prices, now),
        "battery": battery,
        "status": data.sync_status(household, now, push, services),
        "health": data.health(household, services),
        "costs": data.costs(household, now),
        **dict(zip(("forecast_svg", "history_svg"), price_charts(prices, tuple(tariff), chart_minute(now), tz))),
        "steps": setup_steps(household, services),
        "control": data.control_view(household, now),
        "outcome_words": data.OUTCOME_WORDS,
        "fleet_rates": (data.FLEET_RATE_COMMANDS, data.FLEET_RATE_DATA),
    }


def chart_minute(now: datetime) -> datetime:
    """The instant the charts are drawn for: `now` to the minute (a minute is under a pixel of a day)."""
    return now.replace(second=0, microsecond=0)


@lru_cache(maxsize=CHART_CACHE_SIZE)
def price_charts(prices: data.PriceRows, tariff: tuple[TariffSlot, ...], minute: datetime, tz: ZoneInfo) -> tuple[Markup, Markup]:
    """The forecast and history charts as of `minute`.

    Drawing them is most of a dashboard view's work, and they are a pure function of these arguments
    (the stored price rows as read, the tariff timeline, the minute, the zone), so each worker keeps
    the last few: a view in the same minute with the same prices and tariff reuses them, and any
    change to a price row (values or update time) or to the tariff draws them again."""
    return (
        forecast_chart(data.forecast_points(prices, minute, tz), tariff, minute, tz),
        history_chart(data.history_points(prices, minute), minute - timedelta(hours=24), minute, tz),
    )


def render_part(part: str, context: dict) -> str:
    """One dashboard part as HTML (used by the page and by /api/dashboard)."""
    return render_template(f"dashboard/_{part}.html", **context)


@bp.route("/")
@requires("view")
def index():
    """The dashboard."""
    context = dashboard_context(current_household(), clock.now())
    # The partials are our own rendered (already escaped) templates.
    parts = {p: Markup(render_part(p, context)) for p in PARTS}
    return render_template("dashboard/index.html", parts=parts, **context)


@bp.route("/sync-now", methods=["POST"])
@requires("control")
def sync_now_form():
    """'Sync now' without JavaScript."""
    if not ActionForm().validate_on_submit():
        abort(400)
    result = sync_now(current_household(), clock.now(), actor=actor())
    flash(result.message, "success" if result.ok else "error")
    return redirect(url_for("dashboard.index"))


def _control_minutes() -> object:
    minutes = request.form.get("minutes", "")
    return request.form.get("custom_minutes", "") if minutes == "custom" else minutes


@bp.route("/control", methods=["POST"])
@requires("control")
def control_start():
    """Start force charge or discharge (form)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        session = control.start(current_household(), request.form.get("action"), _control_minutes(), actor=actor())
    except control.ControlError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{control.ACTION_WORDS[session.action]} started until {session.ends_at.astimezone(data.site_zone(current_household())):%H:%M}.", "success")
    return redirect(url_for("dashboard.index"))


@bp.route("/control/cancel", methods=["POST"])
@requires("control")
def control_cancel():
    """Cancel the running session and restore the settings (form)."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        done = control.cancel(current_household(), actor=actor())
    except control.ControlError as exc:
        flash(str(exc), "error")
    else:
        live = None if done else control.live_session(current_household())
        state = live.state if live else None
        flash(control.cancel_message(done, state), "error" if state == "restoring" else "success")
    return redirect(url_for("dashboard.index"))


@bp.route("/tariff")
@bp.route("/tariff/<int:push_id>")
@requires("view")
def tariff(push_id: int | None = None):
    """The 48 slots of a push, each with its explanation, and what changed from the push before."""
    now = clock.now()
    tz = data.site_zone(current_household())
    if push_id is None:
        push = data.last_push(current_household())
    else:
        push = db.session.get(TariffPush, push_id) if is_db_id(push_id) else None
        if push is None or push.household_id != current_household().id:
            abort(404)
    previous = None
    if push is not None:
        previous = db.session.scalar(
            select(TariffPush)
            .where(
                TariffPush.household_id == current_household().id,
                TariffPush.tesla_site_id == push.tesla_site_id,
                TariffPush.accepted.is_(True),
                TariffPush.id < push.id,
            )
            .order_by(TariffPush.id.desc())
            .limit(1)
        )
    diff = data.push_diff(push, previous) if push else {}
    settings = current_household().settings
    slots = data.explained_slots(push, tz, settings.amber_site_id if settings else None) if push else []
    return render_template(
        "dashboard/tariff.html", push=push, previous=previous, slots=slots, diff=diff, tz=tz, now=now,
        chart=Markup(tariff_chart(slots)),
    )


@bp.route("/history")
@requires("view")
def history():
    """The sync history, newest first, paginated and grouped by day; `kind` filters to pushes, force
    sessions or changes (the last `days` days, as /api/history gives them)."""
    from app import history as history_data

    now = clock.now()
    tz = data.site_zone(current_household())
    kind = request.args.get("kind", "all")
    if kind not in history_data.KINDS:
        kind = "all"
    if kind != "all":
        try:
            days = history_data.parse_days(request.args.get("days"))
        except ValueError:
            days = 7
        found = history_data.history(current_household(), now, days, tz)
        items = {"pushes": found["pushes"], "force": found["force_sessions"], "changes": found["changes"]}[kind]
        key = "started_at" if kind == "force" else "at"
        return render_template(
            "dashboard/history_kind.html", kind=kind, days=days, groups=history_data.by_day(items, key), tz=tz, now=now,
            kinds=history_data.KINDS, action_words=control.ACTION_WORDS,
        )
    page = request.args.get("page", 1, type=int) or 1
    page = max(1, min(page, 100000))
    total = db.session.scalar(select(func.count(SyncRun.id)).where(SyncRun.household_id == current_household().id)) or 0
    pages = max(1, -(-total // HISTORY_PAGE_SIZE))
    runs = db.session.scalars(
        select(SyncRun)
        .where(SyncRun.household_id == current_household().id)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .offset((page - 1) * HISTORY_PAGE_SIZE)
        .limit(HISTORY_PAGE_SIZE)
    ).all()
    return render_template(
        "dashboard/history.html", runs=runs, page=page, pages=pages, total=total, tz=tz, now=now,
        outcome_words=data.OUTCOME_WORDS, events=data.control_events(current_household()) if page == 1 else [],
        sessions=data.force_sessions(current_household()) if page == 1 else [],
        household_events=recent_events(current_household()) if page == 1 else [],
        action_words=control.ACTION_WORDS, kind="all", kinds=history_data.KINDS,
    )
