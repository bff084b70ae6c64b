"""`numeric`: a whole number, within `min`..`max` when given ("34", "34 år", "٣٤")."""

from __future__ import annotations

import re

from flows.answers import Invalid, ParseContext, Parsed, normalize, parse_int
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types.base import Figures, QuestionKind

__all__ = ["KIND"]


def _numeric_invalid(question: Question) -> Invalid:
    low, high = question.scale_range
    if question.min is not None and question.max is not None:
        return Invalid("reprompt_numeric_range", {"min": low, "max": high})
    if question.min is not None:
        return Invalid("reprompt_numeric_min", {"min": low})
    if question.max is not None:
        return Invalid("reprompt_numeric_max", {"max": high})
    return Invalid("reprompt_numeric")


def _parse_numeric(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    low, high = question.scale_range
    number = parse_int(normalize(inp.text), allow_unit=True)
    if number is None or not low <= number <= high:
        return _numeric_invalid(question)
    return Parsed(number)


def _with_range(body: str, question: Question, lang: str) -> str:
    """A numeric question with both bounds shows them ("6-17", an ASCII hyphen as for a
    scale) unless its text already names both numbers."""
    if question.min is None or question.max is None:
        return body
    numbers = set(re.findall(r"\d+", body))
    if {str(question.min), str(question.max)} <= numbers:
        return body
    return f"{body}\n{question.min}-{question.max}"


KIND = QuestionKind(
    QuestionType.NUMERIC,
    _parse_numeric,
    Figures.NUMBER,
    floip_type="numeric",
    keys=frozenset({"min", "max"}),
    decorate=_with_range,
)
