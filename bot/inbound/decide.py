"""The pure decision of every turn: facts in, a `TurnPlan` out.

The whole decision table of a turn is here on purpose: branch order matters (see below), and only
with all of it in view can a reader tell which branch wins.

`decide_inbound` handles any inbound message (answers, keywords, STOP/START, `/start TOKEN`,
menus, button presses, opted-out senders, provider opt-out signals, messages to ignore); the
`decide_*` functions below it handle the turns made from outside: campaign invitations,
follow-ups, reminders, expiries, a campaign closing, a provider saying a person opted out.

No I/O, no clock, no randomness: `now` and new ids (`Ids`) are given, the surveys come from the
in-memory catalog, and the facts were read in the turn's transaction by storage.executor, which
also writes the plan. Branch order matters and is the order below."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from bot.bands import age_group_of, contact_length_of
from bot.channels.base import InboundMessage
from flows import engine
from flows.answers import normalize
from flows.conversation import (
    Awaiting,
    ConversationState,
    EventKind,
    Input,
    MessageKind,
    OutMessage,
    Status,
    Step,
)
from flows.engine import Keyword
from flows.model import SMILEYS, Survey, localize
from flows.texts import text
from storage.plan import (
    CAMPAIGN,
    FOLLOWUP,
    NEW_CONTACT,
    PUBLIC,
    CancelQueued,
    CancelTask,
    ContactFacts,
    ConversationFacts,
    Enqueue,
    FinishConversation,
    InboundFacts,
    LinkAddress,
    LinkInbound,
    NewContact,
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
    TurnPlan,
    UpdateFollowup,
    UpdateInvitation,
)
from storage.plan import (
    Step as PlanStep,
)

EXPIRE_TASK = "conversation.expire"
WEBCHAT = "webchat"
DEFAULT_LANGUAGE = "sv"

Ids = Callable[[], str]
"""A source of new random ids (uuid4 strings); tests give a deterministic one."""


class Catalog(Protocol):
    """What a decision needs of the surveys (bot.catalog.SurveyCatalog)."""

    @property
    def surveys(self) -> list[Survey]:
        """The latest version of every survey."""
        ...

    def latest_survey(self, survey_id: str) -> tuple[Survey, int] | None:
        """The latest version of `survey_id` and its version row id; None if unknown."""
        ...

    def keyword_survey(self, text: str) -> tuple[Survey, int] | None:
        """The survey whose start keyword `text` is, with its version row id; None if none."""
        ...

    def cached_version(self, version_id: int) -> Survey:
        """A stored survey version by its row id, from the catalog's cache."""
        ...


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings decisions follow."""

    starts_per_hour: int = 3
    """Keyword starts one sender may make in an hour (public surveys)."""
    period: Callable[[date], str] = field(default=lambda day: f"{day.year}-q{(day.month + 2) // 3}")
    """The period within which one person counts once per public survey."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where replies go: the channel, the address as the channel sends to it, and its key."""

    channel: str
    address: str
    key: str


def expire_task_key(conversation_id: str) -> str:
    """The due task that expires one conversation."""
    return f"{EXPIRE_TASK}:{conversation_id}"


def respondent_attributes(contact: ContactFacts | None, lang: str, on: date) -> dict[str, Any]:
    """What an anonymous respondent keeps of the contact: only what results are broken down by."""
    if contact is None:
        return {
            "gender": None,
            "target_group": None,
            "unit": None,
            "age_group": None,
            "contact_length": None,
            "language": lang,
        }
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


def pressed_label(survey: Survey, state: ConversationState, payload: str) -> str:
    """The label of a pressed button, to show under the question it answered."""
    kind, _, value = payload.partition(":")
    question = survey.question(state.current) if state.current else None
    if kind == "choice" and question is not None and (choice := question.choice(value)):
        return localize(choice.text, state.lang, survey.default_language)
    if kind == "scale" and value.lstrip("-").isdigit():
        n = int(value)
        low = question.scale_range[0] if question is not None else 1
        smileys = question is not None and question.style == "smileys"
        return SMILEYS[n - low] if smileys and 0 <= n - low < len(SMILEYS) else value
    return value


# -- building plans ------------------------------------------------------------------------------


class _Plan:
    """Steps collected while one decision runs."""

    def __init__(self, now: datetime, to: Address | None) -> None:
        self.now = now
        self.to = to
        self.steps: list[PlanStep] = []

    def add(self, *steps: PlanStep) -> None:
        self.steps.extend(steps)

    def done(self, outcome: str) -> TurnPlan:
        return TurnPlan(tuple(self.steps), outcome)

    def send(
        self,
        message: OutMessage,
        lang: str,
        *,
        kind: str,
        contact_id: int | None,
        conversation_id: str | None = None,
        campaign_id: int | None = None,
        not_before: datetime | None = None,
        to: Address | None = None,
    ) -> None:
        target = to or self.to
        if target is None:
            return
        self.add(
            Enqueue(
                channel=target.channel,
                address=target.address,
                address_key=target.key,
                body=message.text,
                payload=message_payload(message, lang),
                kind="opt_out" if message.kind is MessageKind.OPT_OUT else kind,
                contact_id=contact_id,
                conversation_id=conversation_id,
                campaign_id=campaign_id,
                not_before=not_before or self.now,
            )
        )

    def ack(
        self,
        msg: InboundMessage,
        *,
        contact_id: int | None,
        edit_text: str | None = None,
        toast: str | None = None,
    ) -> None:
        """Answer a chat button press (stops the spinner), on every path."""
        query_id = msg.extras.get("callback_query_id")
        if not query_id or self.to is None:
            return
        extras: dict[str, Any] = {"callback_query_id": query_id}
        if toast:
            extras["ack_text"] = toast
        message_id = msg.extras.get("message_id")
        if edit_text is not None and message_id:
            extras["edit_message_id"] = message_id
            extras["edit_text"] = edit_text
        self.add(
            Enqueue(
                channel=self.to.channel,
                address=self.to.address,
                address_key=self.to.key,
                body="",
                payload={"kind": "ack", "extras": extras},
                kind="ack",
                contact_id=contact_id,
                conversation_id=None,
                campaign_id=None,
                not_before=self.now,
            )
        )

    def opt_out(self, contact_id: int, active: ConversationFacts | None, catalog: Catalog) -> None:
        """Nothing more is sent but the one confirmation; a running conversation ends."""
        self.add(
            SetOptedOut(contact_id, self.now),
            CancelQueued(contact_id, "cancelled: contact opted out"),
        )
        if active is not None:
            survey = catalog.cached_version(active.survey_version_id)
            state = ConversationState.from_json(active.state)
            finished = state.evolve(status=Status.OPTED_OUT, current=None)
            self.finish(active, survey, finished, "opted_out")

    def finish(
        self,
        conv: ConversationFacts,
        survey: Survey,
        state: ConversationState,
        status: str,
        *,
        discard: bool = False,
    ) -> None:
        self.add(
            FinishConversation(
                conversation_id=conv.id,
                status=status,
                state=state.to_json(),
                anonymous=survey.anonymous,
                respondent_id=conv.respondent_id,
                campaign_id=conv.campaign_id,
                followup_id=conv.followup_id,
                origin=conv.origin,
                contact_id=conv.contact_id,
                survey_id=conv.survey_id,
                discard=discard,
            ),
            CancelTask(expire_task_key(conv.id)),
        )

    def apply(
        self,
        conv: ConversationFacts,
        survey: Survey,
        step: Step,
        contact_id: int,
        *,
        kind: str = "reply",
        not_before: datetime | None = None,
        to: Address | None = None,
    ) -> None:
        """Store what one engine step produced and queue its messages."""
        now = self.now
        target = to or self.to
        for event in step.events:
            if (
                event.kind is EventKind.ANSWER_RETRACTED
                and conv.respondent_id
                and event.question_id
            ):
                self.add(RetractAnswer(conv.respondent_id, event.question_id))
            elif event.kind is EventKind.LANGUAGE_CHANGED and event.lang:
                self.add(SetLanguage(contact_id, event.lang))
            elif event.kind is EventKind.OPTED_OUT:
                self.add(
                    SetOptedOut(contact_id, now),
                    CancelQueued(contact_id, "cancelled: contact opted out"),
                )
        if step.answers and conv.campaign_id is not None and contact_id != NEW_CONTACT:
            self.add(UpdateInvitation(conv.campaign_id, contact_id, "started"))
        if step.answers and conv.respondent_id:
            self.add(
                RecordAnswers(
                    conv.respondent_id,
                    tuple((a.question_id, a.value, a.skipped) for a in step.answers),
                    now.date(),
                )
            )
        state = step.state
        channel = target.channel if target is not None else conv.channel
        if state.status.finished:
            # An abandoned public conversation is deleted: nobody invited the person.
            abandoned = state.status is Status.EXPIRED and conv.origin == PUBLIC
            self.finish(conv, survey, state, state.status.value, discard=abandoned)
        else:
            self.add(SaveState(conv.id, state.to_json(), state.expires_at, channel))
        # Messages of a finished anonymous conversation are not linked to it, so the thanks
        # cannot be tied to the answers either.
        link = None if (state.status.finished and survey.anonymous) else conv.id
        for message in step.messages:
            self.send(
                message,
                state.lang,
                kind=kind,
                contact_id=contact_id,
                conversation_id=link,
                campaign_id=conv.campaign_id,
                not_before=not_before,
                to=target,
            )

    def start(
        self,
        contact: ContactFacts | None,
        contact_id: int,
        survey: Survey,
        version_id: int,
        lang: str | None,
        ids: Ids,
        *,
        origin: str,
        campaign_id: int | None = None,
        followup_id: int | None = None,
        kind: str = "reply",
        not_before: datetime | None = None,
        to: Address | None = None,
    ) -> str:
        """Start a survey for a contact; returns the new conversation's id."""
        now = self.now
        target = to or self.to
        assert target is not None
        step = engine.start(survey, now=now, lang=lang)
        state = step.state
        conv = ConversationFacts(
            id=ids(),
            contact_id=contact_id,
            respondent_id=None if survey.anonymous else ids(),
            survey_version_id=version_id,
            survey_id=survey.id,
            campaign_id=campaign_id,
            followup_id=followup_id,
            origin=origin,
            channel=target.channel,
            status="active",
            state=state.to_json(),
            attributes=respondent_attributes(contact, state.lang, now.date()),
            expires_at=state.expires_at,
        )
        self.add(
            StartConversation(
                id=conv.id,
                contact_id=contact_id,
                survey_id=survey.id,
                survey_version_id=version_id,
                campaign_id=campaign_id,
                followup_id=followup_id,
                origin=origin,
                channel=target.channel,
                state=conv.state,
                expires_at=state.expires_at,
                attributes=conv.attributes,
                respondent_id=conv.respondent_id,
            )
        )
        if contact is None or contact.language is None:
            self.add(SetLanguage(contact_id, state.lang))
        # One timer per conversation: when it fires early (the person kept answering), the
        # expiry turn moves it to the state's new expiry, so steps need not touch it.
        self.add(
            ScheduleTask(
                EXPIRE_TASK,
                expire_task_key(conv.id),
                state.expires_at,
                {"conversation_id": conv.id},
            )
        )
        self.apply(conv, survey, step, contact_id, kind=kind, not_before=not_before, to=target)
        return conv.id


# -- inbound -------------------------------------------------------------------------------------


def requested_survey(catalog: Catalog, msg: InboundMessage) -> tuple[Survey, int] | None:
    """The survey a message asks for: a menu button's, or the one whose keyword it is."""
    if msg.payload and msg.payload.startswith("survey:"):
        return catalog.latest_survey(msg.payload.removeprefix("survey:"))
    if msg.payload:
        return None
    return catalog.keyword_survey(msg.text)


def keyword_language(survey: Survey, msg: InboundMessage) -> str:
    """A newcomer's language: the language of the keyword they sent, else the survey's first."""
    return survey.keyword_languages.get(normalize(msg.text), survey.default_language)


def public_menu(catalog: Catalog, lang: str) -> OutMessage:
    """The surveys anyone may start by keyword."""
    return engine.survey_menu([s for s in catalog.surveys if s.public and s.keywords], lang)


def _stale_press(msg: InboundMessage, facts: InboundFacts, survey: Survey, state: Any) -> bool:
    """A chat button that no longer applies: pressed under an earlier question, an old menu, or
    a message of a conversation that has moved on."""
    if not msg.extras.get("callback_query_id") or not msg.payload:
        return False
    conv = facts.conversation
    pressed = facts.pressed
    if msg.payload.startswith("survey:"):
        return True
    if pressed is not None and pressed.known:
        if conv is None or pressed.conversation_id not in (None, conv.id):
            return True
        if msg.payload.startswith("lang:"):
            return False
        return pressed.question_id != state.current or state.awaiting is not Awaiting.ANSWER
    # A message we no longer hold (or never saw): it counts only if it fits the current question.
    if msg.payload.startswith("lang:"):
        return False
    question = survey.question(state.current) if state.current else None
    if question is None or state.awaiting is not Awaiting.ANSWER:
        return True
    kind, _, value = msg.payload.partition(":")
    if kind == "choice":
        return question.choice(value) is None
    if kind == "scale":
        low, high = question.scale_range
        return not (value.lstrip("-").isdigit() and low <= int(value) <= high)
    return True


def decide_inbound(
    msg: InboundMessage,
    facts: InboundFacts,
    catalog: Catalog,
    *,
    address_key: str,
    now: datetime,
    ids: Ids,
    policy: Policy,
) -> TurnPlan:
    """What one inbound message does."""
    sender = facts.sender
    to = Address(msg.channel, msg.address, address_key)
    plan = _Plan(now, to if msg.ignore is None else None)
    lang = (sender.language if sender else None) or DEFAULT_LANGUAGE

    if msg.ignore is not None:
        # Recorded, never answered (a sender we cannot or must not reply to).
        return plan.done("ignored")

    if msg.opt_out is not None:
        # The provider's own STOP/START: it has already answered the person.
        contact_id = _contact_id(plan, sender, msg, address_key, None)
        if msg.opt_out:
            plan.opt_out(contact_id, facts.conversation, catalog)
        else:
            plan.add(SetOptedOut(contact_id, None))
        plan.add(LinkInbound(contact_id, None))
        return plan.done("provider_opt_out" if msg.opt_out else "provider_opt_in")

    keyword = engine.classify_keyword(msg.text) if not msg.payload else None
    if sender is not None and sender.opted_out_at is not None:
        plan.ack(msg, contact_id=sender.id)
        if keyword is Keyword.START:
            plan.add(SetOptedOut(sender.id, None))
            plan.send(engine.opted_in_confirmation(lang), lang, kind="notice", contact_id=sender.id)
            return plan.done("opt_in")
        # Opted out: nothing is sent, whatever they write.
        return plan.done("opted_out_silence")

    if msg.start_token is not None:
        return _link_by_token(plan, msg, facts, catalog, address_key, lang)

    conv = facts.conversation
    if sender is not None and conv is not None:
        return _continue(plan, msg, facts, sender, conv, catalog)

    if msg.extras.get("callback_query_id") and not (
        msg.payload and msg.payload.startswith("survey:")
    ):
        # A button of a conversation that has ended.
        plan.ack(msg, contact_id=sender.id if sender else None, toast=text("button_stale", lang))
        return plan.done("stale_button")

    if keyword is Keyword.STOP:
        contact_id = _contact_id(plan, sender, msg, address_key, None)
        plan.opt_out(contact_id, None, catalog)
        plan.add(LinkInbound(contact_id, None))
        plan.send(engine.opted_out_confirmation(lang), lang, kind="opt_out", contact_id=contact_id)
        return plan.done("stop")

    requested = requested_survey(catalog, msg)
    if requested is not None:
        return _keyword_start(plan, msg, facts, catalog, requested, address_key, ids, policy)

    plan.ack(msg, contact_id=sender.id if sender else None)
    if sender is not None and facts.closed_campaign_surveys:
        # A late answer to a campaign that has closed.
        plan.send(engine.closed_notice(lang), lang, kind="notice", contact_id=sender.id)
        return plan.done("closed")
    plan.send(
        public_menu(catalog, lang), lang, kind="notice", contact_id=sender.id if sender else None
    )
    return plan.done("menu")


def _contact_id(
    plan: _Plan,
    sender: ContactFacts | None,
    msg: InboundMessage,
    address_key: str,
    language: str | None,
) -> int:
    """The sender's contact id, creating a newcomer's contact when there is none."""
    if sender is not None:
        return sender.id
    plan.add(NewContact(language, msg.channel, msg.address, address_key))
    return NEW_CONTACT


def _continue(
    plan: _Plan,
    msg: InboundMessage,
    facts: InboundFacts,
    sender: ContactFacts,
    conv: ConversationFacts,
    catalog: Catalog,
) -> TurnPlan:
    """Feed the message to the sender's active conversation."""
    survey = catalog.cached_version(conv.survey_version_id)
    state = ConversationState.from_json(conv.state)
    plan.add(LinkInbound(sender.id, conv.id))
    if _stale_press(msg, facts, survey, state):
        plan.ack(msg, contact_id=sender.id, toast=text("button_stale", state.lang))
        plan.apply(conv, survey, engine.repeat(survey, state, plan.now), sender.id)
        return plan.done("stale_button")
    if msg.extras.get("callback_query_id"):
        label = pressed_label(survey, state, msg.payload or "")
        shown = msg.extras.get("message_text") or ""
        plan.ack(msg, contact_id=sender.id, edit_text=f"{shown}\n✓ {label}")
    step = engine.resume(survey, state, Input(text=msg.text, payload=msg.payload), plan.now)
    plan.apply(conv, survey, step, sender.id)
    return plan.done("answer")


def _link_by_token(
    plan: _Plan,
    msg: InboundMessage,
    facts: InboundFacts,
    catalog: Catalog,
    address_key: str,
    lang: str,
) -> TurnPlan:
    """Telegram `/start TOKEN`: the token is a contact's personal web chat token."""
    owner = facts.token_owner
    sender = facts.sender
    if owner is None:
        plan.send(
            public_menu(catalog, lang),
            lang,
            kind="notice",
            contact_id=sender.id if sender else None,
        )
        return plan.done("menu")
    plan.add(
        LinkAddress(owner.id, msg.channel, msg.address, address_key), LinkInbound(owner.id, None)
    )
    owner_lang = owner.language or lang
    if owner.opted_out_at is not None:
        return plan.done("opted_out_silence")
    conv = facts.token_conversation
    if conv is not None:
        survey = catalog.cached_version(conv.survey_version_id)
        state = ConversationState.from_json(conv.state)
        plan.apply(conv, survey, engine.repeat(survey, state, plan.now), owner.id)
        return plan.done("linked")
    plan.send(public_menu(catalog, owner_lang), owner_lang, kind="notice", contact_id=owner.id)
    return plan.done("linked")


def _keyword_start(
    plan: _Plan,
    msg: InboundMessage,
    facts: InboundFacts,
    catalog: Catalog,
    requested: tuple[Survey, int],
    address_key: str,
    ids: Ids,
    policy: Policy,
) -> TurnPlan:
    """A survey keyword (or menu button) from someone without a running conversation."""
    survey, version_id = requested
    sender = facts.sender
    lang = (sender.language if sender else None) or keyword_language(survey, msg)
    contact_id = sender.id if sender else None
    plan.ack(msg, contact_id=contact_id)
    if sender is not None:
        campaign_id = facts.open_invitations.get(survey.id)
        if campaign_id is not None:
            # Invited and not finished: the keyword (re)starts that campaign's survey.
            conv_id = plan.start(
                sender, sender.id, survey, version_id, sender.language, ids,
                origin=CAMPAIGN, campaign_id=campaign_id,
            )  # fmt: skip
            plan.add(
                LinkInbound(sender.id, None),
                UpdateInvitation(
                    campaign_id,
                    sender.id,
                    "invited",
                    channel=msg.channel,
                    conversation_id=conv_id,
                    invited_at=plan.now,
                ),
            )
            return plan.done("start")
        if survey.id in facts.completed_campaign_surveys:
            plan.send(
                OutMessage(text("already_answered", lang)),
                lang,
                kind="notice",
                contact_id=sender.id,
            )
            return plan.done("already_answered")
        if survey.id in facts.closed_campaign_surveys:
            plan.send(engine.closed_notice(lang), lang, kind="notice", contact_id=sender.id)
            return plan.done("closed")
    # A public survey is anyone's; another one is taken by keyword only by people the service
    # knows (imported by staff), and a children's survey only when a campaign or follow-up asks.
    known = sender is not None and sender.external_ref is not None
    if not (survey.public or (known and not survey.minors)):
        plan.send(public_menu(catalog, lang), lang, kind="notice", contact_id=contact_id)
        return plan.done("not_public")
    if sender is not None and survey.id in facts.completed_public:
        plan.send(
            OutMessage(text("already_answered", lang)), lang, kind="notice", contact_id=sender.id
        )
        return plan.done("already_answered")
    if sender is not None and facts.recent_starts >= policy.starts_per_hour:
        plan.send(
            OutMessage(text("too_many_starts", lang)), lang, kind="notice", contact_id=sender.id
        )
        return plan.done("rate_limited")
    new_id = _contact_id(plan, sender, msg, address_key, keyword_language(survey, msg))
    plan.add(LinkInbound(new_id, None))
    plan.start(sender, new_id, survey, version_id, lang, ids, origin=PUBLIC)
    plan.add(RecordParticipation(new_id, survey.id, policy.period(plan.now.date()), False))
    return plan.done("start")


# -- turns made from outside ---------------------------------------------------------------------


def decide_webchat_start(
    survey: Survey,
    version_id: int,
    lang: str | None,
    to: Address,
    *,
    now: datetime,
    ids: Ids,
) -> TurnPlan:
    """A visitor starts a public survey on the web chat index: a new contact and conversation."""
    plan = _Plan(now, to)
    plan.add(NewContact(lang, to.channel, to.address, to.key))
    plan.start(None, NEW_CONTACT, survey, version_id, lang, ids, origin=PUBLIC)
    return plan.done("start")


def decide_invite(
    facts: StartFacts,
    survey: Survey,
    version_id: int,
    to: Address,
    invitation: Callable[[str], str],
    *,
    campaign_id: int,
    not_before: datetime,
    now: datetime,
    ids: Ids,
) -> TurnPlan:
    """A campaign invites one person: the invitation, then the survey's intro and first question.

    A person still answering another conversation waits until it ends."""
    contact = facts.contact
    plan = _Plan(now, to)
    if contact is None:
        return plan.done("gone")
    if contact.opted_out_at is not None:
        plan.add(UpdateInvitation(campaign_id, contact.id, "opted_out"))
        return plan.done("opted_out")
    if facts.active is not None:
        plan.add(UpdateInvitation(campaign_id, contact.id, "waiting"))
        return plan.done("waiting")
    lang = engine.pick_language(survey, contact.language)
    plan.send(
        OutMessage(invitation(lang), MessageKind.INFO),
        lang,
        kind="invitation",
        contact_id=contact.id,
        campaign_id=campaign_id,
        not_before=not_before,
    )
    conv_id = plan.start(
        contact, contact.id, survey, version_id, contact.language, ids,
        origin=CAMPAIGN, campaign_id=campaign_id, kind="invitation", not_before=not_before,
    )  # fmt: skip
    plan.add(
        UpdateInvitation(
            campaign_id,
            contact.id,
            "invited",
            channel=to.channel,
            conversation_id=conv_id,
            invited_at=now,
        )
    )
    return plan.done("invited")


def decide_followup(
    facts: StartFacts,
    survey: Survey,
    version_id: int,
    to: Address,
    *,
    followup_id: int,
    now: datetime,
    ids: Ids,
) -> TurnPlan:
    """A follow-up survey starts for one person (the rule's checks were made before)."""
    contact = facts.contact
    plan = _Plan(now, to)
    if contact is None or contact.opted_out_at is not None:
        plan.add(UpdateFollowup(followup_id, "skipped", reason="the person has opted out"))
        return plan.done("skipped")
    if facts.active is not None:
        return plan.done("busy")
    conv_id = plan.start(
        contact, contact.id, survey, version_id, contact.language, ids,
        origin=FOLLOWUP, followup_id=followup_id, kind="followup",
    )  # fmt: skip
    plan.add(UpdateFollowup(followup_id, "sent", conversation_id=conv_id, sent_at=now))
    return plan.done("sent")


def decide_remind(
    conv: ConversationFacts,
    survey: Survey,
    to: Address,
    *,
    campaign_id: int,
    not_before: datetime,
    now: datetime,
) -> TurnPlan:
    """A campaign reminds someone who has not finished: a short lead, then their question."""
    plan = _Plan(now, to)
    if conv.status != "active" or conv.contact_id is None:
        return plan.done("finished")
    state = ConversationState.from_json(conv.state)
    plan.send(
        OutMessage(text("campaign_reminder", state.lang), MessageKind.INFO),
        state.lang,
        kind="reminder",
        contact_id=conv.contact_id,
        conversation_id=conv.id,
        campaign_id=campaign_id,
        not_before=not_before,
    )
    step = engine.repeat(survey, state, now)
    plan.apply(conv, survey, step, conv.contact_id, kind="reminder", not_before=not_before)
    plan.add(UpdateInvitation(campaign_id, conv.contact_id, "invited", add_reminder=True))
    return plan.done("reminded")


def decide_expire(
    conv: ConversationFacts, survey: Survey, *, pending_out: int, now: datetime
) -> TurnPlan:
    """The expiry timer fired: end a conversation nobody came back to.

    It waits while the person kept answering (the timer moves to the state's expiry) or while
    their question is still waiting to be sent (an outage must not cost them the survey)."""
    plan = _Plan(now, None)
    if conv.status != "active":
        return plan.done("finished")
    state = ConversationState.from_json(conv.state)
    if pending_out:
        later = now + timedelta(seconds=survey.expires_after)
        plan.add(
            SaveState(conv.id, state.evolve(expires_at=later).to_json(), later, conv.channel),
            RequeueTask(expire_task_key(conv.id), later),
        )
        return plan.done("waiting_for_delivery")
    if state.expires_at > now:
        plan.add(RequeueTask(expire_task_key(conv.id), state.expires_at))
        return plan.done("moved")
    plan.apply(conv, survey, engine.expire(survey, state, now), conv.contact_id or 0)
    return plan.done("expired")


def decide_close(conv: ConversationFacts, survey: Survey, *, now: datetime) -> TurnPlan:
    """The campaign closed: its unfinished conversation ends without a message."""
    plan = _Plan(now, None)
    if conv.status != "active":
        return plan.done("finished")
    step = engine.close(survey, ConversationState.from_json(conv.state), now)
    plan.finish(conv, survey, step.state, "closed")
    return plan.done("closed")


def decide_provider_opt_out(
    contact_id: int, active: ConversationFacts | None, catalog: Catalog, *, now: datetime
) -> TurnPlan:
    """A provider says the person unsubscribed (Twilio 21610, Telegram blocked)."""
    plan = _Plan(now, None)
    plan.opt_out(contact_id, active, catalog)
    return plan.done("provider_opt_out")


__all__: Sequence[str] = (
    "EXPIRE_TASK",
    "Address",
    "Catalog",
    "Ids",
    "Policy",
    "decide_close",
    "decide_expire",
    "decide_followup",
    "decide_inbound",
    "decide_invite",
    "decide_provider_opt_out",
    "decide_remind",
    "decide_webchat_start",
    "expire_task_key",
    "message_payload",
    "respondent_attributes",
)
