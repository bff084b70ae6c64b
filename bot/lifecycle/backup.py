"""Backups: a consistent copy of the SQLite database while the service runs, with SQLite's online
backup API; PostgreSQL is backed up with its own `pg_dump` (see README, Backups)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from storage.db import BUSY_TIMEOUT_MS


class BackupError(Exception):
    """The backup cannot be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """Where the copy went and how big it is."""

    path: Path
    bytes: int
    tables: int


def pg_dump_command(url: str, target: Path) -> str:
    """The pg_dump command line for a PostgreSQL URL (the password comes from PGPASSWORD or
    ~/.pgpass, never the command line)."""
    parsed = make_url(url)
    parts = ["pg_dump", "--format=custom", "--no-owner"]
    if parsed.host:
        parts += ["--host", parsed.host]
    if parsed.port:
        parts += ["--port", str(parsed.port)]
    if parsed.username:
        parts += ["--username", parsed.username]
    parts += ["--file", str(target), parsed.database or "brukardialog"]
    return " ".join(parts)


def backup_sqlite(database: Path, target: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy a live SQLite database to `target` with the online backup API.

    The copy is one consistent snapshot: it is taken in one step under a read transaction, which
    in WAL mode never blocks the service's writers. It is written under a temporary name next to
    `target`, checked (`PRAGMA integrity_check`), made readable by its owner only, and then
    renamed into place, so `target` is either the whole copy or absent."""
    if not database.exists():
        raise BackupError(f"no database at {database.resolve()}")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; give another path or --overwrite")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; give a file name")
    if not target.parent.is_dir():
        raise BackupError(f"no folder {target.parent.resolve()} to write the backup in")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        source = sqlite3.connect(database, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            copy = sqlite3.connect(tmp)
            try:
                source.backup(copy)
                check = copy.execute("PRAGMA integrity_check").fetchone()
                if not check or check[0] != "ok":
                    raise BackupError(f"the copy failed its integrity check: {check}")
                tables = copy.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                # The copy stands alone: its WAL is folded in, so one file is the whole backup.
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        finally:
            source.close()
        os.replace(tmp, target)
    except sqlite3.Error as e:
        raise BackupError(f"backup failed: {e}") from None
    except OSError as e:
        raise BackupError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return BackupResult(target, target.stat().st_size, int(tables))
