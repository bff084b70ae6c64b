from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from bot.results.aggregate import ResponseRecord
from flows.conversation import AnswerValue
from flows.model import Choice, Question, QuestionType, Survey

AGREE = tuple(
    Choice(cid, {"sv": sv, "en": en})
    for cid, sv, en in (
        ("ja_helt", "Ja, helt och hållet", "Yes, completely"),
        ("ja_delvis", "Ja, delvis", "Yes, partly"),
        ("nej", "Nej", "No"),
        ("vet_ej", "Vet ej", "Don't know"),
    )
)


def make_survey(*questions: Question) -> Survey:
    return Survey(
        id="uppfoljning",
        version=2,
        languages=("sv", "en"),
        title={"sv": "Vad tycker du?", "en": "What do you think?"},
        intro={"sv": ""},
        thanks={"sv": ""},
        questions=questions,
    )


@pytest.fixture
def survey() -> Survey:
    return make_survey(
        Question(
            id="kon",
            type=QuestionType.SELECT_ONE,
            text={"sv": "Kön", "en": "Gender"},
            choices=(
                Choice("kvinna", {"sv": "Kvinna", "en": "Woman"}),
                Choice("man", {"sv": "Man", "en": "Man"}),
            ),
            breakdown="gender",
            required=False,
        ),
        Question(
            id="bemotande",
            type=QuestionType.SELECT_ONE,
            text={"sv": "Blir du bemött med respekt?", "en": "Are you treated with respect?"},
            choices=AGREE,
            positive=("ja_helt", "ja_delvis"),
            dont_know=("vet_ej",),
        ),
        Question(
            id="stod",
            type=QuestionType.SELECT_MANY,
            text={"sv": "Vilket stöd?"},
            choices=(
                Choice("samtal", {"sv": "Samtal"}),
                Choice("ekonomi", {"sv": "Ekonomi"}),
                Choice("boende", {"sv": "Boende"}),
            ),
        ),
        Question(id="nojd", type=QuestionType.SCALE, text={"sv": "Hur nöjd?"}, min=1, max=5),
        Question(id="besok", type=QuestionType.NUMERIC, text={"sv": "Antal besök"}, min=0),
        Question(id="datum", type=QuestionType.DATE, text={"sv": "När?"}),
        Question(id="ovrigt", type=QuestionType.OPEN, text={"sv": "Något mer?"}),
        Question(id="tack", type=QuestionType.MESSAGE, text={"sv": "Tack!"}),
    )


def record(
    i: int,
    answers: Mapping[str, AnswerValue],
    *,
    unit: str | None = "norr",
    gender: str | None = None,
    contact_length: str | None = None,
) -> ResponseRecord:
    return ResponseRecord(
        respondent_id=f"resp-{i:03d}",
        completed=True,
        started_on=date(2025, 3, 3),
        attributes={
            "unit": unit,
            "gender": gender,
            "contact_length": contact_length,
            "language": "sv",
        },
        answers=dict(answers),
    )
