"""Survey definitions: immutable values loaded from survey files (see flows.loader)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

LocalizedText = Mapping[str, str]
"""Text per language code, e.g. {"sv": "Hej", "en": "Hello"}."""


class QuestionType(StrEnum):
    """The question types; each has its module in flows/types."""

    MESSAGE = "message"
    SELECT_ONE = "select_one"
    SELECT_MANY = "select_many"
    NUMERIC = "numeric"
    OPEN = "open"
    DATE = "date"
    SCALE = "scale"


class Participation(StrEnum):
    """The rungs of delaktighetstrappan (the participation ladder)."""

    INFORMATION = "information"
    KONSULTATION = "konsultation"
    DIALOG = "dialog"
    INFLYTANDE = "inflytande"
    MEDBESTAMMANDE = "medbestammande"


SMILEYS = ("😞", "🙁", "😐", "🙂", "😀")


def base_language(lang: str) -> str:
    """`sv-x-lattlast` -> `sv`: the language whose built-in texts a variant falls back to."""
    return lang.split("-", 1)[0]


def localize(text: LocalizedText, lang: str, fallback: str) -> str:
    """The text in `lang`, else in its base language, else in `fallback`, else any."""
    for code in (lang, base_language(lang), fallback):
        if code in text:
            return text[code]
    return next(iter(text.values()), "")


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of a select question: its id (stored as the answer) and its text."""

    id: str
    text: LocalizedText


@dataclass(frozen=True, slots=True)
class Question:
    """One question of a survey, as its file defines it."""

    id: str
    type: QuestionType
    text: LocalizedText
    required: bool = True
    choices: tuple[Choice, ...] = ()
    positive: tuple[str, ...] = ()
    """Choice ids counted as "share positive" in results."""
    dont_know: tuple[str, ...] = ()
    """Choice ids ("vet ej") left out of the share-positive denominator."""
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    show_if: str | None = None
    style: str | None = None
    """For scale: "smileys" or "numbers"."""
    breakdown: str | None = None
    """Marks a background question used as a results breakdown: gender | contact_length | age."""
    line: int = 0
    """Line in the survey file where the question starts (for error messages)."""

    def choice(self, choice_id: str) -> Choice | None:
        """The choice with `choice_id`; None if the question has none."""
        return next((c for c in self.choices if c.id == choice_id), None)

    @property
    def scale_range(self) -> tuple[int, int]:
        """Inclusive bounds of a scale or numeric question."""
        if self.type is QuestionType.SCALE:
            return (
                self.min if self.min is not None else 1,
                self.max if self.max is not None else 5,
            )
        return (
            self.min if self.min is not None else 0,
            self.max if self.max is not None else 10**9,
        )


@dataclass(frozen=True, slots=True)
class Survey:
    """A survey as its file defines it: languages, texts, questions and how it is started."""

    id: str
    version: int
    languages: tuple[str, ...]
    title: LocalizedText
    intro: LocalizedText
    thanks: LocalizedText
    questions: tuple[Question, ...]
    anonymous: bool = True
    participation: Participation = Participation.KONSULTATION
    keywords: tuple[str, ...] = ()
    keyword_languages: Mapping[str, str] = field(default_factory=dict)
    """Normalised keyword -> the language it is in, for keywords given per language."""
    expires_after: int = 7 * 24 * 3600
    """Seconds of silence after which an unfinished conversation expires."""
    max_retries: int = 2
    sender: LocalizedText = field(default_factory=dict)
    """Who is asking, as the person should see it (e.g. "Malmö stad"). Never implies a client role
    unless the author wrote so."""
    invitation: LocalizedText = field(default_factory=dict)
    """Campaign invitation text; the built-in one is used when empty."""
    results_use: LocalizedText = field(default_factory=dict)
    """How answers are used and where results are shown (said in the intro of child surveys)."""
    public: bool = False
    """Offered to anyone: on the web chat's /chat index and by keyword to unknown senders.
    Otherwise only people a campaign or follow-up invites (or a personal link) take it."""
    minors: bool = False
    """Asks children; such a survey can never be public."""
    source: str = ""
    """Path of the file it was loaded from."""

    @property
    def default_language(self) -> str:
        """The survey's first language: texts fall back to it."""
        return self.languages[0]

    def question(self, question_id: str) -> Question | None:
        """The question with `question_id`; None if the survey has none."""
        return next((q for q in self.questions if q.id == question_id), None)

    def index_of(self, question_id: str) -> int:
        """The position of `question_id` in the survey; raises KeyError if it is not there."""
        for i, q in enumerate(self.questions):
            if q.id == question_id:
                return i
        raise KeyError(question_id)

    def supports(self, lang: str) -> bool:
        """True if the survey is written in `lang`."""
        return lang in self.languages
