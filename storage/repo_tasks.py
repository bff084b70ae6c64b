"""Due tasks: every timer (reminders, follow-ups, expiries, campaign start and close) is a row.

A task's `key` is unique, so scheduling twice is a no-op. Claiming leases due rows to one
worker, the same way the outbox does (storage.repo_messages)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import claims
from storage.db import dialect_insert
from storage.models import DueTask, utcnow

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


async def schedule(
    s: AsyncSession,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any],
    *,
    replace: bool = False,
) -> bool:
    """Schedule a task unless one with this key exists; True if a row was written.

    `replace=True` moves a task that is still pending to the new time and payload; a task that
    has run, is running or was cancelled is left alone."""
    table = DueTask.__table__
    insert = dialect_insert(s, table).values(
        kind=kind,
        key=key,
        due_at=due_at,
        payload=payload,
        status=PENDING,
        attempts=0,
        created_at=utcnow(),
    )
    if replace:
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"due_at": insert.excluded.due_at, "payload": insert.excluded.payload},
            where=table.c.status == PENDING,
        )
    else:
        stmt = insert.on_conflict_do_nothing(index_elements=[table.c.key])
    written = (await s.execute(stmt.returning(table.c.id))).scalar_one_or_none()
    return written is not None


async def get_by_key(s: AsyncSession, key: str) -> DueTask | None:
    """A task by its key."""
    stmt = select(DueTask).where(DueTask.key == key).execution_options(populate_existing=True)
    return (await s.scalars(stmt)).first()


async def cancel(s: AsyncSession, key: str) -> bool:
    """Cancel a pending task; False if there is none (already ran, running, or unknown)."""
    result = await s.execute(
        update(DueTask)
        .where(DueTask.key == key, DueTask.status == PENDING)
        .values(status=CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def cancel_prefix(s: AsyncSession, prefix: str) -> int:
    """Cancel every pending task whose key starts with `prefix`; returns how many."""
    result = await s.execute(
        update(DueTask)
        .where(DueTask.key.startswith(prefix, autoescape=True), DueTask.status == PENDING)
        .values(status=CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _claimable(now: datetime, kinds: Collection[str] | None) -> ColumnElement[bool]:
    due = and_(DueTask.status == PENDING, DueTask.due_at <= now)
    lease_expired = and_(DueTask.status == RUNNING, DueTask.lease_until < now)
    condition = or_(due, lease_expired)
    return condition if kinds is None else and_(condition, DueTask.kind.in_(list(kinds)))


async def claim_due(
    s: AsyncSession,
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    kinds: Collection[str] | None = None,
) -> list[DueTask]:
    """Lease up to `limit` due tasks (and ones whose lease ran out) to `worker`, earliest first.

    No concurrent claimer gets the same task until its lease expires."""
    return await claims.claim(
        s,
        DueTask,
        DueTask.id,
        where=_claimable(now, kinds),
        order_by=(DueTask.due_at, DueTask.id),
        limit=limit,
        values={
            "status": RUNNING,
            "claimed_by": worker,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "attempts": DueTask.attempts + 1,
        },
        sort_key=lambda t: (t.due_at, t.id),
    )


def _held_by(task_id: int, worker: str) -> ColumnElement[bool]:
    return and_(DueTask.id == task_id, DueTask.claimed_by == worker, DueTask.status == RUNNING)


async def complete(s: AsyncSession, task_id: int, worker: str, now: datetime) -> bool:
    """Mark a task done, by the worker holding its lease; False for anyone else."""
    result = await s.execute(
        update(DueTask)
        .where(_held_by(task_id, worker))
        .values(status=DONE, done_at=now, lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def fail(
    s: AsyncSession, task_id: int, worker: str, error: str, retry_at: datetime | None
) -> bool:
    """Record a failed run: pending again at `retry_at`, or failed for good if None."""
    values: dict[str, Any] = {"last_error": error, "lease_until": None, "claimed_by": None}
    if retry_at is None:
        values["status"] = FAILED
    else:
        values.update(status=PENDING, due_at=retry_at)
    result = await s.execute(
        update(DueTask)
        .where(_held_by(task_id, worker))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def pending(s: AsyncSession, *, kinds: Collection[str] | None = None) -> list[DueTask]:
    """Pending tasks, earliest first (for admin views and tests)."""
    stmt = select(DueTask).where(DueTask.status == PENDING).order_by(DueTask.due_at, DueTask.id)
    if kinds is not None:
        stmt = stmt.where(DueTask.kind.in_(list(kinds)))
    return list(await s.scalars(stmt))


async def requeue(s: AsyncSession, key: str, due_at: datetime) -> bool:
    """Put a task back to pending at `due_at`, even while it is running.

    For a handler that decides "not now, at due_at": the running claim is released, so the task
    runner's completion of this run finds nothing to complete and the row stays pending."""
    result = await s.execute(
        update(DueTask)
        .where(DueTask.key == key, DueTask.status.in_((PENDING, RUNNING)))
        .values(status=PENDING, due_at=due_at, claimed_by=None, lease_until=None, attempts=0)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
