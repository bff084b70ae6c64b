"""Data over its lifetime: everything held about one person (to show or erase it), and retention
(what is old enough to go, deleted in bounded batches).

Anonymous results are never touched here: released respondents have no contact, and nothing
else points at them. A person's own rows are found by their contact id, their conversations' ids
and their addresses' keyed HMACs (inbound rows carry only the sender's key)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Answer,
    AuditEntry,
    Campaign,
    CaseEvent,
    Contact,
    ContactAddress,
    Conversation,
    DueTask,
    Followup,
    FollowupRule,
    Invitation,
    Message,
    Participation,
    Respondent,
)

IN_FLIGHT = ("queued", "sending")
"""Outgoing messages the outbox still has to send (storage.executor.IN_FLIGHT)."""
ACTIVE = "active"
EXPIRE_TASK = "conversation.expire"
FOLLOWUP_TASK = "followup.send"

# -- one person -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRows:
    """Every row held about one person, loaded as ORM objects (addresses unsealed)."""

    contact: Contact
    addresses: tuple[ContactAddress, ...]
    invitations: tuple[tuple[Invitation, Campaign], ...]
    participations: tuple[Participation, ...]
    conversations: tuple[Conversation, ...]
    messages: tuple[Message, ...]
    case_events: tuple[CaseEvent, ...]
    followups: tuple[tuple[Followup, FollowupRule], ...]
    respondents: tuple[tuple[Respondent, tuple[Answer, ...]], ...]
    """Answers to surveys that are not anonymous: the only respondents linked to a person."""


async def find_contact(
    s: AsyncSession, external_ref: str, *, for_update: bool = False
) -> int | None:
    """The id of the contact with this external_ref."""
    stmt = select(Contact.id).where(Contact.external_ref == external_ref)
    if for_update:
        stmt = stmt.with_for_update()
    found = await s.scalar(stmt)
    return int(found) if found is not None else None


async def _address_keys(s: AsyncSession, contact_id: int) -> list[tuple[str, str]]:
    rows = await s.execute(
        select(ContactAddress.channel, ContactAddress.address_key).where(
            ContactAddress.contact_id == contact_id
        )
    )
    return [(str(channel), str(key)) for channel, key in rows.all()]


async def _conversation_ids(s: AsyncSession, contact_id: int) -> list[str]:
    rows = await s.scalars(select(Conversation.id).where(Conversation.contact_id == contact_id))
    return [str(r) for r in rows]


def _messages_of(
    contact_id: int, conversation_ids: Sequence[str], keys: Sequence[tuple[str, str]]
) -> ColumnElement[bool]:
    """Messages to or from the person: by contact, by conversation, or by address key."""
    conditions: list[ColumnElement[bool]] = [Message.contact_id == contact_id]
    if conversation_ids:
        conditions.append(Message.conversation_id.in_(conversation_ids))
    conditions.extend(
        and_(Message.channel == channel, Message.address_key == key) for channel, key in keys
    )
    return or_(*conditions)


async def person_rows(s: AsyncSession, contact_id: int) -> PersonRows | None:
    """Everything held about one contact, or None if there is no such contact."""
    contact = await s.get(Contact, contact_id, populate_existing=True)
    if contact is None:
        return None
    keys = await _address_keys(s, contact_id)
    conversation_ids = await _conversation_ids(s, contact_id)
    addresses = await s.scalars(
        select(ContactAddress)
        .where(ContactAddress.contact_id == contact_id)
        .order_by(ContactAddress.id)
    )
    invitations = await s.execute(
        select(Invitation, Campaign)
        .join(Campaign, Campaign.id == Invitation.campaign_id)
        .where(Invitation.contact_id == contact_id)
        .order_by(Invitation.id)
    )
    participations = await s.scalars(
        select(Participation)
        .where(Participation.contact_id == contact_id)
        .order_by(Participation.survey_id, Participation.period)
    )
    conversations = await s.scalars(
        select(Conversation)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.started_at, Conversation.id)
    )
    messages = await s.scalars(
        select(Message).where(_messages_of(contact_id, conversation_ids, keys)).order_by(Message.id)
    )
    events = await s.scalars(
        select(CaseEvent).where(CaseEvent.contact_id == contact_id).order_by(CaseEvent.id)
    )
    followups = await s.execute(
        select(Followup, FollowupRule)
        .join(FollowupRule, FollowupRule.id == Followup.rule_id)
        .where(Followup.contact_id == contact_id)
        .order_by(Followup.id)
    )
    respondents = list(
        await s.scalars(
            select(Respondent)
            .where(Respondent.contact_id == contact_id)
            .order_by(Respondent.started_on, Respondent.id)
        )
    )
    answers: dict[str, list[Answer]] = {r.id: [] for r in respondents}
    if respondents:
        for answer in await s.scalars(
            select(Answer)
            .where(Answer.respondent_id.in_(list(answers)))
            .order_by(Answer.question_id)
        ):
            answers[answer.respondent_id].append(answer)
    return PersonRows(
        contact=contact,
        addresses=tuple(addresses),
        invitations=tuple((i, c) for i, c in invitations.all()),
        participations=tuple(participations),
        conversations=tuple(conversations),
        messages=tuple(messages),
        case_events=tuple(events),
        followups=tuple((f, r) for f, r in followups.all()),
        respondents=tuple((r, tuple(answers[r.id])) for r in respondents),
    )


async def _rowcount(s: AsyncSession, stmt: Any) -> int:
    result = await s.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def erase_contact(s: AsyncSession, contact_id: int) -> dict[str, int]:
    """Delete everything held about one contact; returns rows removed per kind.

    Inbound messages stay as bare provider ids (no text, sender, contact or conversation), so a
    provider redelivering an old webhook still finds a duplicate. Released anonymous answers are
    not linked to the person and stay."""
    keys = await _address_keys(s, contact_id)
    conversation_ids = await _conversation_ids(s, contact_id)
    followup_ids = [
        int(f)
        for f in await s.scalars(select(Followup.id).where(Followup.contact_id == contact_id))
    ]
    respondent_ids = [
        str(r)
        for r in await s.scalars(select(Respondent.id).where(Respondent.contact_id == contact_id))
    ]
    counts: dict[str, int] = {}
    task_keys = [f"{EXPIRE_TASK}:{c}" for c in conversation_ids] + [
        f"{FOLLOWUP_TASK}:{f}" for f in followup_ids
    ]
    counts["due_tasks"] = (
        await _rowcount(s, delete(DueTask).where(DueTask.key.in_(task_keys))) if task_keys else 0
    )
    mine = _messages_of(contact_id, conversation_ids, keys)
    counts["messages_out"] = await _rowcount(
        s, delete(Message).where(mine, Message.direction == "out")
    )
    counts["messages_in"] = await _rowcount(
        s,
        update(Message)
        .where(mine, Message.direction == "in")
        .values(
            body=None,
            payload={},
            contact_id=None,
            conversation_id=None,
            address=None,
            address_key=None,
        ),
    )
    counts["followups"] = await _rowcount(
        s, delete(Followup).where(Followup.contact_id == contact_id)
    )
    counts["case_events"] = await _rowcount(
        s, delete(CaseEvent).where(CaseEvent.contact_id == contact_id)
    )
    counts["invitations"] = await _rowcount(
        s, delete(Invitation).where(Invitation.contact_id == contact_id)
    )
    counts["participations"] = await _rowcount(
        s, delete(Participation).where(Participation.contact_id == contact_id)
    )
    if respondent_ids:
        await _rowcount(s, delete(Answer).where(Answer.respondent_id.in_(respondent_ids)))
    counts["respondents"] = (
        await _rowcount(s, delete(Respondent).where(Respondent.id.in_(respondent_ids)))
        if respondent_ids
        else 0
    )
    counts["conversations"] = await _rowcount(
        s, delete(Conversation).where(Conversation.contact_id == contact_id)
    )
    counts["addresses"] = await _rowcount(
        s, delete(ContactAddress).where(ContactAddress.contact_id == contact_id)
    )
    counts["contacts"] = await _rowcount(s, delete(Contact).where(Contact.id == contact_id))
    return counts


async def rename_audit_target(s: AsyncSession, old: str, new: str) -> int:
    """Audit entries that named a target `old` name `new` instead; returns how many."""
    return await _rowcount(s, update(AuditEntry).where(AuditEntry.target == old).values(target=new))


# -- retention ------------------------------------------------------------------------------------

TEXTS = "message_texts"
INBOUND = "inbound_messages"
OUTBOUND = "outbound_messages"
CONTACTS = "inactive_contacts"
EVENTS = "case_events"
AUDIT = "audit_log"
KINDS = (TEXTS, INBOUND, OUTBOUND, CONTACTS, EVENTS, AUDIT)
"""In the order a run goes through them."""


def _busy_conversations() -> Select[Any]:
    """Conversations whose messages are still needed: running, or finished anonymous ones whose
    answers wait for release (release itself clears their messages)."""
    return select(Conversation.id).where(
        or_(Conversation.status == ACTIVE, Conversation.pending_release.is_(True))
    )


def _not_busy(column: Any) -> ColumnElement[bool]:
    return or_(column.is_(None), column.not_in(_busy_conversations()))


def _texts(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Message.created_at < cutoff,
        Message.body.is_not(None),
        ~and_(Message.direction == "out", Message.status.in_(IN_FLIGHT)),
        _not_busy(Message.conversation_id),
    )


def _inbound(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Message.direction == "in",
        Message.created_at < cutoff,
        _not_busy(Message.conversation_id),
    )


def _outbound(cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        Message.direction == "out",
        Message.created_at < cutoff,
        Message.status.not_in(IN_FLIGHT),
        _not_busy(Message.conversation_id),
    )


def _inactive(cutoff: datetime) -> ColumnElement[bool]:
    """Contacts untouched since `cutoff`: not imported or changed, invited, in a conversation,
    written to or from, or named by a case event since; with nothing running or waiting."""
    c = Contact
    return and_(
        c.created_at < cutoff,
        c.updated_at < cutoff,
        ~exists().where(
            Invitation.contact_id == c.id,
            or_(
                Invitation.invited_at >= cutoff,
                Invitation.campaign_id.in_(select(Campaign.id).where(Campaign.status != "closed")),
            ),
        ),
        ~exists().where(
            Conversation.contact_id == c.id,
            or_(
                Conversation.updated_at >= cutoff,
                Conversation.status == ACTIVE,
                Conversation.pending_release.is_(True),
            ),
        ),
        ~exists().where(
            Message.contact_id == c.id,
            or_(Message.created_at >= cutoff, Message.status.in_(IN_FLIGHT)),
        ),
        ~exists().where(
            CaseEvent.contact_id == c.id,
            or_(CaseEvent.updated_at >= cutoff, CaseEvent.received_at >= cutoff),
        ),
        ~exists().where(
            Followup.contact_id == c.id,
            or_(Followup.status == "pending", Followup.due_at >= cutoff),
        ),
    )


def _old_events(cutoff: datetime) -> ColumnElement[bool]:
    """Case events last changed before `cutoff` whose follow-ups are all settled."""
    e = CaseEvent
    return and_(
        e.updated_at < cutoff,
        e.received_at < cutoff,
        ~exists().where(
            Followup.event_id == e.id,
            or_(
                Followup.status == "pending",
                Followup.conversation_id.in_(_busy_conversations()),
            ),
        ),
    )


def _audit(cutoff: datetime) -> ColumnElement[bool]:
    return AuditEntry.at < cutoff


_WHERE = {
    TEXTS: (Message, _texts),
    INBOUND: (Message, _inbound),
    OUTBOUND: (Message, _outbound),
    CONTACTS: (Contact, _inactive),
    EVENTS: (CaseEvent, _old_events),
    AUDIT: (AuditEntry, _audit),
}


async def count_expired(s: AsyncSession, kind: str, cutoff: datetime) -> int:
    """How many rows of `kind` are older than `cutoff` and free to go."""
    model, where = _WHERE[kind]
    return int(await s.scalar(select(func.count()).select_from(model).where(where(cutoff))) or 0)


async def expired_ids(s: AsyncSession, kind: str, cutoff: datetime, limit: int) -> list[int]:
    """The ids of at most `limit` rows of `kind` free to go, oldest ids first."""
    model, where = _WHERE[kind]
    id_column: Any = model.id  # type: ignore[attr-defined]
    rows = await s.scalars(select(id_column).where(where(cutoff)).order_by(id_column).limit(limit))
    return [int(r) for r in rows]


async def expire_batch(s: AsyncSession, kind: str, cutoff: datetime, limit: int) -> int:
    """Blank or delete one batch of rows of `kind` (contacts: see `erase_contact`); returns how
    many went. The batch is chosen and changed in the caller's transaction, rechecked there."""
    ids = await expired_ids(s, kind, cutoff, limit)
    if not ids:
        return 0
    if kind == TEXTS:
        await _rowcount(
            s,
            update(Message)
            .where(Message.id.in_(ids), _texts(cutoff))
            .values(body=None, payload={}),
        )
    elif kind in (INBOUND, OUTBOUND):
        where = _inbound if kind == INBOUND else _outbound
        await _rowcount(s, delete(Message).where(Message.id.in_(ids), where(cutoff)))
    elif kind == CONTACTS:
        for contact_id in ids:
            await erase_contact(s, contact_id)
    elif kind == EVENTS:
        followup_ids = [
            int(f) for f in await s.scalars(select(Followup.id).where(Followup.event_id.in_(ids)))
        ]
        if followup_ids:
            keys = [f"{FOLLOWUP_TASK}:{f}" for f in followup_ids]
            await _rowcount(s, delete(DueTask).where(DueTask.key.in_(keys)))
            await _rowcount(s, delete(Followup).where(Followup.id.in_(followup_ids)))
        await _rowcount(s, delete(CaseEvent).where(CaseEvent.id.in_(ids)))
    elif kind == AUDIT:
        await _rowcount(s, delete(AuditEntry).where(AuditEntry.id.in_(ids)))
    else:
        raise ValueError(f"unknown retention kind {kind!r}")
    return len(ids)
