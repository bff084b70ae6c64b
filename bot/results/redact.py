"""Masking of personal data in free text: phone numbers, e-mail addresses, personnummer.

Used on open answers before staff see them and on every export. It errs on the side of masking:
a number that could be a phone number or a personnummer is masked, while years ("2024"), dates
("2024-05-01", "1/5"), times ("08.30-17.00") and amounts ("1500 kr", "12 500 000 kr") are kept.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

__all__ = ["EMAIL", "PERSONNUMMER", "PHONE", "mask_pii"]

EMAIL: Final = "[e-post]"
PHONE: Final = "[telefon]"
PERSONNUMMER: Final = "[personnummer]"

_EMAIL_RE: Final = re.compile(
    r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])", re.UNICODE
)

# ÅÅMMDD-XXXX or ÅÅÅÅMMDD-XXXX, with -, + (100 years or older), a space or nothing between.
_PNR_RE: Final = re.compile(
    r"(?<![\w+])(?P<century>\d{2})?(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})"
    r"(?P<sep>[-+ ]?)(?P<tail>\d{4})(?![\w])"
)

# Runs of digits joined by single separators (space, hyphen) or parenthesised area codes, with
# an optional + or 00 in front. Dots and slashes are not separators: they write dates and times.
_NUMBER_RE: Final = re.compile(
    r"(?<![\w+])(?P<prefix>\+|00)?\s?(?:\(\d{1,4}\)\s?)?\d+"
    r"(?:(?:\s?-\s?|\s|\s?\(\d{1,4}\)\s?)\d+)*(?![\w])"
)
_DATE_LIKE_RE: Final = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}-\d{1,2}-\d{2,4}|(?:19|20)\d{2}\s?-\s?(?:19|20)\d{2}"
)
_AMOUNT_RE: Final = re.compile(r"\d{1,3}(?:\s\d{3})+")
_YEARS_RE: Final = re.compile(r"(?:19|20)\d{2}(?:\s?[-\s]\s?(?:19|20)\d{2})+")
_AMOUNT_AFTER_RE: Final = re.compile(
    r"\s*(?:kr\b|kronor\b|sek\b|:-|€|\$|%|euro\b|procent\b)", re.IGNORECASE
)


def mask_pii(text: str) -> str:
    """`text` with e-mail addresses, personnummer and phone numbers replaced by placeholders."""
    text = _EMAIL_RE.sub(EMAIL, text)
    text = _PNR_RE.sub(_mask_personnummer, text)
    return _NUMBER_RE.sub(_mask_phone, text)


def _mask_personnummer(match: re.Match[str]) -> str:
    century, sep = match["century"], match["sep"]
    if century is not None and century not in ("18", "19", "20"):
        return match[0]
    if not _plausible_birth_date(century, match["yy"], match["mm"], match["dd"]):
        return match[0]
    digits = f"{match['yy']}{match['mm']}{match['dd']}{match['tail']}"
    # Ten bare digits starting with 0 are more often a mobile number (070...) than someone
    # born in 200x; the Luhn check number tells them apart, and both get masked anyway.
    if century is None and not sep and digits.startswith("0") and not _luhn_ok(digits):
        return match[0]
    if sep == " " and century is None and not _luhn_ok(digits):
        return match[0]
    return PERSONNUMMER


def _plausible_birth_date(century: str | None, yy: str, mm: str, dd: str) -> bool:
    month, day = int(mm), int(dd)
    if day > 60:  # samordningsnummer: the day plus 60
        day -= 60
    # Without a century, 29 February is possible in any year divisible by four.
    year = int(century + yy) if century else 2000 + int(yy)
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _mask_phone(match: re.Match[str]) -> str:
    text = match[0]
    digits = sum(ch.isdigit() for ch in text)
    if match["prefix"]:
        return PHONE if 8 <= digits <= 15 else text
    body = text.lstrip()
    if _DATE_LIKE_RE.fullmatch(body) or _YEARS_RE.fullmatch(body):
        return text
    if body.startswith(("0", "(0")):
        return PHONE if 8 <= digits <= 12 else text
    separated = not body.isdigit()
    if digits < 8 or not separated:
        return text
    if _AMOUNT_RE.fullmatch(body) or _AMOUNT_AFTER_RE.match(match.string, match.end()):
        return text
    return PHONE
