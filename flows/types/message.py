"""`message`: information only; nothing is asked or recorded."""

from __future__ import annotations

from flows.answers import Invalid, ParseContext, Parsed
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types.base import Figures, QuestionKind

__all__ = ["KIND"]


def _parse_message(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    # The engine never waits on a message question; anything counts as read.
    return Parsed(None)


KIND = QuestionKind(
    QuestionType.MESSAGE,
    _parse_message,
    Figures.NONE,
    floip_type=None,
    records=False,
)
