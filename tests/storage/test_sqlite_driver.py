"""The one-hop SQLite cursor behaves as a DBAPI cursor: results, counts, errors, streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import CursorResult, text
from sqlalchemy.exc import IntegrityError, OperationalError

from storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with database.transaction() as s:
        await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    return database


async def test_rows_counts_and_last_row_id(db: Database) -> None:
    async with db.transaction() as s:
        result = cast(CursorResult[Any], await s.execute(text("INSERT INTO t (name) VALUES ('a')")))
        assert result.lastrowid == 1 and result.rowcount == 1
        many = cast(
            CursorResult[Any],
            await s.execute(
                text("INSERT INTO t (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}]
            ),
        )
        assert many.rowcount == 2
        updated = cast(
            CursorResult[Any], await s.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        )
        assert updated.rowcount == 2
        rows = (await s.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        returned = await s.execute(text("INSERT INTO t (name) VALUES ('d') RETURNING id, name"))
        assert tuple(returned.one()) == (4, "d")
    await db.dispose()


async def test_errors_are_translated_and_the_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO t (name) VALUES ('x')"))
            await s.execute(text("INSERT INTO t (name) VALUES ('x')"))
    with pytest.raises(OperationalError):
        async with db.transaction() as s:
            await s.execute(text("SELECT nope FROM t"))
    async with db.transaction(read_only=True) as s:
        assert await s.scalar(text("SELECT count(*) FROM t")) == 0
    await db.dispose()


async def test_streaming_results_still_work(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": f"n{i}"} for i in range(250)]
        )
    async with db.transaction(read_only=True) as s:
        stream = await s.stream(text("SELECT name FROM t ORDER BY id"))
        names = [row.name async for row in stream]
    assert len(names) == 250 and names[0] == "n0"
    await db.dispose()
