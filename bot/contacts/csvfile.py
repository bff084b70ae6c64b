"""Parse and validate a contact list exported as CSV, one row at a time.

Why one module: the file format is a contract with whoever exports the contact list, so the rules
below and the code that holds them stay side by side.

The file has a header row naming the columns (any order, case-insensitive):
external_ref, phone, telegram_chat_id, language, gender, birth_year, target_group, unit,
contact_since, plus any number of `attr_<name>` columns whose values become free attributes.
Fields are separated by `,` or `;` (decided from the header line, or an Excel `sep=;` first line);
the text is UTF-8 with or without a byte-order mark.

Normalisation: phone -> E.164 (national numbers read in the default region); language -> a
lowercased BCP 47-style tag ("sv", "en-gb"); gender -> "kvinna", "man" or "annat"; target_group ->
lowercase ASCII snake_case ("Ekonomiskt bistånd" -> "ekonomiskt_bistand") so it can be used in
audience expressions; unit -> trimmed text; contact_since -> a date (YYYY-MM-DD) not after today.

Problems never raise: each bad row (malformed CSV, a wrong number of fields, invalid values) yields
one `RowError` with the physical line number where the row starts and every problem found in it,
and parsing goes on with the next row. An external_ref, phone or telegram_chat_id already seen on
an earlier row (even a rejected one) makes the later row an error. A problem with the header
yields a single `RowError` and nothing else. Phone numbers are left out of error messages.
Blank rows are skipped.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import re
import textwrap
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, TextIO

import phonenumbers

from storage.models import Contact

COLUMNS = (
    "external_ref",
    "phone",
    "telegram_chat_id",
    "language",
    "gender",
    "birth_year",
    "target_group",
    "unit",
    "contact_since",
)
ATTR_PREFIX = "attr_"
IDENTIFIERS = ("external_ref", "phone", "telegram_chat_id")

GENDERS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(("kvinna", "kvinnlig", "k", "woman", "female", "f"), "kvinna"),
        **dict.fromkeys(("man", "manlig", "m", "male"), "man"),
        **dict.fromkeys(("annat", "annan", "other", "x"), "annat"),
    }
)

MIN_BIRTH_YEAR = 1900
MAX_TEXT_LENGTH = 200
COLUMN_LIMITS: Mapping[str, int] = {
    name: int(getattr(Contact.__table__.c[name].type, "length", MAX_TEXT_LENGTH))
    for name in ("external_ref", "language", "target_group", "unit")
}
"""What the contacts table holds, so a valid row always fits (a longer value would fail the
whole import on PostgreSQL)."""


def column_rules() -> tuple[tuple[str, str], ...]:
    """Each column of a contact list and the values it takes, as staff read them in `--help` and
    the README (both generated from here, so they say what the validation below does)."""
    spellings: dict[str, list[str]] = {}
    for spelling, value in GENDERS.items():
        if spelling != value:
            spellings.setdefault(value, []).append(spelling)
    genders = "; ".join(f"{value} (or {', '.join(alts)})" for value, alts in spellings.items())
    return (
        (
            "external_ref",
            f"your own id for the person, up to {COLUMN_LIMITS['external_ref']} characters; "
            "a contact is matched on it, else on its phone",
        ),
        (
            "phone",
            "a phone number, national (070-123 45 67, read as Swedish) or international "
            "(+46701234567); stored as +46701234567",
        ),
        ("telegram_chat_id", "the person's Telegram chat id, a whole number"),
        (
            "language",
            "a language code like sv, en, ar or sv-x-lattlast (easy-read Swedish); "
            "surveys fall back to their first language",
        ),
        ("gender", genders),
        ("birth_year", f"a year from {MIN_BIRTH_YEAR} to this year"),
        (
            "target_group",
            f"any text, up to {COLUMN_LIMITS['target_group']} characters; stored as a-z, 0-9 "
            f"and _ (Ekonomiskt bistånd -> {snake_case('Ekonomiskt bistånd')}), the name "
            "audiences use",
        ),
        ("unit", f"any text, up to {COLUMN_LIMITS['unit']} characters"),
        ("contact_since", "a date like 2024-05-01, not after today"),
        (
            f"{ATTR_PREFIX}<name>",
            "any text; <name> in a-z, 0-9 and _ becomes an attribute audiences can use",
        ),
    )


COLUMNS_NOTE = (
    "A header row names the columns, in any order; at least one of external_ref, phone and "
    "telegram_chat_id. Separated by , or ; (or an Excel sep=; line), UTF-8."
)


def columns_text() -> str:
    """The columns and their values as plain text, for `contacts import --help`."""
    width = max(len(name) for name, _ in column_rules())
    lines = [*textwrap.wrap(COLUMNS_NOTE, 96), ""]
    for name, rule in column_rules():
        lines += textwrap.wrap(
            rule,
            96,
            initial_indent=f"  {name:<{width}}  ",
            subsequent_indent=" " * (width + 4),
            break_on_hyphens=False,
        )
    return "\n".join(lines)


_PLACEHOLDER_RE = re.compile(r"<[a-z]+>")


def _code(match: re.Match[str]) -> str:
    return f"`{match.group()}`"


def columns_markdown() -> str:
    """The columns and their values as a Markdown table, for the README."""
    # `<name>` in backticks, or a Markdown renderer takes it for an HTML tag.
    rows = [f"| `{name}` | {_PLACEHOLDER_RE.sub(_code, rule)} |" for name, rule in column_rules()]
    return "\n".join([COLUMNS_NOTE, "", "| column | values |", "| --- | --- |", *rows])


_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_YEAR_RE = re.compile(r"^[0-9]{4}$")
_CHAT_ID_RE = re.compile(r"^-?[0-9]{1,20}$")
_ATTR_NAME_RE = re.compile(r"^[a-z0-9_]+$")
# Line breaks and tabs are fine inside quoted values; other control characters are corruption.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NON_WORD_RE = re.compile(r"[^a-z0-9]+")
# Separators people type in phone numbers.
_PHONE_NOISE = str.maketrans("", "", " -().\u00a0\t/")


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One valid contact from the file, normalised."""

    line: int
    external_ref: str | None = None
    phone: str | None = None
    telegram_chat_id: str | None = None
    language: str | None = None
    gender: str | None = None
    birth_year: int | None = None
    target_group: str | None = None
    unit: str | None = None
    contact_since: date | None = None
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RowError:
    """A row (or the header) that cannot be imported, and why."""

    line: int
    reason: str
    whole_file: bool = False
    """The file itself cannot be read as a contact list (empty, not UTF-8, a bad header): no row
    of it can be imported, so skipping invalid rows does not apply."""

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def snake_case(text: str) -> str:
    """Lowercase ASCII snake_case: "Ekonomiskt bistånd" -> "ekonomiskt_bistand"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_WORD_RE.sub("_", ascii_text.lower()).strip("_")


def _read_header(cells: list[str]) -> tuple[str | None, ...] | str:
    """Column names per position (None for an unnamed column, which must stay empty), or why
    the header is unusable."""
    names: list[str | None] = []
    seen: set[str] = set()
    for index, cell in enumerate(cells, start=1):
        name = cell.strip().lower()
        if not name:
            names.append(None)
            continue
        if name.startswith(ATTR_PREFIX):
            attr = name[len(ATTR_PREFIX) :]
            if not _ATTR_NAME_RE.match(attr):
                return (
                    f"column {index} {cell.strip()!r}: attribute names after attr_ may only use "
                    "a-z, 0-9 and _"
                )
        elif name not in COLUMNS:
            close = difflib.get_close_matches(name, COLUMNS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (
                f"unknown column {cell.strip()!r}{hint}; known columns are "
                f"{', '.join(COLUMNS)}, and extra ones must start with {ATTR_PREFIX}"
            )
        if name in seen:
            return f"column {cell.strip()!r} appears twice"
        seen.add(name)
        names.append(name)
    if not seen.intersection(IDENTIFIERS):
        return f"the header needs at least one of the columns {', '.join(IDENTIFIERS)}"
    return tuple(names)


def _delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def parse_contacts(
    stream: TextIO | Iterable[str], *, default_region: str = "SE", today: date
) -> Iterator[ContactRow | RowError]:
    """Yield a ContactRow or RowError per data row, streaming (memory grows only with the
    duplicate check's set of identifiers). Raises ValueError for an unknown default_region."""
    read = 0

    def counted() -> Iterator[str]:
        nonlocal read
        for text in stream:
            read += 1
            yield text

    try:
        yield from _parse(counted(), default_region, today)
    except UnicodeDecodeError:
        # The decoder reads ahead in blocks, so the line is approximate.
        yield RowError(
            read + 1, 'the file is not UTF-8 text; save it as "CSV UTF-8"', whole_file=True
        )


def _parse(
    lines: Iterator[str], default_region: str, today: date
) -> Iterator[ContactRow | RowError]:
    first = next(lines, None)
    if first is None:
        yield RowError(1, "the file is empty; it needs a header row", whole_file=True)
        return
    first = first.removeprefix("\ufeff")
    line_offset = 0
    sep = re.match(r"^sep=(.)\s*$", first)
    if sep is not None:
        delimiter = sep[1]
        line_offset = 1
        first_or_none = next(lines, None)
        if first_or_none is None:
            yield RowError(2, "the file has no header row", whole_file=True)
            return
        first = first_or_none
    else:
        delimiter = _delimiter(first)
    if delimiter not in ",;":
        yield RowError(1, f"unsupported separator {delimiter!r}; use , or ;", whole_file=True)
        return

    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    try:
        header_cells = next(reader)
    except csv.Error as exc:
        yield RowError(1 + line_offset, f"malformed header: {exc}", whole_file=True)
        return
    header = _read_header(header_cells)
    if isinstance(header, str):
        yield RowError(1 + line_offset, header, whole_file=True)
        return

    validator = _RowValidator(header, default_region.upper(), today)
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(previous_end + 1 + line_offset, f"malformed CSV: {exc}")
            previous_end = reader.line_num
            continue
        line = previous_end + 1 + line_offset
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        yield validator.row(line, cells)


class ContactValidator:
    """Validates contact records that arrive as JSON objects (the staff API) by the same rules,
    normalisation and duplicate checks as the CSV parser; `line` in errors is the record's index.

    A record maps the column names (see COLUMNS) to text or numbers, and may hold `attributes`:
    an object of free attributes (names a-z, 0-9, _; values text or numbers)."""

    def __init__(self, *, default_region: str = "SE", today: date) -> None:
        self._validator = _RowValidator((), default_region.upper(), today)

    def record(self, index: int, record: object) -> ContactRow | RowError:
        """A ContactRow, or a RowError saying everything wrong with the record."""
        if not isinstance(record, Mapping):
            return RowError(index, "a contact must be a JSON object")
        items: list[tuple[str | None, str]] = []
        problems: list[str] = []
        for key, value in record.items():
            if key == "attributes":
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    problems.append("attributes must be an object")
                    continue
                for attr, attr_value in value.items():
                    if not isinstance(attr, str) or not _ATTR_NAME_RE.match(attr):
                        problems.append(f"attribute name {attr!r} may only use a-z, 0-9 and _")
                    elif (text := _scalar_text(attr_value)) is None:
                        problems.append(f"attribute {attr!r} must be text or a number")
                    else:
                        items.append((ATTR_PREFIX + attr, text))
                continue
            if key not in COLUMNS:
                close = difflib.get_close_matches(str(key), COLUMNS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown field {key!r}{hint}")
                continue
            if value is None:
                continue
            text = _scalar_text(value)
            if text is None:
                problems.append(f"{key} must be text or a number")
                continue
            items.append((key, text))
        if problems:
            return RowError(index, "; ".join(problems))
        return self._validator.fields(index, items)


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


class _PhoneNormaliser:
    """Phone text -> E.164, as phonenumbers.parse + is_valid_number would give it.

    parse and is_valid_number cost tens of microseconds each, which dominates a large import. The
    everyday shapes in the default region (0701234567, +46701234567) take a shortcut: for them
    parse would only strip the national prefix or country code, and validity is checked with the
    region's own patterns exactly as is_valid_number checks them. Everything else, and anything
    the shortcut does not accept, goes through phonenumbers itself."""

    _TYPES = (
        "premium_rate",
        "toll_free",
        "shared_cost",
        "voip",
        "personal_number",
        "pager",
        "uan",
        "voicemail",
        "fixed_line",
        "mobile",
    )

    def __init__(self, region: str) -> None:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            raise ValueError(f"unknown phone region {region!r}")
        cc = metadata.country_code or 0
        self._region = region
        self._cc = cc
        self._plus_cc = f"+{cc}"
        simple_prefix = (
            metadata.national_prefix is not None
            and metadata.national_prefix.isdigit()
            and metadata.national_prefix_for_parsing == metadata.national_prefix
            and not metadata.national_prefix_transform_rule
        )
        self._national_prefix = metadata.national_prefix if simple_prefix else None
        # The region's patterns decide validity only when the calling code has no other region.
        sole = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc) == (region,)
        self._general = _desc_check(metadata.general_desc) if sole else None
        self._types = [
            check
            for name in self._TYPES
            if (check := _desc_check(getattr(metadata, name))) is not None
        ]

    def __call__(self, value: str) -> str:
        digits = value.translate(_PHONE_NOISE)
        fast = self._shortcut(digits)
        if fast is not None:
            return fast
        try:
            number = phonenumbers.parse(digits, self._region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise FieldError("phone", f"is not a valid phone number (region {self._region})")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def _shortcut(self, digits: str) -> str | None:
        """E.164 for a valid number in an everyday shape; None = ask phonenumbers."""
        if self._national_prefix is None or not digits.isascii():
            return None
        if digits.startswith(self._plus_cc):
            national = digits[len(self._plus_cc) :]
        elif digits.startswith(self._national_prefix):
            national = digits[len(self._national_prefix) :]
        else:
            return None
        if not national.isdigit() or national.startswith("0") or len(national) > 17:
            return None
        if self._general is not None:
            valid = _matches(national, self._general) and any(
                _matches(national, check) for check in self._types
            )
        else:
            number = phonenumbers.PhoneNumber(country_code=self._cc, national_number=int(national))
            valid = phonenumbers.is_valid_number(number)
        return f"+{self._cc}{national}" if valid else None


_DescCheck = tuple[frozenset[int], "re.Pattern[str]"]


def _desc_check(desc: phonenumbers.PhoneNumberDesc | None) -> _DescCheck | None:
    """A number description's possible lengths and pattern; None if it matches nothing."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches(national: str, check: _DescCheck) -> bool:
    # Mirrors phonenumbers' _is_number_matching_desc: no lengths listed means any length.
    lengths, pattern = check
    if lengths and len(national) not in lengths:
        return False
    return pattern.fullmatch(national) is not None


class FieldError(ValueError):
    """A contact field's value breaks its rule: `field` and what is wrong (`detail`)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field} {detail}")
        self.field = field
        self.detail = detail


class ContactFields:
    """The rules and normalisation of every contact field, for all the ways contacts arrive
    (CSV files, the contacts API, contact details in case events)."""

    def __init__(self, region: str, today: date) -> None:
        self._phone = _PhoneNormaliser(region)
        self._today = today
        self._parsers: dict[str, Callable[[str], object]] = {
            "external_ref": self._external_ref,
            "phone": self._phone,
            "telegram_chat_id": self._telegram_chat_id,
            "language": self._language,
            "gender": self._gender,
            "birth_year": self._birth_year,
            "target_group": self._target_group,
            "unit": self._unit,
            "contact_since": self._contact_since,
        }

    def __contains__(self, name: object) -> bool:
        return name in self._parsers

    def parse(self, name: str, value: str) -> object:
        """A field's trimmed, non-empty text -> its normalised value; FieldError if invalid."""
        return self._parsers[name](value)

    def _text(self, value: str, name: str) -> str:
        limit = COLUMN_LIMITS.get(name, MAX_TEXT_LENGTH)
        if len(value) > limit:
            raise FieldError(name, f"is longer than {limit} characters")
        return value

    def _external_ref(self, value: str) -> str:
        return self._text(value, "external_ref")

    def _unit(self, value: str) -> str:
        return self._text(value, "unit")

    def _target_group(self, value: str) -> str:
        slug = snake_case(value)
        if not slug:
            raise FieldError("target_group", f"{value!r} has no letters or digits")
        return self._text(slug, "target_group")

    def _telegram_chat_id(self, value: str) -> str:
        if not _CHAT_ID_RE.match(value):
            raise FieldError("telegram_chat_id", f"{value!r} is not an integer")
        return str(int(value))

    def _language(self, value: str) -> str:
        tag = self._text(value.lower().replace("_", "-"), "language")
        if not _LANGUAGE_RE.match(tag):
            raise FieldError("language", f"{value!r} is not a language code like sv, en or en-gb")
        return tag

    def _gender(self, value: str) -> str:
        gender = GENDERS.get(value.lower())
        if gender is None:
            raise FieldError("gender", f"{value!r} is not one of kvinna, man, annat")
        return gender

    def _birth_year(self, value: str) -> int:
        last = self._today.year
        if not _YEAR_RE.match(value) or not MIN_BIRTH_YEAR <= int(value) <= last:
            raise FieldError(
                "birth_year", f"{value!r} is not a year from {MIN_BIRTH_YEAR} to {last}"
            )
        return int(value)

    def _contact_since(self, value: str) -> date:
        try:
            if not _DATE_RE.match(value):
                raise ValueError
            day = date.fromisoformat(value)
        except ValueError:
            raise FieldError("contact_since", f"{value!r} is not a date like 2024-05-01") from None
        if day > self._today:
            raise FieldError("contact_since", f"{value} is in the future")
        return day


class _RowValidator:
    """Checks rows against the header and remembers identifiers to catch duplicates."""

    def __init__(self, names: tuple[str | None, ...], region: str, today: date) -> None:
        self._names = names
        self._fields = ContactFields(region, today)
        self._first_seen: dict[str, dict[str, int]] = {name: {} for name in IDENTIFIERS}

    def row(self, line: int, cells: list[str]) -> ContactRow | RowError:
        if len(cells) != len(self._names):
            return RowError(line, f"expected {len(self._names)} fields, got {len(cells)}")
        return self.fields(line, zip(self._names, cells, strict=True))

    def fields(self, line: int, items: Iterable[tuple[str | None, str]]) -> ContactRow | RowError:
        """Validate one record given as (column name, text) pairs."""
        parsed: dict[str, Any] = {}
        attributes: dict[str, str] = {}
        problems: list[str] = []
        has_identifier = False
        for index, (name, cell) in enumerate(items, start=1):
            value = cell.strip()
            if not value:
                continue
            if _CONTROL_RE.search(value):
                problems.append(f"{name or f'column {index}'} contains control characters")
                continue
            if name is None:
                problems.append(f"column {index} has no name in the header but a value here")
                continue
            if name not in self._fields:
                attributes[name[len(ATTR_PREFIX) :]] = value
                continue
            has_identifier = has_identifier or name in IDENTIFIERS
            try:
                parsed[name] = self._fields.parse(name, value)
            except FieldError as exc:
                problems.append(str(exc))

        if not has_identifier:
            problems.append("needs external_ref, phone or telegram_chat_id")
        for name in IDENTIFIERS:
            key = parsed.get(name)
            if key is None:
                continue
            first = self._first_seen[name].setdefault(key, line)
            if first != line:
                shown = "" if name == "phone" else f" {key!r}"
                problems.append(f"duplicate {name}{shown} (first on line {first})")

        if problems:
            return RowError(line, "; ".join(problems))
        return ContactRow(line=line, attributes=MappingProxyType(attributes), **parsed)
