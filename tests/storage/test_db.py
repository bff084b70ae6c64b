from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from storage.db import Database, DatabaseUnavailable, normalize_url, safe_url
from storage.models import AuditEntry

UNREACHABLE_PG = "postgresql://nobody:secret@127.0.0.1:9/none"
"""Port 9 (discard) is closed on test machines: connecting is refused at once."""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/b.db", "sqlite+aiosqlite:///var/b.db"),
        ("sqlite+aiosqlite:///var/b.db", "sqlite+aiosqlite:///var/b.db"),
        ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_urls_map_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@h/d", "mysql://u@h/d"])
def test_other_drivers_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url(url)


def test_safe_url_hides_the_password() -> None:
    assert "secret" not in safe_url(UNREACHABLE_PG)


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "b.db"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.engine.connect() as conn:
            pragmas = {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        await db.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "synchronous": 1,
    }
    assert path.exists()
    assert db.dialect == "sqlite"


async def test_ping(db: Database) -> None:
    assert await db.ping() is True
    await db.check()


async def test_unreachable_database() -> None:
    db = Database(UNREACHABLE_PG)
    try:
        assert await db.ping() is False
        with pytest.raises(DatabaseUnavailable, match="cannot reach the database") as raised:
            async with db.transaction():
                pass
        assert "secret" not in str(raised.value)
        with pytest.raises(DatabaseUnavailable):
            await db.check()
    finally:
        await db.dispose()


async def test_transaction_commits_or_rolls_back(db: Database) -> None:
    async with db.transaction() as s:
        s.add(AuditEntry(actor="a", action="kept"))
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            s.add(AuditEntry(actor="a", action="dropped"))
            await s.flush()
            raise RuntimeError("boom")
    async with db.transaction(read_only=True) as s:
        actions = list(await s.scalars(select(AuditEntry.action)))
    assert actions == ["kept"]


STOCKHOLM = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 30, tzinfo=STOCKHOLM),
        datetime(1999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
async def test_utc_datetime_round_trips_aware(db: Database, moment: datetime) -> None:
    async with db.transaction() as s:
        s.add(AuditEntry(actor="a", action="t", at=moment))
    async with db.transaction() as s:
        stored = await s.scalar(select(AuditEntry.at).where(AuditEntry.action == "t"))
        compared = await s.scalar(
            select(AuditEntry.id).where(AuditEntry.at > moment - timedelta(microseconds=1))
        )
    assert stored == moment
    assert stored is not None and stored.tzinfo == UTC
    assert compared is not None, "comparisons with aware values work in the database"


async def test_naive_datetime_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as s:
            s.add(AuditEntry(actor="a", action="t", at=datetime(2026, 1, 1)))
            await s.flush()


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        async with db.transaction() as s:
            await s.execute(
                text(
                    "INSERT INTO contact_addresses (contact_id, channel, address, address_key,"
                    " created_at) VALUES (424242, 'sms', 'x', 'k', CURRENT_TIMESTAMP)"
                )
            )
