from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from storage import outbox, repo_contacts, repo_messages
from storage.db import Database
from storage.models import Message
from storage.outbox import Failure, Outgoing, Release, SentMark
from storage.sqlexec import AlchemyExec
from tests.conftest import TEST_SEALER
from tests.storage.conftest import NOW, record_inbound

LEASE = 60


async def _enqueue(
    db: Database,
    n: int,
    *,
    channel: str = "sms",
    at: datetime = NOW,
    contact_id: int | None = None,
    kind: str = "reply",
) -> list[int]:
    async with db.transaction() as s:
        return [
            await repo_messages.enqueue(
                s,
                channel=channel,
                address=f"+4670000{i:04d}",
                body=f"message {i}",
                payload={"buttons": []},
                kind=kind,
                contact_id=contact_id,
                conversation_id=None,
                campaign_id=None,
                not_before=at,
            )
            for i in range(n)
        ]


async def _claim(
    db: Database, worker: str, *, now: datetime = NOW, limit: int = 10, channel: str = "sms"
) -> list[Outgoing]:
    until = now + timedelta(seconds=LEASE)
    return await db.turns.run(
        lambda x: (
            outbox.claim(x, channel=channel, worker=worker, now=now, until=until, limit=limit).items
        )
    )


async def _record(db: Database, worker: str, now: datetime = NOW, **outcomes: Any) -> None:
    await db.turns.run(lambda x: outbox.record(x, worker, now=now, **outcomes))


async def _status(db: Database, message_id: int) -> Message:
    async with db.transaction() as s:
        message = await repo_messages.get(s, message_id)
    assert message is not None
    return message


async def test_inbound_dedupe_on_provider_id(db: Database) -> None:
    async def record(channel: str, provider_id: str) -> int | None:
        return await record_inbound(
            db,
            channel=channel,
            provider_id=provider_id,
            address_key="k" * 64,
            body="JA",
            payload={},
            received_at=NOW,
        )

    first = await record("sms", "SM1")
    assert first is not None
    assert await record("sms", "SM1") is None
    assert await record("telegram", "SM1") is not None, "ids are per channel"
    async with db.transaction() as s:
        stored = await repo_messages.get(s, first)
    assert stored is not None
    assert (stored.direction, stored.status, stored.body, stored.address) == (
        "in",
        "received",
        "JA",
        None,
    )


async def test_claim_takes_due_rows_oldest_first_and_leases_them(db: Database) -> None:
    early = await _enqueue(db, 2, at=NOW - timedelta(minutes=5))
    due = await _enqueue(db, 2, at=NOW)
    later = await _enqueue(db, 1, at=NOW + timedelta(seconds=1))
    await _enqueue(db, 1, channel="telegram")
    claimed = await _claim(db, "w1", limit=3)
    assert [m.id for m in claimed] == [*early, due[0]]
    assert {m.attempts for m in claimed} == {1}
    for m in claimed:
        row = await _status(db, m.id)
        assert (row.status, row.claimed_by, row.attempts, row.lease_until) == (
            "sending",
            "w1",
            1,
            NOW + timedelta(seconds=LEASE),
        )
    rest = await _claim(db, "w1", limit=10)
    assert [m.id for m in rest] == [due[1]], "not-yet-due and other channels stay queued"
    assert later[0] not in {m.id for m in rest}
    assert len(await _claim(db, "w1", channel="telegram")) == 1


async def test_concurrent_claimers_never_share_a_row(database_url: str) -> None:
    setup = Database(database_url, sealer=TEST_SEALER)
    ids = set(await _enqueue(setup, 300))
    databases = [Database(database_url, sealer=TEST_SEALER) for _ in range(2)]
    try:

        async def worker(name: str, db: Database) -> list[int]:
            got: list[int] = []
            while batch := await _claim(db, name, limit=7):
                got.extend(m.id for m in batch)
            return got

        results = await asyncio.gather(*(worker(f"w{i}", databases[i % 2]) for i in range(6)))
    finally:
        for d in databases:
            await d.dispose()
        await setup.dispose()
    counts = Counter(i for got in results for i in got)
    assert set(counts) == ids
    assert max(counts.values()) == 1, "a message was handed to two workers"
    assert sum(1 for got in results if got) >= 2, "the work was actually shared"


async def test_skip_locked_passes_over_rows_claimed_in_an_open_transaction(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite write transactions are serial: a second claimer waits instead")
    await _enqueue(db, 10)
    until = NOW + timedelta(seconds=LEASE)
    async with db.transaction() as s:
        first = await s.run_sync(
            lambda sync: (
                outbox.claim(
                    AlchemyExec(sync.connection()),
                    channel="sms",
                    worker="w1",
                    now=NOW,
                    until=until,
                    limit=4,
                ).items
            )
        )
        # Still uncommitted: a second claimer (another pooled connection) must neither wait for
        # it nor get the same rows.
        second = await asyncio.wait_for(_claim(db, "w2", limit=100), timeout=10)
    assert {m.id for m in first}.isdisjoint({m.id for m in second})
    assert len(first) + len(second) == 10


async def test_expired_lease_is_reclaimed(db: Database) -> None:
    [mid] = await _enqueue(db, 1)
    [first] = await _claim(db, "w1")
    assert await _claim(db, "w2", now=NOW + timedelta(seconds=LEASE)) == []
    [again] = await _claim(db, "w2", now=NOW + timedelta(seconds=LEASE + 1))
    assert (again.id, again.attempts) == (mid, 2)
    assert (await _status(db, mid)).claimed_by == "w2"
    await _record(db, "w1", NOW + timedelta(seconds=70), sent=[SentMark(mid, "SM-late")])
    assert (await _status(db, mid)).provider_id is None, (
        "the worker that lost its lease cannot record a send"
    )
    await _record(
        db, "w2", NOW + timedelta(seconds=71), sent=[SentMark(mid, "SM-ok", "sent", 2, "GSM-7")]
    )
    message = await _status(db, mid)
    assert (message.status, message.provider_id, message.segments, message.encoding) == (
        "sent",
        "SM-ok",
        2,
        "GSM-7",
    )
    assert message.lease_until is None and message.sent_at == NOW + timedelta(seconds=71)
    assert first.id == mid


async def test_only_the_lease_holder_changes_a_claimed_row(db: Database) -> None:
    [mid] = await _enqueue(db, 1)
    await _claim(db, "w1")
    retry_at = NOW + timedelta(minutes=1)
    await _record(
        db,
        "intruder",
        sent=[SentMark(mid, "x")],
        releases=[Release(mid, retry_at, "e")],
        failures=[Failure(mid, "e")],
    )
    intruded = await _status(db, mid)
    assert (intruded.status, intruded.claimed_by, intruded.error) == ("sending", "w1", None)
    await _record(db, "w1", releases=[Release(mid, retry_at, "429 too many requests")])
    message = await _status(db, mid)
    assert (message.status, message.claimed_by, message.not_before, message.error) == (
        "queued",
        None,
        retry_at,
        "429 too many requests",
    )
    assert await _claim(db, "w1", now=NOW) == []
    [again] = await _claim(db, "w1", now=retry_at)
    await _record(db, "w1", failures=[Failure(mid, "21211 invalid number")])
    await _record(db, "w1", sent=[SentMark(mid, "x")])
    message = await _status(db, mid)
    assert (message.status, message.error, again.attempts) == ("failed", "21211 invalid number", 2)


async def test_the_dispatchers_batch_functions_change_only_the_holders_rows(db: Database) -> None:
    ids = await _enqueue(db, 4)
    claimed = await _claim(db, "w1", limit=3)
    assert [m.id for m in claimed] == ids[:3] and {m.attempts for m in claimed} == {1}
    first, second, third = ids[:3]
    later, failed_at = NOW + timedelta(minutes=5), NOW + timedelta(seconds=1)
    assert await db.turns.run(lambda x: outbox.due(x, "sms", NOW))  # the fourth
    assert not await db.turns.run(lambda x: outbox.due(x, "telegram", NOW))
    assert await db.turns.run(lambda x: outbox.renew(x, "intruder", "sms", later)) == 0
    assert await db.turns.run(lambda x: outbox.renew(x, "w1", "sms", later)) == 3
    marks = [SentMark(first, "SM1", segments=1, encoding="GSM-7")]
    await _record(db, "intruder", sent=marks)
    assert (await _status(db, first)).status == "sending"
    await _record(db, "w1", sent=marks)
    releases = [
        Release(second, later, "HTTP 503", failed_at=failed_at),
        Release(third, None, counted=False),
    ]
    await _record(db, "intruder", releases=releases)
    assert (await _status(db, second)).status == "sending"
    await _record(db, "w1", releases=releases)
    sent, retried, deferred = [await _status(db, i) for i in (first, second, third)]
    assert (sent.status, sent.provider_id, sent.lease_until) == ("sent", "SM1", None)
    assert (retried.status, retried.not_before, retried.error, retried.attempts) == (
        "queued",
        later,
        "HTTP 503",
        1,
    )
    assert retried.status_at == failed_at, "when its first failed attempt was made"
    assert (deferred.status, deferred.not_before, deferred.attempts, deferred.status_at) == (
        "queued",
        NOW,
        0,
        None,
    ), "deferred without an attempt: nothing counted, nothing moved"
    due_by = NOW + timedelta(minutes=5)
    brought = await db.turns.run(lambda x: outbox.retry_now(x, "sms", NOW, due_by=due_by))
    assert brought == 1 and (await _status(db, second)).not_before == NOW


async def test_mark_sent_can_clear_the_body(db: Database) -> None:
    [mid] = await _enqueue(db, 1)
    await _claim(db, "w1")
    await _record(db, "w1", sent=[SentMark(mid, "t1", clear_body=True)])
    message = await _status(db, mid)
    assert (message.body, message.payload, message.status) == (None, {}, "sent")


STATUS_CASES = [
    # (status before the report, report, status after)
    ("sent", "delivered", "delivered"),
    ("sent", "read", "read"),
    ("delivered", "read", "read"),
    ("delivered", "sent", "delivered"),
    ("read", "delivered", "read"),
    ("sent", "sent", "sent"),
    ("sent", "failed", "failed"),
    ("sent", "undelivered", "undelivered"),
    ("delivered", "failed", "delivered"),
    ("read", "undelivered", "read"),
    ("failed", "delivered", "failed"),
    ("undelivered", "sent", "undelivered"),
    ("failed", "undelivered", "failed"),
]


@pytest.mark.parametrize(("before", "report", "after"), STATUS_CASES)
async def test_statuses_only_move_forward(
    db: Database, before: str, report: str, after: str
) -> None:
    [mid] = await _enqueue(db, 1)
    await _claim(db, "w1")
    await _record(db, "w1", sent=[SentMark(mid, "SM1")])
    async with db.transaction() as s:
        if before != "sent":
            await repo_messages.apply_status(s, "sms", "SM1", before, "e0", NOW)
    later = NOW + timedelta(seconds=5)
    async with db.transaction() as s:
        message = await repo_messages.apply_status(s, "sms", "SM1", report, "30003", later)
    assert message is not None and message.status == after
    stored = await _status(db, mid)
    assert stored.status == after
    if after == report and after != before:
        assert stored.status_at == later
        assert stored.error == ("30003" if after in ("failed", "undelivered") else None)


async def test_status_for_unknown_message_is_none(db: Database) -> None:
    async with db.transaction() as s:
        assert await repo_messages.apply_status(s, "sms", "SM-unknown", "sent", None, NOW) is None
        with pytest.raises(ValueError):
            await repo_messages.apply_status(s, "sms", "SM-unknown", "bogus", None, NOW)


async def test_cancel_queued_for_contact(db: Database) -> None:
    async with db.transaction() as s:
        contact = await repo_contacts.create(s)
        other = await repo_contacts.create(s)
    queued = await _enqueue(db, 3, contact_id=contact.id)
    [confirmation] = await _enqueue(db, 1, contact_id=contact.id, kind="opt_out")
    [others] = await _enqueue(db, 1, contact_id=other.id)
    [in_flight] = [m.id for m in await _claim(db, "w1", limit=1)]
    async with db.transaction() as s:
        assert await repo_messages.cancel_queued_for_contact(s, contact.id) == 2
    statuses = {mid: (await _status(db, mid)).status for mid in [*queued, confirmation, others]}
    assert statuses == {
        queued[0]: "sending",
        queued[1]: "cancelled",
        queued[2]: "cancelled",
        confirmation: "queued",
        others: "queued",
    }
    assert in_flight == queued[0]


async def test_chat_history_reads_one_chat_in_order(db: Database) -> None:
    async def put(address: str, at: datetime) -> int:
        async with db.transaction() as s:
            return await repo_messages.enqueue(
                s,
                channel="webchat",
                address=address,
                address_key=f"key-{address}",
                body=address,
                payload={},
                kind="reply",
                contact_id=None,
                conversation_id=None,
                campaign_id=None,
                not_before=at,
            )

    a1 = await put("tok-a", NOW)
    await put("tok-b", NOW)
    a2 = await put("tok-a", NOW)
    a3 = await put("tok-a", NOW + timedelta(hours=1))
    said = await record_inbound(
        db,
        channel="webchat",
        provider_id="tok-a:1",
        address_key="key-tok-a",
        body="hej",
        payload={},
        received_at=NOW,
    )

    async def history(after: int, limit: int, now: datetime) -> list[int]:
        async with db.transaction(read_only=True) as s:
            rows = await repo_messages.chat_history(s, "webchat", "key-tok-a", after, limit, now)
        return [m.id for m in rows]

    later = NOW + timedelta(hours=2)
    assert await history(0, 10, later) == [a1, a2, a3, said]
    assert await history(a1, 10, NOW) == [a2, said], "a held message shows when it is due"
    assert await history(0, 1, later) == [a1]


async def test_scrub_due_clears_in_flight_rows_later(db: Database) -> None:
    [mid] = await _enqueue(db, 1)
    async with db.transaction() as s:
        message = await repo_messages.get(s, mid)
        assert message is not None
        # What a finished anonymous conversation leaves on a reply still queued (executor).
        message.scrub_after = NOW + timedelta(minutes=15)
    assert (await _status(db, mid)).body == "message 0", "a queued reply is still sent"
    await _claim(db, "w1")
    await _record(db, "w1", sent=[SentMark(mid, "p")])
    async with db.transaction() as s:
        assert await repo_messages.scrub_due(s, NOW + timedelta(minutes=14)) == 0
        assert await repo_messages.scrub_due(s, NOW + timedelta(minutes=15)) == 1
    message = await _status(db, mid)
    assert (message.body, message.payload, message.scrub_after) == (None, {}, None)
    async with db.transaction() as s:
        rows = list(await s.scalars(select(Message.id).where(Message.body.is_not(None))))
    assert rows == []
