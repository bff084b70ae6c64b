from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from storage import repo_contacts, repo_conversations, repo_messages
from storage.db import Database
from storage.models import Answer, Conversation, Message, Respondent
from tests.storage.conftest import NOW, record_inbound

TODAY = date(2026, 3, 2)


async def _start(
    db: Database, survey_version_id: int, *, anonymous: bool = True
) -> tuple[int, Conversation, str]:
    async with db.transaction() as s:
        contact = await repo_contacts.create(s, language="sv")
        respondent = await repo_conversations.create_respondent(
            s,
            survey_id="nojdhet",
            survey_version_id=survey_version_id,
            campaign_id=None,
            contact_id=None if anonymous else contact.id,
            attributes={"gender": "f"},
            channel="sms",
            started_on=TODAY,
        )
        conv = await repo_conversations.create(
            s,
            contact_id=contact.id,
            respondent_id=respondent.id,
            survey_version_id=survey_version_id,
            survey_id="nojdhet",
            campaign_id=None,
            channel="sms",
            state={"current": "q1", "answers": {}, "history": [], "lang": "sv"},
            started_at=NOW,
            expires_at=NOW + timedelta(days=3),
        )
    return contact.id, conv, respondent.id


async def _answers(db: Database, respondent_id: str) -> dict[str, tuple[Any, bool, date]]:
    async with db.transaction() as s:
        rows = await repo_conversations.answers(s, respondent_id)
    return {a.question_id: (a.value, a.skipped, a.answered_on) for a in rows}


async def test_answers_upsert_and_retract(db: Database, survey_version_id: int) -> None:
    _, _, rid = await _start(db, survey_version_id)
    async with db.transaction() as s:
        await repo_conversations.record_answers(
            s, rid, [("q1", "yes", False), ("q2", 4, False), ("q3", None, True)], TODAY
        )
    async with db.transaction() as s:
        await repo_conversations.record_answers(
            s, rid, [("q2", 5, False), ("q4", ["a", "b"], False)], TODAY + timedelta(days=1)
        )
        await repo_conversations.record_answers(s, rid, [], TODAY)
    assert await _answers(db, rid) == {
        "q1": ("yes", False, TODAY),
        "q2": (5, False, TODAY + timedelta(days=1)),
        "q3": (None, True, TODAY),
        "q4": (["a", "b"], False, TODAY + timedelta(days=1)),
    }
    async with db.transaction() as s:
        assert await repo_conversations.retract_answer(s, rid, "q1")
        assert not await repo_conversations.retract_answer(s, rid, "q1")
    assert set(await _answers(db, rid)) == {"q2", "q3", "q4"}


async def test_active_conversation_lookup(db: Database, survey_version_id: int) -> None:
    contact_id, conv, _ = await _start(db, survey_version_id)
    async with db.transaction() as s:
        locked = await repo_conversations.active_for_contact(s, contact_id)
        plain = await repo_conversations.active_for_contact(s, contact_id, for_update=False)
        none = await repo_conversations.active_for_contact(s, contact_id + 1000)
        by_id = await repo_conversations.get(s, conv.id, for_update=True)
    assert locked is not None and plain is not None and by_id is not None
    assert locked.id == plain.id == by_id.id == conv.id
    assert none is None


async def test_save_state(db: Database, survey_version_id: int) -> None:
    _, conv, _ = await _start(db, survey_version_id)
    later = NOW + timedelta(minutes=3)
    async with db.transaction() as s:
        loaded = await repo_conversations.get(s, conv.id)
        assert loaded is not None
        await repo_conversations.save_state(
            s, loaded, {"current": "q2"}, "active", later + timedelta(days=3), later
        )
    async with db.transaction() as s:
        stored = await repo_conversations.get(s, conv.id)
    assert stored is not None
    assert (stored.state, stored.updated_at, stored.expires_at) == (
        {"current": "q2"},
        later,
        later + timedelta(days=3),
    )


async def _messages_for(db: Database, contact_id: int, conv_id: str) -> list[int]:
    ids = []
    async with db.transaction() as s:
        for n, text in enumerate(["NOJDHET", "4", "bra bemötande"]):
            mid = await record_inbound(
                s,
                channel="sms",
                provider_id=f"SM{conv_id}{n}",
                contact_id=contact_id,
                conversation_id=conv_id,
                address_key="k",
                body=text,
                payload={"button": "choice:4"},
                received_at=NOW,
            )
            assert mid is not None
            ids.append(mid)
        ids.append(
            await repo_messages.enqueue(
                s,
                channel="sms",
                address="+46701234567",
                body="Fråga 2: Hur nöjd är du?",
                payload={"numbered": ["a"]},
                kind="reply",
                contact_id=contact_id,
                conversation_id=conv_id,
                campaign_id=None,
                not_before=NOW,
            )
        )
    return ids


@pytest.mark.parametrize("status", ["completed", "opted_out", "expired"])
async def test_anonymous_finish_unlinks_everything(
    db: Database, survey_version_id: int, status: str
) -> None:
    contact_id, conv, rid = await _start(db, survey_version_id, anonymous=True)
    message_ids = await _messages_for(db, contact_id, conv.id)
    async with db.transaction() as s:
        await repo_conversations.record_answers(s, rid, [("q1", 4, False)], TODAY)
        loaded = await repo_conversations.get(s, conv.id)
        assert loaded is not None
        loaded.state = {**loaded.state, "answers": {"q1": 4}, "history": ["q1"]}
        await repo_conversations.finish(s, loaded, status, NOW, anonymous=True)
    async with db.transaction() as s:
        stored = await repo_conversations.get(s, conv.id)
        respondent = await s.get(Respondent, rid)
        messages = list(
            await s.scalars(select(Message).where(Message.id.in_(message_ids)).order_by(Message.id))
        )
        answers = list(await s.scalars(select(Answer)))
    assert stored is not None and respondent is not None
    assert (stored.status, stored.finished_at, stored.respondent_id) == (status, NOW, None)
    assert (stored.state["answers"], stored.state["history"], stored.state["current"]) == (
        {},
        [],
        None,
    )
    assert stored.state["lang"] == "sv", "the rest of the state stays readable"
    assert (respondent.contact_id, respondent.status, respondent.completed) == (
        None,
        status,
        status == "completed",
    )
    inbound, queued = messages[:3], messages[3]
    assert all((m.body, m.payload) == (None, {}) for m in inbound)
    assert queued.body == "Fråga 2: Hur nöjd är du?", "a queued reply is still sent"
    assert queued.scrub_after == NOW + repo_conversations.SCRUB_GRACE
    assert [(a.respondent_id, a.value) for a in answers] == [(rid, 4)], "answers stay"


async def test_named_finish_keeps_links(db: Database, survey_version_id: int) -> None:
    contact_id, conv, rid = await _start(db, survey_version_id, anonymous=False)
    message_ids = await _messages_for(db, contact_id, conv.id)
    async with db.transaction() as s:
        loaded = await repo_conversations.get(s, conv.id)
        assert loaded is not None
        await repo_conversations.finish(s, loaded, "completed", NOW, anonymous=False)
    async with db.transaction() as s:
        stored = await repo_conversations.get(s, conv.id)
        respondent = await repo_conversations.get_respondent(s, rid)
        bodies = list(await s.scalars(select(Message.body).where(Message.id.in_(message_ids))))
    assert stored is not None and respondent is not None
    assert (stored.status, stored.respondent_id) == ("completed", rid)
    assert (respondent.contact_id, respondent.completed) == (contact_id, True)
    assert None not in bodies


async def test_expired_candidates(db: Database, survey_version_id: int) -> None:
    _, first, _ = await _start(db, survey_version_id)
    _, second, _ = await _start(db, survey_version_id)
    _, done, _ = await _start(db, survey_version_id)
    async with db.transaction() as s:
        for conv, expires in ((first, NOW), (second, NOW - timedelta(hours=1))):
            loaded = await repo_conversations.get(s, conv.id)
            assert loaded is not None
            loaded.expires_at = expires
        finished = await repo_conversations.get(s, done.id)
        assert finished is not None
        finished.expires_at = NOW - timedelta(days=1)
        await repo_conversations.finish(s, finished, "completed", NOW, anonymous=True)
    async with db.transaction() as s:
        due = await repo_conversations.expired_candidates(s, NOW, 10)
        one = await repo_conversations.expired_candidates(s, NOW, 1)
        early = await repo_conversations.expired_candidates(s, NOW - timedelta(hours=2), 10)
    assert [c.id for c in due] == [second.id, first.id]
    assert [c.id for c in one] == [second.id]
    assert early == []
