"""The Money page, its CSV and GET /api/money: thin views over app.money.service."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from app import clock
from app.credentials import settings_for
from app.dashboard.data import site_zone
from app.extensions import db
from app.households.service import can
from app.households.web import current, current_household, requires
from app.money.arithmetic import nem_date, to_micro
from app.money.chart import money_chart, money_text
from app.money.service import csv_text, load, money_view, parse_range, view_of

bp = Blueprint("money", __name__)
MAX_SUPPLY_CENTS = Decimal(2000)  # c/day: well above any Australian supply charge
MAX_MEMBERSHIP_DOLLARS = Decimal(200)  # $/month


@bp.app_template_filter("money")
def money_filter(cents: Decimal) -> str:
    return money_text(cents)


def _range(today: date) -> tuple[date, date]:
    return parse_range(request.args.get("from") or None, request.args.get("to") or None, today)


@bp.get("/money")
@requires("view")
def index():
    """What the household paid, earned and saved: this week, this month and a chosen range."""
    now = clock.now()
    household, role = current()
    today = nem_date(now)
    error = None
    try:
        first, last = _range(today)
    except ValueError as exc:
        error = str(exc)
        first, last = today - timedelta(days=6), today
    week_start, month_start = today - timedelta(days=today.weekday()), today.replace(day=1)
    recent = load(household, min(week_start, month_start), today, now)  # this week and this month, read once
    chosen = recent if recent.covers(first, last) else load(household, first, last, now)
    view = view_of(chosen, first, last)
    week = view_of(recent, week_start, today)
    month = view_of(recent, month_start, today)
    return render_template(
        "money/index.html", view=view, week=week, month=month, chart=Markup(money_chart(view.days)), tz=site_zone(household),
        error=error, can_manage=can(role, "manage"), settings=household.settings, now=now,
    ), (400 if error else 200)


@bp.get("/money.csv")
@requires("view")
def csv_download():
    """One row per metered interval of the chosen range."""
    household = current_household()
    now = clock.now()
    try:
        first, last = _range(nem_date(now))
    except ValueError as exc:
        return Response(str(exc) + "\n", status=400, mimetype="text/plain")
    view = money_view(household, first, last, now)
    return Response(
        csv_text(view, site_zone(household)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="money-{first}-{last}.csv"'},
    )


@bp.get("/api/money")
@requires("view")
def api_money():
    """The report as JSON: days with import/export kWh and dollars, net, and the total."""
    now = clock.now()
    try:
        first, last = _range(nem_date(now))
    except ValueError as exc:
        return jsonify(error=str(exc), status=400), 400
    return jsonify(money_view(current_household(), first, last, now).json())


def _amount(raw: str | None, limit: Decimal, what: str) -> Decimal | None:
    text = (raw or "").strip().replace("$", "").replace(",", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what} must be a number.") from None
    if not value.is_finite() or value < 0 or value > limit:
        raise ValueError(f"{what} must be between 0 and {limit}.")
    return value


@bp.post("/money/fixed-costs")
@requires("manage")
def fixed_costs():
    """Save the daily supply charge (c/day) and Amber's membership ($/month); blank removes one."""
    household = current_household()
    try:
        supply = _amount(request.form.get("supply_cents_per_day"), MAX_SUPPLY_CENTS, "The supply charge")
        membership = _amount(request.form.get("membership_dollars_per_month"), MAX_MEMBERSHIP_DOLLARS, "The membership")
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("money.index"))
    settings = settings_for(household)
    settings.supply_charge_micro = None if supply is None else to_micro(supply)
    settings.membership_micro = None if membership is None else to_micro(membership * 100)
    db.session.commit()
    flash("Fixed costs saved.", "success")
    return redirect(url_for("money.index"))
