"""`select_many`: several of the question's choices ("1, 3", "ja och nej", buttons toggled)."""

from __future__ import annotations

import re

from flows.answers import (
    CHOICE_PREFIX,
    CHOICES_PREFIX,
    Invalid,
    ParseContext,
    Parsed,
    normalize,
)
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.texts import text
from flows.types.base import Figures, QuestionKind
from flows.types.choices import choice_options, match_choice

__all__ = ["KIND"]

_LIST_SEPARATOR = re.compile(r"\s*(?:[,;،&+]|\b(?:och|and|samt)\b)\s*")
_ARABIC_AND = re.compile(r"(?<=[0-9])\s*و\s*(?=[0-9])")
_NUMBERS = re.compile(r"[0-9]+(?: [0-9]+)*")


def _in_question_order(question: Question, ids: set[str]) -> list[str]:
    return [c.id for c in question.choices if c.id in ids]


def _number_phrases(question: Question, normalized: str) -> str:
    """Replace choice texts that contain a separator ("ja, ofta") by their numbers."""
    for number, choice in enumerate(question.choices, start=1):
        for label in {normalize(label) for label in choice.text.values()}:
            if label and _LIST_SEPARATOR.search(label) and label in normalized:
                phrase = re.compile(rf"(?<!\w){re.escape(label)}(?!\w)")
                normalized = phrase.sub(f",{number},", normalized)
    return _ARABIC_AND.sub(" ", normalized)


def _parse_select_many(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    invalid = Invalid("reprompt_select_many", {"max": len(question.choices)})
    valid_ids = {c.id for c in question.choices}
    if inp.payload is not None:
        if inp.payload.startswith(CHOICES_PREFIX):
            ids = [i.strip() for i in inp.payload.removeprefix(CHOICES_PREFIX).split(",")]
            if ids and all(i in valid_ids for i in ids):
                return Parsed(_in_question_order(question, set(ids)))
        elif inp.payload.startswith(CHOICE_PREFIX):
            choice_id = inp.payload.removeprefix(CHOICE_PREFIX)
            if choice_id in valid_ids:
                return Parsed([choice_id])
    normalized = normalize(inp.text)
    if not normalized:
        return invalid
    # A choice's own text may contain a separator ("Ja, ofta"), so try the whole text first.
    whole = match_choice(question, normalized, ctx)
    if whole is not None:
        return Parsed([whole])
    selected: set[str] = set()
    for raw_part in _LIST_SEPARATOR.split(_number_phrases(question, normalized)):
        part = normalize(raw_part)
        if not part:
            continue
        if _NUMBERS.fullmatch(part):
            found = [match_choice(question, number, ctx) for number in part.split()]
        else:
            found = [match_choice(question, part, ctx)]
        for match in found:
            if match is None:
                return invalid
            selected.add(match)
    if not selected:
        return invalid
    return Parsed(_in_question_order(question, selected))


def _with_hint(body: str, question: Question, lang: str) -> str:
    return f"{body}\n{text('select_many_hint', lang)}"


KIND = QuestionKind(
    QuestionType.SELECT_MANY,
    _parse_select_many,
    Figures.CHOICES,
    floip_type="select_many",
    keys=frozenset({"choices", "positive", "dont_know"}),
    needs_choices=True,
    multiple=True,
    options=choice_options,
    decorate=_with_hint,
)
