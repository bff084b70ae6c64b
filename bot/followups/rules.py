"""Follow-up rules: which event type, after what delay, inside which window, for which survey.

Read from the files in `followups.paths` (source "file"; the shipped example flows/followups.toml
when none are configured) or set over the API (source "api")."""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import SHIPPED_FOLLOWUPS
from bot.ops import events
from bot.reach import DEFAULT_ORDER
from bot.runtime import Runtime
from bot.timewindows import DailyWindow, next_allowed
from flows.durations import format_duration, parse_duration
from flows.expr import ExprError, compile_expr
from storage import repo_events
from storage.models import FollowupRule
from storage.repo_events import RuleValues

log = logging.getLogger(__name__)

RULES_FILE = SHIPPED_FOLLOWUPS
"""The shipped example rules, loaded only when `followups.paths` is empty."""
CHANNELS = DEFAULT_ORDER
MAX_DELAY = 400 * 86_400
MAX_EXPIRES_AFTER = 90 * 86_400
MAX_FATIGUE_DAYS = 3650
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_TYPE_RE = re.compile(r"^[a-z0-9_]{1,60}$")


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


def rules_files(paths: Sequence[Path]) -> list[Path]:
    """The rules files of configured paths: a file as it is, a folder's *.toml files in order."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def read_rules_files(
    paths: Sequence[Path], *, known_surveys: Collection[str] | None, quiet: DailyWindow | None
) -> RulesFile:
    """The rules of several files or folders as one set; a name used in an earlier file is a
    problem of the later one, and a folder without rules files is a problem too."""
    rules: list[RuleValues] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in paths:
        if path.is_dir() and not any(path.glob("*.toml")):
            problems.append(f"{path}: no *.toml rules files in this folder")
    for path in rules_files(paths):
        result = read_rules_file(path, known_surveys=known_surveys, quiet=quiet)
        problems.extend(result.problems)
        for rule in result.rules:
            if rule.name in seen:
                problems.append(
                    f"{path}: rule {rule.name!r}: name: the name is used in {seen[rule.name]}"
                )
                continue
            seen[rule.name] = path
            rules.append(rule)
    return RulesFile(tuple(rules), tuple(problems))


def known_surveys(runtime: Runtime) -> set[str]:
    """Ids of the surveys the runtime serves."""
    return {survey.id for survey in runtime.catalog.surveys}


async def load_rules(runtime: Runtime, path: Path | None = None) -> RulesFile:
    """Upsert the valid rules of the rules files (`path`, else `followups.paths`, else the
    shipped example) as source "file", and disable file rules that left them.

    Problems are logged and returned; the rules that are valid still load."""
    paths = (path,) if path is not None else runtime.settings.followups.resolved_paths
    result = read_rules_files(
        paths, known_surveys=known_surveys(runtime), quiet=runtime.settings.schedule.quiet
    )
    where = ", ".join(str(p) for p in paths)
    for problem in result.problems:
        log.error("follow-up rule problem: %s", problem)
    now = runtime.clock.now()
    new: list[str] = []
    gone: list[str] = []
    async with runtime.db.transaction() as s:
        for values in result.rules:
            existing = await repo_events.get_rule(s, values.name)
            if existing is not None and existing.source != repo_events.SOURCE_FILE:
                log.warning("follow-up rule %r from %s replaces the API rule", values.name, where)
            _, created = await repo_events.save_rule(
                s, values, source=repo_events.SOURCE_FILE, now=now
            )
            if created:
                new.append(values.name)
        # A file that failed to parse as a whole leaves the loaded rules alone.
        if result.rules or not result.problems:
            gone = await repo_events.disable_file_rules_except(s, [r.name for r in result.rules])
            for name in gone:
                log.info("follow-up rule %r is no longer in %s: disabled", name, where)
    events.note(
        "followup_rule.loaded",
        "follow-up rules files {path}: {rules} rules ({new} new: {names}), {disabled} disabled, "
        "{problems} problems",
        path=where,
        rules=len(result.rules),
        new=len(new),
        names=", ".join(new) or "none",
        disabled=len(gone),
        problems=len(result.problems),
    )
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
