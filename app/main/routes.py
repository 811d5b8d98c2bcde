"""Views of the main blueprint."""
from __future__ import annotations

import logging
import os

from flask import jsonify
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from app import clock
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


def _problem(exc: SQLAlchemyError) -> tuple[str, str]:
    """(database state, reason in words) for a failed health write; never the URL or a secret."""
    text = str(getattr(exc, "orig", exc)).lower()
    if "full" in text or "no space" in text or _disk_full():
        return "full", "The database's disk is full: it cannot store anything new."
    if "read-only" in text or "readonly" in text or "read only" in text:
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
        db.session.rollback()
        state, reason = _problem(exc)
        log.error("Health check: database %s (%s: %s)", state, type(getattr(exc, "orig", exc)).__name__, getattr(exc, "orig", exc))
        return jsonify(status="error", database=state, reason=reason), 503
    return jsonify(status="ok", database="ok")
