"""What the two choice types share: matching typed text to a choice, and their buttons."""

from __future__ import annotations

import unicodedata

from flows.answers import ParseContext, choice_payload, normalize, parse_int
from flows.conversation import Button
from flows.model import Question, Survey, localize

__all__ = ["choice_options", "match_choice"]


def _compact(normalized: str) -> str:
    """Normalized text without punctuation and spaces: "ja delvis" and "Ja, delvis" agree."""
    return "".join(c for c in normalized if unicodedata.category(c)[0] not in "PZ")


def match_choice(question: Question, normalized: str, ctx: ParseContext) -> str | None:
    """The choice the text names: its number as shown, its text in any language, or its id;
    exactly (after `normalize`) first, then ignoring punctuation and spacing too."""
    if not normalized:
        return None
    number = parse_int(normalized)
    if number is not None and 1 <= number <= len(question.choices):
        return question.choices[number - 1].id
    for fold in (str, _compact):
        wanted = fold(normalized)
        if not wanted:
            return None
        for choice in question.choices:
            if fold(normalize(localize(choice.text, ctx.lang, ctx.lang))) == wanted:
                return choice.id
        for choice in question.choices:
            if any(fold(normalize(label)) == wanted for label in choice.text.values()):
                return choice.id
        for choice in question.choices:
            if fold(normalize(choice.id)) == wanted:
                return choice.id
    return None


def choice_options(
    survey: Survey, question: Question, lang: str
) -> tuple[tuple[Button, ...], tuple[str, ...]]:
    """A button per choice, and the choices' texts numbered on SMS."""
    labels = tuple(
        localize(choice.text, lang, survey.default_language) for choice in question.choices
    )
    buttons = tuple(
        Button(choice_payload(choice.id), label)
        for choice, label in zip(question.choices, labels, strict=True)
    )
    return buttons, labels
