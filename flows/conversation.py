"""Values the engine takes and returns: conversation state, input, and the step result.

State is one JSON-able value (`ConversationState.to_json`), stored by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

AnswerValue = str | int | list[str] | None
"""select_one: choice id; select_many: list of choice ids; numeric/scale: int;
open: text; date: ISO date string; None: skipped."""


class Status(StrEnum):
    """Where a conversation is: active, or how it finished."""

    ACTIVE = "active"
    COMPLETED = "completed"
    OPTED_OUT = "opted_out"
    ENDED = "ended"
    """Stopped by the engine: a required question failed too often."""
    EXPIRED = "expired"
    CLOSED = "closed"
    """Closed from outside (campaign ended)."""

    @property
    def finished(self) -> bool:
        """True for every status but ACTIVE."""
        return self is not Status.ACTIVE


class Awaiting(StrEnum):
    """What the next input answers: the current question, or a language menu."""

    ANSWER = "answer"
    LANGUAGE = "language"
    """A language menu was shown; the next input picks a language."""


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Everything the engine knows of one conversation between turns (stored as JSON)."""

    survey_id: str
    survey_version: int
    lang: str
    status: Status
    current: str | None
    """Id of the question awaiting an answer; None before start and after the end."""
    started_at: datetime
    last_activity_at: datetime
    expires_at: datetime
    retries: int = 0
    answers: Mapping[str, AnswerValue] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    """Ids of questions asked and answered (or skipped), oldest first; TILLBAKA pops from it."""
    awaiting: Awaiting = Awaiting.ANSWER

    def to_json(self) -> dict[str, Any]:
        """The state as JSON values, the shape stored on the conversation row."""
        return {
            "survey_id": self.survey_id,
            "survey_version": self.survey_version,
            "lang": self.lang,
            "status": self.status.value,
            "current": self.current,
            "started_at": self.started_at.isoformat(),
            "last_activity_at": self.last_activity_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "retries": self.retries,
            "answers": dict(self.answers),
            "history": list(self.history),
            "awaiting": self.awaiting.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConversationState:
        """The state `to_json` stored; missing retries, history or awaiting get their defaults."""
        return cls(
            survey_id=str(data["survey_id"]),
            survey_version=int(data["survey_version"]),
            lang=str(data["lang"]),
            status=Status(data["status"]),
            current=data.get("current"),
            started_at=datetime.fromisoformat(data["started_at"]),
            last_activity_at=datetime.fromisoformat(data["last_activity_at"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
            retries=int(data.get("retries", 0)),
            answers=dict(data.get("answers", {})),
            history=tuple(data.get("history", ())),
            awaiting=Awaiting(data.get("awaiting", Awaiting.ANSWER.value)),
        )

    def evolve(self, **changes: Any) -> ConversationState:
        """A copy with `changes` applied."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Input:
    """What the person sent: typed text, or a button payload from a chat channel."""

    text: str = ""
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A button a chat channel shows under a message."""

    payload: str
    """Sent back as `Input.payload` when pressed, e.g. "choice:yes" or "lang:ar"."""
    label: str


class MessageKind(StrEnum):
    """What an outgoing message is: a question, reprompt, information, thanks or opt-out reply."""

    QUESTION = "question"
    REPROMPT = "reprompt"
    INFO = "info"
    """Intro, help, confirmations."""
    THANKS = "thanks"
    OPT_OUT = "opt_out"


@dataclass(frozen=True, slots=True)
class OutMessage:
    """A message the engine sends, before any channel renders it."""

    text: str
    kind: MessageKind = MessageKind.INFO
    buttons: tuple[Button, ...] = ()
    """Chat channels show these as buttons; SMS shows `numbered` lines instead (flows.render)."""
    numbered: tuple[str, ...] = ()
    """Choice labels shown as "1. label" lines on text-only channels."""
    question_id: str | None = None
    multiple: bool = False
    """True for select_many: chat channels let the person pick several."""


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """An answer the engine recorded; `skipped` for an optional question passed over."""

    question_id: str
    value: AnswerValue
    skipped: bool = False


class EventKind(StrEnum):
    """The kinds of event a turn can report in its Step."""

    STARTED = "started"
    ANSWER_RETRACTED = "answer_retracted"
    """TILLBAKA: the answer to `question_id` no longer counts."""
    LANGUAGE_CHANGED = "language_changed"
    COMPLETED = "completed"
    OPTED_OUT = "opted_out"
    ENDED = "ended"
    EXPIRED = "expired"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a turn, with the question or language it concerns."""

    kind: EventKind
    question_id: str | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one engine call: what to store, send and record."""

    state: ConversationState
    messages: tuple[OutMessage, ...] = ()
    answers: tuple[RecordedAnswer, ...] = ()
    events: tuple[Event, ...] = ()
