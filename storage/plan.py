"""What a turn knows and what it decides: facts in, a plan of typed steps out.

A *turn* is everything one event does to a person's conversation: an inbound message, a campaign
invitation, a follow-up, a reminder, an expiry, a campaign closing, a provider's opt-out. The
executor (storage.executor) loads the `...Facts` a turn needs, a pure decision (bot.inbound.decide)
turns them into a `TurnPlan`, and the executor writes the plan in the same transaction. These are
plain values: no I/O, no clock, testable without a database.

A plan refers to the contact it creates itself as `NEW_CONTACT`; every other id is known when the
plan is made (conversation and respondent ids come from an id source given to the decision)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from storage.outbox import Outgoing

NEW_CONTACT = -1
"""The contact id of the contact a plan's `NewContact` step creates."""

PUBLIC = "public"
CAMPAIGN = "campaign"
FOLLOWUP = "followup"
ORIGINS = (PUBLIC, CAMPAIGN, FOLLOWUP)
"""How a conversation began: a keyword or the web chat index, a campaign, a follow-up rule."""

ACTIVE = "active"
COMPLETED = "completed"
OPTED_OUT = "opted_out"


# -- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """A contact as a turn sees it: opt-out, language, and what respondents keep of it."""

    id: int
    language: str | None
    opted_out_at: datetime | None
    external_ref: str | None = None
    gender: str | None = None
    birth_year: int | None = None
    age_group: str | None = None
    target_group: str | None = None
    unit: str | None = None
    contact_since: date | None = None


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """A conversation as a turn sees it (its engine state as stored JSON)."""

    id: str
    contact_id: int | None
    respondent_id: str | None
    """Set for surveys that are not anonymous; anonymous answers wait in `state` until release."""
    survey_version_id: int
    survey_id: str
    campaign_id: int | None
    followup_id: int | None
    origin: str
    channel: str
    status: str
    state: Mapping[str, Any]
    attributes: Mapping[str, Any]
    """What an anonymous respondent will keep of the contact (copied at start)."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PressedButton:
    """A chat button press (Telegram callback query) and what it was under, if still known."""

    question_id: str | None
    """The question the pressed message asked; None for a menu or an unknown message."""
    conversation_id: str | None
    known: bool
    """Whether the pressed message is one of ours still on record."""


@dataclass(frozen=True, slots=True)
class InboundFacts:
    """Everything the decision about one inbound message may need, read in its transaction."""

    message_id: int
    sender: ContactFacts | None
    conversation: ConversationFacts | None
    """The sender's active conversation."""
    token_owner: ContactFacts | None = None
    """Telegram `/start TOKEN`: whose web chat token it is."""
    token_conversation: ConversationFacts | None = None
    pressed: PressedButton | None = None
    open_invitations: Mapping[str, int] = field(default_factory=dict)
    """Survey id -> campaign id of the sender's invitations to running campaigns not yet
    completed (a keyword resumes that campaign's survey)."""
    completed_campaign_surveys: frozenset[str] = frozenset()
    """Surveys the sender already completed in a campaign that is still running."""
    closed_campaign_surveys: frozenset[str] = frozenset()
    """Surveys of campaigns that invited the sender and closed within the grace period."""
    completed_public: frozenset[str] = frozenset()
    """Public surveys the sender completed in the current period."""
    recent_starts: int = 0
    """Conversations the sender started within the last hour."""


@dataclass(frozen=True, slots=True)
class StartFacts:
    """A start made from outside (campaign invitation, follow-up): the person and whether they
    are busy with another conversation."""

    contact: ContactFacts | None
    active: ConversationFacts | None


# -- steps ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewContact:
    """A newcomer: a contact reached at this address (which moves from whoever had it)."""

    language: str | None
    channel: str
    address: str
    address_key: str


@dataclass(frozen=True, slots=True)
class SetLanguage:
    """Set the language a contact is written to in."""

    contact_id: int
    language: str


@dataclass(frozen=True, slots=True)
class SetOptedOut:
    """Opt a contact out (`at`) or back in (None)."""

    contact_id: int
    at: datetime | None


@dataclass(frozen=True, slots=True)
class CancelQueued:
    """Cancel every queued message to a contact but the opt-out confirmation."""

    contact_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class LinkAddress:
    """Reach a contact at this address too (Telegram `/start TOKEN`)."""

    contact_id: int
    channel: str
    address: str
    address_key: str


@dataclass(frozen=True, slots=True)
class LinkInbound:
    """The inbound message belongs to this contact and conversation."""

    contact_id: int | None
    conversation_id: str | None


@dataclass(frozen=True, slots=True)
class StartConversation:
    """Create a conversation row (and the respondent row of a non-anonymous survey)."""

    id: str
    contact_id: int
    survey_id: str
    survey_version_id: int
    campaign_id: int | None
    followup_id: int | None
    origin: str
    channel: str
    state: Mapping[str, Any]
    expires_at: datetime
    attributes: Mapping[str, Any]
    respondent_id: str | None
    """Set for surveys that are not anonymous: the respondent row is created with it."""


@dataclass(frozen=True, slots=True)
class RecordAnswers:
    """Answers of a survey that is not anonymous (anonymous ones wait in the state)."""

    respondent_id: str
    answers: tuple[tuple[str, Any, bool], ...]
    """(question id, value, skipped); a question answered again is replaced."""
    on: date


@dataclass(frozen=True, slots=True)
class RetractAnswer:
    """Take back an answer (TILLBAKA): the respondent's answer to `question_id` is deleted."""

    respondent_id: str
    question_id: str


@dataclass(frozen=True, slots=True)
class SaveState:
    """Store a conversation's engine state and when it expires."""

    conversation_id: str
    state: Mapping[str, Any]
    expires_at: datetime
    channel: str


@dataclass(frozen=True, slots=True)
class FinishConversation:
    """End a conversation. Anonymous: its messages lose their text and it waits for release;
    its campaign invitation or follow-up keeps only the final status."""

    conversation_id: str
    status: str
    state: Mapping[str, Any]
    anonymous: bool
    respondent_id: str | None
    campaign_id: int | None
    followup_id: int | None
    origin: str
    contact_id: int | None
    survey_id: str
    discard: bool = False
    """Delete it outright (an abandoned public conversation): nothing is released."""


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A message for the outbox."""

    channel: str
    address: str
    address_key: str
    body: str
    payload: Mapping[str, Any]
    kind: str
    contact_id: int | None
    conversation_id: str | None
    campaign_id: int | None
    not_before: datetime


@dataclass(frozen=True, slots=True)
class ScheduleTask:
    """A timer; `replace` moves a pending one with the same key."""

    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any]
    replace: bool = True


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel the due task with `key`, if it is still pending."""

    key: str


@dataclass(frozen=True, slots=True)
class RequeueTask:
    """Move a timer to `due_at`, even the one running now (it is then not marked done)."""

    key: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class UpdateInvitation:
    """Change a person's campaign invitation. Status "started" only moves one that is "invited"
    (they answered a first question)."""

    campaign_id: int
    contact_id: int | None
    status: str
    channel: str | None = None
    conversation_id: str | None = None
    invited_at: datetime | None = None
    add_reminder: bool = False
    """Only count one more reminder (for an invitation still reached and unfinished)."""


@dataclass(frozen=True, slots=True)
class UpdateFollowup:
    """Change a follow-up's status, with its conversation, when it was sent, or why not."""

    followup_id: int
    status: str
    conversation_id: str | None = None
    sent_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RecordParticipation:
    """A public survey taken by a known sender in a period (to count each person once)."""

    contact_id: int
    survey_id: str
    period: str
    completed: bool


Step = (
    NewContact
    | SetLanguage
    | SetOptedOut
    | CancelQueued
    | LinkAddress
    | LinkInbound
    | StartConversation
    | RecordAnswers
    | RetractAnswer
    | SaveState
    | FinishConversation
    | Enqueue
    | ScheduleTask
    | CancelTask
    | RequeueTask
    | UpdateInvitation
    | UpdateFollowup
    | RecordParticipation
)


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """The writes of one turn, in order, and why (for logs and tests)."""

    steps: tuple[Step, ...] = ()
    outcome: str = ""
    """A short name for what the turn did: answer, start, stop, menu, ignored, ..."""

    def of(self, kind: type[Any]) -> list[Any]:
        """The steps of one kind, in order."""
        return [step for step in self.steps if isinstance(step, kind)]


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What the executor did: the inbound message's id, the outbox ids, the conversation."""

    duplicate: bool = False
    message_id: int | None = None
    reply_ids: tuple[int, ...] = ()
    contact_id: int | None = None
    conversation_id: str | None = None
    outcome: str = ""
    handed: tuple[Outgoing, ...] = ()
    """Replies written already claimed by this process's sender (see `Handoff`)."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """A sender in this process that holds `channel`'s lease and has room: a reply due now on
    that channel is written already claimed by `worker` until `until`, and handed to the sender
    in memory once the turn commits, instead of being claimed back from the table a moment
    later. Should the process die, the row's lease runs out and it is claimed as any other."""

    channel: str
    worker: str
    until: datetime
