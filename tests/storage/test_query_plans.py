"""The turn statements find their rows by the narrowest index on SQLite.

A statement on one conversation's messages that also filters on direction and status could be
planned on the outbox index (direction, status, not_before): then every finishing turn walks
every queued outbound message of every person. Found by profiling the inbound benchmark, where
that one UPDATE took a third of the writer's time. The plan of every such statement is checked
here."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import cast

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from storage import outbox
from storage.executor import Statements


def _stored(value: object) -> object:
    if value is None:
        return "x"
    return json.dumps(value) if isinstance(value, dict | list) else value


KEYS = {
    re.compile(r"\bmessages\.conversation_id = \?"): "ix_messages_conversation",
    re.compile(r"\bmessages\.contact_id = \?"): "ix_messages_contact",
}


def busy_outbox(sqlite_template: Path, tmp_path: Path) -> Path:
    """A database whose outbox holds 10,000 queued messages of 2,000 conversations: with data
    in the tables SQLite plans differently than on an empty schema."""
    path = tmp_path / "busy.db"
    shutil.copyfile(sqlite_template, path)
    conversations = [str(uuid.uuid4()) for _ in range(2000)]
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO messages (direction, channel, status, conversation_id, kind, attempts, "
            "payload, created_at, not_before) VALUES ('out', 'sms', 'queued', ?, 'question', 0, "
            "'{}', '2026-01-01', '2026-01-01')",
            [(conversations[n % 2000],) for n in range(10_000)],
        )
    return path


def test_statements_on_one_persons_messages_use_that_persons_index(
    sqlite_template: Path, tmp_path: Path
) -> None:
    dialect = SQLiteDialect_pysqlite(paramstyle="qmark")
    statements = {
        name: value
        for name, value in vars(Statements("sqlite")).items()
        if isinstance(value, ClauseElement)
    }
    checked = []
    with sqlite3.connect(busy_outbox(sqlite_template, tmp_path)) as conn:
        for name, stmt in statements.items():
            compiled = stmt.compile(dialect=dialect)
            sql = str(compiled)
            wanted = [index for key, index in KEYS.items() if key.search(sql)]
            if not wanted:
                continue
            # The statement's own values (direction, status) and a stand-in for the others:
            # SQLite plans on the values it is given.
            values = compiled.params
            params = [
                _stored(values.get(key)) for key in cast(SQLCompiler, compiled).positiontup or ()
            ]
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            if "messages" in plan:
                checked.append(name)
                assert "ix_messages_outbox" not in plan, (name, plan)
                assert any(index in plan for index in wanted), (name, plan)
    assert {"scrub_later", "clear_messages", "pending_out", "cancel_queued"} <= set(checked)


def test_a_channels_sender_reads_only_its_own_channels_rows(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """The outbox index leads with the channel (migration 0009): the web chat's sender asking
    "anything due?" while 10,000 SMS wait must not walk them."""
    dialect = SQLiteDialect_pysqlite(paramstyle="named")
    st = outbox.statements("sqlite")
    checked = {
        "due": st.due,
        "claims": st.claims,
        "renew": [st.renew],
        "opted_out": [st.opted_out],
        "retry_now": [st.retry_now],
    }
    with sqlite3.connect(busy_outbox(sqlite_template, tmp_path)) as conn:
        for name, stmts in checked.items():
            for stmt in stmts:
                sql = str(stmt.compile(dialect=dialect))
                params = {key: "webchat" for key in re.findall(r":(\w+)", sql)}
                plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                assert "ix_messages_outbox (direction=? AND channel=? AND status=?" in plan, (
                    name,
                    plan,
                )


def test_scrubbing_reads_only_the_rows_waiting_for_it(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """`ix_messages_scrub_after` is partial (migration 0009): only rows with a `scrub_after` have
    an entry, and the scrub's query still finds them through it."""
    # storage.repo_messages.scrub_due's query.
    sql = (
        "SELECT id FROM messages WHERE scrub_after IS NOT NULL AND scrub_after <= :now "
        "AND status NOT IN ('queued', 'sending') LIMIT 1000"
    )
    with sqlite3.connect(busy_outbox(sqlite_template, tmp_path)) as conn:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", {"now": "x"}))
        assert "ix_messages_scrub_after" in plan, plan
        partial = {row[1]: row[4] for row in conn.execute("PRAGMA index_list(messages)")}
        assert partial["ix_messages_scrub_after"] == 1, "an entry only for rows to scrub"


def test_a_turns_first_read_finds_the_sender_and_conversation_by_their_indexes(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """`sender_active` (SQLite): the sender by channel and address key, their active
    conversation by (contact, status); no table is scanned."""
    dialect = SQLiteDialect_pysqlite(paramstyle="named")
    sql = str(Statements("sqlite").sender_active.compile(dialect=dialect))
    params = {key: "x" for key in re.findall(r":(\w+)", sql)}
    with sqlite3.connect(busy_outbox(sqlite_template, tmp_path)) as conn:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "SCAN" not in plan, plan
    assert "contact_addresses USING INDEX" in plan, plan
    assert "conversations USING INDEX ix_conversations_contact_status" in plan, plan
