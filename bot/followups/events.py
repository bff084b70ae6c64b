"""Case events as they arrive, over the API or in a CSV file: checked and normalised, with every
problem named, before anything is stored."""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.contacts.csvfile import COLUMNS, ContactFields, FieldError
from bot.followups.rules import _TYPE_RE, _unknown_key

_ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 100
MAX_TEXT_LENGTH = 200
MAX_ATTRIBUTES = 50


MAX_BATCH = 1000
"""Events per API request; larger loads go through `brukardialog events import`."""

EVENT_KEYS = (
    "event_id",
    "type",
    "external_ref",
    "occurred_at",
    "cancelled",
    "attributes",
    "contact",
)
CONTACT_KEYS = (*(name for name in COLUMNS if name != "external_ref"), "attributes")
"""A new person's details in an event: a contact list's columns (external_ref is the event's own)
and free attributes."""


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """How to create a person the service does not know yet, normalised."""

    phone: str | None = None
    telegram_chat_id: str | None = None
    language: str | None = None
    gender: str | None = None
    birth_year: int | None = None
    target_group: str | None = None
    unit: str | None = None
    contact_since: date | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventInput:
    """One validated event report."""

    event_id: str
    type: str
    external_ref: str
    occurred_at: datetime
    cancelled: bool = False
    attributes: Mapping[str, object] = field(default_factory=dict)
    contact: ContactDetails | None = None


def parse_time(value: object, tz: ZoneInfo) -> datetime:
    """ISO 8601 with an offset (or Z) -> aware UTC; without one it is local time in `tz`; a bare
    date is local midnight."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a time; write it like 2026-03-02T17:55:00+01:00")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 time like 2026-03-02T17:55:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _identifier(value: object, key: str, problems: list[str]) -> str:
    if value is None or value == "":
        problems.append(f"{key}: required")
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        problems.append(f"{key}: must be a text, not {value!r}")
        return ""
    text = str(value).strip()
    if not text:
        problems.append(f"{key}: required")
    elif len(text) > MAX_ID_LENGTH:
        problems.append(f"{key}: longer than {MAX_ID_LENGTH} characters")
    elif _CONTROL_RE.search(text):
        problems.append(f"{key}: contains control characters")
    return text


def _attributes(value: object, key: str, problems: list[str]) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be an object of name: value, not {value!r}")
        return {}
    if len(value) > MAX_ATTRIBUTES:
        problems.append(f"{key}: more than {MAX_ATTRIBUTES} attributes")
        return {}
    out: dict[str, object] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not _ATTR_RE.match(name):
            problems.append(
                f"{key}: attribute name {name!r} may only use letters, digits and _ "
                "(so rule filters can name it)"
            )
            continue
        scalars = (str, int, float, bool, type(None))
        ok = isinstance(item, scalars) or (
            isinstance(item, list) and all(isinstance(x, scalars) for x in item)
        )
        if not ok:
            problems.append(f"{key}.{name}: must be a text, number, true/false or a list of them")
        elif isinstance(item, str) and len(item) > MAX_TEXT_LENGTH:
            problems.append(f"{key}.{name}: longer than {MAX_TEXT_LENGTH} characters")
        else:
            out[name] = item
    return out


def parse_contact(data: object, *, today: date, region: str = "SE") -> ContactDetails | list[str]:
    """Contact details from an event, normalised by the same rules as a contact list
    (bot.contacts.csvfile.ContactFields); or every problem."""
    if not isinstance(data, dict):
        return [f"contact: must be an object, not {data!r}"]
    problems: list[str] = []
    for key in data:
        if key not in CONTACT_KEYS:
            problems.append(f"contact.{_unknown_key(str(key), CONTACT_KEYS)}")
    fields = ContactFields(region, today)
    values: dict[str, Any] = {}
    for key in CONTACT_KEYS:
        value = data.get(key)
        if key == "attributes" or value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            problems.append(f"contact.{key}: must be a text, not {value!r}")
            continue
        text = str(value).strip()
        if _CONTROL_RE.search(text):
            problems.append(f"contact.{key}: contains control characters")
        elif text:
            try:
                values[key] = fields.parse(key, text)
            except FieldError as e:
                # The phone rule leaves the number out of its message (messages reach logs).
                problems.append(f"contact.{e.field}: {e.detail}")
    values["attributes"] = _attributes(data.get("attributes"), "contact.attributes", problems)
    if (
        "phone" not in values
        and "telegram_chat_id" not in values
        and not any(p.startswith(("contact.phone", "contact.telegram_chat_id")) for p in problems)
    ):
        problems.append("contact: needs phone or telegram_chat_id, so the person can be reached")
    if problems:
        return problems
    return ContactDetails(**values)


def parse_event(data: object, *, tz: ZoneInfo, today: date) -> EventInput | list[str]:
    """A validated event, or every problem as "key: what is wrong"."""
    if not isinstance(data, dict):
        return [f"an event must be an object, not {type(data).__name__}"]
    problems: list[str] = []
    for key in data:
        if key not in EVENT_KEYS:
            problems.append(_unknown_key(str(key), EVENT_KEYS))
    event_id = _identifier(data.get("event_id"), "event_id", problems)
    event_type = data.get("type")
    if not isinstance(event_type, str) or not _TYPE_RE.match(event_type):
        shown = "required" if event_type in (None, "") else f"{event_type!r}"
        problems.append(f"type: {shown}; an event type is 1-60 characters a-z, 0-9 and _")
        event_type = ""
    external_ref = _identifier(data.get("external_ref"), "external_ref", problems)
    occurred_at: datetime | None = None
    if data.get("occurred_at") in (None, ""):
        problems.append("occurred_at: required")
    else:
        try:
            occurred_at = parse_time(data.get("occurred_at"), tz)
        except ValueError as e:
            problems.append(f"occurred_at: {e}")
    cancelled = data.get("cancelled", False)
    if cancelled is None:
        cancelled = False
    if not isinstance(cancelled, bool):
        problems.append(f"cancelled: must be true or false, not {cancelled!r}")
    attributes = _attributes(data.get("attributes"), "attributes", problems)
    contact: ContactDetails | None = None
    if data.get("contact") is not None:
        parsed = parse_contact(data["contact"], today=today)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            contact = parsed
    if problems or occurred_at is None:
        return problems
    return EventInput(
        event_id=event_id,
        type=event_type,
        external_ref=external_ref,
        occurred_at=occurred_at,
        cancelled=bool(cancelled),
        attributes=attributes,
        contact=contact,
    )


def duplicate_event_ids(events: Sequence[EventInput]) -> dict[int, int]:
    """Index of each event whose event_id an earlier one already used -> that earlier index."""
    first: dict[str, int] = {}
    dupes: dict[int, int] = {}
    for index, event in enumerate(events):
        seen = first.setdefault(event.event_id, index)
        if seen != index:
            dupes[index] = seen
    return dupes


CSV_EVENT_COLUMNS = ("event_id", "type", "external_ref", "occurred_at", "cancelled", "attributes")
CSV_CONTACT_COLUMNS = (
    "phone",
    "telegram_chat_id",
    "language",
    "gender",
    "birth_year",
    "target_group",
    "unit",
    "contact_since",
)
CSV_ATTR_PREFIX = "attr_"
_TRUE = {"1", "true", "yes", "ja", "x"}
_FALSE = {"", "0", "false", "no", "nej"}
_INT_RE = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_DECIMAL_RE = re.compile(r"^-?(0|[1-9][0-9]{0,17})\.[0-9]{1,10}$")


@dataclass(frozen=True, slots=True)
class CsvEvents:
    """The events of a CSV file with their line numbers, or the problems that refuse it."""

    events: tuple[EventInput, ...]
    lines: tuple[int, ...]
    problems: tuple[str, ...]


def _csv_value(text: str) -> object:
    """attr_* cells: whole and decimal numbers become numbers so filters can compare them."""
    if _INT_RE.match(text):
        return int(text)
    if _DECIMAL_RE.match(text):
        return float(text)
    return text


def _csv_row(names: Sequence[str], cells: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    item: dict[str, object] = {}
    attributes: dict[str, object] = {}
    contact: dict[str, object] = {}
    problems: list[str] = []
    for name, cell in zip(names, cells, strict=True):
        value = cell.strip()
        if name == "cancelled":
            if value.lower() in _TRUE:
                item["cancelled"] = True
            elif value.lower() in _FALSE:
                item["cancelled"] = False
            else:
                problems.append(f"cancelled: {value!r} is not true or false")
        elif name == "attributes":
            if value:
                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = None
                if not isinstance(parsed, dict):
                    problems.append('attributes: not a JSON object like {"insats": "boende"}')
                else:
                    attributes.update(parsed)
        elif name.startswith(CSV_ATTR_PREFIX):
            if value:
                attributes[name[len(CSV_ATTR_PREFIX) :]] = _csv_value(value)
        elif name in CSV_CONTACT_COLUMNS:
            if value:
                contact[name] = value
        elif value:
            item[name] = value
    item["attributes"] = attributes
    if contact:
        item["contact"] = contact
    return item, problems


def parse_events_csv(lines: Iterable[str], *, tz: ZoneInfo, today: date) -> CsvEvents:
    """Read an events CSV (`,` or `;`, header row, UTF-8); problems read `line N: reason`."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return CsvEvents((), (), ("line 1: the file is empty; it needs a header row",))
    first = first.removeprefix("\ufeff")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(itertools.chain([first], iterator), delimiter=delimiter, strict=True)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except csv.Error as e:
        return CsvEvents((), (), (f"line 1: malformed header: {e}",))
    known = (*CSV_EVENT_COLUMNS, *CSV_CONTACT_COLUMNS)
    problems: list[str] = []
    for name in header:
        if not name.startswith(CSV_ATTR_PREFIX) and name not in known:
            problems.append(f"line 1: {_unknown_key(name, known).replace('key', 'column', 1)}")
        elif name.startswith(CSV_ATTR_PREFIX) and not _ATTR_RE.match(name[len(CSV_ATTR_PREFIX) :]):
            problems.append(f"line 1: column {name!r}: use a-z, 0-9 and _ after attr_")
    if len(set(header)) != len(header):
        problems.append("line 1: a column appears twice")
    missing = [c for c in ("event_id", "type", "external_ref", "occurred_at") if c not in header]
    if missing:
        problems.append(f"line 1: missing column(s) {', '.join(missing)}")
    if problems:
        return CsvEvents((), (), tuple(problems))

    events: list[EventInput] = []
    numbers: list[int] = []
    previous_end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(f"line {previous_end + 1}: malformed CSV: {e}")
            previous_end = reader.line_num
            continue
        line, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(f"line {line}: expected {len(header)} fields, got {len(cells)}")
            continue
        item, row_problems = _csv_row(header, cells)
        parsed = parse_event(item, tz=tz, today=today)
        if isinstance(parsed, list):
            row_problems.extend(parsed)
        if row_problems:
            problems.append(f"line {line}: {'; '.join(row_problems)}")
        elif isinstance(parsed, EventInput):
            events.append(parsed)
            numbers.append(line)
    for index, first_index in duplicate_event_ids(events).items():
        problems.append(
            f"line {numbers[index]}: duplicate event_id {events[index].event_id!r} "
            f"(first on line {numbers[first_index]})"
        )
    if not events and not problems:
        problems.append("line 2: the file has no events")
    if problems:
        return CsvEvents((), (), tuple(problems))
    return CsvEvents(tuple(events), tuple(numbers), ())
