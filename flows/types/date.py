"""`date`: a day, read day first as in Swedish ("5/3" is 5 March), or "idag", "5 mars 2024"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Final

from flows.answers import Invalid, ParseContext, Parsed, normalize
from flows.conversation import Input
from flows.model import Question, QuestionType
from flows.types.base import Figures, QuestionKind

__all__ = ["KIND", "parse_date"]


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


KIND = QuestionKind(
    QuestionType.DATE,
    _parse_date,
    Figures.DATE,
    floip_type="date",
)
