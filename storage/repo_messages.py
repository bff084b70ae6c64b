"""Messages in and out, as staff, the web chat, delivery reports and retention read and change them.

Why one module: the delivery-status rules (statuses only move forward) and the reads the web chat
and staff pages make of one table are kept together.

A turn's messages are written by the executor (storage.executor); the outbox's claims, outcomes
and leases by the dispatcher's writer jobs (storage.outbox). This module adds the staff-side
enqueue, delivery reports, cancelling, chat history and scrubbing."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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
