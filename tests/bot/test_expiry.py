"""Expiry: a timer row per conversation, moved along while the person keeps answering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from flows.texts import text
from storage.models import Conversation, DueTask, Respondent
from tests.bot.harness import Harness, running, settings_for
from tests.bot.test_webchat_e2e import replies, say, start_chat

WEEK = timedelta(days=7)


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    async with running(settings_for(database_url)) as h:
        yield h


async def conversation(h: Harness) -> Conversation:
    async with h.runtime.db.transaction(read_only=True) as s:
        return (await s.scalars(select(Conversation))).one()


async def test_a_silent_conversation_expires_and_is_unlinked(harness: Harness) -> None:
    token = await start_chat(harness)
    await say(harness, token, "Ja", client_id="1")
    harness.clock.advance(WEEK + timedelta(minutes=1))
    assert await harness.runtime.tasks.run_due() == 1
    conv = await conversation(harness)
    assert conv.status == "expired" and conv.respondent_id is None
    async with harness.runtime.db.transaction(read_only=True) as s:
        respondent = (await s.scalars(select(Respondent))).one()
    assert respondent.contact_id is None and not respondent.completed
    assert await harness.answers() == {"helped": "yes"}


async def test_the_timer_moves_while_the_person_answers(harness: Harness) -> None:
    token = await start_chat(harness)
    harness.clock.advance(timedelta(days=6))
    await say(harness, token, "Ja", client_id="1")  # expiry is now day 13
    harness.clock.advance(timedelta(days=2))  # day 8: the first timer fires early
    assert await harness.runtime.tasks.run_due() == 1
    assert (await conversation(harness)).status == "active"
    async with harness.runtime.db.transaction(read_only=True) as s:
        task = (await s.scalars(select(DueTask))).one()
    assert task.status == "pending" and task.due_at == harness.clock.now() + timedelta(days=5)
    # Resuming before expiry continues where it stopped.
    harness.clock.advance(timedelta(days=4))
    messages = await say(harness, token, "8", client_id="2")
    assert messages[-1]["kind"] == "question"
    assert await harness.answers() == {"helped": "yes", "score": 8}


async def test_writing_after_expiry_gets_a_notice_not_a_resume(harness: Harness) -> None:
    token = await start_chat(harness)
    last = (await replies(harness, token))[-1]["id"]
    harness.clock.advance(WEEK + timedelta(hours=1))
    await say(harness, token, "Ja", client_id="1")
    assert (await conversation(harness)).status == "expired"
    assert await harness.answers() == {}
    [notice] = await replies(harness, token, after=last)
    assert notice["text"] == text("expired", "sv")
