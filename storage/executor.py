"""The one writer of turns: it reads a turn's facts and writes its plan, in one transaction.

Why one module: it is the one writer of turns (HACKING.md, rule 3); every write of a turn in one
module is what makes "no second code path" checkable.

Every change a turn makes to contacts, conversations, respondents, answers, the outbox, timers,
invitations and follow-ups is written here, from the typed steps of a `storage.plan.TurnPlan`;
there is no second code path that writes those rows for a turn. The code is synchronous over
`storage.sqlexec.Exec`, so it runs whole on SQLite's writer thread (storage.writer, group commit)
and, inside `run_sync`, on PostgreSQL, where it takes the row locks that keep one person's turns
in order: an advisory lock on the sender's address, then their contact row and conversation.

Statements are SQLAlchemy Core, built once per dialect (`statements`).

Anonymous answers are released here too (`release`): see that function for what is written,
what is deleted, and why."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import (
    Answer,
    Base,
    Campaign,
    Contact,
    ContactAddress,
    Conversation,
    DueTask,
    Followup,
    Invitation,
    Message,
    Participation,
    Respondent,
    SurveyVersion,
)
from storage.outbox import Outgoing
from storage.plan import (
    ACTIVE,
    COMPLETED,
    NEW_CONTACT,
    OPTED_OUT,
    PUBLIC,
    CancelQueued,
    CancelTask,
    ContactFacts,
    ConversationFacts,
    Enqueue,
    FinishConversation,
    Handoff,
    InboundFacts,
    LinkAddress,
    LinkInbound,
    NewContact,
    PressedButton,
    RecordAnswers,
    RecordParticipation,
    RequeueTask,
    RetractAnswer,
    SaveState,
    ScheduleTask,
    SetLanguage,
    SetOptedOut,
    StartConversation,
    StartFacts,
    Step,
    TurnPlan,
    TurnResult,
    UpdateFollowup,
    UpdateInvitation,
)
from storage.sqlexec import Exec, Row

SCRUB_GRACE = timedelta(minutes=15)
"""How long a reply queued as an anonymous conversation ends keeps its text after being sent
(a web chat reader still has to fetch it)."""
IN_FLIGHT = ("queued", "sending")
REACHED = ("invited", "started")
RUNNING_CAMPAIGN = ("running", "paused", "scheduled")
_RELEASE_LOCK = 0x62645F72656C  # "bd_rel": one releaser at a time across processes (PostgreSQL)

_contacts = Base.metadata.tables[Contact.__tablename__]
_addresses = Base.metadata.tables[ContactAddress.__tablename__]
_conversations = Base.metadata.tables[Conversation.__tablename__]
_messages = Base.metadata.tables[Message.__tablename__]
_respondents = Base.metadata.tables[Respondent.__tablename__]
_answers = Base.metadata.tables[Answer.__tablename__]
_tasks = Base.metadata.tables[DueTask.__tablename__]
_invitations = Base.metadata.tables[Invitation.__tablename__]
_campaigns = Base.metadata.tables[Campaign.__tablename__]
_followups = Base.metadata.tables[Followup.__tablename__]
_participations = Base.metadata.tables[Participation.__tablename__]
_versions = Base.metadata.tables[SurveyVersion.__tablename__]

_CONTACT_COLUMNS = (
    _contacts.c.id,
    _contacts.c.language,
    _contacts.c.opted_out_at,
    _contacts.c.external_ref,
    _contacts.c.gender,
    _contacts.c.birth_year,
    _contacts.c.age_group,
    _contacts.c.target_group,
    _contacts.c.unit,
    _contacts.c.contact_since,
)
_CONV = "conv_"
"""Prefix of the conversation's columns where they are read next to a contact's."""
_CONVERSATION_COLUMNS = (
    _conversations.c.id,
    _conversations.c.contact_id,
    _conversations.c.respondent_id,
    _conversations.c.survey_version_id,
    _conversations.c.survey_id,
    _conversations.c.campaign_id,
    _conversations.c.followup_id,
    _conversations.c.origin,
    _conversations.c.channel,
    _conversations.c.status,
    _conversations.c.state,
    _conversations.c.attributes,
    _conversations.c.expires_at,
)


class Statements:
    """Every statement a turn runs, built once for one dialect."""

    def __init__(self, dialect: str) -> None:
        pg = dialect == "postgresql"
        insert = postgresql.insert if pg else sqlite.insert
        c, v, m = _contacts, _conversations, _messages

        def locked(stmt: Any, *of: Any) -> Any:
            return stmt.with_for_update(of=of or None) if pg else stmt

        self.lock_address = select(func.pg_advisory_xact_lock(bindparam("k")))
        self.lock_release = select(func.pg_advisory_xact_lock(literal(_RELEASE_LOCK)))
        self.sender = locked(
            select(*_CONTACT_COLUMNS)
            .select_from(_addresses.join(c, c.c.id == _addresses.c.contact_id))
            .where(
                _addresses.c.channel == bindparam("channel"),
                _addresses.c.address_key == bindparam("key"),
            )
            .limit(1),
            c,
        )
        # SQLite, where nothing is locked: the sender and their active conversation in one
        # statement (a turn's first read; PostgreSQL locks each row, so reads them one by one).
        self.sender_active = (
            select(
                *_CONTACT_COLUMNS, *(col.label(_CONV + col.key) for col in _CONVERSATION_COLUMNS)
            )
            .select_from(
                _addresses.join(c, c.c.id == _addresses.c.contact_id).outerjoin(
                    v, and_(v.c.contact_id == c.c.id, v.c.status == ACTIVE)
                )
            )
            .where(
                _addresses.c.channel == bindparam("channel"),
                _addresses.c.address_key == bindparam("key"),
            )
            .order_by(v.c.started_at.desc(), v.c.id.desc())
            .limit(1)
        )
        self.contact = locked(select(*_CONTACT_COLUMNS).where(c.c.id == bindparam("contact_id")))
        self.active = locked(
            select(*_CONVERSATION_COLUMNS)
            .where(v.c.contact_id == bindparam("contact_id"), v.c.status == ACTIVE)
            .order_by(v.c.started_at.desc(), v.c.id.desc())
            .limit(1)
        )
        self.conversation = locked(
            select(*_CONVERSATION_COLUMNS).where(v.c.id == bindparam("conversation_id"))
        )
        self.pending_out = select(func.count()).where(
            m.c.conversation_id == bindparam("conversation_id"),
            _filter_only(m.c.direction) == "out",
            _one_of(m.c.status, IN_FLIGHT),
        )
        self.record_inbound = insert(m).on_conflict_do_nothing(
            index_elements=[m.c.channel, m.c.direction, m.c.provider_id]
        )
        self.pressed = select(m.c.payload, m.c.conversation_id).where(
            m.c.channel == bindparam("channel"),
            m.c.direction == "out",
            m.c.provider_id == bindparam("provider_id"),
        )
        i, k = _invitations, _campaigns
        self.invitations = (
            select(
                k.c.id.label("campaign_id"),
                k.c.survey_id,
                k.c.status.label("campaign_status"),
                k.c.closed_at,
                i.c.status,
                i.c.invited_at,
            )
            .select_from(i.join(k, k.c.id == i.c.campaign_id))
            .where(i.c.contact_id == bindparam("contact_id"))
        )
        self.invitation_status = locked(
            select(i.c.status).where(
                i.c.campaign_id == bindparam("campaign_id"),
                i.c.contact_id == bindparam("contact_id"),
            )
        )
        self.followup_status = locked(
            select(_followups.c.status).where(_followups.c.id == bindparam("followup_id"))
        )
        p = _participations
        self.completed_public = select(p.c.survey_id).where(
            p.c.contact_id == bindparam("contact_id"),
            p.c.period == bindparam("period"),
            p.c.completed == true(),
        )
        self.recent_starts = select(func.count()).where(
            v.c.contact_id == bindparam("contact_id"), v.c.started_at >= bindparam("since")
        )
        self.survey_version = select(_versions.c.definition, _versions.c.source).where(
            _versions.c.id == bindparam("version_id")
        )

        # -- writes
        self.insert_contact = insert(c)
        self.upsert_address = insert(_addresses)
        self.upsert_address = self.upsert_address.on_conflict_do_update(
            index_elements=[_addresses.c.channel, _addresses.c.address_key],
            set_={
                "contact_id": self.upsert_address.excluded.contact_id,
                "address": self.upsert_address.excluded.address,
            },
        )
        self.update_contact = update(c).where(c.c.id == bindparam("w_id"))
        self.opt_out = (
            update(c)
            .where(c.c.id == bindparam("w_id"), c.c.opted_out_at.is_(None))
            .values(opted_out_at=bindparam("at"), updated_at=bindparam("at"))
        )
        self.cancel_queued = (
            update(m)
            .where(
                m.c.contact_id == bindparam("w_contact"),
                _filter_only(m.c.direction) == "out",
                m.c.status == "queued",
                m.c.kind != "opt_out",
                m.c.kind != "ack",
            )
            .values(status="cancelled", error=bindparam("w_error"), status_at=bindparam("w_at"))
        )
        self.link_inbound = update(m).where(m.c.id == bindparam("w_id"), m.c.direction == "in")
        self.insert_conversation = insert(v)
        self.insert_respondent = insert(_respondents)
        a = _answers
        self.upsert_answer = insert(a)
        self.upsert_answer = self.upsert_answer.on_conflict_do_update(
            index_elements=[a.c.respondent_id, a.c.question_id],
            set_={
                "value": self.upsert_answer.excluded.value,
                "skipped": self.upsert_answer.excluded.skipped,
                "answered_on": self.upsert_answer.excluded.answered_on,
            },
        )
        self.insert_answer = insert(a)
        self.retract_answer = delete(a).where(
            a.c.respondent_id == bindparam("w_respondent"), a.c.question_id == bindparam("w_q")
        )
        self.update_conversation = update(v).where(v.c.id == bindparam("w_id"))
        self.update_respondent = update(_respondents).where(_respondents.c.id == bindparam("w_id"))
        # PostgreSQL: a finishing turn locks its conversation's messages in id order before
        # changing any, as the outbox's recorder locks the rows it records (storage.outbox), so
        # the two never wait for each other in a circle (a deadlock costs PostgreSQL's
        # deadlock_timeout, a second, before one of them is retried).
        self.lock_conversation_messages = locked(
            select(m.c.id).where(m.c.conversation_id == bindparam("w_conv")).order_by(m.c.id)
        )
        self.clear_messages = (
            update(m)
            .where(
                m.c.conversation_id == bindparam("w_conv"),
                ~and_(_filter_only(m.c.direction) == "out", _one_of(m.c.status, IN_FLIGHT)),
            )
            .values(body=None, payload={}, scrub_after=None)
        )
        self.scrub_later = (
            update(m)
            .where(
                m.c.conversation_id == bindparam("w_conv"),
                _filter_only(m.c.direction) == "out",
                _one_of(m.c.status, IN_FLIGHT),
            )
            .values(scrub_after=bindparam("w_after"))
        )
        self.delete_messages = delete(m).where(
            m.c.conversation_id == bindparam("w_conv"),
            _filter_only(m.c.direction) == "out",
            ~_one_of(m.c.status, IN_FLIGHT),
        )
        # An inbound row stays as long as the provider may deliver it again (its id dedupes the
        # redelivery), with nothing left of who sent it, what, or in which conversation.
        self.blank_inbound = (
            update(m)
            .where(m.c.conversation_id == bindparam("w_conv"), _filter_only(m.c.direction) == "in")
            .values(body=None, payload={}, contact_id=None, conversation_id=None, address_key=None)
        )
        self.unlink_in_flight = (
            update(m)
            .where(m.c.conversation_id == bindparam("w_conv"))
            .values(conversation_id=None, scrub_after=bindparam("w_after"))
        )
        self.delete_conversation = delete(v).where(v.c.id == bindparam("w_id"))
        self.finish_invitation = (
            update(i)
            .where(i.c.conversation_id == bindparam("w_conv"), _one_of(i.c.status, REACHED))
            .values(status=bindparam("w_status"))
        )
        self.finish_invitation_anonymous = (
            update(i).where(i.c.conversation_id == bindparam("w_conv")).values(conversation_id=None)
        )
        self.finish_followup = update(_followups).where(_followups.c.id == bindparam("w_id"))
        self.complete_participation = (
            update(p)
            .where(
                p.c.contact_id == bindparam("w_contact"),
                p.c.survey_id == bindparam("w_survey"),
                p.c.completed == False,  # noqa: E712
            )
            .values(completed=True)
        )
        self.drop_participation = delete(p).where(
            p.c.contact_id == bindparam("w_contact"),
            p.c.survey_id == bindparam("w_survey"),
            p.c.completed == False,  # noqa: E712
        )
        self.insert_participation = insert(p).on_conflict_do_nothing(
            index_elements=[p.c.contact_id, p.c.survey_id, p.c.period]
        )
        self.enqueue = insert(m)
        t = _tasks
        self.schedule = insert(t).on_conflict_do_nothing(index_elements=[t.c.key])
        replace = insert(t)
        self.schedule_replace = replace.on_conflict_do_update(
            index_elements=[t.c.key],
            set_={"due_at": replace.excluded.due_at, "payload": replace.excluded.payload},
            where=t.c.status == "pending",
        )
        self.cancel_task = (
            update(t)
            .where(t.c.key == bindparam("w_key"), t.c.status == "pending")
            .values(status="cancelled")
        )
        self.requeue_task = (
            update(t)
            .where(t.c.key == bindparam("w_key"), _one_of(t.c.status, ("pending", "running")))
            .values(
                status="pending",
                due_at=bindparam("w_due"),
                claimed_by=None,
                lease_until=None,
                attempts=0,
            )
        )
        self.delete_task = delete(t).where(t.c.key == bindparam("w_key"))
        self.update_invitation = update(i).where(
            i.c.campaign_id == bindparam("w_campaign"), i.c.contact_id == bindparam("w_contact")
        )
        self.start_invitation = (
            update(i)
            .where(
                i.c.campaign_id == bindparam("w_campaign"),
                i.c.contact_id == bindparam("w_contact"),
                i.c.status == "invited",
            )
            .values(status="started")
        )
        self.remind_invitation = (
            update(i)
            .where(
                i.c.campaign_id == bindparam("w_campaign"),
                i.c.contact_id == bindparam("w_contact"),
                _one_of(i.c.status, REACHED),
            )
            .values(reminders_sent=i.c.reminders_sent + 1)
        )

        # -- release of anonymous answers
        self.pending_groups = (
            select(v.c.survey_id, v.c.campaign_id, v.c.origin, func.count().label("n"))
            .where(v.c.pending_release == true())
            .group_by(v.c.survey_id, v.c.campaign_id, v.c.origin)
        )
        self.pending_in_group = select(
            v.c.id,
            v.c.survey_version_id,
            v.c.status,
            v.c.state,
            v.c.attributes,
            v.c.channel,
        ).where(
            v.c.pending_release == true(),
            v.c.survey_id == bindparam("survey_id"),
            v.c.campaign_id.is_not_distinct_from(bindparam("campaign_id")),
            v.c.origin == bindparam("origin"),
        )
        self.closed_campaign = select(k.c.id).where(
            k.c.id == bindparam("campaign_id"), k.c.status == "closed"
        )


@cache
def statements(dialect: str) -> Statements:
    """The statements for "sqlite" or "postgresql" (built on first use)."""
    return Statements(dialect)


def _filter_only(column: Any) -> Any:
    """`column` as a filter the planner must not pick an index for. SQLite, which keeps no
    statistics here, would otherwise plan "one conversation's outbound messages in flight" on
    the outbox index (direction, channel, status, not_before) and walk every queued message of
    everyone (tests/storage/test_query_plans.py); wrapped, the conversation's own index is
    used."""
    return func.coalesce(column, column)


def _one_of(column: Any, values: Sequence[str]) -> Any:
    """`column IN (...)` for a fixed list, written out so it compiles once (no expanding bind)."""
    return or_(*(column == value for value in values))


def _contact(row: Row) -> ContactFacts:
    return ContactFacts(
        id=int(row["id"]),
        language=row["language"],
        opted_out_at=row["opted_out_at"],
        external_ref=row["external_ref"],
        gender=row["gender"],
        birth_year=row["birth_year"],
        age_group=row["age_group"],
        target_group=row["target_group"],
        unit=row["unit"],
        contact_since=row["contact_since"],
    )


def _conversation(row: Row, prefix: str = "") -> ConversationFacts:
    return ConversationFacts(
        id=row[prefix + "id"],
        contact_id=row[prefix + "contact_id"],
        respondent_id=row[prefix + "respondent_id"],
        survey_version_id=int(row[prefix + "survey_version_id"]),
        survey_id=row[prefix + "survey_id"],
        campaign_id=row[prefix + "campaign_id"],
        followup_id=row[prefix + "followup_id"],
        origin=row[prefix + "origin"],
        channel=row[prefix + "channel"],
        status=row[prefix + "status"],
        state=row[prefix + "state"],
        attributes=row[prefix + "attributes"] or {},
        expires_at=row[prefix + "expires_at"],
    )


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a string."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# -- reading facts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """An inbound message as stored: who sent it (by key) and what."""

    channel: str
    provider_id: str
    address_key: str
    body: str
    payload: Mapping[str, Any]
    received_at: datetime
    start_token_key: str | None = None
    """Telegram `/start TOKEN`: the address key the token has as a web chat address."""
    pressed_provider_id: str | None = None
    """Telegram button press: the provider id of the message the button was under."""


def load_inbound(
    x: Exec, inbound: Inbound, *, now: datetime, closed_grace: timedelta, period: str
) -> InboundFacts | None:
    """Store an inbound message and read what its decision needs; None for a redelivery (the
    provider id was already stored, so the turn is not run again)."""
    st = statements(x.dialect)
    if x.dialect == "postgresql":
        x.rows(st.lock_address, {"k": _lock_key(inbound.channel, inbound.address_key)})
    who = {"channel": inbound.channel, "key": inbound.address_key}
    conv = None
    if x.dialect == "sqlite":
        found = x.rows(st.sender_active, who)
        sender = _contact(found[0]) if found else None
        if found and found[0][_CONV + "id"] is not None:
            conv = _conversation(found[0], _CONV)
    else:
        found = x.rows(st.sender, who)
        sender = _contact(found[0]) if found else None
        if sender is not None:
            active = x.rows(st.active, {"contact_id": sender.id})
            conv = _conversation(active[0]) if active else None
    recorded = x.insert(
        st.record_inbound,
        {
            "direction": "in",
            "channel": inbound.channel,
            "provider_id": inbound.provider_id,
            "contact_id": sender.id if sender else None,
            "conversation_id": conv.id if conv else None,
            "address_key": inbound.address_key,
            "body": inbound.body,
            "payload": dict(inbound.payload),
            "kind": "reply",
            "status": "received",
            "attempts": 0,
            "not_before": inbound.received_at,
            # When we stored it, not the provider's date: retention counts from here, and a
            # redelivery must find the row for as long as a provider may redeliver.
            "created_at": now,
            "status_at": inbound.received_at,
        },
    )
    if recorded is None:
        return None
    facts: dict[str, Any] = {}
    if inbound.start_token_key is not None:
        owner = x.rows(st.sender, {"channel": "webchat", "key": inbound.start_token_key})
        if owner:
            facts["token_owner"] = owner_facts = _contact(owner[0])
            active = x.rows(st.active, {"contact_id": owner_facts.id})
            facts["token_conversation"] = _conversation(active[0]) if active else None
    if inbound.pressed_provider_id is not None:
        pressed = x.rows(
            st.pressed, {"channel": inbound.channel, "provider_id": inbound.pressed_provider_id}
        )
        if pressed:
            payload = pressed[0]["payload"] or {}
            facts["pressed"] = PressedButton(
                question_id=payload.get("question_id"),
                conversation_id=pressed[0]["conversation_id"],
                known=True,
            )
        else:
            facts["pressed"] = PressedButton(None, None, known=False)
    if sender is not None and conv is None:
        facts.update(_keyword_facts(x, st, sender.id, now, closed_grace, period))
    return InboundFacts(message_id=recorded, sender=sender, conversation=conv, **facts)


def _keyword_facts(
    x: Exec, st: Statements, contact_id: int, now: datetime, grace: timedelta, period: str
) -> dict[str, Any]:
    """What a keyword from someone without a running conversation is decided on."""
    open_invitations: dict[str, int] = {}
    completed: set[str] = set()
    closed: set[str] = set()
    for row in x.rows(st.invitations, {"contact_id": contact_id}):
        status, survey_id = row["status"], row["survey_id"]
        if row["campaign_status"] in RUNNING_CAMPAIGN:
            if status == COMPLETED:
                completed.add(survey_id)
            elif status != OPTED_OUT:
                open_invitations[survey_id] = int(row["campaign_id"])
        elif (
            row["invited_at"] is not None
            and row["closed_at"] is not None
            and now - row["closed_at"] < grace
        ):
            closed.add(survey_id)
    public = {
        r["survey_id"]
        for r in x.rows(st.completed_public, {"contact_id": contact_id, "period": period})
    }
    starts = x.rows(st.recent_starts, {"contact_id": contact_id, "since": now - timedelta(hours=1)})
    return {
        "open_invitations": open_invitations,
        "completed_campaign_surveys": frozenset(completed),
        "closed_campaign_surveys": frozenset(closed),
        "completed_public": frozenset(public),
        "recent_starts": int(next(iter(starts[0].values()))) if starts else 0,
    }


def load_start(x: Exec, contact_id: int) -> StartFacts:
    """A contact about to be started on a survey from outside, and whether they are busy."""
    st = statements(x.dialect)
    found = x.rows(st.contact, {"contact_id": contact_id})
    if not found:
        return StartFacts(None, None)
    active = x.rows(st.active, {"contact_id": contact_id})
    return StartFacts(_contact(found[0]), _conversation(active[0]) if active else None)


def invitation_status(x: Exec, campaign_id: int, contact_id: int) -> str | None:
    """A campaign invitation's status (locked on PostgreSQL); None if there is none."""
    rows = x.rows(
        statements(x.dialect).invitation_status,
        {"campaign_id": campaign_id, "contact_id": contact_id},
    )
    return rows[0]["status"] if rows else None


def followup_status(x: Exec, followup_id: int) -> str | None:
    """A follow-up's status (locked on PostgreSQL); None if there is none."""
    rows = x.rows(statements(x.dialect).followup_status, {"followup_id": followup_id})
    return rows[0]["status"] if rows else None


def load_conversation(x: Exec, conversation_id: str) -> ConversationFacts | None:
    """A conversation (locked on PostgreSQL) for a turn made from outside."""
    found = x.rows(statements(x.dialect).conversation, {"conversation_id": conversation_id})
    return _conversation(found[0]) if found else None


def pending_out(x: Exec, conversation_id: str) -> int:
    """Outgoing messages of a conversation still waiting to be sent."""
    rows = x.rows(statements(x.dialect).pending_out, {"conversation_id": conversation_id})
    return int(next(iter(rows[0].values()))) if rows else 0


def survey_version(x: Exec, version_id: int) -> tuple[Mapping[str, Any], str] | None:
    """A stored survey version's definition and source path."""
    rows = x.rows(statements(x.dialect).survey_version, {"version_id": version_id})
    return (rows[0]["definition"], rows[0]["source"]) if rows else None


# -- writing plans ---------------------------------------------------------------------------------


def write(
    x: Exec,
    plan: TurnPlan,
    *,
    now: datetime,
    message_id: int | None = None,
    linked: tuple[int | None, str | None] = (None, None),
    handoff: Mapping[str, Handoff] | None = None,
) -> TurnResult:
    """Write every step of a plan, in order. `linked` is the contact and conversation the inbound
    message `message_id` was stored with (`load_inbound`): linking it to them again is skipped.
    A reply due now on a channel in `handoff` is written claimed by that sender (`Handoff`)."""
    st = statements(x.dialect)
    new_contact: int | None = None
    reply_ids: list[int] = []
    handed: list[Outgoing] = []
    started: str | None = None
    contact_seen: int | None = None

    def resolve(contact_id: int | None) -> int | None:
        if contact_id == NEW_CONTACT:
            assert new_contact is not None, "a step refers to a contact the plan did not create"
            return new_contact
        return contact_id

    for step in folded(plan.steps):
        if isinstance(step, NewContact):
            new_contact = _new_contact(x, st, step, now)
            contact_seen = new_contact
        elif isinstance(step, SetLanguage):
            x.run(
                st.update_contact,
                {"w_id": resolve(step.contact_id), "language": step.language, "updated_at": now},
            )
        elif isinstance(step, SetOptedOut):
            contact_id = resolve(step.contact_id)
            if step.at is None:
                x.run(
                    st.update_contact, {"w_id": contact_id, "opted_out_at": None, "updated_at": now}
                )
            else:
                x.run(st.opt_out, {"w_id": contact_id, "at": step.at})
        elif isinstance(step, CancelQueued):
            x.run(
                st.cancel_queued,
                {"w_contact": resolve(step.contact_id), "w_error": step.reason, "w_at": now},
            )
        elif isinstance(step, LinkAddress):
            _link_address(
                x, st, resolve(step.contact_id), step.channel, step.address, step.address_key, now
            )
        elif isinstance(step, LinkInbound):
            target = (resolve(step.contact_id), step.conversation_id)
            if message_id is not None and target != linked:
                x.run(
                    st.link_inbound,
                    {"w_id": message_id, "contact_id": target[0], "conversation_id": target[1]},
                )
            contact_seen = resolve(step.contact_id) or contact_seen
        elif isinstance(step, StartConversation):
            _start(x, st, step, resolve(step.contact_id), now)
            started = step.id
        elif isinstance(step, RecordAnswers):
            latest = {q: (value, skipped) for q, value, skipped in step.answers}
            for question_id, (value, skipped) in latest.items():
                x.run(
                    st.upsert_answer,
                    {
                        "respondent_id": step.respondent_id,
                        "question_id": question_id,
                        "value": value,
                        "skipped": skipped,
                        "answered_on": step.on,
                    },
                )
        elif isinstance(step, RetractAnswer):
            x.run(st.retract_answer, {"w_respondent": step.respondent_id, "w_q": step.question_id})
        elif isinstance(step, SaveState):
            x.run(
                st.update_conversation,
                {
                    "w_id": step.conversation_id,
                    "state": dict(step.state),
                    "expires_at": step.expires_at,
                    "channel": step.channel,
                    "updated_at": now,
                },
            )
        elif isinstance(step, FinishConversation):
            _finish(x, st, step, resolve(step.contact_id), now)
        elif isinstance(step, Enqueue):
            claimant = handoff.get(step.channel) if handoff else None
            if claimant is not None and step.not_before > now:
                claimant = None
            reply_id = _enqueue(x, st, step, resolve(step.contact_id), now, claimant)
            reply_ids.append(reply_id)
            if claimant is not None:
                handed.append(_claimed(step, reply_id, resolve(step.contact_id), now))
        elif isinstance(step, ScheduleTask):
            x.run(
                st.schedule_replace if step.replace else st.schedule,
                {
                    "kind": step.kind,
                    "key": step.key,
                    "due_at": step.due_at,
                    "payload": dict(step.payload),
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                },
            )
        elif isinstance(step, CancelTask):
            x.run(st.cancel_task, {"w_key": step.key})
        elif isinstance(step, RequeueTask):
            x.run(st.requeue_task, {"w_key": step.key, "w_due": step.due_at})
        elif isinstance(step, UpdateInvitation):
            _update_invitation(x, st, step, resolve(step.contact_id))
        elif isinstance(step, UpdateFollowup):
            values: dict[str, Any] = {"w_id": step.followup_id, "status": step.status}
            if step.conversation_id is not None:
                values["conversation_id"] = step.conversation_id
            if step.sent_at is not None:
                values["sent_at"] = step.sent_at
            if step.reason is not None:
                values["reason"] = step.reason
            x.run(st.finish_followup, values)
        elif isinstance(step, RecordParticipation):
            x.run(
                st.insert_participation,
                {
                    "contact_id": resolve(step.contact_id),
                    "survey_id": step.survey_id,
                    "period": step.period,
                    "completed": step.completed,
                },
            )
        else:  # pragma: no cover - a step type added without its writer
            raise TypeError(f"no writer for {type(step).__name__}")
    return TurnResult(
        message_id=message_id,
        reply_ids=tuple(reply_ids),
        contact_id=contact_seen,
        conversation_id=started,
        outcome=plan.outcome,
        handed=tuple(handed),
    )


def folded(steps: Sequence[Step]) -> list[Step]:
    """The steps with a new contact's language and a new conversation's state written with the
    row they belong to: the rows `write` leaves are the same, with one statement less each
    (a survey started by keyword runs both). A state saved after the conversation finished in
    the same plan stays a step of its own."""
    out: list[Step | None] = list(steps)
    contact: int | None = None
    started: dict[str, int] = {}
    for i, step in enumerate(steps):
        if isinstance(step, NewContact):
            contact = i
        elif (
            isinstance(step, SetLanguage) and step.contact_id == NEW_CONTACT and contact is not None
        ):
            out[contact] = replace(cast(NewContact, out[contact]), language=step.language)
            out[i] = None
        elif isinstance(step, StartConversation):
            started[step.id] = i
        elif isinstance(step, FinishConversation):
            started.pop(step.conversation_id, None)
        elif isinstance(step, SaveState) and step.conversation_id in started:
            at = started[step.conversation_id]
            out[at] = replace(
                cast(StartConversation, out[at]),
                state=step.state,
                expires_at=step.expires_at,
                channel=step.channel,
            )
            out[i] = None
    return [step for step in out if step is not None]


def _new_contact(x: Exec, st: Statements, step: NewContact, now: datetime) -> int:
    contact_id = x.insert(
        st.insert_contact,
        {"language": step.language, "attributes": {}, "created_at": now, "updated_at": now},
    )
    assert contact_id is not None
    _link_address(x, st, contact_id, step.channel, step.address, step.address_key, now)
    return contact_id


def _link_address(
    x: Exec,
    st: Statements,
    contact_id: int | None,
    channel: str,
    address: str,
    address_key: str,
    now: datetime,
) -> None:
    """Reach a contact at an address; it moves from whoever had it before."""
    x.run(
        st.upsert_address,
        {
            "contact_id": contact_id,
            "channel": channel,
            "address": address,
            "address_key": address_key,
            "created_at": now,
        },
    )


def _start(
    x: Exec, st: Statements, step: StartConversation, contact_id: int | None, now: datetime
) -> None:
    x.run(
        st.insert_conversation,
        {
            "id": step.id,
            "contact_id": contact_id,
            "respondent_id": step.respondent_id,
            "survey_version_id": step.survey_version_id,
            "survey_id": step.survey_id,
            "campaign_id": step.campaign_id,
            "followup_id": step.followup_id,
            "origin": step.origin,
            "attributes": dict(step.attributes),
            "pending_release": False,
            "channel": step.channel,
            "status": ACTIVE,
            "state": dict(step.state),
            "started_at": now,
            "updated_at": now,
            "expires_at": step.expires_at,
        },
    )
    if step.respondent_id is not None:
        x.run(
            st.insert_respondent,
            {
                "id": step.respondent_id,
                "survey_id": step.survey_id,
                "survey_version_id": step.survey_version_id,
                "campaign_id": step.campaign_id,
                "contact_id": contact_id,
                "attributes": dict(step.attributes),
                "channel": step.channel,
                "status": ACTIVE,
                "started_on": now.date(),
                "completed": False,
                "origin": step.origin,
            },
        )


def _finish(
    x: Exec, st: Statements, step: FinishConversation, contact_id: int | None, now: datetime
) -> None:
    conv = step.conversation_id
    if x.dialect == "postgresql" and (step.discard or step.anonymous):
        x.rows(st.lock_conversation_messages, {"w_conv": conv})
    if step.discard:
        x.run(st.delete_messages, {"w_conv": conv})
        x.run(st.blank_inbound, {"w_conv": conv})
        x.run(st.unlink_in_flight, {"w_conv": conv, "w_after": now + SCRUB_GRACE})
        x.run(st.delete_conversation, {"w_id": conv})
        if contact_id is not None:
            x.run(st.drop_participation, {"w_contact": contact_id, "w_survey": step.survey_id})
        return
    values: dict[str, Any] = {
        "w_id": conv,
        "status": step.status,
        "state": dict(step.state),
        "finished_at": now,
        "updated_at": now,
    }
    if step.anonymous:
        # Its answers wait in `state` for release; nothing else of it points at the person.
        values.update(contact_id=None, respondent_id=None, pending_release=True)
    x.run(st.update_conversation, values)
    if step.respondent_id is not None:
        x.run(
            st.update_respondent,
            {
                "w_id": step.respondent_id,
                "status": step.status,
                "completed": step.status == COMPLETED,
            },
        )
    if step.campaign_id is not None:
        final = step.status if step.status in (COMPLETED, OPTED_OUT) else "closed"
        x.run(st.finish_invitation, {"w_conv": conv, "w_status": final})
        if step.anonymous:
            x.run(st.finish_invitation_anonymous, {"w_conv": conv})
    if step.followup_id is not None:
        followup: dict[str, Any] = {
            "w_id": step.followup_id,
            "outcome": step.status,
            "finished_on": now.date(),
        }
        if step.anonymous:
            followup["conversation_id"] = None
        x.run(st.finish_followup, followup)
    if step.origin == PUBLIC and contact_id is not None and step.status == COMPLETED:
        x.run(st.complete_participation, {"w_contact": contact_id, "w_survey": step.survey_id})
    if step.anonymous:
        x.run(st.clear_messages, {"w_conv": conv})
        x.run(st.scrub_later, {"w_conv": conv, "w_after": now + SCRUB_GRACE})


def _enqueue(
    x: Exec,
    st: Statements,
    step: Enqueue,
    contact_id: int | None,
    now: datetime,
    claimant: Handoff | None = None,
) -> int:
    claimed: dict[str, Any] = {"status": "queued", "attempts": 0}
    if claimant is not None:
        # As a claim would leave it (storage.outbox.claim): sending, leased, one attempt.
        claimed = {
            "status": "sending",
            "attempts": 1,
            "claimed_by": claimant.worker,
            "lease_until": claimant.until,
        }
    reply_id = x.insert(
        st.enqueue,
        {
            "direction": "out",
            "channel": step.channel,
            "address": step.address,
            "address_key": step.address_key,
            "body": step.body,
            "payload": dict(step.payload),
            "kind": step.kind,
            "contact_id": contact_id,
            "conversation_id": step.conversation_id,
            "campaign_id": step.campaign_id,
            **claimed,
            "not_before": step.not_before,
            "created_at": now,
        },
    )
    assert reply_id is not None
    return reply_id


def _claimed(step: Enqueue, reply_id: int, contact_id: int | None, now: datetime) -> Outgoing:
    """The reply as its sender gets it from a claim."""
    return Outgoing(
        id=reply_id,
        channel=step.channel,
        address=step.address,
        body=step.body,
        payload=dict(step.payload),
        kind=step.kind,
        contact_id=contact_id,
        attempts=1,
        not_before=step.not_before,
        created_at=now,
        retrying_since=None,
    )


def _update_invitation(
    x: Exec, st: Statements, step: UpdateInvitation, contact_id: int | None
) -> None:
    if step.add_reminder:
        x.run(st.remind_invitation, {"w_campaign": step.campaign_id, "w_contact": contact_id})
        return
    if step.status == "started":
        x.run(st.start_invitation, {"w_campaign": step.campaign_id, "w_contact": contact_id})
        return
    values: dict[str, Any] = {
        "w_campaign": step.campaign_id,
        "w_contact": contact_id,
        "status": step.status,
    }
    if step.channel is not None:
        values["channel"] = step.channel
    if step.conversation_id is not None:
        values["conversation_id"] = step.conversation_id
    if step.invited_at is not None:
        values["invited_at"] = step.invited_at
    x.run(st.update_invitation, values)


# -- releasing anonymous answers -------------------------------------------------------------------


def release(
    x: Exec, *, min_batch: int, now: datetime, rng: secrets.SystemRandom | None = None
) -> int:
    """Release the answers of finished anonymous conversations; returns how many people.

    A group (one survey, one campaign or none, one origin) is released once at least `min_batch`
    people in it have finished, or whatever it holds once its campaign has closed. Released
    people are written in shuffled order under fresh random ids, dated to `today`, with the
    copied breakdown attributes only; their conversations, those conversations' messages and
    timers are deleted. What remains cannot be lined up with who finished when: within a batch,
    no id, row order, transaction id or timestamp tells one person from another."""
    st = statements(x.dialect)
    if x.dialect == "postgresql":
        x.rows(st.lock_release)
    rng = rng or secrets.SystemRandom()
    today = now.date()
    released = 0
    for group in x.rows(st.pending_groups):
        campaign_id = group["campaign_id"]
        closed = campaign_id is not None and bool(
            x.rows(st.closed_campaign, {"campaign_id": campaign_id})
        )
        if int(group["n"]) < min_batch and not closed:
            continue
        batch = x.rows(
            st.pending_in_group,
            {
                "survey_id": group["survey_id"],
                "campaign_id": campaign_id,
                "origin": group["origin"],
            },
        )
        rng.shuffle(batch)
        for row in batch:
            _write_respondent(x, st, row, group, today)
        for row in batch:
            conv = row["id"]
            x.run(st.delete_messages, {"w_conv": conv})
            x.run(st.blank_inbound, {"w_conv": conv})
            x.run(st.unlink_in_flight, {"w_conv": conv, "w_after": now})
            x.run(st.delete_conversation, {"w_id": conv})
            x.run(st.delete_task, {"w_key": f"conversation.expire:{conv}"})
        released += len(batch)
    return released


def _write_respondent(x: Exec, st: Statements, row: Row, group: Row, today: date) -> None:
    state: Mapping[str, Any] = row["state"] or {}
    answers: Mapping[str, Any] = state.get("answers") or {}
    history: Sequence[str] = state.get("history") or ()
    status = row["status"]
    if not answers and not history:
        return
    respondent_id = str(uuid.uuid4())
    x.run(
        st.insert_respondent,
        {
            "id": respondent_id,
            "survey_id": group["survey_id"],
            "survey_version_id": row["survey_version_id"],
            "campaign_id": group["campaign_id"],
            "contact_id": None,
            "attributes": dict(row["attributes"] or {}),
            "channel": row["channel"],
            "status": status,
            "started_on": today,
            "completed": status == COMPLETED,
            "origin": group["origin"],
        },
    )
    for question_id in _answered_order(answers, history):
        skipped = question_id not in answers
        x.run(
            st.insert_answer,
            {
                "respondent_id": respondent_id,
                "question_id": question_id,
                "value": None if skipped else answers[question_id],
                "skipped": skipped,
                "answered_on": today,
            },
        )


def _answered_order(answers: Mapping[str, Any], history: Iterable[str]) -> list[str]:
    order = list(dict.fromkeys(history))
    order.extend(q for q in answers if q not in order)
    return order


__all__: Sequence[str] = (
    "SCRUB_GRACE",
    "Inbound",
    "Statements",
    "followup_status",
    "invitation_status",
    "load_conversation",
    "load_inbound",
    "load_start",
    "pending_out",
    "release",
    "statements",
    "survey_version",
    "write",
)
