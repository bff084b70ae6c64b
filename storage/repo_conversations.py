"""Conversations, respondents and their answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo_messages
from storage.db import dialect_insert, dialect_name
from storage.models import Answer, Contact, Conversation, Respondent

ACTIVE = "active"
COMPLETED = "completed"
SCRUB_GRACE = timedelta(minutes=15)
"""How long a reply queued as an anonymous conversation ends keeps its text after being sent."""


async def get(
    s: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> Conversation | None:
    """A conversation by id; `for_update` locks its row (PostgreSQL) until the transaction ends."""
    if not for_update:
        return await s.get(Conversation, conversation_id)
    stmt = (
        select(Conversation)
        .where(Conversation.id == conversation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await s.scalars(stmt)).first()


async def active_for_contact(
    s: AsyncSession, contact_id: int, *, for_update: bool = True
) -> Conversation | None:
    """The contact's active conversation (the newest, should there be several).

    `for_update` first locks the contact's row, so concurrent messages from one person are
    handled one at a time even while no conversation exists yet (PostgreSQL; SQLite write
    transactions are serial anyway)."""
    stmt = (
        select(Conversation)
        .where(Conversation.contact_id == contact_id, Conversation.status == ACTIVE)
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    )
    if for_update and dialect_name(s) == "postgresql":
        await s.execute(select(Contact.id).where(Contact.id == contact_id).with_for_update())
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await s.scalars(stmt)).first()


async def create(
    s: AsyncSession,
    *,
    contact_id: int | None,
    respondent_id: str | None,
    survey_version_id: int,
    survey_id: str,
    campaign_id: int | None,
    channel: str,
    state: dict[str, Any],
    started_at: datetime,
    expires_at: datetime,
    id: str | None = None,
) -> Conversation:
    """A new active conversation, flushed."""
    conv = Conversation(
        id=id or str(uuid.uuid4()),
        contact_id=contact_id,
        respondent_id=respondent_id,
        survey_version_id=survey_version_id,
        survey_id=survey_id,
        campaign_id=campaign_id,
        channel=channel,
        status=ACTIVE,
        state=state,
        started_at=started_at,
        updated_at=started_at,
        expires_at=expires_at,
    )
    s.add(conv)
    await s.flush()
    return conv


async def save_state(
    s: AsyncSession,
    conv: Conversation,
    state_json: dict[str, Any],
    status: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Store the engine state after a step."""
    conv.state = state_json
    conv.status = status
    conv.expires_at = expires_at
    conv.updated_at = now
    await s.flush()


async def create_respondent(
    s: AsyncSession,
    *,
    survey_id: str,
    survey_version_id: int,
    campaign_id: int | None,
    contact_id: int | None,
    attributes: dict[str, Any],
    channel: str,
    started_on: date,
    id: str | None = None,
) -> Respondent:
    """A new respondent; `contact_id` only for surveys that are not anonymous."""
    respondent = Respondent(
        id=id or str(uuid.uuid4()),
        survey_id=survey_id,
        survey_version_id=survey_version_id,
        campaign_id=campaign_id,
        contact_id=contact_id,
        attributes=attributes,
        channel=channel,
        status=ACTIVE,
        started_on=started_on,
        completed=False,
    )
    s.add(respondent)
    await s.flush()
    return respondent


async def get_respondent(s: AsyncSession, respondent_id: str) -> Respondent | None:
    """A respondent by id."""
    return await s.get(Respondent, respondent_id)


async def record_answers(
    s: AsyncSession,
    respondent_id: str,
    answers: Iterable[tuple[str, Any, bool]],
    on_date: date,
) -> None:
    """Store (question_id, value, skipped) answers; answering a question again replaces it."""
    rows = {
        question_id: {
            "respondent_id": respondent_id,
            "question_id": question_id,
            "value": value,
            "skipped": skipped,
            "answered_on": on_date,
        }
        for question_id, value, skipped in answers
    }
    if not rows:
        return
    table = Answer.__table__
    insert = dialect_insert(s, table)
    await s.execute(
        insert.values(list(rows.values())).on_conflict_do_update(
            index_elements=[table.c.respondent_id, table.c.question_id],
            set_={
                "value": insert.excluded.value,
                "skipped": insert.excluded.skipped,
                "answered_on": insert.excluded.answered_on,
            },
        )
    )


async def retract_answer(s: AsyncSession, respondent_id: str, question_id: str) -> bool:
    """Forget one answer (the person went back); False if there was none."""
    result = await s.execute(
        delete(Answer).where(
            Answer.respondent_id == respondent_id, Answer.question_id == question_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def answers(s: AsyncSession, respondent_id: str) -> list[Answer]:
    """A respondent's answers, in the order first given."""
    stmt = select(Answer).where(Answer.respondent_id == respondent_id).order_by(Answer.id)
    return list(await s.scalars(stmt))


async def finish(
    s: AsyncSession,
    conv: Conversation,
    status: str,
    now: datetime,
    *,
    anonymous: bool,
    scrub_grace: timedelta = SCRUB_GRACE,
) -> None:
    """End a conversation and its respondent. Call after the last `save_state`.

    Anonymous: the respondent loses its contact, the conversation its respondent and the answers
    in its state, and its messages their text (see repo_messages.scrub_conversation), so nothing
    stored ties the contact to the answers any more."""
    respondent_id = conv.respondent_id
    conv.status = status
    conv.finished_at = now
    conv.updated_at = now
    if anonymous:
        conv.respondent_id = None
        conv.state = {**conv.state, "answers": {}, "history": [], "current": None}
    await s.flush()
    if respondent_id is not None:
        values: dict[str, Any] = {"status": status}
        if status == COMPLETED:
            values["completed"] = True
        if anonymous:
            values["contact_id"] = None
        await s.execute(
            update(Respondent)
            .where(Respondent.id == respondent_id)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
    if anonymous:
        await repo_messages.scrub_conversation(s, conv.id, now, grace=scrub_grace)


async def expired_candidates(s: AsyncSession, now: datetime, limit: int) -> list[Conversation]:
    """Active conversations whose time ran out, longest expired first."""
    stmt = (
        select(Conversation)
        .where(Conversation.status == ACTIVE, Conversation.expires_at <= now)
        .order_by(Conversation.expires_at, Conversation.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))


async def active_for_campaign(s: AsyncSession, campaign_id: int) -> list[Conversation]:
    """A campaign's conversations still running (to close them when it ends)."""
    stmt = (
        select(Conversation)
        .where(Conversation.campaign_id == campaign_id, Conversation.status == ACTIVE)
        .order_by(Conversation.started_at, Conversation.id)
    )
    return list(await s.scalars(stmt))


async def latest_for_contact(s: AsyncSession, contact_id: int) -> Conversation | None:
    """The contact's newest conversation, finished or not."""
    stmt = (
        select(Conversation)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(1)
    )
    return (await s.scalars(stmt)).first()
