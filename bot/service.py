"""The conversation service: one transaction per inbound message.

`handle_inbound` dedupes on the provider's id, runs one engine step, stores answers and state, and
puts the replies in the outbox — all committed together before the webhook answers 2xx. Sending is
the dispatcher's job (bot.dispatcher)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bands import age_group_of, contact_length_of
from bot.catalog import CatalogEntry, SurveyCatalog
from bot.channels.base import InboundMessage, StatusUpdate, clean_text
from bot.clock import Clock
from bot.privacy import Pseudonymizer
from flows import engine
from flows.answers import normalize
from flows.conversation import (
    ConversationState,
    EventKind,
    Input,
    MessageKind,
    OutMessage,
    Step,
)
from flows.engine import Keyword
from flows.model import SMILEYS, Survey, localize
from storage import repo_contacts, repo_conversations, repo_messages, repo_tasks, turns
from storage.db import Database
from storage.models import Contact, Conversation
from storage.raw import RawConnection, Statement
from storage.turns import ContactRow, ConversationRow

log = logging.getLogger(__name__)

EXPIRE_TASK = "conversation.expire"
CLOSED_GRACE = timedelta(days=30)
"""How long after a campaign closed a late answer gets "this survey has closed"."""
WEBCHAT = "webchat"
ContactT = TypeVar("ContactT", Contact, ContactRow)
ConversationT = TypeVar("ConversationT", Conversation, ConversationRow)


@dataclass(frozen=True, slots=True)
class InboundResult:
    duplicate: bool = False
    message_id: int | None = None
    reply_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class WebChatSession:
    token: str
    conversation_id: str
    reply_ids: tuple[int, ...] = field(default=())


def respondent_attributes(contact: Contact | ContactRow, lang: str, on: date) -> dict[str, Any]:
    """What an anonymous respondent keeps of the contact: only what results are broken down by."""
    return {
        "gender": contact.gender,
        "target_group": contact.target_group,
        "unit": contact.unit,
        "age_group": contact.age_group or age_group_of(contact.birth_year, on),
        "contact_length": contact_length_of(contact.contact_since, on),
        "language": lang,
    }


def message_payload(message: OutMessage, lang: str) -> dict[str, Any]:
    """How an engine message is kept in the outbox until a channel renders it."""
    return {
        "kind": message.kind.value,
        "lang": lang,
        "question_id": message.question_id,
        "buttons": [[b.payload, b.label] for b in message.buttons],
        "numbered": list(message.numbered),
        "multiple": message.multiple,
    }


def _media(msg: InboundMessage) -> dict[str, Any]:
    """How many pictures (or other media) came with a message, so staff can see they did."""
    num_media = msg.extras.get("num_media")
    return {"num_media": num_media} if num_media else {}


def ack_payload(msg: InboundMessage, survey: Survey, state: ConversationState) -> dict[str, Any]:
    """Telegram: the outbox payload that answers a button press and shows the choice under the
    question it answered."""
    extras = msg.extras
    payload: dict[str, Any] = {
        "kind": "ack",
        "extras": {"callback_query_id": extras["callback_query_id"]},
    }
    if extras.get("message_id") and msg.payload:
        label = pressed_label(survey, state, msg.payload)
        payload["extras"]["edit_message_id"] = extras["message_id"]
        payload["extras"]["edit_text"] = f"{extras.get('message_text') or ''}\n✓ {label}"
    return payload


def pressed_label(survey: Survey, state: ConversationState, payload: str) -> str:
    """The label of a pressed button, to show under the question it answered."""
    kind, _, value = payload.partition(":")
    question = survey.question(state.current) if state.current else None
    if kind == "choice" and question is not None and (choice := question.choice(value)):
        return localize(choice.text, state.lang, survey.default_language)
    if kind == "scale" and value.isdigit():
        n = int(value)
        style_smileys = question is not None and question.style == "smileys"
        return SMILEYS[n - 1] if style_smileys and 1 <= n <= len(SMILEYS) else value
    return value


class ConversationService:
    """Runs the engine for inbound messages and starts conversations, one transaction each."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        pseudonymizer: Pseudonymizer,
        clock: Clock,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.pseudonymizer = pseudonymizer
        self.clock = clock

    # -- inbound ---------------------------------------------------------------------------

    async def handle_inbound(self, msg: InboundMessage) -> InboundResult:
        msg = replace(msg, text=clean_text(msg.text))
        if msg.ignore is not None:
            # Recorded (so a redelivery stays a duplicate and staff see it came), never answered.
            async with self.db.transaction(raw_first=True) as s:
                [stored] = await (await RawConnection.of(s)).run_all(
                    [
                        turns.record_inbound(
                            channel=msg.channel,
                            provider_id=msg.provider_id,
                            contact_id=None,
                            conversation_id=None,
                            address_key="",
                            body="",
                            payload={"ignored": msg.ignore, **_media(msg)},
                            received_at=msg.received_at,
                        )
                    ]
                )
            return InboundResult(duplicate=not stored.rows)
        now = self.clock.now()
        key = self.pseudonymizer.address_key(msg.channel, msg.address)
        async with self.db.transaction(raw_first=True) as s:
            raw = await RawConnection.of(s)
            contact, conv, message_id = await turns.receive(
                raw,
                channel=msg.channel,
                address_key=key,
                provider_id=msg.provider_id,
                body=msg.text,
                payload=({"button": msg.payload} if msg.payload else {}) | _media(msg),
                received_at=msg.received_at,
            )
            if message_id is None:
                return InboundResult(duplicate=True)
            lean = _LeanTurn(self, s, raw, msg, message_id, contact, conv, now)
            if await lean.run():
                return InboundResult(message_id=message_id, reply_ids=tuple(lean.reply_ids))
            # Everything else (opting out or in, /start tokens, menus) takes the full way.
            turn = _Turn(
                self,
                s,
                msg,
                message_id,
                await repo_contacts.get(s, contact.id) if contact else None,
                await repo_conversations.get(s, conv.id) if conv else None,
                now,
            )
            await turn.run()
            return InboundResult(message_id=message_id, reply_ids=tuple(turn.reply_ids))

    async def handle_status(self, update: StatusUpdate) -> bool:
        """Apply a provider's delivery report; False if the message is unknown."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            message = await repo_messages.apply_status(
                s, update.channel, update.provider_id, update.status, update.error, now
            )
            if message is None:
                return False
            if update.opted_out and message.contact_id is not None:
                contact = await repo_contacts.get(s, message.contact_id)
                if contact is not None:
                    await opt_out(s, contact, now)
            return True

    # -- starting conversations ------------------------------------------------------------

    async def start_webchat(self, survey_id: str, lang: str | None) -> WebChatSession:
        """A newcomer tries a survey in the web chat: a fresh token, contact and conversation."""
        entry = self.catalog.latest(survey_id)
        if entry is None:
            raise LookupError(survey_id)
        now = self.clock.now()
        token = secrets.token_urlsafe(18)
        async with self.db.transaction() as s:
            contact = await repo_contacts.create(s, language=lang)
            await repo_contacts.add_address(
                s,
                contact.id,
                WEBCHAT,
                token,
                self.pseudonymizer.address_key(WEBCHAT, token),
            )
            conv, ids = await self.start_conversation(
                s, contact, WEBCHAT, token, entry, lang=lang, now=now
            )
        return WebChatSession(token, conv.id, tuple(ids))

    async def start_conversation(
        self,
        s: AsyncSession,
        contact: Contact,
        channel: str,
        address: str,
        entry: CatalogEntry,
        *,
        lang: str | None,
        now: datetime,
        campaign_id: int | None = None,
        kind: str = "reply",
        not_before: datetime | None = None,
    ) -> tuple[Conversation, list[int]]:
        """Start `entry`'s survey for a contact inside the caller's transaction.

        An active conversation the contact already has is closed first."""
        survey = entry.survey
        active = await repo_conversations.active_for_contact(s, contact.id)
        if active is not None:
            old = await self.catalog.version(s, active.survey_version_id)
            closed = engine.close(old, ConversationState.from_json(active.state), now)
            await self._save_and_finish(s, active, old, closed, now)
        lang = lang or contact.language
        step = engine.start(survey, now=now, lang=lang)
        respondent_id = self.pseudonymizer.respondent_id()
        await repo_conversations.create_respondent(
            s,
            id=respondent_id,
            survey_id=survey.id,
            survey_version_id=entry.version_id,
            campaign_id=campaign_id,
            contact_id=None if survey.anonymous else contact.id,
            attributes=respondent_attributes(contact, step.state.lang, now.date()),
            channel=channel,
            started_on=now.date(),
        )
        conv = await repo_conversations.create(
            s,
            id=str(uuid.uuid4()),
            contact_id=contact.id,
            respondent_id=respondent_id,
            survey_version_id=entry.version_id,
            survey_id=survey.id,
            campaign_id=campaign_id,
            channel=channel,
            state=step.state.to_json(),
            started_at=now,
            expires_at=step.state.expires_at,
        )
        if contact.language is None:
            contact.language = step.state.lang
        # One timer per conversation: when it fires early (the person kept answering), the
        # handler moves it to the state's new expiry, so steps need not touch it.
        await repo_tasks.schedule(
            s,
            EXPIRE_TASK,
            f"{EXPIRE_TASK}:{conv.id}",
            step.state.expires_at,
            {"conversation_id": conv.id},
            replace=True,
        )
        ids = await self.apply_step(
            s, conv, survey, step, contact, channel, address, now, kind=kind, not_before=not_before
        )
        return conv, ids

    # -- applying engine steps -------------------------------------------------------------

    async def apply_step(
        self,
        s: AsyncSession,
        conv: Conversation,
        survey: Survey,
        step: Step,
        contact: Contact,
        channel: str,
        address: str,
        now: datetime,
        *,
        kind: str = "reply",
        not_before: datetime | None = None,
    ) -> list[int]:
        """Store what one engine step produced and queue its messages; returns outbox ids."""
        respondent_id = conv.respondent_id
        for event in step.events:
            if event.kind is EventKind.ANSWER_RETRACTED and respondent_id and event.question_id:
                await repo_conversations.retract_answer(s, respondent_id, event.question_id)
            elif event.kind is EventKind.LANGUAGE_CHANGED and event.lang:
                contact.language = event.lang
            elif event.kind is EventKind.OPTED_OUT:
                await opt_out(s, contact, now, keep_conversation=conv.id)
        if step.answers and respondent_id:
            await repo_conversations.record_answers(
                s,
                respondent_id,
                [(a.question_id, a.value, a.skipped) for a in step.answers],
                on_date=now.date(),
            )
        conv.channel = channel
        await self._save_and_finish(s, conv, survey, step, now)
        # Messages of a finished anonymous conversation are not linked to it, so the thanks
        # cannot be tied to the answers either.
        link = None if (step.state.status.finished and survey.anonymous) else conv.id
        ids = []
        for message in step.messages:
            ids.append(
                await repo_messages.enqueue(
                    s,
                    channel=channel,
                    address=address,
                    body=message.text,
                    payload=message_payload(message, step.state.lang),
                    kind="opt_out" if message.kind is MessageKind.OPT_OUT else kind,
                    contact_id=contact.id,
                    conversation_id=link,
                    campaign_id=conv.campaign_id,
                    not_before=not_before or now,
                )
            )
        return ids

    async def _save_and_finish(
        self, s: AsyncSession, conv: Conversation, survey: Survey, step: Step, now: datetime
    ) -> None:
        state = step.state
        await repo_conversations.save_state(
            s, conv, state.to_json(), state.status.value, state.expires_at, now
        )
        if state.status.finished:
            await repo_conversations.finish(
                s, conv, state.status.value, now, anonymous=survey.anonymous
            )
            await repo_tasks.cancel(s, f"{EXPIRE_TASK}:{conv.id}")
            if conv.campaign_id is not None:
                from bot.campaigns import on_conversation_finished

                await on_conversation_finished(s, conv, state.status.value)

    async def expire_conversation(self, conversation_id: str) -> bool:
        """The due task behind `expires_after`: finish a conversation nobody came back to."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            conv = await repo_conversations.get(s, conversation_id, for_update=True)
            if conv is None or conv.status != "active":
                return False
            state = ConversationState.from_json(conv.state)
            if state.expires_at > now:
                # The person kept answering: the timer moves to the state's expiry.
                await repo_tasks.requeue(s, f"{EXPIRE_TASK}:{conv.id}", state.expires_at)
                return False
            survey = await self.catalog.version(s, conv.survey_version_id)
            await self._save_and_finish(s, conv, survey, engine.expire(survey, state, now), now)
            return True


async def opt_out(
    s: AsyncSession, contact: Contact, now: datetime, *, keep_conversation: str | None = None
) -> None:
    """Mark a contact opted out: nothing more is sent except the one confirmation."""
    if contact.opted_out_at is None:
        contact.opted_out_at = now
    await repo_messages.cancel_queued_for_contact(s, contact.id)
    active = await repo_conversations.active_for_contact(s, contact.id)
    if active is not None and active.id != keep_conversation:
        await repo_conversations.finish(s, active, "opted_out", now, anonymous=True)


class _TurnBase(Generic[ContactT, ConversationT]):
    """One inbound message being handled inside its transaction."""

    def __init__(
        self,
        service: ConversationService,
        s: AsyncSession,
        msg: InboundMessage,
        message_id: int,
        contact: ContactT | None,
        conv: ConversationT | None,
        now: datetime,
    ) -> None:
        self.service = service
        self.s = s
        self.msg = msg
        self.message_id = message_id
        self.contact: ContactT | None = contact
        self.conv: ConversationT | None = conv
        self.now = now
        self.reply_ids: list[int] = []
        self.linked: tuple[int | None, str | None] = (
            contact.id if contact else None,
            conv.id if conv else None,
        )
        """What the inbound row was recorded with, so it is only updated when that changes."""


class _Turn(_TurnBase[Contact, Conversation]):
    """Any turn, on ORM objects and the repositories."""

    async def run(self) -> None:
        msg = self.msg
        if msg.opt_out is not None:
            await self._provider_opt_signal(msg.opt_out)
            return
        keyword = engine.classify_keyword(msg.text) if not msg.payload else None
        contact = self.contact
        if contact is not None and contact.opted_out_at is not None:
            if keyword is Keyword.START:
                contact.opted_out_at = None
                await self._reply(engine.opted_in_confirmation(self._lang()), kind="notice")
            # Opted out: nothing is sent, whatever they write.
            return
        if msg.start_token is not None:
            await self._link_by_token(msg.start_token)
            return
        if (
            contact is not None
            and self.conv is not None
            and await self._continue(contact, self.conv)
        ):
            return
        if keyword is Keyword.STOP:
            contact = contact or await self._new_contact(None)
            await opt_out(self.s, contact, self.now)
            await self._reply(engine.opted_out_confirmation(self._lang()), kind="opt_out")
            return
        entry = _requested_survey(self.service.catalog, msg)
        if entry is None and contact is not None and await self._closed_recently(contact):
            await self._reply(engine.closed_notice(self._lang()), kind="notice")
            return
        if entry is not None:
            contact = contact or await self._new_contact(_keyword_language(entry, msg))
            _, ids = await self.service.start_conversation(
                self.s,
                contact,
                msg.channel,
                msg.address,
                entry,
                lang=contact.language,
                now=self.now,
            )
            await self._link_message(contact.id, None)
            self.reply_ids.extend(ids)
            return
        await self._reply(self._menu(), kind="notice")

    async def _continue(self, contact: Contact, conv: Conversation) -> bool:
        """Feed the message to the contact's active conversation (an expired one answers with
        the expired notice and finishes)."""
        service = self.service
        survey = await service.catalog.version(self.s, conv.survey_version_id)
        state = ConversationState.from_json(conv.state)
        await self._link_message(contact.id, conv.id)
        if self.msg.extras.get("callback_query_id"):
            await self._acknowledge_button(survey, state)
        step = engine.resume(
            survey, state, Input(text=self.msg.text, payload=self.msg.payload), self.now
        )
        self.reply_ids.extend(
            await service.apply_step(
                self.s, conv, survey, step, contact, self.msg.channel, self.msg.address, self.now
            )
        )
        return True

    async def _acknowledge_button(self, survey: Survey, state: ConversationState) -> None:
        """Telegram: answer the button press and show the choice under the question."""
        self.reply_ids.append(
            await repo_messages.enqueue(
                self.s,
                channel=self.msg.channel,
                address=self.msg.address,
                body="",
                payload=ack_payload(self.msg, survey, state),
                kind="ack",
                contact_id=self.contact.id if self.contact else None,
                conversation_id=None,
                campaign_id=None,
                not_before=self.now,
            )
        )

    async def _provider_opt_signal(self, opted_out: bool) -> None:
        """Twilio's own STOP/START handling: it has already answered the person."""
        contact = self.contact or await self._new_contact(None)
        if opted_out:
            await opt_out(self.s, contact, self.now)
        else:
            contact.opted_out_at = None
        await self._link_message(contact.id, None)

    async def _link_by_token(self, token: str) -> None:
        """Telegram `/start TOKEN`: the token is the contact's personal web chat token."""
        s = self.s
        key = self.service.pseudonymizer.address_key(WEBCHAT, token)
        owner = await repo_contacts.find_by_address(s, WEBCHAT, key)
        if owner is None:
            await self._reply(self._menu(), kind="notice")
            return
        await repo_contacts.add_address(
            s, owner.id, self.msg.channel, self.msg.address, self._address_key()
        )
        self.contact = owner
        await self._link_message(owner.id, None)
        conv = await repo_conversations.active_for_contact(s, owner.id)
        if conv is not None:
            survey = await self.service.catalog.version(s, conv.survey_version_id)
            state = ConversationState.from_json(conv.state)
            step = engine.repeat(survey, state, self.now)
            self.reply_ids.extend(
                await self.service.apply_step(
                    s, conv, survey, step, owner, self.msg.channel, self.msg.address, self.now
                )
            )
        else:
            await self._reply(self._menu(), kind="notice")

    async def _closed_recently(self, contact: Contact) -> bool:
        """A late answer to a campaign survey that has closed (within CLOSED_GRACE)."""
        last = await repo_conversations.latest_for_contact(self.s, contact.id)
        return (
            last is not None
            and last.status == "closed"
            and last.campaign_id is not None
            and last.finished_at is not None
            and self.now - last.finished_at < CLOSED_GRACE
        )

    def _lang(self) -> str:
        return (self.contact.language if self.contact else None) or "sv"

    def _menu(self) -> OutMessage:
        surveys = [s for s in self.service.catalog.surveys if s.keywords]
        return engine.survey_menu(surveys, self._lang())

    def _address_key(self) -> str:
        return self.service.pseudonymizer.address_key(self.msg.channel, self.msg.address)

    async def _new_contact(self, lang: str | None) -> Contact:
        contact = await repo_contacts.create(self.s, language=lang)
        await repo_contacts.add_address(
            self.s, contact.id, self.msg.channel, self.msg.address, self._address_key()
        )
        self.contact = contact
        return contact

    async def _link_message(self, contact_id: int, conversation_id: str | None) -> None:
        if self.linked != (contact_id, conversation_id):
            await repo_messages.link_inbound(self.s, self.message_id, contact_id, conversation_id)
            self.linked = (contact_id, conversation_id)

    async def _reply(self, message: OutMessage, *, kind: str) -> None:
        self.reply_ids.append(
            await repo_messages.enqueue(
                self.s,
                channel=self.msg.channel,
                address=self.msg.address,
                body=message.text,
                payload=message_payload(message, self._lang()),
                kind=kind,
                contact_id=self.contact.id if self.contact else None,
                conversation_id=None,
                campaign_id=None,
                not_before=self.now,
            )
        )


class _LeanTurn(_TurnBase[ContactRow, ConversationRow]):
    """The common turns on storage.turns' SQL: an answer to the active conversation (to its
    end, and across languages and going back) and a survey keyword from someone without one.

    `run` decides before it writes anything; when it answers False, the message takes the full
    way (`_Turn`), which does the same on ORM objects. Both store the same rows
    (tests/storage/test_turns.py)."""

    def __init__(
        self,
        service: ConversationService,
        s: AsyncSession,
        raw: RawConnection,
        msg: InboundMessage,
        message_id: int,
        contact: ContactRow | None,
        conv: ConversationRow | None,
        now: datetime,
    ) -> None:
        super().__init__(service, s, msg, message_id, contact, conv, now)
        self.raw = raw
        self._writes: list[Statement] = []
        self._replies: list[int] = []
        """Which of `_writes` queue a reply."""

    async def run(self) -> bool:
        """Handle the message if it is a common turn; False (nothing written) if not."""
        if not await self._prepare():
            return False
        results = await self.raw.run_all(self._writes)
        for index in self._replies:
            row = results[index].first()
            assert row is not None
            self.reply_ids.append(int(row[0]))
        return True

    async def _prepare(self) -> bool:
        """Compute the turn and collect its writes (reads only until the newcomer's contact)."""
        msg, contact = self.msg, self.contact
        if msg.opt_out is not None or msg.start_token is not None:
            return False
        if contact is not None and contact.opted_out_at is not None:
            return False
        if contact is not None and self.conv is not None:
            return await self._continue(contact, self.conv)
        if not msg.payload and engine.classify_keyword(msg.text) is Keyword.STOP:
            return False
        entry = _requested_survey(self.service.catalog, msg)
        if entry is None:
            return False
        await self._start(contact, entry)
        return True

    async def _continue(self, contact: ContactRow, conv: ConversationRow) -> bool:
        survey = await self.service.catalog.version(self.s, conv.survey_version_id)
        state = ConversationState.from_json(conv.state)
        step = engine.resume(
            survey, state, Input(text=self.msg.text, payload=self.msg.payload), self.now
        )
        if any(event.kind is EventKind.OPTED_OUT for event in step.events):
            return False
        if self.msg.extras.get("callback_query_id"):
            self._enqueue(
                body="", payload=ack_payload(self.msg, survey, state), kind="ack", link=None
            )
        self._apply(conv, survey, step, contact)
        return True

    async def _start(self, contact: ContactRow | None, entry: CatalogEntry) -> None:
        raw, msg, now = self.raw, self.msg, self.now
        survey = entry.survey
        if contact is None:
            contact = await turns.new_contact(
                raw,
                language=_keyword_language(entry, msg),
                channel=msg.channel,
                address=msg.address,
                address_key=self.service.pseudonymizer.address_key(msg.channel, msg.address),
                message_id=self.message_id,
                now=now,
            )
            self.contact = contact
        step = engine.start(survey, now=now, lang=contact.language)
        respondent_id = self.service.pseudonymizer.respondent_id()
        writes = self._writes
        writes.append(
            turns.create_respondent(
                id=respondent_id,
                survey_id=survey.id,
                survey_version_id=entry.version_id,
                campaign_id=None,
                contact_id=None if survey.anonymous else contact.id,
                attributes=respondent_attributes(contact, step.state.lang, now.date()),
                channel=msg.channel,
                started_on=now.date(),
            )
        )
        conv = ConversationRow(
            id=str(uuid.uuid4()),
            respondent_id=respondent_id,
            survey_version_id=entry.version_id,
            survey_id=survey.id,
            campaign_id=None,
            channel=msg.channel,
            state=step.state.to_json(),
        )
        writes.append(
            turns.create_conversation(
                conv, contact_id=contact.id, now=now, expires_at=step.state.expires_at
            )
        )
        if contact.language is None:
            contact.language = step.state.lang
            writes.append(turns.set_language(contact.id, step.state.lang, now))
        # One timer per conversation, as in ConversationService.start_conversation.
        writes.append(
            turns.schedule_task(
                EXPIRE_TASK,
                f"{EXPIRE_TASK}:{conv.id}",
                step.state.expires_at,
                {"conversation_id": conv.id},
                now,
            )
        )
        self._apply(conv, survey, step, contact)

    def _apply(
        self, conv: ConversationRow, survey: Survey, step: Step, contact: ContactRow
    ) -> None:
        """ConversationService.apply_step on rows (a step that does not opt out)."""
        writes, now = self._writes, self.now
        respondent_id = conv.respondent_id
        for event in step.events:
            if event.kind is EventKind.ANSWER_RETRACTED and respondent_id and event.question_id:
                writes.append(turns.retract_answer(respondent_id, event.question_id))
            elif event.kind is EventKind.LANGUAGE_CHANGED and event.lang:
                contact.language = event.lang
                writes.append(turns.set_language(contact.id, event.lang, now))
        if step.answers and respondent_id:
            writes.extend(
                turns.record_answers(
                    respondent_id,
                    [(a.question_id, a.value, a.skipped) for a in step.answers],
                    on_date=now.date(),
                )
            )
        state = step.state
        conv.channel = self.msg.channel
        conv.state = state.to_json()
        if state.status.finished:
            writes.extend(
                turns.finish(
                    conv,
                    state.status.value,
                    state.expires_at,
                    now,
                    anonymous=survey.anonymous,
                    scrub_grace=repo_conversations.SCRUB_GRACE,
                )
            )
            writes.append(turns.cancel_task(f"{EXPIRE_TASK}:{conv.id}"))
            if conv.campaign_id is not None:
                writes.append(turns.invitation_finished(conv.id, state.status.value))
        else:
            writes.append(turns.save_state(conv, state.status.value, state.expires_at, now))
        link = None if (state.status.finished and survey.anonymous) else conv.id
        for message in step.messages:
            self._enqueue(
                body=message.text,
                payload=message_payload(message, state.lang),
                kind="opt_out" if message.kind is MessageKind.OPT_OUT else "reply",
                link=link,
                campaign_id=conv.campaign_id,
            )

    def _enqueue(
        self,
        *,
        body: str,
        payload: dict[str, Any],
        kind: str,
        link: str | None,
        campaign_id: int | None = None,
    ) -> None:
        self._replies.append(len(self._writes))
        self._writes.append(
            turns.enqueue(
                channel=self.msg.channel,
                address=self.msg.address,
                body=body,
                payload=payload,
                kind=kind,
                contact_id=self.contact.id if self.contact else None,
                conversation_id=link,
                campaign_id=campaign_id,
                not_before=self.now,
                now=self.now,
            )
        )


def _requested_survey(catalog: SurveyCatalog, msg: InboundMessage) -> CatalogEntry | None:
    """The survey a message asks for: a menu button's, or the one whose keyword it is."""
    if msg.payload and msg.payload.startswith("survey:"):
        return catalog.latest(msg.payload.removeprefix("survey:"))
    return catalog.by_keyword(msg.text)


def _keyword_language(entry: CatalogEntry, msg: InboundMessage) -> str:
    """A newcomer's language: the language of the keyword they sent, else the survey's first."""
    survey = entry.survey
    return survey.keyword_languages.get(normalize(msg.text), survey.default_language)
