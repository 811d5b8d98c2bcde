"""The dashboard: prices now, battery, the tariff on the Powerwall and why, sync status and history."""
from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from app.dashboard import filters, routes  # noqa: E402,F401
