"""Statements written once in SQL (storage.raw): parameters, types, transactions and errors on
both databases."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError

from storage import repo_messages, repo_tasks, turns
from storage.db import Database
from storage.models import Contact, ContactAddress, DueTask, Message
from storage.raw import SQL, RawConnection, Script, Statement, date_of, datetime_of, json_of
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
    due = NOW + timedelta(microseconds=1)
    async with db.transaction() as s:
        raw = await RawConnection.of(s)
        queued, _ = await raw.run_all(
            [
                turns.enqueue(
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
                ),
                turns.schedule_task("k", "k:1", due, {"x": 1}, NOW),
            ]
        )
        row = queued.first()
        assert row is not None
        message_id = int(row[0])
    async with db.transaction() as s:
        message = await s.get(Message, message_id)
        assert message is not None
        assert (message.body, message.payload, message.not_before, message.status) == (
            "Hej 👋",
            {"buttons": [["a", "Ä"]], "n": None},
            due,
            "queued",
        )
        early = await repo_messages.claim(
            s, channel="sms", worker="w", now=NOW, lease_seconds=30, limit=10
        )
        assert early == []
        claimed = await repo_messages.claim(
            s, channel="sms", worker="w", now=due, lease_seconds=30, limit=10
        )
        assert [m.id for m in claimed] == [message_id]
        task = await repo_tasks.get_by_key(s, "k:1")
        assert task is not None and task.due_at == due and task.payload == {"x": 1}


@pytest.mark.parametrize("raw_first", [False, True])
async def test_raw_statements_roll_back_with_the_transaction(db: Database, raw_first: bool) -> None:
    """On PostgreSQL the raw connection begins the session's transaction itself; on SQLite
    with `raw_first` the first script sends BEGIN."""
    with pytest.raises(RuntimeError):
        async with db.transaction(raw_first=raw_first) as s:
            raw = await RawConnection.of(s)
            await turns.new_contact(
                raw,
                language="sv",
                channel="sms",
                address="+46700000003",
                address_key="key-3",
                message_id=0,
                now=NOW,
            )
            # The ORM sees the same transaction.
            assert len(list(await s.scalars(select(Contact)))) == 1
            raise RuntimeError("boom")
    async with db.transaction(read_only=True) as s:
        assert list(await s.scalars(select(Contact))) == []


async def test_a_raw_first_transaction_commits_and_holds_the_write_lock(db: Database) -> None:
    async with db.transaction(raw_first=True) as s:
        raw = await RawConnection.of(s)
        await raw.run_all([turns.schedule_task("k", "k:2", NOW, {}, NOW)])
        if db.dialect == "sqlite":
            # BEGIN IMMEDIATE was sent: another connection cannot begin writing now.
            path = make_url(db.url).database
            assert path is not None
            other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    async with db.transaction(read_only=True) as s:
        assert await repo_tasks.get_by_key(s, "k:2") is not None


async def test_pending_orm_changes_are_flushed_first(db: Database) -> None:
    async with db.transaction() as s:
        contact = Contact(language="en")
        s.add(contact)
        await s.flush()
        s.add(
            ContactAddress(
                contact_id=contact.id, channel="sms", address="+46700000002", address_key="key-2"
            )
        )
        raw = await RawConnection.of(s)
        found, active, message_id = await turns.receive(
            raw,
            channel="sms",
            address_key="key-2",
            provider_id="SM2",
            body="hej",
            payload={},
            received_at=NOW,
        )
        assert found is not None and found.id == contact.id and found.language == "en"
        assert active is None and message_id is not None


def _failing_script() -> Script[int]:
    yield Statement(
        SQL(
            "INSERT INTO due_tasks (kind, key, due_at, payload, status, attempts, "
            "created_at) VALUES ('k', 'k', :at, '{}', 'pending', 0, :at)"
        ),
        {"at": NOW},
    )
    yield Statement(SQL("INSERT INTO no_such_table (a) VALUES (:a)"), {"a": 1})
    return 1


async def test_a_failing_statement_fails_the_script_as_a_sqlalchemy_error(db: Database) -> None:
    with pytest.raises(DBAPIError):
        async with db.transaction() as s:
            raw = await RawConnection.of(s)
            await raw.run(_failing_script())
    async with db.transaction(read_only=True) as s:
        assert list(await s.scalars(select(DueTask))) == []


def _dependent_script() -> Script[tuple[int, int]]:
    created = (
        yield Statement(
            SQL(
                "INSERT INTO contacts (language, attributes, created_at, updated_at) "
                "VALUES (:lang, '{}', :at, :at) RETURNING id"
            ),
            {"lang": "ar", "at": NOW},
        )
    ).first()
    assert created is not None
    changed = yield Statement(
        SQL("UPDATE contacts SET language = :lang WHERE id = :id"), {"lang": "en", "id": created[0]}
    )
    return int(created[0]), changed.rowcount


async def test_a_script_uses_each_result_for_the_next_statement(db: Database) -> None:
    async with db.transaction() as s:
        raw = await RawConnection.of(s)
        contact_id, changed = await raw.run(_dependent_script())
    assert changed == 1
    async with db.transaction(read_only=True) as s:
        contact = await s.get(Contact, contact_id)
        assert contact is not None and contact.language == "en"


async def test_a_redelivered_inbound_message_is_not_stored_twice(db: Database) -> None:
    async with db.transaction() as s:
        raw = await RawConnection.of(s)
        fields: dict[str, Any] = {
            "channel": "sms",
            "address_key": "k",
            "provider_id": "SM1",
            "body": "hej",
            "payload": {},
            "received_at": NOW,
        }
        first = await turns.receive(raw, **fields)
        again = await turns.receive(raw, **fields)
    assert first == (None, None, first[2]) and first[2] is not None
    assert again == (None, None, None)
