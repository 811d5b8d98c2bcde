"""Keep the OAuth callback's `code` and `state` out of HTTP access logs.

Tesla sends them in the callback's query string, which the development server (logger "werkzeug") and
gunicorn (logger "gunicorn.access") write into every access line. The code is single use and useless
without the PKCE verifier and the client secret, but it must still never reach a log."""
from __future__ import annotations

import logging
import re

ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
_QUERY_SECRET_RE = re.compile(r"(?<![A-Za-z0-9_])((?:code|state)=)[^&\s\"']+")


def redact_query_secrets(text: str) -> str:
    """`...?code=NA_x&state=y` -> `...?code=***&state=***`."""
    return _QUERY_SECRET_RE.sub(r"\1***", text)


class OAuthQueryRedactor(logging.Filter):
    """Rewrites a record whose message carries `code=` or `state=` query values."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        redacted = redact_query_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_access_log_redaction() -> None:
    """Attach the redactor to the access loggers once per process."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OAuthQueryRedactor) for f in logger.filters):
            logger.addFilter(OAuthQueryRedactor())
