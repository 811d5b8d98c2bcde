"""Tesla Fleet API: a user's connect / callback / disconnect, and this installation's Tesla app setup
(key pair, public-key route, partner registration) for administrators."""
from flask import Blueprint

from app.tesla_oauth.log_redaction import install_access_log_redaction

bp = Blueprint("tesla_oauth", __name__)


@bp.record_once
def _redact_access_logs(state) -> None:
    # The callback URL carries the authorization code; access logs must not keep it.
    install_access_log_redaction()


from app.tesla_oauth import routes  # noqa: E402,F401
