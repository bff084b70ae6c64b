"""What one SQL statement costs on SQLite, layer by layer: raw aiosqlite, SQLAlchemy text(),
a Core select, and an ORM select (a repository call from the inbound hot path); then, on the
turn writer's own `sqlite3` connection, an outgoing message row inserted with RETURNING id and
with `lastrowid` (storage.sqlexec.SqliteExec.insert), 16 rows per transaction.

    .venv/bin/python bench/statement_cost.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import repo_contacts
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Contact


async def timed(name: str, n: int, call: Callable[[], Awaitable[Any]]) -> None:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    print(f"{name:<32} {(time.perf_counter() - started) / n * 1e6:7.0f} µs")


async def main(n: int) -> None:
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-stmt-')}/s.db"
    await upgrade_async(url)
    db = Database(url)
    try:
        async with db.transaction() as s:
            connection = await s.connection()
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await timed("raw aiosqlite execute", n, lambda: raw.execute("SELECT 1"))
            await timed("SQLAlchemy text()", n, lambda: s.execute(text("SELECT 1")))
            await timed(
                "Core select", n, lambda: s.execute(select(Contact.id).where(Contact.id == 1))
            )
            await timed(
                "ORM select (find_by_address)",
                n,
                lambda: repo_contacts.find_by_address(s, "sms", "x"),
            )
    finally:
        await db.dispose()
    insert_cost(url.removeprefix("sqlite+aiosqlite:///"), n)


def insert_cost(path: str, n: int) -> None:
    """An outgoing message's insert as the executor writes it, with and without RETURNING."""
    sql = (
        "INSERT INTO messages (direction, channel, contact_id, conversation_id, address, "
        "address_key, body, payload, kind, status, attempts, not_before, created_at) VALUES "
        "('out', 'sms', NULL, ?, 's1:sealed', ?, 'Hur nöjd är du med stödet?', '{}', 'reply', "
        "'queued', 0, '2026-12-01 10:00:00.000000', '2026-12-01 10:00:00.000000')"
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for name, suffix in (("insert ... RETURNING id", " RETURNING id"), ("insert, lastrowid", "")):
        spent = 0.0
        for batch in range(max(1, n // 16)):
            conn.execute("BEGIN IMMEDIATE")
            for i in range(16):
                params = (str(uuid.uuid4()), hashlib.sha256(f"{batch}:{i}".encode()).hexdigest())
                started = time.perf_counter()
                cursor = conn.execute(sql + suffix, params)
                row_id = cursor.fetchone()[0] if suffix else cursor.lastrowid
                spent += time.perf_counter() - started
                assert row_id
            conn.execute("COMMIT")
        print(f"{name:<32} {spent / (max(1, n // 16) * 16) * 1e6:7.0f} µs")
    conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    asyncio.run(main(parser.parse_args().n))
