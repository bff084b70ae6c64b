"""Named leases: one holder at a time, taken over by another when the holder stops renewing."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Lease


async def acquire(s: AsyncSession, name: str, holder: str, now: datetime, ttl: float) -> bool:
    """Take or renew the lease `name` for `ttl` seconds; False while someone else holds it.

    One INSERT .. ON CONFLICT DO UPDATE .. WHERE: atomic on PostgreSQL (row lock) and SQLite
    (database write lock), so two processes can never both get it."""
    table = Lease.__table__
    insert = dialect_insert(s, table).values(
        name=name, holder=holder, until=now + timedelta(seconds=ttl)
    )
    stmt = insert.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={"holder": insert.excluded.holder, "until": insert.excluded.until},
        where=or_(table.c.holder == holder, table.c.until < now),
    ).returning(table.c.holder)
    return (await s.execute(stmt)).scalar_one_or_none() == holder


async def release_all(s: AsyncSession, holder: str) -> None:
    """Give up every lease `holder` has, so another process can take over at once."""
    await s.execute(delete(Lease).where(Lease.holder == holder))


async def release(s: AsyncSession, holder: str, names: Collection[str]) -> None:
    """Give up these leases if `holder` has them, so another process can take over at once."""
    if names:
        await s.execute(delete(Lease).where(Lease.holder == holder, Lease.name.in_(list(names))))
