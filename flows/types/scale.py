"""`scale`: a value from `min` to `max` (1-5 by default), as buttons, its number or a smiley."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from flows.answers import (
    SCALE_PREFIX,
    Invalid,
    ParseContext,
    Parsed,
    normalize,
    parse_int,
    scale_payload,
)
from flows.conversation import Button, Input
from flows.model import SMILEYS, Question, QuestionType, Survey
from flows.types.base import Figures, QuestionKind, RangeFields

__all__ = ["KIND", "MAX_SCALE_STEPS"]

_SMILEY_INDEX: Final[Mapping[str, int]] = {
    **{smiley: i for i, smiley in enumerate(SMILEYS)},
    **dict.fromkeys(("😢", "😭", "😠", "😡", "😖", "😫", ":(("), 0),
    **dict.fromkeys(("☹", "😕", "😟", "😔", ":(", ":-("), 1),
    **dict.fromkeys(("😶", "😑", ":|", ":-|"), 2),
    **dict.fromkeys(("😊", "☺", ":)", ":-)"), 3),
    **dict.fromkeys(("😃", "😄", "😁", "😍", "🥰", "🤩", ":d", ":-d"), 4),
}
"""Smileys (and a few look-alikes and text emoticons) by position on a five-point scale."""

_EMOJI_MODIFIERS: Final = frozenset(
    "\ufe0e\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff"
)


def _smiley_index(text: str) -> int | None:
    if len(text) > 32:
        return None
    bare = "".join(c for c in text if not c.isspace() and c not in _EMOJI_MODIFIERS).casefold()
    return _SMILEY_INDEX.get(bare)


def _parse_scale(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    low, high = question.scale_range
    if inp.payload is not None and inp.payload.startswith(SCALE_PREFIX):
        value = parse_int(inp.payload.removeprefix(SCALE_PREFIX))
        if value is not None and low <= value <= high:
            return Parsed(value)
    index = _smiley_index(inp.text)
    if index is not None and high - low + 1 == len(SMILEYS):
        return Parsed(low + index)
    number = parse_int(normalize(inp.text))
    if number is not None and low <= number <= high:
        return Parsed(number)
    reason = "reprompt_scale_smileys" if question.style == "smileys" else "reprompt_scale"
    return Invalid(reason, {"min": low, "max": high})


MAX_SCALE_STEPS: Final = 11
"""0-10 at most: more buttons than that do not fit a phone screen or an SMS."""


def _options(
    survey: Survey, question: Question, lang: str
) -> tuple[tuple[Button, ...], tuple[str, ...]]:
    low, high = question.scale_range
    values = range(low, high + 1)
    smileys = question.style == "smileys" and len(values) == len(SMILEYS)
    labels = SMILEYS if smileys else tuple(str(v) for v in values)
    buttons = tuple(
        Button(scale_payload(v), label) for v, label in zip(values, labels, strict=True)
    )
    return buttons, labels


def _check(fields: RangeFields) -> Sequence[tuple[str, str]]:
    low = 1 if fields.min is None else fields.min
    high = 5 if fields.max is None else fields.max
    problems: list[tuple[str, str]] = []
    if high - low + 1 > MAX_SCALE_STEPS:
        problems.append(("max", f"a scale has at most {MAX_SCALE_STEPS} steps"))
    if fields.style == "smileys" and high - low + 1 != len(SMILEYS):
        problems.append(("style", "the smileys style needs exactly 5 steps"))
    return problems


KIND = QuestionKind(
    QuestionType.SCALE,
    _parse_scale,
    Figures.NUMBER,
    floip_type="numeric",
    keys=frozenset({"min", "max", "style"}),
    each_value=True,
    options=_options,
    check=_check,
)
