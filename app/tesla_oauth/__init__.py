"""Tesla Fleet API: a user's connect / callback / disconnect, and this installation's Tesla app setup
(key pair, public-key route, partner registration) for administrators."""
from flask import Blueprint

bp = Blueprint("tesla_oauth", __name__)

from app.tesla_oauth import routes  # noqa: E402,F401
