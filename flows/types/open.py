"""`open`: free text, cleaned of control characters, cut to `max_length` (1,000 by default)."""

from __future__ import annotations

import unicodedata
from typing import Final

from flows.answers import Invalid, ParseContext, Parsed
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types.base import Figures, QuestionKind

DEFAULT_MAX_LENGTH: Final = 1000

__all__ = ["DEFAULT_MAX_LENGTH", "KIND"]

_KEPT_CONTROLS: Final = frozenset("\n\t")


def _clean_text(text: str) -> str:
    """Text as typed, minus control characters (NUL breaks PostgreSQL) and lone surrogates."""
    unified = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        c for c in unified if c in _KEPT_CONTROLS or unicodedata.category(c) not in {"Cc", "Cs"}
    ).strip()


def _parse_open(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    cleaned = _clean_text(inp.text)
    if not cleaned:
        return Invalid("reprompt_open")
    limit = question.max_length or DEFAULT_MAX_LENGTH
    if len(cleaned) > limit:
        return Parsed(cleaned[:limit].rstrip(), shortened_to=limit)
    return Parsed(cleaned)


KIND = QuestionKind(
    QuestionType.OPEN,
    _parse_open,
    Figures.TEXT,
    floip_type="text",
    keys=frozenset({"max_length"}),
)
