"""The inbound turn's storage, written once in SQL for both databases (see storage.raw).

A turn is what one incoming message does in its transaction: find who sent it and their active
conversation, record the message, store the engine step (answers, state, the end of the
conversation) and queue the replies. These are the same writes as the repositories make
(repo_contacts, repo_conversations, repo_messages, repo_tasks and the campaign hook), on plain
rows instead of ORM objects; `tests/storage/test_turns.py` holds the two to the same rows.

PostgreSQL: `find` locks the contact's row and then the active conversation's, like
`repo_conversations.active_for_contact`, so one person's messages are handled one at a time and a
conversation being expired or closed concurrently is waited for and then not seen as active.
SQLite's write transactions are serial (storage.db)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from storage.raw import (
    SQL,
    RawConnection,
    Script,
    Statement,
    date_of,
    datetime_of,
    json_of,
)

ACTIVE = "active"
COMPLETED = "completed"


@dataclass(slots=True)
class ContactRow:
    """What a turn needs of a contact (the attributes respondents keep, and opt-out)."""

    id: int
    language: str | None
    opted_out_at: datetime | None
    gender: str | None = None
    birth_year: int | None = None
    age_group: str | None = None
    target_group: str | None = None
    unit: str | None = None
    contact_since: date | None = None


@dataclass(slots=True)
class ConversationRow:
    """What a turn needs of a conversation."""

    id: str
    respondent_id: str | None
    survey_version_id: int
    survey_id: str
    campaign_id: int | None
    channel: str
    state: dict[str, Any]


_CONTACT_COLUMNS = (
    "c.id, c.language, c.opted_out_at, c.gender, c.birth_year, c.age_group, c.target_group, "
    "c.unit, c.contact_since"
)
_CONVERSATION_COLUMNS = (
    "v.id, v.respondent_id, v.survey_version_id, v.survey_id, v.campaign_id, v.channel, v.state"
)
_ACTIVE_ORDER = "ORDER BY v.started_at DESC, v.id DESC LIMIT 1"

_FIND_SQLITE = SQL(
    f"SELECT {_CONTACT_COLUMNS}, {_CONVERSATION_COLUMNS} "
    "FROM contact_addresses a JOIN contacts c ON c.id = a.contact_id "
    "LEFT JOIN conversations v ON v.id = ("
    "  SELECT v.id FROM conversations v WHERE v.contact_id = c.id AND v.status = 'active' "
    f"  {_ACTIVE_ORDER}) "
    "WHERE a.channel = :channel AND a.address_key = :key LIMIT 1"
)
_FIND_CONTACT_FOR_UPDATE = SQL(
    f"SELECT {_CONTACT_COLUMNS} "
    "FROM contact_addresses a JOIN contacts c ON c.id = a.contact_id "
    "WHERE a.channel = :channel AND a.address_key = :key LIMIT 1 FOR UPDATE OF c"
)
_ACTIVE_FOR_UPDATE = SQL(
    f"SELECT {_CONVERSATION_COLUMNS} FROM conversations v "
    f"WHERE v.contact_id = :contact_id AND v.status = 'active' {_ACTIVE_ORDER} FOR UPDATE"
)


def _contact(row: tuple[Any, ...]) -> ContactRow:
    return ContactRow(
        id=int(row[0]),
        language=row[1],
        opted_out_at=datetime_of(row[2]),
        gender=row[3],
        birth_year=row[4],
        age_group=row[5],
        target_group=row[6],
        unit=row[7],
        contact_since=date_of(row[8]),
    )


def _conversation(row: tuple[Any, ...]) -> ConversationRow | None:
    if row[0] is None:
        return None
    return ConversationRow(
        id=row[0],
        respondent_id=row[1],
        survey_version_id=int(row[2]),
        survey_id=row[3],
        campaign_id=row[4],
        channel=row[5],
        state=json_of(row[6]),
    )


def _receive(
    dialect: str, channel: str, address_key: str, inbound: dict[str, Any]
) -> Script[tuple[ContactRow | None, ConversationRow | None, int | None]]:
    contact: ContactRow | None = None
    conv: ConversationRow | None = None
    if dialect == "sqlite":
        row = (yield Statement(_FIND_SQLITE, {"channel": channel, "key": address_key})).first()
        if row is not None:
            contact, conv = _contact(row[:9]), _conversation(row[9:])
    else:
        params = {"channel": channel, "key": address_key}
        row = (yield Statement(_FIND_CONTACT_FOR_UPDATE, params)).first()
        if row is not None:
            contact = _contact(row)
            active = (yield Statement(_ACTIVE_FOR_UPDATE, {"contact_id": contact.id})).first()
            conv = _conversation(active) if active is not None else None
    recorded = (
        yield record_inbound(
            **inbound,
            contact_id=contact.id if contact else None,
            conversation_id=conv.id if conv else None,
        )
    ).first()
    return contact, conv, None if recorded is None else int(recorded[0])


async def receive(
    raw: RawConnection,
    *,
    channel: str,
    address_key: str,
    provider_id: str,
    body: str,
    payload: dict[str, Any],
    received_at: datetime,
) -> tuple[ContactRow | None, ConversationRow | None, int | None]:
    """Who sent this message and their active conversation (locked on PostgreSQL), and the
    message stored and linked to them: its id, or None if this provider id was already stored
    (a redelivery). One hop on SQLite."""
    inbound = {
        "channel": channel,
        "provider_id": provider_id,
        "address_key": address_key,
        "body": body,
        "payload": payload,
        "received_at": received_at,
    }
    return await raw.run(_receive(raw.dialect, channel, address_key, inbound))


# -- messages ---------------------------------------------------------------------------------

_RECORD_INBOUND = SQL(
    "INSERT INTO messages (direction, channel, provider_id, contact_id, conversation_id, "
    "address_key, body, payload, kind, status, attempts, not_before, created_at, status_at) "
    "VALUES ('in', :channel, :provider_id, :contact_id, :conversation_id, :address_key, :body, "
    ":payload, 'reply', 'received', 0, :at, :at, :at) "
    "ON CONFLICT (channel, direction, provider_id) DO NOTHING RETURNING id"
)
_LINK_INBOUND = SQL(
    "UPDATE messages SET contact_id = :contact_id, conversation_id = :conversation_id "
    "WHERE id = :id AND direction = 'in'"
)
_ENQUEUE = SQL(
    "INSERT INTO messages (direction, channel, address, body, payload, kind, contact_id, "
    "conversation_id, campaign_id, status, attempts, not_before, created_at) "
    "VALUES ('out', :channel, :address, :body, :payload, :kind, :contact_id, :conversation_id, "
    ":campaign_id, 'queued', 0, :not_before, :now) RETURNING id"
)
_SCRUB_SENT = SQL(
    "UPDATE messages SET body = NULL, payload = :empty, scrub_after = NULL "
    "WHERE conversation_id = :conversation_id "
    "AND NOT (direction = 'out' AND status IN ('queued', 'sending'))"
)
_SCRUB_LATER = SQL(
    "UPDATE messages SET scrub_after = :scrub_after WHERE conversation_id = :conversation_id "
    "AND direction = 'out' AND status IN ('queued', 'sending')"
)


def record_inbound(
    *,
    channel: str,
    provider_id: str,
    contact_id: int | None,
    conversation_id: str | None,
    address_key: str,
    body: str,
    payload: dict[str, Any],
    received_at: datetime,
) -> Statement:
    """Store an incoming message; its result has the new id, or no row if this provider id was
    already stored (a redelivery)."""
    return Statement(
        _RECORD_INBOUND,
        {
            "channel": channel,
            "provider_id": provider_id,
            "contact_id": contact_id,
            "conversation_id": conversation_id,
            "address_key": address_key,
            "body": body,
            "payload": json.dumps(payload),
            "at": received_at,
        },
    )


def link_inbound(message_id: int, contact_id: int | None, conversation_id: str | None) -> Statement:
    """Attach an incoming message to the contact and conversation it turned out to belong to."""
    return Statement(
        _LINK_INBOUND,
        {"id": message_id, "contact_id": contact_id, "conversation_id": conversation_id},
    )


def enqueue(
    *,
    channel: str,
    address: str,
    body: str,
    payload: dict[str, Any],
    kind: str,
    contact_id: int | None,
    conversation_id: str | None,
    campaign_id: int | None,
    not_before: datetime,
    now: datetime,
) -> Statement:
    """Put a message in the outbox; its result's row holds the new id."""
    return Statement(
        _ENQUEUE,
        {
            "channel": channel,
            "address": address,
            "body": body,
            "payload": json.dumps(payload),
            "kind": kind,
            "contact_id": contact_id,
            "conversation_id": conversation_id,
            "campaign_id": campaign_id,
            "not_before": not_before,
            "now": now,
        },
    )


# -- contacts ---------------------------------------------------------------------------------

_CREATE_CONTACT = SQL(
    "INSERT INTO contacts (language, attributes, created_at, updated_at) "
    "VALUES (:language, :attributes, :now, :now) RETURNING id"
)
_ADD_ADDRESS = SQL(
    "INSERT INTO contact_addresses (contact_id, channel, address, address_key, created_at) "
    "VALUES (:contact_id, :channel, :address, :address_key, :now) "
    "ON CONFLICT (channel, address_key) DO UPDATE "
    "SET contact_id = excluded.contact_id, address = excluded.address"
)
_SET_LANGUAGE = SQL("UPDATE contacts SET language = :language, updated_at = :now WHERE id = :id")


def _new_contact(
    language: str | None, address: dict[str, Any], message_id: int
) -> Script[ContactRow]:
    row = (
        yield Statement(_CREATE_CONTACT, {**address, "language": language, "attributes": "{}"})
    ).first()
    assert row is not None
    contact_id = int(row[0])
    yield Statement(_ADD_ADDRESS, {**address, "contact_id": contact_id})
    yield link_inbound(message_id, contact_id, None)
    return ContactRow(id=contact_id, language=language, opted_out_at=None)


async def new_contact(
    raw: RawConnection,
    *,
    language: str | None,
    channel: str,
    address: str,
    address_key: str,
    message_id: int,
    now: datetime,
) -> ContactRow:
    """A newcomer: a contact with nothing known but perhaps their language, reached at this
    address (which moves from whoever had it, as in repo_contacts.add_address), and the
    message they sent linked to them."""
    where = {"channel": channel, "address": address, "address_key": address_key, "now": now}
    return await raw.run(_new_contact(language, where, message_id))


def set_language(contact_id: int, language: str, now: datetime) -> Statement:
    return Statement(_SET_LANGUAGE, {"id": contact_id, "language": language, "now": now})


# -- conversations, respondents and answers ---------------------------------------------------

_CREATE_RESPONDENT = SQL(
    "INSERT INTO respondents (id, survey_id, survey_version_id, campaign_id, contact_id, "
    "attributes, channel, status, started_on, completed) "
    "VALUES (:id, :survey_id, :survey_version_id, :campaign_id, :contact_id, :attributes, "
    ":channel, 'active', :started_on, :completed)"
)
_CREATE_CONVERSATION = SQL(
    "INSERT INTO conversations (id, contact_id, respondent_id, survey_version_id, survey_id, "
    "campaign_id, channel, status, state, started_at, updated_at, expires_at) "
    "VALUES (:id, :contact_id, :respondent_id, :survey_version_id, :survey_id, :campaign_id, "
    ":channel, 'active', :state, :now, :now, :expires_at)"
)
_SAVE_STATE = SQL(
    "UPDATE conversations SET state = :state, status = :status, expires_at = :expires_at, "
    "channel = :channel, updated_at = :now WHERE id = :id"
)
_FINISH_CONVERSATION = SQL(
    "UPDATE conversations SET state = :state, status = :status, expires_at = :expires_at, "
    "channel = :channel, updated_at = :now, finished_at = :now, respondent_id = :respondent_id "
    "WHERE id = :id"
)
_FINISH_RESPONDENT = SQL(
    "UPDATE respondents SET status = :status, completed = (completed OR :completed), "
    "contact_id = CASE WHEN :anonymous THEN NULL ELSE contact_id END WHERE id = :id"
)
_UPSERT_ANSWER = SQL(
    "INSERT INTO answers (respondent_id, question_id, value, skipped, answered_on) "
    "VALUES (:respondent_id, :question_id, :value, :skipped, :answered_on) "
    "ON CONFLICT (respondent_id, question_id) DO UPDATE SET value = excluded.value, "
    "skipped = excluded.skipped, answered_on = excluded.answered_on"
)
_RETRACT_ANSWER = SQL(
    "DELETE FROM answers WHERE respondent_id = :respondent_id AND question_id = :question_id"
)
_INVITATION_FINISHED = SQL(
    "UPDATE invitations SET status = :status "
    "WHERE conversation_id = :conversation_id AND status IN ('invited', 'started')"
)


def create_respondent(
    *,
    id: str,
    survey_id: str,
    survey_version_id: int,
    campaign_id: int | None,
    contact_id: int | None,
    attributes: dict[str, Any],
    channel: str,
    started_on: date,
) -> Statement:
    """A new respondent; `contact_id` only for surveys that are not anonymous."""
    return Statement(
        _CREATE_RESPONDENT,
        {
            "id": id,
            "survey_id": survey_id,
            "survey_version_id": survey_version_id,
            "campaign_id": campaign_id,
            "contact_id": contact_id,
            "attributes": json.dumps(attributes),
            "channel": channel,
            "started_on": started_on,
            "completed": False,
        },
    )


def create_conversation(
    conv: ConversationRow, *, contact_id: int, now: datetime, expires_at: datetime
) -> Statement:
    """A new active conversation."""
    return Statement(
        _CREATE_CONVERSATION,
        {
            "id": conv.id,
            "contact_id": contact_id,
            "respondent_id": conv.respondent_id,
            "survey_version_id": conv.survey_version_id,
            "survey_id": conv.survey_id,
            "campaign_id": conv.campaign_id,
            "channel": conv.channel,
            "state": json.dumps(conv.state),
            "now": now,
            "expires_at": expires_at,
        },
    )


def record_answers(
    respondent_id: str, answers: Iterable[tuple[str, Any, bool]], on_date: date
) -> list[Statement]:
    """Store (question_id, value, skipped) answers; answering a question again replaces it."""
    latest = {question_id: (value, skipped) for question_id, value, skipped in answers}
    return [
        Statement(
            _UPSERT_ANSWER,
            {
                "respondent_id": respondent_id,
                "question_id": question_id,
                "value": json.dumps(value),
                "skipped": skipped,
                "answered_on": on_date,
            },
        )
        for question_id, (value, skipped) in latest.items()
    ]


def retract_answer(respondent_id: str, question_id: str) -> Statement:
    """Forget one answer (the person went back)."""
    return Statement(_RETRACT_ANSWER, {"respondent_id": respondent_id, "question_id": question_id})


def save_state(
    conv: ConversationRow, status: str, expires_at: datetime, now: datetime
) -> Statement:
    """Store the engine state (`conv.state`) after a step."""
    return Statement(
        _SAVE_STATE,
        {
            "id": conv.id,
            "state": json.dumps(conv.state),
            "status": status,
            "expires_at": expires_at,
            "channel": conv.channel,
            "now": now,
        },
    )


def finish(
    conv: ConversationRow,
    status: str,
    expires_at: datetime,
    now: datetime,
    *,
    anonymous: bool,
    scrub_grace: timedelta,
) -> list[Statement]:
    """Store the last state and end the conversation and its respondent, as
    `repo_conversations.save_state` and `finish` together do: an anonymous one keeps no link
    from the contact to the answers, and its messages lose their text."""
    state = conv.state
    if anonymous:
        state = {**state, "answers": {}, "history": [], "current": None}
    statements = [
        Statement(
            _FINISH_CONVERSATION,
            {
                "id": conv.id,
                "state": json.dumps(state),
                "status": status,
                "expires_at": expires_at,
                "channel": conv.channel,
                "now": now,
                "respondent_id": None if anonymous else conv.respondent_id,
            },
        )
    ]
    if conv.respondent_id is not None:
        statements.append(
            Statement(
                _FINISH_RESPONDENT,
                {
                    "id": conv.respondent_id,
                    "status": status,
                    "completed": status == COMPLETED,
                    "anonymous": anonymous,
                },
            )
        )
    if anonymous:
        statements.append(Statement(_SCRUB_SENT, {"conversation_id": conv.id, "empty": "{}"}))
        statements.append(
            Statement(_SCRUB_LATER, {"conversation_id": conv.id, "scrub_after": now + scrub_grace})
        )
    return statements


def invitation_finished(conversation_id: str, status: str) -> Statement:
    """A campaign conversation ended: its invitation keeps the final status (see
    bot.campaigns.on_conversation_finished)."""
    final = status if status in (COMPLETED, "opted_out") else "closed"
    return Statement(_INVITATION_FINISHED, {"conversation_id": conversation_id, "status": final})


# -- timers -----------------------------------------------------------------------------------

_SCHEDULE_REPLACE = SQL(
    "INSERT INTO due_tasks (kind, key, due_at, payload, status, attempts, created_at) "
    "VALUES (:kind, :key, :due_at, :payload, 'pending', 0, :now) "
    "ON CONFLICT (key) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload "
    "WHERE due_tasks.status = 'pending'"
)
_CANCEL_TASK = SQL(
    "UPDATE due_tasks SET status = 'cancelled' WHERE key = :key AND status = 'pending'"
)


def schedule_task(
    kind: str, key: str, due_at: datetime, payload: dict[str, Any], now: datetime
) -> Statement:
    """Schedule a task, or move the pending one with this key (repo_tasks.schedule with
    replace=True)."""
    return Statement(
        _SCHEDULE_REPLACE,
        {"kind": kind, "key": key, "due_at": due_at, "payload": json.dumps(payload), "now": now},
    )


def cancel_task(key: str) -> Statement:
    """Cancel a pending task."""
    return Statement(_CANCEL_TASK, {"key": key})
