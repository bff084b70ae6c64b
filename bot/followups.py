"""Case events trigger follow-up surveys: "14 days after an insats ended, inside 10-18, ask".

A case system reports events (`insats_ended`, `utredning_closed`, ...) for a person by their
`external_ref`. Each enabled rule for that event type whose filter matches plans one `Followup`
with `due_at = next_allowed(occurred_at + delay)` and one due task `followup.send:<id>`.
When the task runs, everything is checked again at that moment — the event still stands, the
rule is on, the person has not opted out or been surveyed lately, the follow-up has not expired,
the local time is inside the delivery window — and the survey is started on the first channel
that reaches the person. A follow-up that came due while the service was down is still sent
when it comes back, as long as it has not expired (RapidPro drops such fires; we do not).
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import logging
import re
import secrets
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import flows
from bot.bands import age_group_of
from bot.contacts_csv import GENDERS, snake_case
from bot.reach import DEFAULT_ORDER, route_to
from bot.runtime import Runtime
from bot.timewindows import DailyWindow, next_allowed
from flows.durations import format_duration, parse_duration
from flows.expr import ExprError, compile_expr
from storage import repo_audit, repo_contacts, repo_conversations, repo_events, repo_tasks
from storage.models import CaseEvent, Contact, Followup, FollowupRule
from storage.repo_events import RuleValues

log = logging.getLogger(__name__)

SEND_TASK = "followup.send"
RULES_FILE = Path(flows.__file__).parent / "followups.toml"
"""The shipped rules, loaded at startup."""
CHANNELS = DEFAULT_ORDER
WEBCHAT = "webchat"

MAX_DELAY = 400 * 86_400
MAX_EXPIRES_AFTER = 90 * 86_400
MAX_FATIGUE_DAYS = 3650
MAX_BATCH = 1000
"""Events per API request; larger loads go through `brukardialog events import`."""
BUSY_RETRY = timedelta(hours=1)
"""How soon to try again when the person is in the middle of another survey..."""
BUSY_MIN_RETRY = timedelta(minutes=1)
"""...or, once that survey is past its expiry but not yet closed, this soon."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_TYPE_RE = re.compile(r"^[a-z0-9_]{1,60}$")
_ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,59}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
_CHAT_ID_RE = re.compile(r"^-?[0-9]{1,20}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 100
MAX_TEXT_LENGTH = 200
MAX_ATTRIBUTES = 50


# -- rules -------------------------------------------------------------------------------------

RULE_KEYS = (
    "name",
    "event",
    "filter",
    "survey",
    "delay",
    "window",
    "fatigue_days",
    "expires_after",
    "channels",
    "enabled",
)


@dataclass(frozen=True, slots=True)
class RulesFile:
    """The valid rules of a rules file, and a problem line per invalid key."""

    rules: tuple[RuleValues, ...]
    problems: tuple[str, ...]


def _unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}"


def _duration(value: object, *, allow_zero: bool, limit: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f'{value!r} is not a duration: write it like "14d" or "30s"')
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        seconds = 0 if allow_zero and value.strip() in ("0", "0s") else parse_duration(value)
    else:
        raise ValueError(f'{value!r} is not a duration: write it like "14d" or "30s"')
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{value!r}: a duration must be longer than zero")
    if seconds > limit:
        raise ValueError(f"{value!r} is longer than {format_duration(limit)}")
    return seconds


def _check_window(text: str, quiet: DailyWindow | None) -> str:
    window = DailyWindow.parse(text)
    # Raises when the window lies entirely inside quiet hours (the zone does not matter).
    next_allowed(datetime(2026, 1, 1, tzinfo=UTC), ZoneInfo("UTC"), quiet=quiet, allowed=window)
    return str(window)


def parse_rule(
    data: Mapping[str, object],
    *,
    known_surveys: Collection[str] | None,
    quiet: DailyWindow | None,
    name: str | None = None,
) -> RuleValues | list[str]:
    """A validated rule, or every problem as "key: what is wrong".

    `name` (from an API path) is used when the data has none; `known_surveys=None` skips the
    survey check."""
    problems: list[str] = []
    for key in data:
        if key not in RULE_KEYS:
            problems.append(_unknown_key(key, RULE_KEYS))

    def text(key: str, *, required: bool) -> str:
        value = data.get(key)
        if value is None:
            if required:
                problems.append(f"{key}: required")
            return ""
        if not isinstance(value, str):
            problems.append(f"{key}: must be a text, not {value!r}")
            return ""
        return value.strip()

    rule_name = text("name", required=name is None) or (name or "")
    if name is not None and rule_name != name:
        problems.append(f"name: {rule_name!r} differs from the name in the address {name!r}")
    elif rule_name and not _NAME_RE.match(rule_name):
        problems.append(
            f"name: {rule_name!r} must be 1-100 characters a-z, 0-9, _ and -, starting with a "
            "letter or digit"
        )
    event_type = text("event", required=True)
    if event_type and not _TYPE_RE.match(event_type):
        problems.append(f"event: {event_type!r} must be 1-60 characters a-z, 0-9 and _")
    survey = text("survey", required=True)
    if survey and known_surveys is not None and survey not in known_surveys:
        known = ", ".join(sorted(known_surveys)) or "none"
        problems.append(f"survey: unknown survey {survey!r} (known: {known})")
    filter_src = text("filter", required=False)
    if filter_src:
        try:
            compile_expr(filter_src)
        except ExprError as e:
            problems.append(f"filter: {e}")
    window = text("window", required=False)
    if window:
        try:
            window = _check_window(window, quiet)
        except ValueError as e:
            problems.append(f"window: {e}")

    def duration(key: str, default: int | None, *, allow_zero: bool, limit: int) -> int:
        value = data.get(key)
        if value is None:
            if default is None:
                problems.append(f"{key}: required")
                return 0
            return default
        try:
            return _duration(value, allow_zero=allow_zero, limit=limit)
        except ValueError as e:
            problems.append(f"{key}: {e}")
            return 0

    delay = duration("delay", None, allow_zero=True, limit=MAX_DELAY)
    expires_after = duration("expires_after", 7 * 86_400, allow_zero=False, limit=MAX_EXPIRES_AFTER)
    fatigue = data.get("fatigue_days", 0)
    if isinstance(fatigue, bool) or not isinstance(fatigue, int):
        problems.append(f"fatigue_days: must be a whole number of days, not {fatigue!r}")
        fatigue = 0
    elif not 0 <= fatigue <= MAX_FATIGUE_DAYS:
        problems.append(f"fatigue_days: {fatigue} must be from 0 to {MAX_FATIGUE_DAYS}")
    channels = data.get("channels", [])
    chosen: list[str] = []
    if not isinstance(channels, list):
        problems.append(f"channels: must be a list like {list(CHANNELS)}, not {channels!r}")
    else:
        for channel in channels:
            if channel not in CHANNELS:
                problems.append(
                    f"channels: unknown channel {channel!r} (use {', '.join(CHANNELS)})"
                )
            elif channel in chosen:
                problems.append(f"channels: {channel!r} is listed twice")
            else:
                chosen.append(channel)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"enabled: must be true or false, not {enabled!r}")
    if problems:
        return problems
    assert isinstance(fatigue, int) and isinstance(enabled, bool)
    return RuleValues(
        name=rule_name,
        event_type=event_type,
        survey_id=survey,
        delay=delay,
        filter=filter_src,
        window=window,
        fatigue_days=fatigue,
        expires_after=expires_after,
        channels=tuple(chosen),
        enabled=enabled,
    )


def read_rules_file(
    path: Path, *, known_surveys: Collection[str] | None, quiet: DailyWindow | None
) -> RulesFile:
    """Parse a rules file; problems read `path: rule 'name': key: what is wrong`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RulesFile((), (f"{path}: no such file",))
    except (OSError, UnicodeDecodeError) as e:
        return RulesFile((), (f"{path}: cannot be read: {e}",))
    except tomllib.TOMLDecodeError as e:
        return RulesFile((), (f"{path}: invalid TOML: {e}",))
    problems: list[str] = [f"{path}: {_unknown_key(k, ['rules'])}" for k in data if k != "rules"]
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        return RulesFile((), (f"{path}: rules must be a list of [[rules]] tables",))
    rules: list[RuleValues] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, start=1):
        label = f"rule {index}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"rule {raw['name']!r}"
        if not isinstance(raw, dict):
            problems.append(f"{path}: {label}: must be a [[rules]] table")
            continue
        parsed = parse_rule(raw, known_surveys=known_surveys, quiet=quiet)
        if isinstance(parsed, list):
            problems.extend(f"{path}: {label}: {p}" for p in parsed)
        elif parsed.name in seen:
            problems.append(f"{path}: {label}: name: the name is used by an earlier rule")
        else:
            seen.add(parsed.name)
            rules.append(parsed)
    return RulesFile(tuple(rules), tuple(problems))


def known_surveys(runtime: Runtime) -> set[str]:
    """Ids of the surveys the runtime serves."""
    return {survey.id for survey in runtime.catalog.surveys}


async def load_rules(runtime: Runtime, path: Path | None = None) -> RulesFile:
    """Upsert the rules file's valid rules (source "file") and disable file rules that left it.

    Problems are logged and returned; the rules that are valid still load."""
    path = path or RULES_FILE
    result = read_rules_file(
        path, known_surveys=known_surveys(runtime), quiet=runtime.settings.schedule.quiet
    )
    for problem in result.problems:
        log.error("follow-up rule problem: %s", problem)
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        for values in result.rules:
            existing = await repo_events.get_rule(s, values.name)
            if existing is not None and existing.source != repo_events.SOURCE_FILE:
                log.warning("follow-up rule %r from %s replaces the API rule", values.name, path)
            await repo_events.save_rule(s, values, source=repo_events.SOURCE_FILE, now=now)
        # A file that failed to parse as a whole leaves the loaded rules alone.
        if result.rules or not result.problems:
            gone = await repo_events.disable_file_rules_except(s, [r.name for r in result.rules])
            for name in gone:
                log.info("follow-up rule %r is no longer in %s: disabled", name, path)
    return result


def rule_json(rule: FollowupRule) -> dict[str, Any]:
    """A rule as the API and CLI show it, in the file's vocabulary."""
    return {
        "name": rule.name,
        "event": rule.event_type,
        "filter": rule.filter,
        "survey": rule.survey_id,
        "delay": format_duration(rule.delay),
        "window": rule.window,
        "fatigue_days": rule.fatigue_days,
        "expires_after": format_duration(rule.expires_after),
        "channels": list(rule.channels),
        "enabled": rule.enabled,
        "source": rule.source,
    }


# -- events ------------------------------------------------------------------------------------

EVENT_KEYS = (
    "event_id",
    "type",
    "external_ref",
    "occurred_at",
    "cancelled",
    "attributes",
    "contact",
)
CONTACT_KEYS = (
    "phone",
    "telegram_chat_id",
    "language",
    "gender",
    "birth_year",
    "target_group",
    "unit",
    "contact_since",
    "attributes",
)

CONTACT_TEXT_LIMITS: Mapping[str, int] = {"language": 20, "target_group": 60, "unit": 100}
"""The contacts table's column sizes: longer values are refused, not cut."""


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


def _phone(value: object, region: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("phone: must be a text")
    try:
        number = phonenumbers.parse(str(value).strip(), region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        # The number itself stays out of the message: it may end up in logs.
        raise ValueError(f"phone: not a valid phone number (region {region})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_contact(data: object, *, today: date, region: str = "SE") -> ContactDetails | list[str]:
    """Contact details from an event, normalised like a contact list; or every problem."""
    if not isinstance(data, dict):
        return [f"contact: must be an object, not {data!r}"]
    problems: list[str] = []
    for key in data:
        if key not in CONTACT_KEYS:
            problems.append(f"contact.{_unknown_key(str(key), CONTACT_KEYS)}")
    values: dict[str, Any] = {}

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            problems.append(f"contact.{key}: must be a text, not {value!r}")
            return None
        result = str(value).strip()
        limit = CONTACT_TEXT_LIMITS.get(key, MAX_TEXT_LENGTH)
        if len(result) > limit:
            problems.append(f"contact.{key}: longer than {limit} characters")
            return None
        if _CONTROL_RE.search(result):
            problems.append(f"contact.{key}: contains control characters")
            return None
        return result or None

    if (phone := data.get("phone")) not in (None, ""):
        try:
            values["phone"] = _phone(phone, region)
        except ValueError as e:
            problems.append(f"contact.{e}")
    if (chat := text("telegram_chat_id")) is not None:
        if _CHAT_ID_RE.match(chat):
            values["telegram_chat_id"] = str(int(chat))
        else:
            problems.append(f"contact.telegram_chat_id: {chat!r} is not an integer")
    if (language := text("language")) is not None:
        tag = language.lower().replace("_", "-")
        if _LANGUAGE_RE.match(tag):
            values["language"] = tag
        else:
            problems.append(f"contact.language: {language!r} is not a code like sv, en or en-gb")
    if (gender := text("gender")) is not None:
        if gender.lower() in GENDERS:
            values["gender"] = GENDERS[gender.lower()]
        else:
            problems.append(f"contact.gender: {gender!r} is not one of kvinna, man, annat")
    if (year := text("birth_year")) is not None:
        if year.isdigit() and 1900 <= int(year) <= today.year:
            values["birth_year"] = int(year)
        else:
            problems.append(f"contact.birth_year: {year!r} is not a year from 1900 to {today.year}")
    if (group := text("target_group")) is not None:
        if slug := snake_case(group):
            values["target_group"] = slug
        else:
            problems.append(f"contact.target_group: {group!r} has no letters or digits")
    if (unit := text("unit")) is not None:
        values["unit"] = unit
    if (since := text("contact_since")) is not None:
        try:
            day = date.fromisoformat(since)
            if day > today:
                problems.append(f"contact.contact_since: {since} is in the future")
            else:
                values["contact_since"] = day
        except ValueError:
            problems.append(f"contact.contact_since: {since!r} is not a date like 2024-05-01")
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


# -- ingesting ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowupInfo:
    """A follow-up as reported back to the case system and staff."""

    id: int
    rule: str
    survey: str
    due_at: datetime
    status: str
    reason: str | None
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """JSON with ISO 8601 UTC times."""
        return {
            "id": self.id,
            "rule": self.rule,
            "survey": self.survey,
            "due_at": self.due_at.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What reporting one event did: created, updated, cancelled or unchanged."""

    event_id: str
    result: str
    contact_created: bool
    followups: tuple[FollowupInfo, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "event_id": self.event_id,
            "result": self.result,
            "contact_created": self.contact_created,
            "followups": [f.to_json() for f in self.followups],
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one event of a report was refused; `conflict` when it contradicts a stored event."""

    index: int
    message: str
    conflict: bool = False


class EventsRefused(Exception):
    """Nothing of the report was stored: every problem, by the event's position."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in problems))


class _Refused(Exception):
    def __init__(self, message: str, *, conflict: bool = False) -> None:
        self.message = message
        self.conflict = conflict
        super().__init__(message)


async def ingest_events(
    runtime: Runtime, events: Sequence[EventInput], *, actor: str
) -> list[EventOutcome]:
    """Store events and plan, re-time or cancel their follow-ups, all in one transaction.

    Raises EventsRefused, storing nothing, if any event cannot be taken (an unknown person
    without contact details, or an event_id reused for another person or type)."""
    problems = [
        Problem(index, f"event_id {events[index].event_id!r} is also event {first + 1} here")
        for index, first in duplicate_event_ids(events).items()
    ]
    if problems:
        raise EventsRefused(problems)
    now = runtime.clock.now()
    outcomes: list[EventOutcome] = []
    async with runtime.db.transaction() as s:
        for index, event in enumerate(events):
            try:
                outcomes.append(await _ingest_one(s, runtime, event, now))
            except _Refused as e:
                problems.append(Problem(index, e.message, e.conflict))
        if problems:
            raise EventsRefused(problems)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        await repo_audit.log(s, actor, "events.report", "case_events", counts, at=now)
    return outcomes


async def _ingest_one(
    s: AsyncSession, runtime: Runtime, event: EventInput, now: datetime
) -> EventOutcome:
    row = await repo_events.get_event(s, event.event_id, for_update=True)
    if row is None:
        contact, created = await _contact_for(s, runtime, event, now)
        row = await repo_events.insert_event(
            s,
            event_id=event.event_id,
            type=event.type,
            contact_id=contact.id,
            occurred_at=event.occurred_at,
            attributes=dict(event.attributes),
            cancelled=event.cancelled,
            now=now,
        )
        if row is not None:
            if not event.cancelled:
                await _plan(s, runtime, row, contact)
            return await _outcome(s, row, "created", created)
        # Reported concurrently by someone else a moment ago: treat it as a repeat.
        row = await repo_events.get_event(s, event.event_id, for_update=True)
        assert row is not None
    return await _update(s, runtime, row, event, now)


async def _update(
    s: AsyncSession, runtime: Runtime, row: CaseEvent, event: EventInput, now: datetime
) -> EventOutcome:
    contact = await repo_contacts.get(s, row.contact_id)
    assert contact is not None
    if contact.external_ref != event.external_ref:
        raise _Refused(
            f"event_id {event.event_id!r} was reported for another person; "
            "a new event needs a new event_id",
            conflict=True,
        )
    if row.type != event.type:
        raise _Refused(
            f"event_id {event.event_id!r} was reported as type {row.type!r}, not {event.type!r}",
            conflict=True,
        )
    if row.cancelled:
        if not event.cancelled:
            raise _Refused(
                f"event {event.event_id!r} was cancelled; report a new event_id to plan again",
                conflict=True,
            )
        return await _outcome(s, row, "unchanged", False)
    if event.cancelled:
        row.cancelled = True
        row.updated_at = now
        await _cancel_pending(s, row.id, "the event was cancelled")
        return await _outcome(s, row, "cancelled", False)
    if row.occurred_at == event.occurred_at and row.attributes == dict(event.attributes):
        return await _outcome(s, row, "unchanged", False)
    row.occurred_at = event.occurred_at
    row.attributes = dict(event.attributes)
    row.updated_at = now
    await s.flush()
    await _plan(s, runtime, row, contact)
    return await _outcome(s, row, "updated", False)


async def _cancel_pending(s: AsyncSession, event_pk: int, reason: str) -> None:
    views = await repo_events.followups_for_event(s, event_pk)
    pending = [v.followup for v in views if v.followup.status == repo_events.PENDING]
    for followup in pending:
        await repo_tasks.cancel(s, task_key(followup.id))
    await repo_events.set_status(s, pending, repo_events.CANCELLED, reason)


async def _outcome(s: AsyncSession, row: CaseEvent, result: str, created: bool) -> EventOutcome:
    views = await repo_events.followups_for_event(s, row.id)
    return EventOutcome(row.event_id, result, created, tuple(_info(v) for v in views))


def _info(view: repo_events.FollowupView) -> FollowupInfo:
    f = view.followup
    return FollowupInfo(
        f.id, view.rule_name, view.survey_id, f.due_at, f.status, f.reason, f.sent_at
    )


async def _contact_for(
    s: AsyncSession, runtime: Runtime, event: EventInput, now: datetime
) -> tuple[Contact, bool]:
    """The person the event is about; created from the event's contact details if unknown."""
    contact = await repo_contacts.get_by_external_ref(s, event.external_ref)
    if contact is not None:
        return contact, False
    details = event.contact
    if details is None:
        raise _Refused(
            f"no contact with external_ref {event.external_ref!r}; "
            "include contact details to create one"
        )
    attrs = {
        "external_ref": event.external_ref,
        "language": details.language,
        "gender": details.gender,
        "birth_year": details.birth_year,
        "target_group": details.target_group,
        "unit": details.unit,
        "contact_since": details.contact_since,
        "attributes": dict(details.attributes),
        "created_at": now,
        "updated_at": now,
    }
    try:
        # A savepoint: two reports creating one person at once must not abort the transaction.
        async with s.begin_nested():
            contact = await repo_contacts.create(s, **attrs)
    except IntegrityError:
        found = await repo_contacts.get_by_external_ref(s, event.external_ref)
        if found is None:
            raise
        return found, False
    pseudonymizer = runtime.service.pseudonymizer
    addresses = [("webchat", secrets.token_urlsafe(18))]
    if details.phone:
        addresses.append(("sms", details.phone))
    if details.telegram_chat_id:
        addresses.append(("telegram", details.telegram_chat_id))
    for channel, address in addresses:
        key = pseudonymizer.address_key(channel, address)
        await repo_contacts.add_address(s, contact.id, channel, address, key)
    return contact, True


# -- planning ----------------------------------------------------------------------------------


def task_key(followup_id: int) -> str:
    """The due task that sends one follow-up."""
    return f"{SEND_TASK}:{followup_id}"


def _window(rule: FollowupRule) -> DailyWindow | None:
    return DailyWindow.parse(rule.window) if rule.window.strip() else None


def allowed_at(
    when: datetime, tz: ZoneInfo, quiet: DailyWindow | None, window: DailyWindow | None
) -> datetime:
    """The first instant from `when` outside quiet hours and inside the rule's window.

    Should the window have come to lie inside quiet hours (the quiet hours were changed after
    the rule was checked), quiet hours win and the window is ignored rather than never sending."""
    try:
        return next_allowed(when, tz, quiet=quiet, allowed=window)
    except ValueError as e:
        log.error("follow-up window ignored: %s", e)
        return next_allowed(when, tz, quiet=quiet)


def due_time(
    occurred_at: datetime,
    delay: int,
    tz: ZoneInfo,
    *,
    quiet: DailyWindow | None,
    window: DailyWindow | None,
) -> datetime:
    """When a follow-up comes due: `delay` after the event, moved to the next allowed time.

    Whole days are calendar days in `tz`, so "14d" after 17:55 is 17:55 two weeks later even
    across a daylight-saving change; the rest of the delay is elapsed time."""
    days, seconds = divmod(delay, 86_400)
    wall = occurred_at.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    # A wall time in a spring-forward gap reads with the offset before it: just after the gap.
    target = wall.replace(tzinfo=tz).astimezone(UTC) + timedelta(seconds=seconds)
    return allowed_at(target, tz, quiet, window)


def _local_date(when: datetime, tz: ZoneInfo) -> date:
    return when.astimezone(tz).date()


def filter_env(event: CaseEvent, contact: Contact, tz: ZoneInfo) -> dict[str, object]:
    """What a rule filter sees: the contact's attributes and columns, then the event's
    attributes (the fresher word), and `age` in whole years on the event's day."""
    on = _local_date(event.occurred_at, tz)
    env: dict[str, object] = dict(contact.attributes or {})
    env.update(
        language=contact.language,
        gender=contact.gender,
        birth_year=contact.birth_year,
        age_group=contact.age_group or age_group_of(contact.birth_year, on),
        target_group=contact.target_group,
        unit=contact.unit,
        contact_since=contact.contact_since.isoformat() if contact.contact_since else None,
    )
    env.update(event.attributes or {})
    env["event_type"] = event.type
    birth_year = env.get("birth_year")
    if env.get("age") is None and isinstance(birth_year, int) and not isinstance(birth_year, bool):
        env["age"] = on.year - birth_year
    return env


def rule_matches(rule: FollowupRule, env: Mapping[str, object]) -> bool:
    """Whether a rule's filter holds (an empty filter matches everyone)."""
    if not rule.filter.strip():
        return True
    try:
        return compile_expr(rule.filter).evaluate(env)
    except ExprError as e:
        log.error("follow-up rule %r has a broken filter, skipped: %s", rule.name, e)
        return False


async def _plan(s: AsyncSession, runtime: Runtime, event: CaseEvent, contact: Contact) -> None:
    """Create the follow-ups of matching rules; re-time the ones still pending.

    A pending follow-up whose rule no longer matches is left for the send-time check, which
    cancels it with a reason staff can read."""
    schedule = runtime.settings.schedule
    tz, quiet = schedule.tz, schedule.quiet
    env = filter_env(event, contact, tz)
    existing = {
        v.followup.rule_id: v.followup for v in await repo_events.followups_for_event(s, event.id)
    }
    for rule in await repo_events.list_rules(s, event_type=event.type, enabled_only=True):
        followup = existing.get(rule.id)
        if followup is None and not rule_matches(rule, env):
            continue
        due = due_time(event.occurred_at, rule.delay, tz, quiet=quiet, window=_window(rule))
        if followup is None:
            followup = await repo_events.add_followup(
                s, rule_id=rule.id, event_id=event.id, contact_id=contact.id, due_at=due
            )
        elif followup.status != repo_events.PENDING or followup.due_at == due:
            continue
        followup.due_at = due
        await s.flush()
        await repo_tasks.schedule(
            s, SEND_TASK, task_key(followup.id), due, {"followup_id": followup.id}, replace=True
        )


# -- sending -----------------------------------------------------------------------------------


async def send_followup(runtime: Runtime, followup_id: int) -> str:
    """The `followup.send` task: send one follow-up now if everything still holds.

    Returns the follow-up's status afterwards ("pending" when moved to a later time)."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        followup = await repo_events.get_followup(s, followup_id, for_update=True)
        if followup is None:
            return "missing"
        if followup.status != repo_events.PENDING:
            return followup.status
        status = await _try_send(s, runtime, followup, now)
    if status == repo_events.SENT:
        runtime.dispatcher.wake()
    log.info("follow-up %s: %s", followup_id, status)
    return status


async def _try_send(s: AsyncSession, runtime: Runtime, f: Followup, now: datetime) -> str:
    schedule = runtime.settings.schedule
    if f.due_at > now:  # moved later (a changed occurred_at) while this run was queued
        await repo_tasks.requeue(s, task_key(f.id), f.due_at)
        return f.status
    rule = await repo_events.get_rule_by_id(s, f.rule_id)
    event = await s.get(CaseEvent, f.event_id)
    contact = await repo_contacts.get(s, f.contact_id)
    assert rule is not None and event is not None and contact is not None

    async def finish(status: str, reason: str | None) -> str:
        await repo_events.set_status(s, [f], status, reason)
        return status

    if event.cancelled:
        return await finish(repo_events.CANCELLED, "the event was cancelled")
    if not rule.enabled:
        return await finish(repo_events.CANCELLED, f"rule {rule.name!r} is disabled")
    deadline = f.due_at + timedelta(seconds=rule.expires_after)
    expiry = format_duration(rule.expires_after)
    if now > deadline:
        return await finish(repo_events.EXPIRED, f"not sent within {expiry} of coming due")
    if contact.opted_out_at is not None:
        return await finish(repo_events.SKIPPED, "the person has opted out")
    if not rule_matches(rule, filter_env(event, contact, schedule.tz)):
        return await finish(repo_events.CANCELLED, "no longer matches the rule's filter")

    async def later(when: datetime, why: str) -> str:
        if when > deadline:
            return await finish(repo_events.EXPIRED, f"{why}, and {expiry} after due has passed")
        await repo_tasks.requeue(s, task_key(f.id), when)
        return f.status

    window = _window(rule)
    allowed = allowed_at(now, schedule.tz, schedule.quiet, window)
    if allowed > now:  # e.g. the service was down and came back at night
        return await later(allowed, "outside the delivery window")
    if rule.fatigue_days and await repo_events.surveyed_since(
        s, contact.id, now - timedelta(days=rule.fatigue_days), other_than=f.id
    ):
        return await finish(
            repo_events.SKIPPED, f"already surveyed within the last {rule.fatigue_days} days"
        )
    active = await repo_conversations.active_for_contact(s, contact.id)
    if active is not None:
        retry = max(min(active.expires_at, now + BUSY_RETRY), now + BUSY_MIN_RETRY)
        retry = allowed_at(retry, schedule.tz, schedule.quiet, window)
        return await later(retry, "the person is answering another survey")
    entry = runtime.catalog.latest(rule.survey_id)
    if entry is None:
        return await finish(repo_events.SKIPPED, f"survey {rule.survey_id!r} is not loaded")
    wanted = list(rule.channels) or list(CHANNELS)
    route = await route_to(s, contact.id, wanted, runtime.channels)
    if route is None:
        return await finish(
            repo_events.SKIPPED, f"unreachable: no address on {', '.join(wanted)} that is running"
        )
    conv, _ids = await runtime.service.start_conversation(
        s,
        contact,
        route.channel,
        route.address,
        entry,
        lang=contact.language,
        now=now,
        kind="followup",
        not_before=now,
    )
    f.conversation_id = conv.id
    f.sent_at = now
    return await finish(repo_events.SENT, None)


def register(runtime: Runtime) -> None:
    """Register the `followup.send` task handler (rules are loaded by `load_rules`)."""

    async def handle(payload: dict[str, Any]) -> None:
        await send_followup(runtime, int(payload["followup_id"]))

    runtime.tasks.register(SEND_TASK, handle)


# -- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventReport:
    """An event and its follow-ups, for `events show` and GET /events/{id}."""

    event_id: str
    type: str
    external_ref: str | None
    occurred_at: datetime
    cancelled: bool
    attributes: Mapping[str, object]
    followups: tuple[FollowupInfo, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON with ISO 8601 UTC times."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "external_ref": self.external_ref,
            "occurred_at": self.occurred_at.isoformat(),
            "cancelled": self.cancelled,
            "attributes": dict(self.attributes),
            "followups": [f.to_json() for f in self.followups],
        }


async def event_report(runtime: Runtime, event_id: str) -> EventReport | None:
    """An event by the case system's id with its follow-ups; None if unknown."""
    async with runtime.db.transaction(read_only=True) as s:
        row = await repo_events.get_event(s, event_id)
        if row is None:
            return None
        contact = await repo_contacts.get(s, row.contact_id)
        views = await repo_events.followups_for_event(s, row.id)
    return EventReport(
        event_id=row.event_id,
        type=row.type,
        external_ref=contact.external_ref if contact else None,
        occurred_at=row.occurred_at,
        cancelled=row.cancelled,
        attributes=dict(row.attributes),
        followups=tuple(_info(v) for v in views),
    )


# -- CSV ---------------------------------------------------------------------------------------

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
