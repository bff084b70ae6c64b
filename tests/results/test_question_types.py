"""A question type is one unit: its fixture (tests/flows/scenarios/type_<type>.toml) is played
through the engine, and what it recorded goes through results, open answers, the CSV and the
FLOIP export, each of which must treat it as its kind (flows.types) says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bot.results.aggregate import Participation, ResponseRecord, compute, open_answers
from bot.results.export_csv import answer_rows
from bot.results.floip import package_descriptor, response_rows
from flows.conversation import AnswerValue, Input
from flows.engine import resume, start
from flows.model import QuestionType, Survey
from flows.types import KINDS, Figures, kind_of
from tests.flows.scenario_runner import START_AT, Scenario, all_scenarios

SCENARIOS = {s.name: s for s in all_scenarios()}
K = 5


def play(scenario: Scenario) -> dict[str, AnswerValue]:
    """The answers the scenario's turns record (the last one per question wins)."""
    now = START_AT
    step = start(scenario.survey, now=now, lang=scenario.lang)
    answers: dict[str, AnswerValue] = {}
    for turn in scenario.turns:
        now += timedelta(seconds=turn.get("after", 60))
        step = resume(
            scenario.survey, step.state, Input(turn.get("send", ""), turn.get("payload")), now
        )
        for recorded in step.answers:
            if recorded.skipped:
                answers.pop(recorded.question_id, None)
            else:
                answers[recorded.question_id] = recorded.value
    return answers


def records(answers: dict[str, AnswerValue]) -> list[ResponseRecord]:
    return [
        ResponseRecord(f"r{i}", True, date(2024, 1, 1), {"language": "sv"}, answers)
        for i in range(K)
    ]


@pytest.mark.parametrize("qtype", list(QuestionType), ids=[t.value for t in QuestionType])
def test_a_question_type_is_one_unit_from_fixture_to_export(qtype: QuestionType) -> None:
    scenario = SCENARIOS[f"type_{qtype.value}"]
    survey: Survey = scenario.survey
    kind = KINDS[qtype]
    answers = play(scenario)
    own = [q for q in survey.questions if q.type is qtype]
    answered = [q for q in own if q.id in answers]
    assert answered or not kind.records, f"the fixture records no {qtype.value} answer"
    assert not any(q.id in answers for q in own) or kind.records

    rows = records(answers)
    results = compute(survey, rows, Participation(K, K, K, 0), k=K)
    for question in own:
        figures = results.question(question.id)
        if not kind.counted:
            assert figures is None, question.id
            continue
        assert figures is not None and figures.type == qtype.value
        if question.id in answers:
            assert figures.n.value == K
            if kind.choices:
                assert {c.key for c in figures.counts} == {c.id for c in question.choices}
            if kind.figures is Figures.NUMBER:
                assert figures.mean.value is not None and figures.median.value is not None
            if kind.figures is Figures.DATE:
                assert figures.counts == ()  # how many answered, never which day

    texts = {o.question_id for o in open_answers(survey, rows)}
    assert ({q.id for q in answered} <= texts) is (kind.figures is Figures.TEXT) or not answered

    csv_types = {(row[1], row[2]) for row in answer_rows(survey, rows)}
    assert {(q.id, qtype.value) for q in answered} <= csv_types
    assert all(kind_of(survey.question(qid)).records for qid, _ in csv_types)  # type: ignore[arg-type]

    at = datetime(2024, 1, 2, tzinfo=UTC)
    schema = package_descriptor(survey, "p", at, at, "sv", responses_path="r.csv")
    questions = schema["resources"][0]["schema"]["questions"]
    floip_ids = {row[4] for row in response_rows(survey, rows)}
    for question in own:
        if kind.floip_type is None:
            assert question.id not in questions
        else:
            assert questions[question.id]["type"] == kind.floip_type
            if question in answered:
                assert question.id in floip_ids
