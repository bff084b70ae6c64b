"""The outbox's rows as the dispatcher changes them: claims, outcomes and leases, as writer jobs.

Every function here is synchronous over `storage.sqlexec.Exec`, so the dispatcher runs it on the
database's writer (storage.writer): on SQLite in the same group commit as the turns, one trip to
the writer thread for a whole claim or a whole batch of outcomes, with no second write lock for
turns to queue behind; on PostgreSQL in a transaction of its own.

A claim leases rows to one worker: PostgreSQL skips rows another transaction has locked
(`FOR UPDATE SKIP LOCKED` in the claim's subquery), SQLite's single writer makes the one
`UPDATE .. RETURNING` atomic. Every later change checks the lease holder, so a worker whose lease
ran out and was reclaimed cannot overwrite the new holder's work.

A queued outgoing row whose `status_at` is set has failed before: `status_at` is when its first
failed attempt was made, and the dispatcher's retry horizon counts from it.

Channel leases (`leases` row `outbox:<channel>`): one holder at a time, taken over by another
when the holder stops renewing."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import Base, Contact, Lease, Message
from storage.sqlexec import Exec, Row

OUT = "out"
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
CANCELLED = "cancelled"
_SENT_OR_LATER = ("sent", "delivered", "read")

_m = Base.metadata.tables[Message.__tablename__]
_leases = Base.metadata.tables[Lease.__tablename__]
_contacts = Base.metadata.tables[Contact.__tablename__]

_OUTGOING_COLUMNS = (
    _m.c.id,
    _m.c.channel,
    _m.c.address,
    _m.c.body,
    _m.c.payload,
    _m.c.kind,
    _m.c.contact_id,
    _m.c.attempts,
    _m.c.not_before,
    _m.c.created_at,
    _m.c.status_at,
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


@dataclass(frozen=True, slots=True)
class Failure:
    """A claimed message that ends without being sent: failed for good, or cancelled."""

    id: int
    error: str
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim took: the messages, oldest first, and which of their recipients have
    opted out since they were queued."""

    items: list[Outgoing]
    opted_out: set[int]


class Statements:
    """Every statement of the outbox, built once for one dialect."""

    def __init__(self, dialect: str) -> None:
        pg = dialect == "postgresql"
        dialect_insert = postgresql.insert if pg else sqlite.insert
        m = _m
        out = and_(m.c.direction == OUT, m.c.channel == bindparam("o_channel"))
        queued = and_(out, m.c.status == QUEUED, m.c.not_before <= bindparam("o_now"))
        expired = and_(out, m.c.status == SENDING, m.c.lease_until < bindparam("o_now"))
        self.due = [select(m.c.id).where(where).limit(1) for where in (expired, queued)]

        def claim(where: Any) -> Any:
            # Each walks ix_messages_outbox in order and stops at the limit instead of sorting
            # every outgoing row of the channel.
            candidates = (
                select(m.c.id).where(where).order_by(m.c.not_before, m.c.id).limit(bindparam("o_n"))
            )
            if pg:
                candidates = candidates.with_for_update(skip_locked=True)
            return (
                update(m)
                .where(m.c.id.in_(candidates.scalar_subquery()))
                .values(
                    status=SENDING,
                    claimed_by=bindparam("o_worker"),
                    lease_until=bindparam("o_until"),
                    attempts=m.c.attempts + 1,
                )
                .returning(*_OUTGOING_COLUMNS)
            )

        self.claims = [claim(expired), claim(queued)]
        mine = and_(
            m.c.direction == OUT,
            m.c.status == SENDING,
            m.c.channel == bindparam("o_channel"),
            m.c.claimed_by == bindparam("o_worker"),
        )
        self.opted_out = select(_contacts.c.id).where(
            _contacts.c.opted_out_at.is_not(None),
            _contacts.c.id.in_(select(m.c.contact_id).where(mine).scalar_subquery()),
        )
        # On PostgreSQL rows locked by another transaction (the same worker recording their
        # outcome right now) are skipped, never waited for: renewing many rows while the outcomes
        # of some are written could otherwise deadlock, and a row being recorded needs no lease.
        renewable = select(m.c.id).where(mine)
        if pg:
            renewable = renewable.with_for_update(skip_locked=True)
        self.renew = (
            update(m)
            .where(m.c.id.in_(renewable.scalar_subquery()))
            .values(lease_until=bindparam("o_until"))
        )
        held = and_(
            m.c.id == bindparam("m_id"),
            m.c.claimed_by == bindparam("o_worker"),
            m.c.status == SENDING,
        )
        sent: dict[str, Any] = {
            "status": bindparam("m_status"),
            "provider_id": bindparam("m_provider_id"),
            "segments": bindparam("m_segments"),
            "encoding": bindparam("m_encoding"),
            "sent_at": bindparam("o_now"),
            "status_at": bindparam("o_now"),
            "lease_until": None,
            "error": None,
        }
        # PostgreSQL: the rows of one record, locked in id order before any is changed (a
        # finishing turn locks its conversation's messages in the same order: storage.executor).
        self.lock_rows = (
            select(m.c.id)
            .where(m.c.id.in_(bindparam("o_ids", expanding=True)))
            .order_by(m.c.id)
            .with_for_update()
        )
        self.mark_sent = update(m).where(held).values(**sent)
        self.mark_sent_clear = update(m).where(held).values(**sent, body=None, payload={})
        self.release = (
            update(m)
            .where(held)
            .values(
                status=QUEUED,
                not_before=func.coalesce(
                    bindparam("r_not_before", type_=m.c.not_before.type), m.c.not_before
                ),
                error=func.coalesce(bindparam("r_error", type_=m.c.error.type), m.c.error),
                attempts=m.c.attempts - bindparam("r_uncount"),
                status_at=func.coalesce(
                    m.c.status_at, bindparam("r_failed_at", type_=m.c.status_at.type)
                ),
                claimed_by=None,
                lease_until=None,
            )
        )
        self.end = (
            update(m)
            .where(held)
            .values(
                status=bindparam("m_end"),
                error=bindparam("m_error"),
                lease_until=None,
                status_at=bindparam("o_now"),
            )
        )
        self.retry_now = (
            update(m)
            .where(
                m.c.direction == OUT,
                m.c.status == QUEUED,
                m.c.not_before > bindparam("o_now"),
                m.c.not_before <= bindparam("o_due_by"),
                m.c.channel == bindparam("o_channel"),
                m.c.status_at.is_not(None),
            )
            .values(not_before=bindparam("o_now"))
        )

        lease = _leases
        self.renew_lease = (
            update(lease)
            .where(
                lease.c.name == bindparam("l_name"),
                (lease.c.holder == bindparam("l_holder")) | (lease.c.until < bindparam("l_now")),
            )
            .values(holder=bindparam("l_holder"), until=bindparam("l_until"))
        )
        self.take_lease = dialect_insert(lease).on_conflict_do_nothing(
            index_elements=[lease.c.name]
        )
        self.give_back_lease = delete(lease).where(
            lease.c.holder == bindparam("l_holder"), lease.c.name == bindparam("l_name")
        )
        self.give_back_all = delete(lease).where(lease.c.holder == bindparam("l_holder"))
        self.lease_holder = select(lease.c.holder, lease.c.until).where(
            lease.c.name == bindparam("l_name")
        )


@cache
def statements(dialect: str) -> Statements:
    """The statements for "sqlite" or "postgresql" (built on first use)."""
    return Statements(dialect)


# -- claiming -------------------------------------------------------------------------------------


def due(x: Exec, channel: str, now: datetime) -> bool:
    """Whether anything on `channel` is due: queued for now, or left by a sender whose lease ran
    out."""
    st = statements(x.dialect)
    return any(x.rows(stmt, {"o_channel": channel, "o_now": now}) for stmt in st.due)


def claim(
    x: Exec, *, channel: str, worker: str, now: datetime, until: datetime, limit: int
) -> Claim:
    """Lease up to `limit` due messages on `channel` to `worker` until `until`, oldest first:
    those whose lease ran out (a sender died), then the queued ones; with the recipients among
    everything `worker` holds on the channel who have opted out."""
    st = statements(x.dialect)
    rows: list[Row] = []
    for stmt in st.claims:
        if len(rows) >= limit:
            break
        rows += x.rows(
            stmt,
            {
                "o_channel": channel,
                "o_now": now,
                "o_n": limit - len(rows),
                "o_worker": worker,
                "o_until": until,
            },
        )
    items = [_outgoing(r) for r in rows]
    items.sort(key=lambda i: (i.not_before, i.id))
    opted_out: set[int] = set()
    if any(i.contact_id is not None for i in items):
        found = x.rows(st.opted_out, {"o_channel": channel, "o_worker": worker})
        opted_out = {int(r["id"]) for r in found}
    return Claim(items, opted_out)


def _outgoing(r: Row) -> Outgoing:
    return Outgoing(
        id=int(r["id"]),
        channel=r["channel"],
        address=r["address"] or "",
        body=r["body"] or "",
        payload=r["payload"] or {},
        kind=r["kind"],
        contact_id=r["contact_id"],
        attempts=int(r["attempts"]),
        not_before=r["not_before"],
        created_at=r["created_at"],
        retrying_since=r["status_at"],
    )


def renew(x: Exec, worker: str, channel: str, until: datetime) -> int:
    """Extend the lease on every message `worker` is sending on `channel`; returns how many."""
    st = statements(x.dialect)
    return x.run(st.renew, {"o_channel": channel, "o_worker": worker, "o_until": until})


# -- outcomes -------------------------------------------------------------------------------------


def record(
    x: Exec,
    worker: str,
    *,
    now: datetime,
    sent: Sequence[SentMark] = (),
    releases: Sequence[Release] = (),
    failures: Sequence[Failure] = (),
) -> None:
    """Write what became of claimed messages, each statement once for many rows. Rows whose
    lease `worker` no longer holds are left alone."""
    st = statements(x.dialect)
    if x.dialect == "postgresql":
        ids = sorted({o.id for group in (sent, releases, failures) for o in group})
        if ids:
            x.rows(st.lock_rows, {"o_ids": ids})
    for clear_body in (False, True):
        group = [s for s in sent if s.clear_body is clear_body]
        if group:
            x.many(
                st.mark_sent_clear if clear_body else st.mark_sent,
                [
                    {
                        "m_id": s.id,
                        "o_worker": worker,
                        "o_now": now,
                        "m_status": s.status if s.status in _SENT_OR_LATER else SENT,
                        "m_provider_id": s.provider_id,
                        "m_segments": s.segments,
                        "m_encoding": s.encoding,
                    }
                    for s in group
                ],
            )
    if releases:
        x.many(
            st.release,
            [
                {
                    "m_id": r.id,
                    "o_worker": worker,
                    "r_not_before": r.not_before,
                    "r_error": r.error,
                    "r_uncount": 0 if r.counted else 1,
                    "r_failed_at": r.failed_at,
                }
                for r in releases
            ],
        )
    if failures:
        x.many(
            st.end,
            [
                {
                    "m_id": f.id,
                    "o_worker": worker,
                    "o_now": now,
                    "m_end": CANCELLED if f.cancelled else FAILED,
                    "m_error": f.error,
                }
                for f in failures
            ],
        )


def retry_now(x: Exec, channel: str, now: datetime, *, due_by: datetime) -> int:
    """Bring forward the messages on `channel` that failed before and wait for a retry due by
    `due_by` (the provider answers again: no need to wait out their backoff). Messages held far
    ahead (a paused campaign) are not touched. Returns how many."""
    st = statements(x.dialect)
    return x.run(st.retry_now, {"o_channel": channel, "o_now": now, "o_due_by": due_by})


# -- channel leases -------------------------------------------------------------------------------


def acquire_lease(x: Exec, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take or renew the lease `name` until `until`; False while someone else holds it.

    An UPDATE of the row if `holder` has it or it ran out, else an INSERT that does nothing if
    the row is there: under PostgreSQL's row lock (a concurrent UPDATE re-checks the holder once
    the first commits) and SQLite's write lock, two processes never both get it."""
    st = statements(x.dialect)
    params = {"l_name": name, "l_holder": holder, "l_now": now, "l_until": until}
    if x.run(st.renew_lease, params):
        return True
    x.run(st.take_lease, {"name": name, "holder": holder, "until": until})
    # Ours now only if the row was not there: had we held it, the UPDATE would have matched.
    found = x.rows(st.lease_holder, {"l_name": name})
    return bool(found) and found[0]["holder"] == holder


def release_leases(x: Exec, holder: str, names: Collection[str] | None = None) -> None:
    """Give up these leases (all of them with None) if `holder` has them, so another process can
    take over at once."""
    st = statements(x.dialect)
    if names is None:
        x.run(st.give_back_all, {"l_holder": holder})
        return
    for name in names:
        x.run(st.give_back_lease, {"l_holder": holder, "l_name": name})


__all__: Sequence[str] = (
    "Claim",
    "Failure",
    "Outgoing",
    "Release",
    "SentMark",
    "acquire_lease",
    "claim",
    "due",
    "record",
    "release_leases",
    "renew",
    "retry_now",
    "statements",
)
