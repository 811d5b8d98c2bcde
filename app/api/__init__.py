"""JSON endpoints used by the pages' own JavaScript (login required; POSTs need the X-CSRFToken header)."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from app.api import routes  # noqa: E402,F401
