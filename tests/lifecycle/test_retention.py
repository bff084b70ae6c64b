"""Retention on the whole app (SQLite and PostgreSQL): what `report` counts is what `run` does,
in batches; running conversations, the outbox and released anonymous answers are left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.lifecycle import RETENTION_TASK, retention_report, run_retention
from storage import repo_lifecycle as rl
from storage.models import (
    Answer,
    AuditEntry,
    CaseEvent,
    Contact,
    Conversation,
    DueTask,
    Message,
    Respondent,
)
from tests.bot.harness import Harness
from tests.fakes.twilio_server import FakeTwilio
from tests.lifecycle.scenario import (
    OTHER_PHONE,
    OTHER_REF,
    REF,
    Story,
    api,
    person_did_everything,
    rows,
    say,
    service,
    today_at_noon,
)


@pytest.fixture
async def harness(database_url: str, twilio: FakeTwilio) -> AsyncIterator[Harness]:
    small_batches = {"BRUKARDIALOG__RETENTION__BATCH_SIZE": "2"}
    async with service(database_url, twilio, small_batches, today_at_noon()) as h:
        yield h


async def count(h: Harness, model: Any, *where: Any) -> int:
    async with h.runtime.db.transaction(read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def anonymous(h: Harness) -> list[tuple[object, ...]]:
    async with h.runtime.db.transaction(read_only=True) as s:
        result = await s.execute(
            select(Respondent.id, Answer.question_id, Answer.value)
            .join(Answer, Answer.respondent_id == Respondent.id)
            .where(Respondent.contact_id.is_(None))
            .order_by(Respondent.id)
        )
        return [tuple(r) for r in result.all()]


async def report_then_run(h: Harness) -> dict[str, int]:
    """The report's counts, checked to be exactly what the run then does."""
    before = {r.kind: r.rows for r in await retention_report(h.runtime)}
    assert {r.kind: r.rows for r in await retention_report(h.runtime)} == before  # changed nothing
    done = {r.kind: r.rows for r in await run_retention(h.runtime, actor="test")}
    assert done == before
    assert {r.kind: r.rows for r in await retention_report(h.runtime)} == dict.fromkeys(before, 0)
    return done


async def test_retention_keeps_what_is_still_needed(harness: Harness) -> None:
    h = harness
    await person_did_everything(h)
    # The daily task ran at startup's first poll and planned the next day.
    runs = await rows(h, AuditEntry, AuditEntry.action == "retention.run")
    assert [r.actor for r in runs] == ["retention"]
    tasks = await rows(h, DueTask, DueTask.kind == RETENTION_TASK)
    today = h.clock.now().astimezone(h.settings.schedule.tz).date()
    assert sorted((t.key, t.status) for t in tasks) == [
        (f"{RETENTION_TASK}:{today}", "done"),
        (f"{RETENTION_TASK}:{today + timedelta(days=1)}", "pending"),
    ]
    # Someone who never answers again, and someone in the middle of a conversation.
    assert (await api(h, "POST", "/contacts", {"contacts": [{"external_ref": "P-3"}]}))[0] == 200
    await say(h, Story(), OTHER_PHONE, "DIALOGT")
    running = (await rows(h, Conversation, Conversation.status == "active"))[0].id
    other = (await rows(h, Contact, Contact.external_ref == OTHER_REF))[0].id
    async with h.runtime.db.transaction() as s:
        s.add(
            Message(
                direction="out",
                channel="sms",
                contact_id=other,
                address=OTHER_PHONE,
                body="queued",
                kind="notice",
                status="queued",
                created_at=h.clock.now(),
                not_before=h.clock.now() + timedelta(days=3650),
            )
        )
    released = await anonymous(h)
    assert released
    running_messages = await count(h, Message, Message.conversation_id == running)
    assert running_messages >= 2

    # A year and a bit: texts and message rows go; people, events and the audit log stay.
    h.clock.advance(timedelta(days=400))
    done = await report_then_run(h)
    assert done[rl.TEXTS] > 0 and done[rl.INBOUND] > 0 and done[rl.OUTBOUND] > 0
    assert done[rl.CONTACTS] == done[rl.EVENTS] == done[rl.AUDIT] == 0
    assert await count(h, Message, Message.conversation_id == running) == running_messages
    assert await count(h, Message, Message.conversation_id == running, Message.body.is_(None)) == 0
    assert await count(h, Message, Message.status == "queued", Message.body == "queued") == 1
    assert await count(h, Message) == running_messages + 1
    assert await anonymous(h) == released

    # Four years on: P-3 is inactive and goes; the person with a pending follow-up and the one
    # in a conversation stay; the case event whose follow-up is settled goes, the pending stays.
    h.clock.advance(timedelta(days=1000))
    done = await report_then_run(h)
    assert done[rl.CONTACTS] == 1 and done[rl.EVENTS] == 1
    assert {c.external_ref for c in await rows(h, Contact)} == {REF, OTHER_REF}
    assert [e.event_id for e in await rows(h, CaseEvent)] == ["E-2"]
    assert await count(h, Conversation, Conversation.id == running) == 1
    assert await anonymous(h) == released

    # Five years on: audit entries older than five years go, the newer ones stay.
    h.clock.advance(timedelta(days=500))
    oldest = min(a.at for a in await rows(h, AuditEntry))
    done = await report_then_run(h)
    assert done[rl.AUDIT] > 0
    assert min(a.at for a in await rows(h, AuditEntry)) > oldest
    assert await count(h, AuditEntry, AuditEntry.action == "retention.run") >= 3
    assert await anonymous(h) == released


async def test_message_texts_are_blanked_and_rows_kept(harness: Harness) -> None:
    h = harness
    story = await person_did_everything(h)
    inbound = await count(h, Message, Message.direction == "in")
    h.clock.advance(timedelta(days=92))
    done = await report_then_run(h)
    assert done[rl.TEXTS] > 0
    assert done[rl.INBOUND] == done[rl.OUTBOUND] == done[rl.CONTACTS] == 0
    assert await count(h, Message, Message.direction == "in") == inbound
    assert await count(h, Message, Message.body.is_not(None)) == 0
    # The rows still dedupe a redelivery.
    conversations = await count(h, Conversation)
    assert await h.sms("+46701234561", "DIALOGT", sid=story.keyword_sid) == 200
    assert await count(h, Conversation) == conversations


async def test_zero_keeps_for_good(database_url: str, twilio: FakeTwilio) -> None:
    keep = {
        f"BRUKARDIALOG__RETENTION__{k.upper()}": "0"
        for k in (
            "message_text_days",
            "inbound_message_days",
            "outbound_message_days",
            "inactive_contact_days",
            "case_event_days",
            "audit_log_days",
        )
    }
    async with service(database_url, twilio, keep, today_at_noon()) as h:
        await person_did_everything(h)
        h.clock.advance(timedelta(days=10 * 365))
        reports = await retention_report(h.runtime)
        assert all(r.cutoff is None and r.rows == 0 for r in reports)
        messages = await count(h, Message)
        await run_retention(h.runtime, actor="test")
        assert await count(h, Message) == messages
