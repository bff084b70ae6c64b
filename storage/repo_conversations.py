"""Conversations, read from staff-side code. Every write of a conversation, its respondent and
answers is a turn's (storage.executor)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_name
from storage.models import Contact, Conversation

ACTIVE = "active"


async def active_for_contact(
    s: AsyncSession, contact_id: int, *, for_update: bool = True
) -> Conversation | None:
    """The contact's active conversation (the newest, should there be several).

    `for_update` first locks the contact's row (PostgreSQL), as a turn does."""
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
