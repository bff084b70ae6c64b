"""Statements written once in SQL (storage.raw): parameters, types, transactions and errors on
both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from storage import repo_messages, repo_tasks, turns
from storage.db import Database
from storage.models import Contact, DueTask, Message
from storage.raw import SQL, RawConnection, date_of, datetime_of, json_of
from tests.storage.conftest import NOW


def test_parameters_become_numbered_for_postgresql() -> None:
    sql = SQL("SELECT :a, x::jsonb, :b WHERE y = :a AND z = 'x:y'")
    assert sql.names == ("a", "b")
    assert sql.postgresql == "SELECT $1, x::jsonb, $2 WHERE y = $1 AND z = 'x:y'"
    assert sql.returns_rows
    assert not SQL("UPDATE t SET a = :a").returns_rows
    assert SQL("INSERT INTO t (a) VALUES (:a)\nRETURNING id").returns_rows


def test_the_two_forms_must_take_the_same_parameters() -> None:
    with pytest.raises(ValueError, match="different parameters"):
        SQL("SELECT :a", postgresql="SELECT :b")


def test_stored_values_read_back_from_either_driver() -> None:
    assert datetime_of("2026-03-02 09:30:00.000000") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    aware = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert datetime_of(aware) == aware and datetime_of(None) is None
    assert date_of("2026-03-02") == date(2026, 3, 2) and date_of(date(2026, 3, 2))
    assert json_of('{"a": [1]}') == {"a": [1]} and json_of({"a": 1}) == {"a": 1}


async def test_raw_rows_read_the_same_through_the_orm(db: Database) -> None:
    """Datetimes, JSON and NULLs written raw are what the ORM reads, and compare in SQL with
    what the ORM wrote (SQLite keeps datetimes as text in SQLAlchemy's format)."""
    due = NOW + timedelta(microseconds=0)
    async with db.transaction() as s:
        raw = await RawConnection.of(s)
        message_id = await turns.enqueue(
            raw,
            channel="sms",
            address="+46700000001",
            body="Hej 👋",
            payload={"buttons": [["a", "Ä"]], "n": None},
            kind="reply",
            contact_id=None,
            conversation_id=None,
            campaign_id=None,
            not_before=due,
            now=NOW,
        )
        await turns.schedule_task(raw, "k", "k:1", due, {"x": 1}, NOW)
    async with db.transaction() as s:
        message = await s.get(Message, message_id)
        assert message is not None
        assert (message.body, message.payload, message.not_before, message.status) == (
            "Hej 👋",
            {"buttons": [["a", "Ä"]], "n": None},
            due,
            "queued",
        )
        claimed = await repo_messages.claim(
            s, channel="sms", worker="w", now=due, lease_seconds=30, limit=10
        )
        assert [m.id for m in claimed] == [message_id]
        assert not await repo_messages.claim(
            s,
            channel="sms",
            worker="w",
            now=due - timedelta(microseconds=1),
            lease_seconds=30,
            limit=10,
        )
        task = await repo_tasks.get_by_key(s, "k:1")
        assert task is not None and task.due_at == due and task.payload == {"x": 1}


async def test_raw_statements_roll_back_with_the_transaction(db: Database) -> None:
    """On PostgreSQL the raw connection begins the session's transaction itself."""
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            raw = await RawConnection.of(s)
            await turns.create_contact(raw, "sv", NOW)
            raise RuntimeError("boom")
    async with db.transaction(read_only=True) as s:
        assert list(await s.scalars(select(Contact))) == []


async def test_pending_orm_changes_are_flushed_first(db: Database) -> None:
    async with db.transaction() as s:
        contact = Contact(language="en")
        s.add(contact)
        raw = await RawConnection.of(s)
        assert contact.id is not None
        await turns.add_address(raw, contact.id, "sms", "+46700000002", "key-2", NOW)
        found, active = await turns.find(raw, "sms", "key-2")
        assert found is not None and found.id == contact.id and found.language == "en"
        assert active is None


async def test_driver_errors_come_as_sqlalchemy_errors(db: Database) -> None:
    with pytest.raises(DBAPIError):
        async with db.transaction() as s:
            raw = await RawConnection.of(s)
            await raw.execute(SQL("INSERT INTO no_such_table (a) VALUES (:a)"), a=1)
    async with db.transaction(read_only=True) as s:
        assert list(await s.scalars(select(DueTask))) == []


async def test_a_redelivered_inbound_message_is_not_stored_twice(db: Database) -> None:
    async with db.transaction() as s:
        raw = await RawConnection.of(s)
        fields: dict[str, Any] = {
            "channel": "sms",
            "provider_id": "SM1",
            "contact_id": None,
            "conversation_id": None,
            "address_key": "k",
            "body": "hej",
            "payload": {},
            "received_at": NOW,
        }
        first = await turns.record_inbound(raw, **fields)
        again = await turns.record_inbound(raw, **fields)
    assert first is not None and again is None
