"""Views of the main blueprint."""
from __future__ import annotations

import logging
import os
import re

from flask import jsonify
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from app import clock
from app.clients.base import redact_text
from app.db_files import sqlite_file
from app.extensions import db
from app.main import bp
from app.models import Heartbeat
from app.security import public

log = logging.getLogger(__name__)
HEARTBEAT = "healthz"


FULL_BELOW_BYTES = 64 * 1024


def _disk_full() -> bool:
    """Whether the SQLite database's filesystem has (almost) no room left; False for PostgreSQL."""
    path = sqlite_file(db.engine.url)
    if path is None:
        return False
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW_BYTES


# What the drivers call a full disk or a database that takes no writes: PostgreSQL's SQLSTATE (disk_full,
# read_only_sql_transaction), SQLite's result code name, and their words as a last resort.
_FULL_CODES = {"53100", "SQLITE_FULL"}
_READ_ONLY_CODES = {"25006"}
_FULL_WORDS = re.compile(r"\b(?:disk is full|no space left)\b", re.IGNORECASE)
_READ_ONLY_WORDS = re.compile(r"\bread[- ]?only\b", re.IGNORECASE)


def _problem(exc: SQLAlchemyError) -> tuple[str, str]:
    """(database state, reason in words) for a failed health write; never the URL or a secret."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None) or ""
    text = str(orig)
    if code in _FULL_CODES or _FULL_WORDS.search(text) or _disk_full():
        return "full", "The database's disk is full: it cannot store anything new."
    if code in _READ_ONLY_CODES or code.startswith("SQLITE_READONLY") or _READ_ONLY_WORDS.search(text):
        return "read-only", "The database accepts no writes (read-only)."
    if isinstance(exc, OperationalError):
        return "unavailable", "The database is not answering."
    return "unavailable", "The database refused a small write."


@bp.route("/healthz")
@public
def healthz():
    """200 when the database takes a small write (the heartbeat row), 503 with the reason otherwise."""
    now = clock.now()
    try:
        updated = db.session.execute(update(Heartbeat).where(Heartbeat.name == HEARTBEAT).values(beat_at=now)).rowcount
        if not updated:
            db.session.add(Heartbeat(name=HEARTBEAT, beat_at=now))
        db.session.commit()
    except IntegrityError:  # another worker wrote the first heartbeat at the same moment: that is a write too
        db.session.rollback()
    except SQLAlchemyError as exc:
        try:
            db.session.rollback()
        except SQLAlchemyError:
            pass  # nothing to undo on a database that is gone; the answer below is what matters
        state, reason = _problem(exc)
        orig = getattr(exc, "orig", None) or exc
        # The driver's words help the operator; a password from the database URL must never be among them.
        detail = redact_text(" ".join(str(orig).split()), secrets=[db.engine.url.password])
        log.error("Health check: database %s (%s: %s)", state, type(orig).__name__, detail)
        return jsonify(status="error", database=state, reason=reason), 503
    return jsonify(status="ok", database="ok")
