from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import flows
from bot.survey_files import load_paths
from flows.engine import question_message
from flows.expr import compile_expr
from flows.loader import MAX_SMS_SEGMENTS, survey_definition, survey_from_definition
from flows.model import Participation, QuestionType, Survey
from flows.render import render_text
from flows.segments import segment_info

SURVEY_DIR = Path(flows.__file__).parent / "surveys"
EXPECTED = {
    "ifo-brukarundersokning": ("ENKAT", "SURVEY", "استبيان"),
    "barnenkat": ("BARN",),
    "uppfoljning-insats": ("UPPFOLJNING", "FOLLOWUP", "متابعة"),
    "brukardialog-konsultation": ("DIALOG",),
}
# Words that would tell someone reading over the person's shoulder that they are a client.
REVEALING = re.compile(
    r"(?<!\w)(socialtjänst|social services?|socialsekreterar|social worker|socialkontor"
    r"|individ- och familjeomsorg|ifo(?!\w)"
    r"|الخدمات الاجتماعية|الشؤون الاجتماعية|الأخصائي الاجتماعي)",
    re.IGNORECASE,
)


def _load() -> dict[str, Survey]:
    result = load_paths([SURVEY_DIR])
    assert [str(p) for p in result.problems] == []
    return {s.id: s for s in result.surveys}


SURVEYS = _load()


def test_all_shipped_surveys_load_without_problems() -> None:
    assert sorted(SURVEYS) == sorted(EXPECTED)
    assert len(list(SURVEY_DIR.glob("*.toml"))) == len(EXPECTED)
    for survey in SURVEYS.values():
        assert Path(survey.source).name == f"{survey.id}.toml"


@pytest.mark.parametrize("survey_id", sorted(EXPECTED))
def test_languages_keywords_and_sender(survey_id: str) -> None:
    survey = SURVEYS[survey_id]
    assert survey.languages[:3] == ("sv", "en", "ar")
    assert survey.keywords == EXPECTED[survey_id]
    # Filled in from [organisation] in the config when the service loads the survey.
    assert survey.sender == dict.fromkeys(survey.languages, "{organisation}")
    for field in ("title", "intro", "thanks", "invitation", "results_use"):
        assert set(getattr(survey, field)) == set(survey.languages), field


def test_every_question_type_is_used() -> None:
    used = {q.type for s in SURVEYS.values() for q in s.questions}
    assert used == set(QuestionType)


@pytest.mark.parametrize("survey_id", sorted(EXPECTED))
def test_sms_texts_do_not_reveal_a_client_relationship(survey_id: str) -> None:
    survey = SURVEYS[survey_id]
    for field in ("intro", "invitation", "sender", "title"):
        for lang, text in getattr(survey, field).items():
            assert REVEALING.search(text) is None, (field, lang, text)


def test_the_privacy_check_catches_revealing_words() -> None:
    for text in (
        "Hej från Socialtjänsten",
        "Your social worker",
        "IFO Malmö",
        "الخدمات الاجتماعية",
    ):
        assert REVEALING.search(text) is not None, text
    assert REVEALING.search("Malmö stad, din kontakt med oss, information") is None


@pytest.mark.parametrize("survey_id", sorted(EXPECTED))
def test_every_question_fits_in_three_sms_segments(survey_id: str) -> None:
    survey = SURVEYS[survey_id]
    for question in survey.questions:
        for lang in survey.languages:
            segments = segment_info(render_text(question_message(survey, question, lang))).segments
            assert segments <= MAX_SMS_SEGMENTS, (question.id, lang, segments)


@pytest.mark.parametrize("survey_id", sorted(EXPECTED))
def test_definition_round_trip(survey_id: str) -> None:
    survey = SURVEYS[survey_id]
    text = Path(survey.source).read_text(encoding="utf-8")
    again = survey_from_definition(survey_definition(text), survey.source)
    assert again == dataclasses.replace(
        survey, questions=tuple(dataclasses.replace(q, line=0) for q in survey.questions)
    )


def test_ifo_follows_the_national_structure() -> None:
    survey = SURVEYS["ifo-brukarundersokning"]
    assert survey.anonymous
    gender, contact, *quality, last = survey.questions
    assert gender.breakdown == "gender"
    assert [c.id for c in gender.choices] == ["kvinna", "man", "annat", "vill_ej_svara"]
    assert contact.breakdown == "contact_length"
    assert len(contact.choices) == 4
    assert len(quality) == 7
    for question in quality:
        assert question.type is QuestionType.SELECT_ONE
        assert [c.id for c in question.choices] == [
            "ja_helt",
            "ja_delvis",
            "nej_inte_sarskilt",
            "nej_inte_alls",
            "vet_ej",
        ]
        assert question.positive == ("ja_helt", "ja_delvis")
        assert question.dont_know == ("vet_ej",)
        assert question.required
    assert last.type is QuestionType.OPEN
    assert not last.required


def test_barnenkat_is_short_anonymous_and_says_how_answers_are_used() -> None:
    survey = SURVEYS["barnenkat"]
    assert survey.anonymous
    asked = [q for q in survey.questions if q.type is not QuestionType.MESSAGE]
    assert 5 <= len(asked) <= 6
    scales = [q for q in survey.questions if q.type is QuestionType.SCALE]
    assert scales
    assert all(q.style == "smileys" and q.scale_range == (1, 5) for q in scales)
    # The engine sends results_use right after the intro: together they say it is voluntary,
    # anonymous, how answers are used and where results are shown.
    for lang in survey.languages:
        assert survey.results_use[lang]
        assert "{results_url}" in survey.results_use[lang]
    assert "frivilligt" in survey.intro["sv"]
    assert "Ingen får veta" in survey.intro["sv"]


def test_uppfoljning_has_easy_read_swedish() -> None:
    survey = SURVEYS["uppfoljning-insats"]
    assert survey.languages == ("sv", "en", "ar", "sv-x-lattlast")
    assert [q.id for q in survey.questions][:4] == ["helped", "improve", "score", "mood"]
    for question in survey.questions:
        easy, plain = question.text["sv-x-lattlast"], question.text["sv"]
        assert len(easy) <= len(plain), question.id


def test_brukardialog_is_a_dialog_with_opt_in() -> None:
    survey = SURVEYS["brukardialog-konsultation"]
    assert survey.participation is Participation.DIALOG
    assert not survey.anonymous
    types = {q.type for q in survey.questions}
    assert {QuestionType.OPEN, QuestionType.SELECT_MANY} <= types
    opt_in = survey.question("dialogmote")
    assert opt_in is not None and {c.id for c in opt_in.choices} == {"ja", "nej"}


@pytest.mark.parametrize(
    ("survey_id", "question_id", "answers", "shown"),
    [
        ("uppfoljning-insats", "improve", {"helped": "partly"}, True),
        ("uppfoljning-insats", "improve", {"helped": "yes"}, False),
        ("uppfoljning-insats", "improve", {}, False),
        ("brukardialog-konsultation", "annat", {"forbattra": ["mer_tid", "annat"]}, True),
        ("brukardialog-konsultation", "annat", {"forbattra": ["mer_tid"]}, False),
        ("brukardialog-konsultation", "mote_datum", {"dialogmote": "ja"}, True),
        ("brukardialog-konsultation", "mote_datum", {"dialogmote": "nej"}, False),
    ],
)
def test_show_if(survey_id: str, question_id: str, answers: dict[str, object], shown: bool) -> None:
    question = SURVEYS[survey_id].question(question_id)
    assert question is not None and question.show_if is not None
    assert compile_expr(question.show_if).evaluate(answers) is shown


def test_only_the_open_consultation_is_public_and_the_childrens_survey_never() -> None:
    assert {s.id for s in SURVEYS.values() if s.public} == {"brukardialog-konsultation"}
    assert {s.id for s in SURVEYS.values() if s.minors} == {"barnenkat"}
