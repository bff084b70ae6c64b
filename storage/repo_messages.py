"""Messages in and out. Outgoing rows are the transactional outbox the dispatcher drains.

A claim leases rows to one worker: PostgreSQL locks them with `FOR UPDATE SKIP LOCKED`, SQLite's
single writer makes one `UPDATE .. RETURNING` atomic. Every later change checks the lease holder,
so a worker whose lease ran out and was reclaimed cannot overwrite the new holder's work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import claims
from storage.models import Message, utcnow

IN = "in"
OUT = "out"
RECEIVED = "received"
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
READ = "read"
UNDELIVERED = "undelivered"
FAILED = "failed"
CANCELLED = "cancelled"

PROGRESS_RANK = {QUEUED: 0, SENDING: 1, SENT: 2, DELIVERED: 3, READ: 4}
"""Delivery statuses only move up this ranking: a late "sent" never undoes "delivered"."""
FAILURES = frozenset({UNDELIVERED, FAILED})
PENDING = (QUEUED, SENDING)
VISIBLE = (QUEUED, SENDING, SENT, DELIVERED, READ)
"""Outgoing statuses a reader (web chat) is shown."""


def _predecessors(status: str) -> tuple[str, ...]:
    """The statuses a message may be in for `status` to replace it."""
    if status in PROGRESS_RANK:
        rank = PROGRESS_RANK[status]
        return tuple(s for s, r in PROGRESS_RANK.items() if r < rank)
    if status in FAILURES:
        return (QUEUED, SENDING, SENT)
    raise ValueError(f"unknown delivery status {status!r}")


async def known_provider_ids(s: AsyncSession, channel: str, ids: Collection[str]) -> set[str]:
    """Which of these provider ids outgoing rows on this channel already hold."""
    if not ids:
        return set()
    stmt = select(Message.provider_id).where(
        Message.channel == channel, Message.direction == OUT, Message.provider_id.in_(ids)
    )
    return {str(pid) for pid in await s.scalars(stmt)}


async def enqueue(
    s: AsyncSession,
    *,
    channel: str,
    address: str,
    address_key: str | None = None,
    body: str,
    payload: dict[str, Any],
    kind: str,
    contact_id: int | None,
    conversation_id: str | None,
    campaign_id: int | None,
    not_before: datetime,
) -> int:
    """Put a message in the outbox (not a turn's: those are storage.executor's); it is sent from
    `not_before` on. Returns its id."""
    message = Message(
        direction=OUT,
        channel=channel,
        address=address,
        address_key=address_key,
        body=body,
        payload=payload,
        kind=kind,
        contact_id=contact_id,
        conversation_id=conversation_id,
        campaign_id=campaign_id,
        status=QUEUED,
        not_before=not_before,
        created_at=utcnow(),
    )
    s.add(message)
    await s.flush()
    return message.id


def _claimable(now: datetime, channel: str | None) -> ColumnElement[bool]:
    due = and_(Message.status == QUEUED, Message.not_before <= now)
    lease_expired = and_(Message.status == SENDING, Message.lease_until < now)
    condition = and_(Message.direction == OUT, or_(due, lease_expired))
    return condition if channel is None else and_(condition, Message.channel == channel)


async def claim(
    s: AsyncSession,
    *,
    channel: str | None,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[Message]:
    """Lease up to `limit` due outgoing messages (and ones whose lease ran out) to `worker`.

    Oldest first. The rows are 'sending' with attempts counted; no concurrent claimer gets them
    until the lease expires."""
    return await claims.claim(
        s,
        Message,
        Message.id,
        where=_claimable(now, channel),
        order_by=(Message.not_before, Message.id),
        limit=limit,
        values={
            "status": SENDING,
            "claimed_by": worker,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "attempts": Message.attempts + 1,
        },
        sort_key=lambda m: (m.not_before, m.id),
    )


def _held_by(message_id: int, worker: str) -> ColumnElement[bool]:
    return and_(Message.id == message_id, Message.claimed_by == worker, Message.status == SENDING)


async def mark_sent(
    s: AsyncSession,
    message_id: int,
    worker: str,
    *,
    provider_id: str | None,
    status: str = SENT,
    segments: int | None = None,
    encoding: str | None = None,
    now: datetime,
    clear_body: bool = False,
) -> bool:
    """Record a send by the worker holding the lease; False (nothing changed) for anyone else.

    `clear_body` drops body and payload once sent, for messages nobody needs to read again."""
    values: dict[str, Any] = {
        "status": status if status in PROGRESS_RANK and PROGRESS_RANK[status] >= 2 else SENT,
        "provider_id": provider_id,
        "segments": segments,
        "encoding": encoding,
        "sent_at": now,
        "status_at": now,
        "lease_until": None,
        "error": None,
    }
    if clear_body:
        values.update(body=None, payload={})
    result = await s.execute(
        update(Message)
        .where(_held_by(message_id, worker))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def release_for_retry(
    s: AsyncSession, message_id: int, worker: str, *, not_before: datetime, error: str
) -> bool:
    """Give a claimed message back to the queue, to be tried again from `not_before`."""
    result = await s.execute(
        update(Message)
        .where(_held_by(message_id, worker))
        .values(
            status=QUEUED,
            not_before=not_before,
            error=error,
            claimed_by=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def mark_failed(
    s: AsyncSession,
    message_id: int,
    worker: str,
    *,
    error: str,
    status: str = FAILED,
    now: datetime | None = None,
) -> bool:
    """End a claimed message as failed (or `cancelled`), by the worker holding the lease."""
    if status not in (FAILED, CANCELLED):
        raise ValueError(f"a message cannot end as {status!r}")
    result = await s.execute(
        update(Message)
        .where(_held_by(message_id, worker))
        .values(status=status, error=error, lease_until=None, status_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def apply_status(
    s: AsyncSession,
    channel: str,
    provider_id: str,
    status: str,
    error: str | None,
    now: datetime,
) -> Message | None:
    """Apply a provider delivery report; returns the message (None if unknown).

    Statuses only move forward (queued < sending < sent < delivered < read); undelivered and
    failed end a message unless it was already delivered or read. A report that would move it
    back is ignored: the message is returned unchanged."""
    where = and_(
        Message.channel == channel, Message.direction == OUT, Message.provider_id == provider_id
    )
    values: dict[str, Any] = {"status": status, "status_at": now}
    if status in FAILURES:
        values["error"] = error
    stmt = (
        update(Message)
        .where(where, Message.status.in_(_predecessors(status)))
        .values(**values)
        .returning(Message)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    changed = (await s.scalars(stmt)).first()
    if changed is not None:
        return changed
    current = select(Message).where(where).execution_options(populate_existing=True)
    return (await s.scalars(current)).first()


async def get(s: AsyncSession, message_id: int) -> Message | None:
    """A message by id."""
    return await s.get(Message, message_id)


async def cancel_queued_for_contact(
    s: AsyncSession, contact_id: int, *, keep_kinds: Collection[str] = ("opt_out",)
) -> int:
    """Cancel every queued outgoing message to a contact (opt-out); returns how many.

    Kinds in `keep_kinds` (the opt-out confirmation itself) stay queued. Messages already being
    sent cannot be recalled."""
    result = await s.execute(
        update(Message)
        .where(
            Message.contact_id == contact_id,
            Message.direction == OUT,
            Message.status == QUEUED,
            Message.kind.not_in(list(keep_kinds)),
        )
        .values(status=CANCELLED, error="cancelled: contact opted out", status_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def chat_history(
    s: AsyncSession,
    channel: str,
    address_key: str,
    after_id: int,
    limit: int,
    now: datetime,
) -> list[Message]:
    """Both sides of a chat with id above `after_id`, oldest first: what went to `address_key`
    and is due by `now` (a message held for quiet hours shows when it is due), and what came from
    it (while its text is kept)."""
    stmt = (
        select(Message)
        .where(
            Message.channel == channel,
            Message.address_key == address_key,
            Message.id > after_id,
            or_(
                and_(
                    Message.direction == OUT,
                    Message.status.in_(list(VISIBLE)),
                    Message.not_before <= now,
                ),
                and_(
                    Message.direction == IN,
                    Message.body.is_not(None),
                    Message.body != "",
                ),
            ),
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))


async def for_conversation(s: AsyncSession, conversation_id: str) -> list[Message]:
    """Every message of a conversation, in order."""
    stmt = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    return list(await s.scalars(stmt))


async def scrub_due(s: AsyncSession, now: datetime, limit: int = 1000) -> int:
    """Clear messages whose `scrub_after` has passed and that are no longer in flight."""
    due = (
        select(Message.id)
        .where(
            Message.scrub_after.is_not(None),
            Message.scrub_after <= now,
            Message.status.not_in(PENDING),
        )
        .limit(limit)
    )
    ids = list(await s.scalars(due))
    if not ids:
        return 0
    await s.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(body=None, payload={}, scrub_after=None)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _changed(result: Any) -> bool:
    return _rowcount(result) > 0
