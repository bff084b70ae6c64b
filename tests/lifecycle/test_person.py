"""A person's rights on the whole app: everything held about them, and erasure that leaves no row
pointing at them while released anonymous answers stay (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, or_, select

from bot import lifecycle
from storage.models import (
    Answer,
    AuditEntry,
    Base,
    Contact,
    ContactAddress,
    Conversation,
    DueTask,
    Message,
    Respondent,
)
from tests.bot.harness import Harness
from tests.fakes.twilio_server import FakeTwilio
from tests.lifecycle.scenario import (
    OTHER_REF,
    PHONE,
    REF,
    api,
    person_did_everything,
    rows,
    service,
)


@pytest.fixture
async def harness(database_url: str, twilio: FakeTwilio) -> AsyncIterator[Harness]:
    async with service(database_url, twilio) as h:
        yield h


async def anonymous_results(h: Harness) -> list[tuple[Any, ...]]:
    async with h.runtime.db.transaction(read_only=True) as s:
        result = await s.execute(
            select(
                Respondent.id,
                Respondent.survey_id,
                Respondent.attributes,
                Respondent.started_on,
                Answer.question_id,
                Answer.value,
            )
            .join(Answer, Answer.respondent_id == Respondent.id)
            .where(Respondent.contact_id.is_(None))
            .order_by(Respondent.id, Answer.question_id)
        )
        return [tuple(r) for r in result.all()]


async def test_the_export_holds_every_kind_of_row_and_no_anonymous_answer(
    harness: Harness,
) -> None:
    h = harness
    await person_did_everything(h)
    status, export = await api(h, "GET", f"/contacts/{REF}/export")
    assert status == 200, export

    assert export["external_ref"] == REF
    assert export["contact"]["gender"] == "kvinna"
    assert [a["address"] for a in export["addresses"] if a["channel"] == "sms"] == [PHONE]
    assert export["opt_out"] == {"opted_out": False, "at": None}
    assert [i["campaign"]["survey_id"] for i in export["invitations"]] == ["kampanj"]
    assert export["invitations"][0]["status"] == "completed"
    assert [p["survey_id"] for p in export["participations"]] == ["dialog"]
    assert [c["survey_id"] for c in export["conversations"]] == ["dialog"]
    texts = [m["body"] for m in export["messages"] if m["direction"] == "in"]
    assert "DIALOGT" in texts
    assert {m["kind"] for m in export["messages"] if m["direction"] == "out"} >= {"invitation"}
    assert [e["event_id"] for e in export["case_events"]] == ["E-1", "E-2"]
    assert sorted((f["rule"], f["status"]) for f in export["followups"]) == [
        ("uppfoljning-efter-insats", "pending"),
        ("uppfoljning-efter-insats", "sent"),
    ]
    # Only the answers that are not anonymous; the anonymous ones cannot be found, and it says so.
    assert [a["respondent"]["survey_id"] for a in export["answers"]] == ["dialog"]
    assert export["answers"][0]["answers"][0]["value"] == "ja"
    assert "anonymous" in export["anonymous_answers"]
    anonymous_ids = {r[0] for r in await anonymous_results(h)}
    assert {r[1] for r in await anonymous_results(h)} == {"kampanj", "uppfoljning"}
    assert not anonymous_ids & {a["respondent"]["id"] for a in export["answers"]}

    audit = await rows(h, AuditEntry, AuditEntry.action == "contacts.export")
    assert [a.target for a in audit] == [f"contact:{lifecycle.ref_pseudonym(h.runtime, REF)}"]

    status, missing = await api(h, "GET", "/contacts/P-404/export")
    assert status == 404 and "P-404" in missing["error"]
    response = await h.client.get(f"/api/v1/contacts/{REF}/export")
    assert response.status == 401


async def test_erasure_leaves_no_row_pointing_at_the_person(harness: Harness) -> None:
    h = harness
    story = await person_did_everything(h)
    contact = (await rows(h, Contact, Contact.external_ref == REF))[0]
    cid = contact.id
    addresses = await rows(h, ContactAddress, ContactAddress.contact_id == cid)
    keys = {a.address_key for a in addresses}
    conversations = {c.id for c in await rows(h, Conversation, Conversation.contact_id == cid)}
    anonymous_before = await anonymous_results(h)
    other = (await rows(h, Contact, Contact.external_ref == OTHER_REF))[0]
    # The audit line of a link lookup named the person's ref.
    assert (await h.client.get(f"/api/v1/contacts/{REF}/link", headers=_auth())).status == 200

    status, erased = await api(h, "DELETE", f"/contacts/{REF}")
    assert status == 200, erased
    target = f"contact:{lifecycle.ref_pseudonym(h.runtime, REF)}"
    assert erased["erased"] == target
    assert erased["counts"]["contacts"] == 1 and erased["counts"]["respondents"] == 1

    # Every table with a contact_id column, and every way a message points at someone.
    async with h.runtime.db.transaction(read_only=True) as s:
        for table in Base.metadata.sorted_tables:
            if "contact_id" in table.c:
                found = await s.scalar(
                    select(func.count()).select_from(table).where(table.c.contact_id == cid)
                )
                assert found == 0, table.name
        messages = list(await s.scalars(select(Message)))
        tasks = list(await s.scalars(select(DueTask)))
        audit = list(await s.scalars(select(AuditEntry)))
        assert await s.scalar(select(func.count()).select_from(ContactAddress)) == len(
            await _addresses_of(h, other.id)
        )
    assert not [m for m in messages if m.address_key in keys or m.address == PHONE]
    assert not [m for m in messages if m.conversation_id in conversations]
    assert not [m for m in messages if m.contact_id == cid]
    assert not [t for t in tasks if any(str(c) in t.key for c in conversations)]
    assert not [t for t in tasks if t.kind == "followup.send" and t.status == "pending"]
    assert not [a for a in audit if REF in a.target or REF in str(a.details)]
    assert [a.target for a in audit if a.action == "contacts.erase"] == [target]
    assert [a.target for a in audit if a.action == "contacts.link"] == [target]
    # The other person is untouched, and the released anonymous answers are unchanged.
    assert len(await _addresses_of(h, other.id)) >= 1
    assert await anonymous_results(h) == anonymous_before

    # A provider redelivering an old webhook finds a duplicate: no new contact or conversation.
    contacts_before = len(await rows(h, Contact))
    conversations_before = len(await rows(h, Conversation))
    out_before = len(await h.outbox())
    assert await h.sms(PHONE, "DIALOGT", sid=story.keyword_sid) == 200
    await h.deliver()
    assert len(await rows(h, Contact)) == contacts_before
    assert len(await rows(h, Conversation)) == conversations_before
    assert len(await h.outbox()) == out_before

    status, again = await api(h, "DELETE", f"/contacts/{REF}")
    assert status == 404, again


def _auth() -> dict[str, str]:
    from tests.lifecycle.scenario import AUTH

    return AUTH


async def _addresses_of(h: Harness, contact_id: int) -> list[ContactAddress]:
    return await rows(h, ContactAddress, or_(ContactAddress.contact_id == contact_id))
