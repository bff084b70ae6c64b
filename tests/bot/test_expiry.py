"""Expiry: a timer row per conversation, moved along while the person keeps answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from flows.texts import text
from storage.models import Conversation, DueTask, Message, Respondent
from tests.bot.harness import Harness, running, settings_for
from tests.bot.test_webchat_e2e import replies, say, start_chat

WEEK = timedelta(days=7)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with running(settings_for(database_url)) as h:
        yield h


async def conversations(h: Harness) -> list[Conversation]:
    async with h.runtime.db.transaction(read_only=True) as s:
        return list(await s.scalars(select(Conversation)))


async def test_an_abandoned_public_conversation_is_deleted_when_it_expires(
    harness: Harness,
) -> None:
    token = await start_chat(harness)
    await say(harness, token, "Ja", client_id="1")
    harness.clock.advance(WEEK + timedelta(minutes=1))
    assert await harness.runtime.tasks.run_due() == 1
    assert await conversations(harness) == []
    assert await harness.count(Message, Message.conversation_id.is_not(None)) == 0
    assert await harness.count(Respondent) == 0 and await harness.answers() == {}
    async with harness.runtime.db.transaction(read_only=True) as s:
        task = (await s.scalars(select(DueTask))).one()
    assert task.status == "done"


async def test_the_timer_moves_while_the_person_answers(harness: Harness) -> None:
    token = await start_chat(harness)
    harness.clock.advance(timedelta(days=6))
    await say(harness, token, "Ja", client_id="1")  # expiry is now day 13
    harness.clock.advance(timedelta(days=2))  # day 8: the first timer fires early
    assert await harness.runtime.tasks.run_due() == 1
    [conv] = await conversations(harness)
    assert conv.status == "active"
    async with harness.runtime.db.transaction(read_only=True) as s:
        task = (await s.scalars(select(DueTask))).one()
    assert task.status == "pending" and task.due_at == harness.clock.now() + timedelta(days=5)
    # Resuming before expiry continues where it stopped.
    harness.clock.advance(timedelta(days=4))
    messages = await say(harness, token, "8", client_id="2")
    assert messages[-1]["kind"] == "question"
    assert await harness.running_answers() == {"helped": "yes", "score": 8}


async def test_writing_after_expiry_gets_a_notice_not_a_resume(harness: Harness) -> None:
    token = await start_chat(harness)
    last = (await replies(harness, token))[-1]["id"]
    harness.clock.advance(WEEK + timedelta(hours=1))
    await say(harness, token, "Ja", client_id="1")
    assert await conversations(harness) == [], "an abandoned public conversation is deleted"
    assert await harness.answers() == {}
    [notice] = await replies(harness, token, after=last)
    assert notice["text"] == text("expired", "sv")


async def test_a_question_still_waiting_to_be_sent_holds_off_expiry(harness: Harness) -> None:
    token = await start_chat(harness)
    await harness.deliver()
    response = await harness.client.post(f"/chat/{token}/messages", json={"id": "1", "text": "Ja"})
    assert response.status == 202
    # The next question is still queued (nothing could be sent all week).
    harness.clock.advance(WEEK + timedelta(minutes=1))
    assert await harness.runtime.tasks.run_due() == 1
    [conv] = await conversations(harness)
    assert conv.status == "active" and conv.expires_at > harness.clock.now()
    await harness.deliver()
    messages = await say(harness, token, "8", client_id="2")
    assert messages[-1]["kind"] == "question", "the person can still answer"
