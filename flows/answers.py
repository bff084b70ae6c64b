"""Answer parsing: one registry from question type to a parser of what the person sent.

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
from datetime import date, timedelta
from typing import Final

from flows.conversation import AnswerValue, Input
from flows.model import SMILEYS, Question, QuestionType, localize

__all__ = [
    "CHOICES_PREFIX",
    "CHOICE_PREFIX",
    "DEFAULT_MAX_LENGTH",
    "LANG_PREFIX",
    "PARSERS",
    "SCALE_PREFIX",
    "Invalid",
    "ParseContext",
    "Parsed",
    "Parser",
    "choice_payload",
    "lang_payload",
    "normalize",
    "parse_answer",
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


def normalize(text: str) -> str:
    """Fold `text` for comparison: no diacritics, case or surrounding punctuation; ASCII digits."""
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


# --- choices ------------------------------------------------------------------------------------


def _compact(normalized: str) -> str:
    """Normalized text without punctuation and spaces: "ja delvis" and "Ja, delvis" agree."""
    return "".join(c for c in normalized if unicodedata.category(c)[0] not in "PZ")


def _match_choice(question: Question, normalized: str, ctx: ParseContext) -> str | None:
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


def _parse_select_one(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    if inp.payload is not None and inp.payload.startswith(CHOICE_PREFIX):
        choice = question.choice(inp.payload.removeprefix(CHOICE_PREFIX))
        if choice is not None:
            return Parsed(choice.id)
    choice_id = _match_choice(question, normalize(inp.text), ctx)
    if choice_id is None:
        return Invalid("reprompt_select_one", {"max": len(question.choices)})
    return Parsed(choice_id)


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
    whole = _match_choice(question, normalized, ctx)
    if whole is not None:
        return Parsed([whole])
    selected: set[str] = set()
    for raw_part in _LIST_SEPARATOR.split(_number_phrases(question, normalized)):
        part = normalize(raw_part)
        if not part:
            continue
        if _NUMBERS.fullmatch(part):
            found = [_match_choice(question, number, ctx) for number in part.split()]
        else:
            found = [_match_choice(question, part, ctx)]
        for match in found:
            if match is None:
                return invalid
            selected.add(match)
    if not selected:
        return invalid
    return Parsed(_in_question_order(question, selected))


# --- numbers ------------------------------------------------------------------------------------


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


# --- open text ----------------------------------------------------------------------------------

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


# --- dates --------------------------------------------------------------------------------------


def _month_table() -> dict[str, int]:
    names = {
        1: ("januari", "january", "jan", "يناير", "كانون الثاني"),
        2: ("februari", "february", "feb", "فبراير", "شباط"),
        3: ("mars", "march", "mar", "مارس", "آذار"),
        4: ("april", "apr", "أبريل", "ابريل", "نيسان"),
        5: ("maj", "may", "مايو", "أيار"),
        6: ("juni", "june", "jun", "يونيو", "حزيران"),
        7: ("juli", "july", "jul", "يوليو", "تموز"),
        8: ("augusti", "august", "aug", "أغسطس", "آب"),
        9: ("september", "sep", "sept", "سبتمبر", "أيلول"),
        10: ("oktober", "october", "okt", "oct", "أكتوبر", "تشرين الأول"),
        11: ("november", "nov", "نوفمبر", "تشرين الثاني"),
        12: ("december", "dec", "ديسمبر", "كانون الأول"),
    }
    return {normalize(name): month for month, words in names.items() for name in words}


_MONTHS: Final = _month_table()
_RELATIVE_DAYS: Final[Mapping[str, int]] = {
    normalize(word): offset
    for offset, words in {
        0: ("idag", "i dag", "today", "اليوم"),
        -1: ("igår", "i går", "yesterday", "أمس", "البارحة"),
        -2: ("i förrgår", "förrgår", "day before yesterday", "أول أمس"),
        1: ("imorgon", "i morgon", "tomorrow", "غداً"),
    }.items()
    for word in words
}
_ISO = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DAY_MONTH = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})(?:[/.-]([0-9]{4}|[0-9]{2}))?")
_ORDINAL = r"(?:st|nd|rd|th|:?e|:?a)?"
_DAY_NAMED_MONTH = re.compile(
    rf"(?:den )?([0-9]{{1,2}}){_ORDINAL}\.? ([^\W\d_]+(?: [^\W\d_]+)?)\.?,?(?: ([0-9]{{4}}))?"
)
_NAMED_MONTH_DAY = re.compile(rf"([^\W\d_]+)\.? ([0-9]{{1,2}}){_ORDINAL},?(?: ([0-9]{{4}}))?")


def _year(text: str | None, today: date) -> int:
    if text is None:
        return today.year
    year = int(text)
    if len(text) == 2:
        year += 2000 if 2000 + year <= today.year else 1900
    return year


def _make_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(normalized: str, today: date) -> date | None:
    """A date from normalized text: ISO, 20240305, 5/3/2024, 5/3, "5 mars 2024", "today"..."""
    if len(normalized) > 40:
        return None
    if normalized in _RELATIVE_DAYS:
        return today + timedelta(days=_RELATIVE_DAYS[normalized])
    if match := _ISO.fullmatch(normalized) or _COMPACT.fullmatch(normalized):
        return _make_date(int(match[1]), int(match[2]), int(match[3]))
    if match := _DAY_MONTH.fullmatch(normalized):
        return _make_date(_year(match[3], today), int(match[2]), int(match[1]))
    if (match := _DAY_NAMED_MONTH.fullmatch(normalized)) and match[2] in _MONTHS:
        return _make_date(_year(match[3], today), _MONTHS[match[2]], int(match[1]))
    if (match := _NAMED_MONTH_DAY.fullmatch(normalized)) and match[1] in _MONTHS:
        return _make_date(_year(match[3], today), _MONTHS[match[1]], int(match[2]))
    return None


def _parse_date(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    parsed = parse_date(normalize(inp.text), ctx.today)
    if parsed is None:
        return Invalid("reprompt_date")
    return Parsed(parsed.isoformat())


def _parse_message(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    # The engine never waits on a message question; anything counts as read.
    return Parsed(None)


PARSERS: Final[Mapping[QuestionType, Parser]] = {
    QuestionType.MESSAGE: _parse_message,
    QuestionType.SELECT_ONE: _parse_select_one,
    QuestionType.SELECT_MANY: _parse_select_many,
    QuestionType.NUMERIC: _parse_numeric,
    QuestionType.OPEN: _parse_open,
    QuestionType.DATE: _parse_date,
    QuestionType.SCALE: _parse_scale,
}


def parse_answer(question: Question, inp: Input, ctx: ParseContext) -> Parsed | Invalid:
    """Parse what the person sent as an answer to `question`."""
    return PARSERS[question.type](question, inp, ctx)
