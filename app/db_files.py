"""The SQLite database's files: online backups (by hand and before every upgrade) and their permissions.

PostgreSQL has nothing here: pg_dump backs it up and the server guards its files."""
from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL, Engine

log = logging.getLogger(__name__)

BACKUP_DIR = "backups"
KEEP_UPGRADE_BACKUPS = 5
SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup that could not be made; the message says why (no secret in it)."""


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser().absolute()


def create_private(path: Path) -> None:
    """Create a missing database file empty and 0600, so SQLite opens a private file instead of making one.

    SQLite would create it 0644 (less the umask); chmod afterwards leaves a moment in which another account
    could open it and keep reading through that descriptor. An empty file is a valid empty database."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return  # it exists, or SQLite will say in its own words why it cannot be created
    try:
        os.fchmod(fd, 0o600)  # exactly 0600 whatever the umask
    finally:
        os.close(fd)


def secure_sqlite_files(path: Path) -> None:
    """Make the database file and its -wal/-shm files 0600 (those that exist).

    Called when the app starts and on every new connection (right after SQLite creates a new file,
    before anything is written to it). SQLite creates -wal and -shm with the database file's mode, so
    a private database keeps its side files private whoever opens it later; files left 0644 by an
    older version are tightened."""
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        try:
            if candidate.stat().st_mode & 0o777 != 0o600:
                candidate.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:
            log.warning("Cannot make %s private (mode 0600): it belongs to another user", candidate)


def online_backup(engine: Engine, target: Path) -> int:
    """Copy the database page by page into `target` through SQLite's online backup API; return its size.

    A consistent snapshot even while other processes write (WAL): written under a temporary name (0600
    from the start), integrity-checked, turned into one self-contained file (no -wal), then renamed, so
    `target` is never a partial file."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        copy = sqlite3.connect(temporary)
        try:
            with engine.connect() as conn:
                conn.connection.driver_connection.backup(copy)  # type: ignore[union-attr]
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"The copy failed SQLite's integrity check ({check}); {target} was not written.")
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
        os.replace(temporary, target)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"Backup failed: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return target.stat().st_size


def upgrade_backup_name(revision: str, now: datetime) -> str:
    """`app-<revision>-<UTC time>.db`: what the database was at, and when it was copied."""
    return f"app-{revision}-{now.strftime('%Y%m%dT%H%M%SZ')}.db"


def backup_before_upgrade(engine: Engine, data_dir: Path, revision: str, now: datetime) -> Path:
    """Copy the database into DATA_DIR/backups before an upgrade and keep the newest KEEP_UPGRADE_BACKUPS."""
    folder = data_dir / BACKUP_DIR
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"Cannot use {folder} for backups: {exc.strerror or exc}.") from exc
    target = folder / upgrade_backup_name(revision, now)
    online_backup(engine, target)
    for old in upgrade_backups(folder)[KEEP_UPGRADE_BACKUPS:]:
        old.unlink(missing_ok=True)
        log.info("Removed the old upgrade backup %s (the newest %d are kept)", old.name, KEEP_UPGRADE_BACKUPS)
    return target


def upgrade_backups(folder: Path) -> list[Path]:
    """The upgrade backups in `folder`, newest first (by the time in their name, then by mtime)."""
    found = [p for p in folder.glob("app-*-*.db") if p.is_file()]
    return sorted(found, key=lambda p: (p.name.rsplit("-", 1)[-1], p.stat().st_mtime), reverse=True)
