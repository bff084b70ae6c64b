"""Messages in and out. Outgoing rows are the transactional outbox the dispatcher drains.

Why one module: every statement on the messages table is here, so the lease rules below are kept in
one place.

A claim leases rows to one worker: PostgreSQL locks them with `FOR UPDATE SKIP LOCKED`, SQLite's
single writer makes one `UPDATE .. RETURNING` atomic. Every later change checks the lease holder,
so a worker whose lease ran out and was reclaimed cannot overwrite the new holder's work.

The dispatcher's functions work on many rows at once (`claim_outgoing`, `mark_sent_many`,
`release_many`, `renew_leases`): one transaction records the outcomes of many sends.

A queued outgoing row whose `status_at` is set has failed before: `status_at` is when its first
failed attempt was made, and the dispatcher's retry horizon counts from it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import claims
from storage.db import dialect_name
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed outgoing message: what sending it needs, as a plain value."""

    id: int
    channel: str
    address: str
    body: str
    payload: Mapping[str, Any]
    kind: str
    contact_id: int | None
    attempts: int
    """Counted attempts, this one included."""
    not_before: datetime
    created_at: datetime
    retrying_since: datetime | None
    """When its first failed attempt was made; None while no attempt has failed."""


_TABLE = cast(Table, Message.__table__)
_OUTGOING_COLUMNS = (
    _TABLE.c.id,
    _TABLE.c.channel,
    _TABLE.c.address,
    _TABLE.c.body,
    _TABLE.c.payload,
    _TABLE.c.kind,
    _TABLE.c.contact_id,
    _TABLE.c.attempts,
    _TABLE.c.not_before,
    _TABLE.c.created_at,
    _TABLE.c.status_at,
)


async def claim_outgoing(
    s: AsyncSession,
    *,
    channel: str,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> list[Outgoing]:
    """`claim` for the dispatcher: up to `limit` due messages on `channel` as `Outgoing` values,
    oldest first: those whose lease ran out (a sender died), then the queued ones.

    Two claims rather than one with an OR, so each walks `ix_messages_outbox` in order and stops
    at `limit` instead of sorting every outgoing row of the channel."""
    values = {
        "status": SENDING,
        "claimed_by": worker,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "attempts": _TABLE.c.attempts + 1,
    }
    out = and_(_TABLE.c.direction == OUT, _TABLE.c.channel == channel)
    expired = and_(out, _TABLE.c.status == SENDING, _TABLE.c.lease_until < now)
    due = and_(out, _TABLE.c.status == QUEUED, _TABLE.c.not_before <= now)
    rows: list[Row[Any]] = []
    for where in (expired, due):
        if len(rows) >= limit:
            break
        rows += await claims.claim_columns(
            s,
            _TABLE,
            _TABLE.c.id,
            where=where,
            order_by=(_TABLE.c.not_before, _TABLE.c.id),
            limit=limit - len(rows),
            values=values,
            returning=_OUTGOING_COLUMNS,
        )
    items = [
        Outgoing(
            id=r.id,
            channel=r.channel,
            address=r.address or "",
            body=r.body or "",
            payload=r.payload or {},
            kind=r.kind,
            contact_id=r.contact_id,
            attempts=r.attempts,
            not_before=r.not_before,
            created_at=r.created_at,
            retrying_since=r.status_at,
        )
        for r in rows
    ]
    items.sort(key=lambda m: (m.not_before, m.id))
    return items


async def due_on(s: AsyncSession, channel: str, now: datetime) -> bool:
    """Whether anything on `channel` is due: queued for now, or left by a sender whose lease
    ran out. Reads only, so an idle sender need not open a write transaction to find out."""
    out = and_(_TABLE.c.direction == OUT, _TABLE.c.channel == channel)
    for where in (
        and_(out, _TABLE.c.status == QUEUED, _TABLE.c.not_before <= now),
        and_(out, _TABLE.c.status == SENDING, _TABLE.c.lease_until < now),
    ):
        if await s.scalar(select(_TABLE.c.id).where(where).limit(1)) is not None:
            return True
    return False


@dataclass(frozen=True, slots=True)
class SentMark:
    """What the provider said about one message it accepted."""

    id: int
    provider_id: str | None
    status: str = SENT
    segments: int | None = None
    encoding: str | None = None
    clear_body: bool = False
    """Drop body and payload: nobody needs to read this message again (a button's ack)."""


async def mark_sent_many(
    s: AsyncSession, worker: str, marks: Sequence[SentMark], now: datetime
) -> None:
    """`mark_sent` for many messages in one statement per shape (executemany: the drivers do not
    all count the rows changed). Rows whose lease `worker` no longer holds are left alone."""
    for clear_body in (False, True):
        group = [m for m in marks if m.clear_body is clear_body]
        if not group:
            continue
        values: dict[str, Any] = {
            "status": bindparam("m_status"),
            "provider_id": bindparam("m_provider_id"),
            "segments": bindparam("m_segments"),
            "encoding": bindparam("m_encoding"),
            "sent_at": now,
            "status_at": now,
            "lease_until": None,
            "error": None,
        }
        if clear_body:
            values.update(body=None, payload={})
        stmt = (
            update(_TABLE)
            .where(
                _TABLE.c.id == bindparam("m_id"),
                _TABLE.c.claimed_by == worker,
                _TABLE.c.status == SENDING,
            )
            .values(**values)
        )
        await s.execute(
            stmt,
            [
                {
                    "m_id": m.id,
                    "m_status": _sent_status(m.status),
                    "m_provider_id": m.provider_id,
                    "m_segments": m.segments,
                    "m_encoding": m.encoding,
                }
                for m in group
            ],
        )


def _sent_status(status: str) -> str:
    return status if status in PROGRESS_RANK and PROGRESS_RANK[status] >= 2 else SENT


@dataclass(frozen=True, slots=True)
class Release:
    """A claimed message given back to the queue."""

    id: int
    not_before: datetime | None
    """When it may be tried again; None keeps its current `not_before`."""
    error: str | None = None
    """Why (kept in `error`); None keeps the previous error."""
    counted: bool = True
    """False: this claim does not count as an attempt (it was deferred, or the provider asked
    us to wait with Retry-After)."""
    failed_at: datetime | None = None
    """When the attempt failed: kept as `status_at` if no earlier attempt had failed."""


async def release_many(s: AsyncSession, worker: str, releases: Sequence[Release]) -> None:
    """Give claimed messages back to the queue in one statement (executemany: the drivers do not
    all count the rows changed). Rows whose lease `worker` no longer holds are left alone."""
    if not releases:
        return
    stmt = (
        update(_TABLE)
        .where(
            _TABLE.c.id == bindparam("r_id"),
            _TABLE.c.claimed_by == worker,
            _TABLE.c.status == SENDING,
        )
        .values(
            status=QUEUED,
            not_before=func.coalesce(
                bindparam("r_not_before", type_=_TABLE.c.not_before.type), _TABLE.c.not_before
            ),
            error=func.coalesce(bindparam("r_error", type_=_TABLE.c.error.type), _TABLE.c.error),
            attempts=_TABLE.c.attempts - bindparam("r_uncount"),
            status_at=func.coalesce(
                _TABLE.c.status_at, bindparam("r_failed_at", type_=_TABLE.c.status_at.type)
            ),
            claimed_by=None,
            lease_until=None,
        )
    )
    await s.execute(
        stmt,
        [
            {
                "r_id": r.id,
                "r_not_before": r.not_before,
                "r_error": r.error,
                "r_uncount": 0 if r.counted else 1,
                "r_failed_at": r.failed_at,
            }
            for r in releases
        ],
    )


async def retry_now(s: AsyncSession, channel: str, now: datetime, *, due_by: datetime) -> int:
    """Bring forward the messages on `channel` that failed before and wait for a retry due by
    `due_by` (the provider answers again: no need to wait out their backoff). Messages held far
    ahead (a paused campaign) are not touched. Returns how many."""
    result = await s.execute(
        update(_TABLE)
        .where(
            _TABLE.c.direction == OUT,
            _TABLE.c.status == QUEUED,
            _TABLE.c.not_before > now,
            _TABLE.c.not_before <= due_by,
            _TABLE.c.channel == channel,
            _TABLE.c.status_at.is_not(None),
        )
        .values(not_before=now)
    )
    return _rowcount(result)


async def renew_leases(s: AsyncSession, worker: str, channel: str, until: datetime) -> int:
    """Extend the lease on every message `worker` is sending on `channel`; returns how many.

    On PostgreSQL rows locked by another transaction (the same worker recording their outcome
    right now) are skipped, never waited for: renewing many rows while the outcomes of some are
    written could otherwise deadlock, and a row being recorded needs no lease any more."""
    mine = and_(
        _TABLE.c.direction == OUT,
        _TABLE.c.status == SENDING,
        _TABLE.c.channel == channel,
        _TABLE.c.claimed_by == worker,
    )
    if dialect_name(s) == "postgresql":
        ids = select(_TABLE.c.id).where(mine).with_for_update(skip_locked=True)
        mine = _TABLE.c.id.in_(ids.scalar_subquery())
    result = await s.execute(update(_TABLE).where(mine).values(lease_until=until))
    return _rowcount(result)


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
