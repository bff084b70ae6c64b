"""What a question type is, as one unit: how an answer is parsed, which keys its table in a
survey file takes and how they are checked, how it is shown (chat buttons, numbered SMS lines,
hints), and what results and exports make of its answers.

Each type lives in its own module of `flows.types` and is registered once in its `KINDS`; the
engine, the loader, the results and the exports ask the kind instead of branching on the type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from flows.answers import Parser
from flows.conversation import Button
from flows.model import Question, QuestionType, Survey

__all__ = [
    "Check",
    "Figures",
    "Options",
    "QuestionKind",
    "RangeFields",
    "no_options",
]

Options = Callable[[Survey, Question, str], tuple[tuple[Button, ...], tuple[str, ...]]]
"""(survey, question, language) -> (chat buttons, the labels numbered on SMS)."""


@dataclass(frozen=True, slots=True)
class RangeFields:
    """The keys of a question's table a type's own check looks at (None: not given)."""

    min: int | None
    max: int | None
    style: str | None


Check = Callable[[RangeFields], Sequence[tuple[str, str]]]
"""Type-specific authoring rules -> (key, problem) pairs."""


class Figures(StrEnum):
    """What results make of a type's answers."""

    CHOICE = "choice"
    """One choice id: count and share per choice, share positive."""
    CHOICES = "choices"
    """Several choice ids: count per choice, shares of the people who answered."""
    NUMBER = "number"
    """A whole number: mean, median and counts per value (or per bin when values spread)."""
    DATE = "date"
    """A day: only how many answered (days are too fine to count without identifying)."""
    TEXT = "text"
    """Free text: shown to staff masked, never counted."""
    NONE = "none"
    """Nothing is recorded (a message)."""


def no_options(
    survey: Survey, question: Question, lang: str
) -> tuple[tuple[Button, ...], tuple[str, ...]]:
    """A type answered by typing: no buttons, nothing numbered."""
    return (), ()


def _plain(body: str, question: Question, lang: str) -> str:
    return body


def _no_check(fields: RangeFields) -> Sequence[tuple[str, str]]:
    return ()


@dataclass(frozen=True, slots=True)
class QuestionKind:
    """One question type, whole."""

    type: QuestionType
    parse: Parser
    """What the person sent -> `Parsed(value)` or `Invalid(reason)`."""
    figures: Figures
    floip_type: str | None
    """Its FLOIP Flow Results question type; None: not exported there."""
    keys: frozenset[str] = frozenset()
    """Keys of its `[[questions]]` table beyond id, type, text, required, show_if, breakdown."""
    needs_choices: bool = False
    records: bool = True
    """False for a message: it asks nothing, so it records nothing and cannot be required."""
    multiple: bool = False
    """Several answers at once: chat buttons toggle, and a done button sends them."""
    each_value: bool = False
    """Results count every value (a scale's steps) instead of binning a spread of numbers."""
    options: Options = field(default=no_options)
    decorate: Callable[[str, Question, str], str] = field(default=_plain)
    """The question's text as sent -> with the type's hint (how to answer)."""
    check: Check = field(default=_no_check)
    """Type-specific authoring rules, run by the loader."""

    @property
    def counted(self) -> bool:
        """Whether results count its answers (choices, numbers, dates)."""
        return self.figures in (Figures.CHOICE, Figures.CHOICES, Figures.NUMBER, Figures.DATE)

    @property
    def choices(self) -> bool:
        """Whether its answers are choice ids (labels come from the choices)."""
        return self.figures in (Figures.CHOICE, Figures.CHOICES)
