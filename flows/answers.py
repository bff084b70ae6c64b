"""What answer parsing shares: the parser's signature and results, button payloads, and the
folding of typed text. Each question type's own parser is in `flows.types.<type>`.

A parser takes the question, the input and a `ParseContext` and returns `Parsed(value)` or
`Invalid(reason)`, where `reason` is a `flows.texts` key for the re-prompt. Typed text is
compared after `normalize` (case, diacritics, surrounding punctuation and Arabic-Indic digits do
not matter; a choice's text also matches with its punctuation and spacing left out); button
payloads ("choice:<id>", "choices:<id>,<id>", "scale:<n>") are exact.

Numbers are whole numbers: "7", " 7 ", "٧", "7.0", "1 000" and "34 år" are accepted, "7.5" is
rejected (we ask again rather than guess how to round). Dates are read day first, as in Swedish
("5/3" is 5 March); a date without a year is in the year of `today`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Final

from flows.conversation import AnswerValue, Input
from flows.model import Question

__all__ = [
    "CHOICES_PREFIX",
    "CHOICE_PREFIX",
    "DEFAULT_MAX_LENGTH",
    "LANG_PREFIX",
    "SCALE_PREFIX",
    "Invalid",
    "ParseContext",
    "Parsed",
    "Parser",
    "choice_payload",
    "lang_payload",
    "normalize",
    "parse_int",
    "scale_payload",
]

CHOICE_PREFIX: Final = "choice:"
CHOICES_PREFIX: Final = "choices:"
SCALE_PREFIX: Final = "scale:"
LANG_PREFIX: Final = "lang:"
DEFAULT_MAX_LENGTH: Final = 1000
_MAX_DIGITS: Final = 15


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What a parser needs beyond the question: the person's language and today's date."""

    lang: str
    today: date


@dataclass(frozen=True, slots=True)
class Parsed:
    """An accepted answer; `shortened_to` is set when an open answer was cut to that length."""

    value: AnswerValue
    shortened_to: int | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A rejected answer; `reason` is the `flows.texts` key saying what is expected."""

    reason: str
    params: Mapping[str, int] = field(default_factory=dict)


Parser = Callable[[Question, Input, ParseContext], Parsed | Invalid]


def choice_payload(choice_id: str) -> str:
    """The button payload that picks one choice."""
    return f"{CHOICE_PREFIX}{choice_id}"


def scale_payload(value: int) -> str:
    """The button payload that picks a scale value."""
    return f"{SCALE_PREFIX}{value}"


def lang_payload(code: str) -> str:
    """The button payload that picks a language in the language menu."""
    return f"{LANG_PREFIX}{code}"


# --- normalization ------------------------------------------------------------------------------

_DROPPED_CATEGORIES: Final = frozenset({"Mn", "Me", "Cc", "Cf", "Cs", "Co", "Cn"})
_TRANSLATE: Final = {0x2212: "-", 0x0640: None}  # minus sign; Arabic tatweel (letter stretching)


def _to_ascii_digits(text: str) -> str:
    if text.isascii():
        return text
    return "".join(
        str(unicodedata.decimal(c)) if not c.isascii() and c.isdecimal() else c for c in text
    )


def _is_edge(c: str) -> bool:
    return unicodedata.category(c)[0] in "PZ"


def _strip_edges(text: str) -> str:
    start, end = 0, len(text)
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    while start < end and _is_edge(text[start]):
        # keep the sign of "-5"
        if text[start] == "-" and start + 1 < end and text[start + 1].isdigit():
            break
        start += 1
    return text[start:end]


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Fold `text` for comparison: no diacritics, case or surrounding punctuation; ASCII digits.

    Remembered for the latest few thousand texts: one answer is folded several times in its turn
    (keywords, then the question's own parser), and answers repeat ("1", "ja", "stopp")."""
    decomposed = unicodedata.normalize("NFKD", text).translate(_TRANSLATE)
    kept = "".join(
        " " if c.isspace() else c
        for c in decomposed
        if c.isspace() or unicodedata.category(c) not in _DROPPED_CATEGORIES
    )
    folded = _to_ascii_digits(kept.casefold())
    return _strip_edges(" ".join(folded.split()))


_INTEGER = re.compile(
    r"(-?)([0-9]{1,3}(?: [0-9]{3})+|[0-9]+)(?:[.,]0+)?(?P<unit> ?[^\W\d_]{1,20}\.?)?"
)


def parse_int(normalized: str, *, allow_unit: bool = False) -> int | None:
    """A whole number from normalized text ("7", "-3", "1 000", "7,0", with allow_unit "34 år")."""
    match = _INTEGER.fullmatch(normalized)
    if match is None or (match["unit"] and not allow_unit):
        return None
    digits = match[2].replace(" ", "")
    if len(digits) > _MAX_DIGITS:
        return None
    return -int(digits) if match[1] else int(digits)
