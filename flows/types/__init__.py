"""Question types, one module each, registered once here.

Adding a type: a module with its `KIND` (see `flows.types.base.QuestionKind`), a member of
`flows.model.QuestionType`, one line in `KINDS`, and its fixture
`tests/flows/scenarios/type_<type>.toml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flows.answers import Invalid, ParseContext, Parsed
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types import date, message, numeric, open, scale, select_many, select_one
from flows.types.base import Figures, QuestionKind, RangeFields

__all__ = ["KINDS", "Figures", "QuestionKind", "RangeFields", "kind_of", "parse_answer"]

KINDS: Final[Mapping[QuestionType, QuestionKind]] = {
    kind.type: kind
    for kind in (
        message.KIND,
        select_one.KIND,
        select_many.KIND,
        numeric.KIND,
        open.KIND,
        date.KIND,
        scale.KIND,
    )
}


def kind_of(question: Question | QuestionType) -> QuestionKind:
    """The kind of a question (or of a question type)."""
    return KINDS[question.type if isinstance(question, Question) else question]


def parse_answer(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    """Parse what the person sent as an answer to `question`."""
    return KINDS[question.type].parse(question, inp, ctx)
