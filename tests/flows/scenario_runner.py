"""Runs the engine scenario fixtures in tests/flows/scenarios/*.toml.

A fixture holds a small inline survey and the turns of one conversation::

    description = "what it shows"
    lang = "sv"                       # asked for at start (optional)
    [survey]                          # Survey fields; questions as [[survey.questions]]
    [start]                           # expectations for start() (optional)
    [[turns]]
    send = "1"                        # typed text
    payload = "choice:ja"             # button payload (optional)
    after = 60                        # seconds since the previous turn (default 60)
    expect_texts_contain = ["..."]    # in the rendered (SMS) text of the step's messages
    expect_texts_not_contain = ["..."]
    expect_kinds = ["reprompt"]       # message kinds, in order
    expect_status = "active"
    expect_current = "q2"             # "" for None
    expect_awaiting = "language"
    expect_lang = "en"
    expect_answers = { q1 = "ja" }    # all of state.answers
    expect_recorded = [{ question = "q1", value = "ja" }, { question = "q2", skipped = true }]
    expect_events = ["completed"]     # event kinds, in order

Every turn must expect something, so a fixture cannot pass vacuously.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flows.conversation import ConversationState, Input, RecordedAnswer, Status, Step
from flows.engine import Keyword, classify_keyword, resume, start
from flows.model import Choice, Question, QuestionType, Survey
from flows.render import render_text

SCENARIOS = Path(__file__).parent / "scenarios"
START_AT = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
_EXPECT_KEYS = frozenset(
    {
        "expect_texts_contain",
        "expect_texts_not_contain",
        "expect_kinds",
        "expect_status",
        "expect_current",
        "expect_awaiting",
        "expect_lang",
        "expect_answers",
        "expect_recorded",
        "expect_events",
    }
)
_TURN_KEYS = _EXPECT_KEYS | {"send", "payload", "after"}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    survey: Survey
    lang: str | None
    start: Mapping[str, Any]
    turns: Sequence[Mapping[str, Any]]

    def keywords(self) -> set[Keyword]:
        """Keywords the turns send."""
        return {k for turn in self.turns if (k := classify_keyword(turn.get("send", "")))}

    def answered_types(self) -> set[QuestionType]:
        """Question types this scenario exercises: answered ones, and message questions shown."""
        types: set[QuestionType] = {
            q.type for q in self.survey.questions if q.type is QuestionType.MESSAGE
        }
        for turn in self.turns:
            for rec in turn.get("expect_recorded", []):
                question = self.survey.question(rec["question"])
                if question is not None and not rec.get("skipped", False):
                    types.add(question.type)
        return types


def _survey(data: Mapping[str, Any], name: str) -> Survey:
    questions = tuple(
        Question(
            id=q["id"],
            type=QuestionType(q["type"]),
            text=q["text"],
            required=q.get("required", True),
            choices=tuple(Choice(c["id"], c["text"]) for c in q.get("choices", [])),
            min=q.get("min"),
            max=q.get("max"),
            max_length=q.get("max_length"),
            show_if=q.get("show_if"),
            style=q.get("style"),
        )
        for q in data["questions"]
    )
    return Survey(
        id=data.get("id", name),
        version=data.get("version", 1),
        languages=tuple(data.get("languages", ["sv"])),
        title=data.get("title", {"sv": name}),
        intro=data.get("intro", {}),
        thanks=data.get("thanks", {}),
        questions=questions,
        expires_after=data.get("expires_after", 7 * 24 * 3600),
        max_retries=data.get("max_retries", 2),
        sender=data.get("sender", {}),
        results_use=data.get("results_use", {}),
    )


def load(path: Path) -> Scenario:
    """Read one fixture, checking that every turn expects something."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    turns = data.get("turns", [])
    for i, turn in enumerate(turns, start=1):
        unknown = set(turn) - _TURN_KEYS
        if unknown:
            raise ValueError(f"{path.name}: turn {i} has unknown keys {sorted(unknown)}")
        if not _EXPECT_KEYS & set(turn):
            raise ValueError(f"{path.name}: turn {i} expects nothing")
    return Scenario(
        name=path.stem,
        description=data["description"],
        survey=_survey(data["survey"], path.stem),
        lang=data.get("lang"),
        start=data.get("start", {}),
        turns=turns,
    )


def all_scenarios() -> list[Scenario]:
    """Every fixture, in file name order."""
    return [load(p) for p in sorted(SCENARIOS.glob("*.toml"))]


def check_invariants(survey: Survey, state: ConversationState) -> None:
    """What must hold for any state the engine returns."""
    assert ConversationState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert state.status in set(Status)
    if state.status is Status.ACTIVE:
        assert state.current is not None and survey.question(state.current) is not None
    else:
        assert state.current is None
    for question_id, value in state.answers.items():
        question = survey.question(question_id)
        assert question is not None, question_id
        if question.type is QuestionType.SELECT_ONE:
            assert isinstance(value, str) and question.choice(value) is not None
        elif question.type is QuestionType.SELECT_MANY:
            assert isinstance(value, list) and value
            assert all(question.choice(v) is not None for v in value)
    assert all(survey.question(q) is not None for q in state.history)


def _recorded(rec: Mapping[str, Any]) -> RecordedAnswer:
    return RecordedAnswer(rec["question"], rec.get("value"), rec.get("skipped", False))


def _check(where: str, expect: Mapping[str, Any], step: Step) -> None:
    rendered = "\n---\n".join(render_text(m) for m in step.messages)
    state = step.state
    for wanted in expect.get("expect_texts_contain", []):
        assert wanted in rendered, f"{where}: {wanted!r} not in\n{rendered}"
    for unwanted in expect.get("expect_texts_not_contain", []):
        assert unwanted not in rendered, f"{where}: {unwanted!r} in\n{rendered}"
    checks: list[tuple[str, object, object]] = [
        ("expect_kinds", [m.kind.value for m in step.messages], expect.get("expect_kinds")),
        ("expect_status", state.status.value, expect.get("expect_status")),
        ("expect_current", state.current or "", expect.get("expect_current")),
        ("expect_awaiting", state.awaiting.value, expect.get("expect_awaiting")),
        ("expect_lang", state.lang, expect.get("expect_lang")),
        ("expect_answers", dict(state.answers), expect.get("expect_answers")),
        ("expect_events", [e.kind.value for e in step.events], expect.get("expect_events")),
    ]
    if "expect_recorded" in expect:
        wanted_records = [_recorded(r) for r in expect["expect_recorded"]]
        checks.append(("expect_recorded", list(step.answers), wanted_records))
    for key, actual, wanted_value in checks:
        if key in expect:
            assert actual == wanted_value, f"{where}: {key} is {actual!r}\n{rendered}"


def run(scenario: Scenario) -> None:
    """Play the scenario through the engine, checking every expectation and invariant."""
    now = START_AT
    step = start(scenario.survey, now=now, lang=scenario.lang)
    check_invariants(scenario.survey, step.state)
    _check("start", {f"expect_{k}": v for k, v in scenario.start.items()}, step)
    for i, turn in enumerate(scenario.turns, start=1):
        now += timedelta(seconds=turn.get("after", 60))
        inp = Input(turn.get("send", ""), turn.get("payload"))
        step = resume(scenario.survey, step.state, inp, now)
        check_invariants(scenario.survey, step.state)
        _check(f"turn {i} ({inp.text!r})", turn, step)
