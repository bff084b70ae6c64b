"""The turn writer and executor: group commit, one failing turn alone, sealed addresses, plans."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import make_url, select, text

from storage import executor, repo_contacts
from storage.db import Database
from storage.models import Contact, ContactAddress, Message
from storage.plan import (
    NEW_CONTACT,
    CancelQueued,
    Enqueue,
    FinishConversation,
    LinkInbound,
    NewContact,
    SaveState,
    SetLanguage,
    SetOptedOut,
    StartConversation,
    TurnPlan,
    TurnResult,
)
from storage.sealing import PREFIX, Sealer, SealingError
from storage.sqlexec import Exec, SqliteExec
from storage.writer import SqliteWriter

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PHONE = "+46701234567"


def newcomer(n: int) -> TurnPlan:
    """A newcomer reached by SMS, with one reply queued."""
    phone = f"+4670{n:07d}"
    return TurnPlan(
        (
            NewContact("sv", "sms", phone, f"key-{n}"),
            SetLanguage(NEW_CONTACT, "en"),
            Enqueue(
                channel="sms",
                address=phone,
                address_key=f"key-{n}",
                body=f"hello {n}",
                payload={"kind": "info"},
                kind="reply",
                contact_id=NEW_CONTACT,
                conversation_id=None,
                campaign_id=None,
                not_before=NOW,
            ),
        ),
        "test",
    )


async def test_turns_that_arrive_together_commit_together(db: Database) -> None:
    def writer(n: int) -> Callable[[Exec], TurnResult]:
        return lambda x: executor.write(x, newcomer(n), now=NOW)

    results = await asyncio.gather(*(db.turns.run(writer(n)) for n in range(40)))
    assert all(len(r.reply_ids) == 1 for r in results)
    async with db.transaction(read_only=True) as s:
        contacts = list(await s.scalars(select(Contact)))
    assert len(contacts) == 40 and {c.language for c in contacts} == {"en"}
    if isinstance(db.turns, SqliteWriter):
        assert db.turns.batches < 40, "turns queued while a batch was written share a commit"


async def test_a_failing_turn_fails_alone(db: Database) -> None:
    def broken(x: Exec) -> None:
        executor.write(x, newcomer(1), now=NOW)
        raise RuntimeError("a bug in one turn")

    outcomes = await asyncio.gather(
        db.turns.run(lambda x: executor.write(x, newcomer(0), now=NOW)),
        db.turns.run(broken),
        db.turns.run(lambda x: executor.write(x, newcomer(2), now=NOW)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RuntimeError)
    async with db.transaction(read_only=True) as s:
        keys = set(await s.scalars(select(ContactAddress.address_key)))
    assert keys == {"key-0", "key-2"}, "the failing turn's writes are rolled back, no others"


async def test_a_turn_inside_a_write_transaction_is_refused(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL turns have their own transactions")
    async with db.transaction() as s:
        await repo_contacts.create(s)
        with pytest.raises(RuntimeError, match="inside a write transaction"):
            await db.turns.run(lambda x: executor.write(x, newcomer(0), now=NOW))


async def test_addresses_are_sealed_at_rest_and_read_back_plain(db: Database) -> None:
    await db.turns.run(lambda x: executor.write(x, newcomer(5), now=NOW))
    phone = "+46700000005"
    async with db.engine.connect() as conn:
        stored = [
            row[0]
            for row in await conn.execute(
                text("SELECT address FROM contact_addresses UNION ALL SELECT address FROM messages")
            )
        ]
    assert stored and all(value.startswith(PREFIX) and phone not in value for value in stored)
    assert len(set(stored)) == len(stored), "a fresh nonce for every value"
    async with db.transaction(read_only=True) as s:
        address = (await s.scalars(select(ContactAddress))).one()
        message = (await s.scalars(select(Message))).one()
    assert address.address == phone and message.address == phone


async def test_a_database_opened_without_the_key_refuses_addresses(database_url: str) -> None:
    keyed = Database(database_url, sealer=Sealer(bytes(32)))
    try:
        await keyed.turns.run(lambda x: executor.write(x, newcomer(1), now=NOW))
    finally:
        await keyed.dispose()
    for sealer in (None, Sealer(bytes(range(32)))):
        other = Database(database_url, sealer=sealer)
        try:
            with pytest.raises(SealingError):
                async with other.transaction(read_only=True) as s:
                    (await s.scalars(select(ContactAddress))).one()
        finally:
            await other.dispose()


async def test_opting_out_cancels_queued_messages_but_the_confirmation(db: Database) -> None:
    first = await db.turns.run(lambda x: executor.write(x, newcomer(3), now=NOW))
    contact_id = first.contact_id
    assert contact_id is not None
    later = NOW + timedelta(minutes=1)
    confirmation = Enqueue(
        channel="sms",
        address="+46700000003",
        address_key="key-3",
        body="You will get no more messages",
        payload={},
        kind="opt_out",
        contact_id=contact_id,
        conversation_id=None,
        campaign_id=None,
        not_before=later,
    )
    plan = TurnPlan(
        (
            SetOptedOut(contact_id, later),
            CancelQueued(contact_id, "cancelled: contact opted out"),
            LinkInbound(contact_id, None),
            confirmation,
        )
    )
    await db.turns.run(lambda x: executor.write(x, plan, now=later))
    async with db.transaction(read_only=True) as s:
        contact = await s.get(Contact, contact_id)
        statuses = sorted((m.kind, m.status) for m in await s.scalars(select(Message)))
    assert contact is not None and contact.opted_out_at == later
    assert statuses == [("opt_out", "queued"), ("reply", "cancelled")]


async def test_while_another_process_writes_the_loop_keeps_running(db: Database) -> None:
    """A quick batch asks for SQLite's write lock without waiting; while another connection (a
    command run against the same file) holds it, the batch waits on the writer's thread and the
    event loop keeps serving."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL turns have their own transactions")
    path = make_url(db.url).database
    assert path
    await db.turns.run(lambda x: executor.write(x, newcomer(0), now=NOW), quick=True)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        turn = asyncio.ensure_future(
            db.turns.run(lambda x: executor.write(x, newcomer(1), now=NOW), quick=True)
        )
        loop = asyncio.get_running_loop()
        for _ in range(5):
            started = loop.time()
            await asyncio.sleep(0.05)
            assert loop.time() - started < 0.5, "the loop was blocked"
        assert not turn.done(), "written while another connection held the write lock"
    finally:
        other.execute("COMMIT")
        other.close()
    result = await asyncio.wait_for(turn, 10)
    assert result.contact_id is not None
    assert await db.turns.run(lambda x: executor.write(x, newcomer(2), now=NOW), quick=True)


async def test_the_savepoint_journal_of_each_turn_stays_in_memory(db: Database) -> None:
    """Every turn runs in a savepoint; with SQLite's default temp_store its journal spills to a
    temporary file, a write system call per page the turn changes (a tenth of a busy service's
    time). The writer's connection keeps it in memory."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL turns have their own transactions")

    def temp_store(x: Exec) -> int:
        assert isinstance(x, SqliteExec)
        return int(x.connection.execute("PRAGMA temp_store").fetchone()[0])

    assert await db.turns.run(temp_store, quick=True) == 2  # MEMORY
    assert await db.turns.run(temp_store) == 2


async def test_an_insert_returns_the_new_rows_id_and_none_when_its_conflict_clause_skips_it(
    db: Database,
) -> None:
    """`Exec.insert`: lastrowid on SQLite (no RETURNING), RETURNING on PostgreSQL."""
    inbound = executor.Inbound("sms", "SM1", "key-1", "hej", {}, NOW)

    def record(provider_id: str) -> Callable[[Exec], int | None]:
        def job(x: Exec) -> int | None:
            facts = executor.load_inbound(
                x,
                executor.Inbound("sms", provider_id, "key-1", "hej", {}, NOW),
                now=NOW,
                closed_grace=timedelta(hours=1),
                period="2026",
            )
            return None if facts is None else facts.message_id

        return job

    first = await db.turns.run(record(inbound.provider_id), quick=True)
    again = await db.turns.run(record(inbound.provider_id), quick=True)
    other = await db.turns.run(record("SM2"), quick=True)
    assert isinstance(first, int) and isinstance(other, int) and other > first
    assert again is None, "a redelivery inserts nothing"
    async with db.transaction(read_only=True) as s:
        stored = (await s.scalars(select(Message.id).order_by(Message.id))).all()
    assert stored == [first, other]


def test_a_new_rows_first_values_are_written_with_it_not_after_it() -> None:
    """`executor.folded`: a newcomer's language and a new conversation's state go into the rows'
    inserts; a state saved after the conversation finished stays a step of its own."""
    start = StartConversation(
        id="c1",
        contact_id=NEW_CONTACT,
        survey_id="s",
        survey_version_id=1,
        campaign_id=None,
        followup_id=None,
        origin="public",
        channel="sms",
        state={"step": 0},
        expires_at=NOW,
        attributes={},
        respondent_id=None,
    )
    first = SaveState("c1", {"step": 1}, NOW + timedelta(days=1), "telegram")
    later = SaveState("c1", {"step": 2}, NOW + timedelta(days=2), "sms")
    finish = FinishConversation(
        "c1", "completed", {"step": 1}, True, None, None, None, "public", NEW_CONTACT, "s"
    )
    steps = (*newcomer(1).steps, start, first, finish, later)
    contact, reply, started, finished, saved = executor.folded(steps)
    assert isinstance(contact, NewContact) and contact.language == "en"
    assert isinstance(reply, Enqueue)
    assert started == StartConversation(
        **{
            **{f: getattr(start, f) for f in start.__slots__},
            "state": {"step": 1},
            "expires_at": NOW + timedelta(days=1),
            "channel": "telegram",
        }
    )
    assert (finished, saved) == (finish, later)
    other = SaveState("c2", {"step": 1}, NOW, "sms")
    assert executor.folded((SetLanguage(7, "ar"), other)) == [SetLanguage(7, "ar"), other]
