"""`select_one`: one of the question's choices, by button, number or text."""

from __future__ import annotations

from flows.answers import CHOICE_PREFIX, Invalid, ParseContext, Parsed, normalize
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types.base import Figures, QuestionKind
from flows.types.choices import choice_options, match_choice

__all__ = ["KIND"]


def _parse_select_one(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    if inp.payload is not None and inp.payload.startswith(CHOICE_PREFIX):
        choice = question.choice(inp.payload.removeprefix(CHOICE_PREFIX))
        if choice is not None:
            return Parsed(choice.id)
    choice_id = match_choice(question, normalize(inp.text), ctx)
    if choice_id is None:
        return Invalid("reprompt_select_one", {"max": len(question.choices)})
    return Parsed(choice_id)


KIND = QuestionKind(
    QuestionType.SELECT_ONE,
    _parse_select_one,
    Figures.CHOICE,
    floip_type="select_one",
    keys=frozenset({"choices", "positive", "dont_know"}),
    needs_choices=True,
    options=choice_options,
)
