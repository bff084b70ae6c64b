"""Rule validation, the shipped rules file, and when a follow-up comes due."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import followups
from bot.timewindows import DailyWindow
from flows.durations import parse_duration
from storage.repo_events import RuleValues

SURVEYS = {"uppfoljning-insats", "barnenkat"}
QUIET = DailyWindow.parse("20:00-09:00")
STHLM = ZoneInfo("Europe/Stockholm")
GOOD: dict[str, Any] = {
    "name": "uppfoljning",
    "event": "insats_ended",
    "filter": "target_group != 'barn'",
    "survey": "uppfoljning-insats",
    "delay": "14d",
    "window": "10:00-18:00",
    "fatigue_days": 30,
    "expires_after": "7d",
    "channels": ["sms", "telegram", "webchat"],
}


def test_a_good_rule_parses_with_durations_in_seconds() -> None:
    rule = followups.parse_rule(GOOD, known_surveys=SURVEYS, quiet=QUIET)
    assert rule == RuleValues(
        name="uppfoljning",
        event_type="insats_ended",
        survey_id="uppfoljning-insats",
        delay=14 * 86_400,
        filter="target_group != 'barn'",
        window="10:00-18:00",
        fatigue_days=30,
        expires_after=7 * 86_400,
        channels=("sms", "telegram", "webchat"),
    )


def test_seconds_and_defaults_so_a_person_can_try_it_by_hand() -> None:
    rule = followups.parse_rule(
        {"name": "prova", "event": "insats_ended", "survey": "barnenkat", "delay": "30s"},
        known_surveys=SURVEYS,
        quiet=None,
    )
    assert isinstance(rule, RuleValues)
    assert (rule.delay, rule.window, rule.fatigue_days, rule.expires_after, rule.channels) == (
        30,
        "",
        0,
        7 * 86_400,
        (),
    )


BAD_RULES = [
    ({"survey": "nope"}, "survey: unknown survey 'nope'"),
    ({"delay": "14x"}, "delay: '14x' is not a duration"),
    ({"delay": None}, "delay: required"),
    ({"delay": -5}, "delay: -5: a duration must be longer than zero"),
    ({"expires_after": "0s"}, "expires_after: '0s': a duration must be longer than zero"),
    ({"window": "10-25"}, "window: '10-25': 25:00 is not a time of day"),
    ({"window": "21:00-23:00"}, "window: allowed hours 21:00-23:00 lie entirely inside quiet"),
    ({"filter": "age >= "}, "filter: "),
    ({"filter": "target_group = 'barn'"}, "use '==' to compare"),
    ({"event": "Insats Ended"}, "event: 'Insats Ended' must be 1-60 characters"),
    ({"name": "Bad Name"}, "name: 'Bad Name' must be"),
    ({"fatigue_days": "30"}, "fatigue_days: must be a whole number of days"),
    ({"fatigue_days": -1}, "fatigue_days: -1 must be from 0"),
    ({"channels": ["sms", "fax"]}, "channels: unknown channel 'fax'"),
    ({"channels": ["sms", "sms"]}, "channels: 'sms' is listed twice"),
    ({"channels": "sms"}, "channels: must be a list"),
    ({"enabled": "yes"}, "enabled: must be true or false"),
    ({"delays": "1d"}, "unknown key 'delays' (did you mean 'delay'?)"),
]


@pytest.mark.parametrize(("change", "expected"), BAD_RULES)
def test_bad_rules_name_the_key(change: dict[str, Any], expected: str) -> None:
    data = {k: v for k, v in (GOOD | change).items() if v is not None}
    problems = followups.parse_rule(data, known_surveys=SURVEYS, quiet=QUIET)
    assert isinstance(problems, list)
    assert any(expected in p for p in problems), problems


def test_every_problem_is_listed_at_once() -> None:
    problems = followups.parse_rule(
        GOOD | {"survey": "nope", "delay": "x", "window": "late"}, known_surveys=SURVEYS, quiet=None
    )
    assert isinstance(problems, list)
    assert [p.split(":")[0] for p in problems] == ["survey", "window", "delay"]


def test_the_shipped_rules_file_is_valid() -> None:
    from bot.config import SHIPPED_SURVEYS
    from bot.survey_files import load_paths

    shipped = {s.id for s in load_paths([SHIPPED_SURVEYS]).surveys}
    result = followups.read_rules_file(followups.RULES_FILE, known_surveys=shipped, quiet=QUIET)
    assert result.problems == ()
    by_event = {r.event_type: r.survey_id for r in result.rules}
    assert by_event == {"insats_ended": "uppfoljning-insats", "utredning_closed": "barnenkat"}


def test_a_rules_file_problem_names_the_file_the_rule_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "followups.toml"
    path.write_text(
        '[[rules]]\nname = "a"\nevent = "insats_ended"\nsurvey = "barnenkat"\ndelay = "1d"\n'
        '[[rules]]\nname = "b"\nevent = "insats_ended"\nsurvey = "okand"\ndelay = "2 veckor"\n'
        '[[rules]]\nname = "a"\nevent = "insats_ended"\nsurvey = "barnenkat"\ndelay = "1d"\n',
        encoding="utf-8",
    )
    result = followups.read_rules_file(path, known_surveys=SURVEYS, quiet=None)
    assert [r.name for r in result.rules] == ["a"]
    assert result.problems == (
        f"{path}: rule 'b': survey: unknown survey 'okand' (known: barnenkat, uppfoljning-insats)",
        f"{path}: rule 'b': delay: '2 veckor' is not a duration: use a number and a unit, "
        'like "90s", "15m", "2h", "7d" or "1d12h"',
        f"{path}: rule 'a': name: the name is used by an earlier rule",
    )


def test_a_broken_rules_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "followups.toml"
    path.write_text("[[rules]\n", encoding="utf-8")
    result = followups.read_rules_file(path, known_surveys=SURVEYS, quiet=None)
    assert result.rules == ()
    assert len(result.problems) == 1 and "invalid TOML" in result.problems[0]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


WINDOW = DailyWindow.parse("10:00-18:00")
DUE_CASES = [
    # (label, occurred (local offset), delay, quiet, window, expected due (local offset))
    ("inside the window", "2026-03-02T17:55+01:00", "14d", QUIET, WINDOW, "2026-03-16T17:55+01:00"),
    ("after the window", "2026-03-02T18:30+01:00", "14d", QUIET, WINDOW, "2026-03-17T10:00+01:00"),
    (
        "delay pushes past 18",
        "2026-03-02T17:55+01:00",
        "14d10m",
        None,
        WINDOW,
        "2026-03-17T10:00+01:00",
    ),
    ("before the window", "2026-03-02T07:00+01:00", "14d", None, WINDOW, "2026-03-16T10:00+01:00"),
    ("quiet hours only", "2026-03-02T21:00+01:00", "1d", QUIET, None, "2026-03-04T09:00+01:00"),
    ("seconds", "2026-03-02T12:00:00+01:00", "30s", QUIET, WINDOW, "2026-03-02T12:00:30+01:00"),
    ("Friday evening", "2026-03-06T19:00+01:00", "0s", QUIET, WINDOW, "2026-03-07T10:00+01:00"),
    (
        "spring forward keeps wall time",
        "2026-03-15T17:30+01:00",
        "14d",
        QUIET,
        WINDOW,
        "2026-03-29T17:30+02:00",
    ),
    (
        "fall back keeps wall time",
        "2026-10-11T09:00+02:00",
        "14d",
        QUIET,
        WINDOW,
        "2026-10-25T10:00+01:00",
    ),
    (
        "quiet across spring forward",
        "2026-03-28T20:30+01:00",
        "1d",
        QUIET,
        None,
        "2026-03-30T09:00+02:00",
    ),
    ("into the DST gap", "2026-03-28T02:30+01:00", "1d", None, None, "2026-03-29T03:30+02:00"),
    (
        "an offset other than local",
        "2026-03-02T23:10+00:00",
        "1h",
        QUIET,
        WINDOW,
        "2026-03-03T10:00+01:00",
    ),
]


@pytest.mark.parametrize(
    ("occurred", "delay", "quiet", "window", "expected"),
    [c[1:] for c in DUE_CASES],
    ids=[c[0] for c in DUE_CASES],
)
def test_due_time(
    occurred: str,
    delay: str,
    quiet: DailyWindow | None,
    window: DailyWindow | None,
    expected: str,
) -> None:
    seconds = 0 if delay == "0s" else parse_duration(delay)
    due = followups.due_time(local(occurred), seconds, STHLM, quiet=quiet, window=window)
    assert due == local(expected)
    assert due.tzinfo is UTC
