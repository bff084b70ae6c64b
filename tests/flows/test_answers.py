from __future__ import annotations

from datetime import date

import pytest

from flows.answers import Invalid, ParseContext, Parsed, normalize, parse_int
from flows.conversation import AnswerValue, Input
from flows.model import Choice, Question, QuestionType
from flows.texts import text
from flows.types import KINDS, parse_answer
from flows.types.date import parse_date

CTX = ParseContext("sv", date(2024, 3, 5))

FRUIT = (
    Choice("apple", {"sv": "Äpple", "en": "Apple", "ar": "تفاح"}),
    Choice("pear", {"sv": "Päron", "en": "Pear", "ar": "إجاص"}),
    Choice("often", {"sv": "Ja, ofta", "en": "Yes, often"}),
)
PARTLY = (
    Choice("yes", {"sv": "Ja", "en": "Yes"}),
    Choice("partly", {"sv": "Ja, delvis", "en": "Yes, partly", "ar": "نعم، جزئياً"}),
    Choice("mostly", {"sv": "Ja, till stor del", "en": "Yes, mostly"}),
)
SELECT_ONE = Question("q", QuestionType.SELECT_ONE, {"sv": "?"}, choices=FRUIT)
SELECT_MANY = Question("q", QuestionType.SELECT_MANY, {"sv": "?"}, choices=FRUIT)
NUMERIC = Question("q", QuestionType.NUMERIC, {"sv": "?"}, min=1, max=100)
NUMERIC_ANY = Question("q", QuestionType.NUMERIC, {"sv": "?"})
SIGNED = Question("q", QuestionType.NUMERIC, {"sv": "?"}, min=-10, max=10)
SMILEY_SCALE = Question("q", QuestionType.SCALE, {"sv": "?"}, style="smileys")
NUMBER_SCALE = Question("q", QuestionType.SCALE, {"sv": "?"}, style="numbers", min=0, max=10)
OPEN = Question("q", QuestionType.OPEN, {"sv": "?"})
OPEN_SHORT = Question("q", QuestionType.OPEN, {"sv": "?"}, max_length=5)
DATE = Question("q", QuestionType.DATE, {"sv": "?"})
MESSAGE = Question("q", QuestionType.MESSAGE, {"sv": "!"})
ONE_PARTLY = Question("q", QuestionType.SELECT_ONE, {"sv": "?"}, choices=PARTLY)
MANY_PARTLY = Question("q", QuestionType.SELECT_MANY, {"sv": "?"}, choices=PARTLY)


def test_every_question_type_is_registered_once() -> None:
    assert set(KINDS) == set(QuestionType)
    assert all(kind.type is qtype for qtype, kind in KINDS.items())


ACCEPTED: list[tuple[Question, Input, AnswerValue]] = [
    # select_one
    (SELECT_ONE, Input("1"), "apple"),
    (SELECT_ONE, Input(" 2. "), "pear"),
    (SELECT_ONE, Input("٢"), "pear"),
    (SELECT_ONE, Input("۲"), "pear"),
    (SELECT_ONE, Input("äpple"), "apple"),
    (SELECT_ONE, Input("APPLE!"), "apple"),
    (SELECT_ONE, Input("paron"), "pear"),
    (SELECT_ONE, Input("اجاص"), "pear"),
    (SELECT_ONE, Input("ja, ofta"), "often"),
    (SELECT_ONE, Input("often"), "often"),
    (SELECT_ONE, Input("", "choice:pear"), "pear"),
    (SELECT_ONE, Input("1", "choice:nope"), "apple"),
    # punctuation and spacing are ignored like case and diacritics
    (ONE_PARTLY, Input("ja delvis"), "partly"),
    (ONE_PARTLY, Input("Ja,delvis"), "partly"),
    (ONE_PARTLY, Input("JA - DELVIS!"), "partly"),
    (ONE_PARTLY, Input("jadelvis"), "partly"),
    (ONE_PARTLY, Input("ja  till stor-del"), "mostly"),
    (ONE_PARTLY, Input("yes partly"), "partly"),
    (ONE_PARTLY, Input("نعم جزئيا"), "partly"),
    (ONE_PARTLY, Input("ja"), "yes"),
    (MANY_PARTLY, Input("ja delvis"), ["partly"]),
    (MANY_PARTLY, Input("ja till stor del och ja delvis"), ["partly", "mostly"]),
    (MANY_PARTLY, Input("ja delvis, 1"), ["yes", "partly"]),
    # select_many
    (SELECT_MANY, Input("1 3"), ["apple", "often"]),
    (SELECT_MANY, Input("3,1"), ["apple", "often"]),
    (SELECT_MANY, Input("1, 2"), ["apple", "pear"]),
    (SELECT_MANY, Input("1 och 2"), ["apple", "pear"]),
    (SELECT_MANY, Input("1 and 2"), ["apple", "pear"]),
    (SELECT_MANY, Input("1;2"), ["apple", "pear"]),
    (SELECT_MANY, Input("٣ و ١"), ["apple", "often"]),
    (SELECT_MANY, Input("2 2 2"), ["pear"]),
    (SELECT_MANY, Input("päron, äpple"), ["apple", "pear"]),
    (SELECT_MANY, Input("Ja, ofta"), ["often"]),
    (SELECT_MANY, Input("ja, ofta och 1"), ["apple", "often"]),
    (SELECT_MANY, Input("", "choices:pear,apple"), ["apple", "pear"]),
    (SELECT_MANY, Input("", "choice:pear"), ["pear"]),
    # numeric
    (NUMERIC, Input("7"), 7),
    (NUMERIC, Input(" 7 "), 7),
    (NUMERIC, Input("٧"), 7),
    (NUMERIC, Input("7.0"), 7),
    (NUMERIC, Input("7,00"), 7),
    (NUMERIC, Input("34 år"), 34),
    (NUMERIC, Input("100"), 100),
    (NUMERIC_ANY, Input("1 000"), 1000),
    (NUMERIC_ANY, Input("0"), 0),
    (SIGNED, Input("-5"), -5),
    (SIGNED, Input("−5"), -5),
    # scale
    (SMILEY_SCALE, Input("😞"), 1),
    (SMILEY_SCALE, Input(" 😀 "), 5),
    (SMILEY_SCALE, Input("🙂\ufe0f"), 4),
    (SMILEY_SCALE, Input("😊"), 4),
    (SMILEY_SCALE, Input(":)"), 4),
    (SMILEY_SCALE, Input("3"), 3),
    (SMILEY_SCALE, Input("٤"), 4),
    (SMILEY_SCALE, Input("", "scale:2"), 2),
    (NUMBER_SCALE, Input("0"), 0),
    (NUMBER_SCALE, Input("10"), 10),
    # open
    (OPEN, Input("  Bra bemötande \n"), "Bra bemötande"),
    (OPEN, Input("rad ett\r\nrad två"), "rad ett\nrad två"),
    (OPEN, Input("noll\x00byte"), "nollbyte"),
    (OPEN, Input("stopp och belägg"), "stopp och belägg"),
    # date
    (DATE, Input("2024-03-05"), "2024-03-05"),
    (DATE, Input("2024-3-5"), "2024-03-05"),
    (DATE, Input("5/3/2024"), "2024-03-05"),
    (DATE, Input("5.3.2024"), "2024-03-05"),
    (DATE, Input("5/3/24"), "2024-03-05"),
    (DATE, Input("5/3/85"), "1985-03-05"),
    (DATE, Input("5/3"), "2024-03-05"),
    (DATE, Input("5 mars 2024"), "2024-03-05"),
    (DATE, Input("5 Mars"), "2024-03-05"),
    (DATE, Input("5 maj"), "2024-05-05"),
    (DATE, Input("den 5:e mars"), "2024-03-05"),
    (DATE, Input("5 March 2024"), "2024-03-05"),
    (DATE, Input("March 5th, 2024"), "2024-03-05"),
    (DATE, Input("okt 1"), "2024-10-01"),
    (DATE, Input("20240305"), "2024-03-05"),
    (DATE, Input("٥/٣/٢٠٢٤"), "2024-03-05"),
    (DATE, Input("5 مارس 2024"), "2024-03-05"),
    (DATE, Input("idag"), "2024-03-05"),
    (DATE, Input("I dag"), "2024-03-05"),
    (DATE, Input("today"), "2024-03-05"),
    (DATE, Input("igår"), "2024-03-04"),
    (DATE, Input("yesterday"), "2024-03-04"),
    (DATE, Input("أمس"), "2024-03-04"),
    (DATE, Input("29/2"), "2024-02-29"),
]


@pytest.mark.parametrize(("question", "inp", "expected"), ACCEPTED)
def test_accepted(question: Question, inp: Input, expected: AnswerValue) -> None:
    assert parse_answer(question, inp, CTX) == Parsed(expected)


REJECTED: list[tuple[Question, Input, Invalid]] = [
    (SELECT_ONE, Input(""), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_ONE, Input("0"), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_ONE, Input("4"), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_ONE, Input("banan"), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_ONE, Input("1 2"), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_ONE, Input("", "choice:banana"), Invalid("reprompt_select_one", {"max": 3})),
    (SELECT_MANY, Input(""), Invalid("reprompt_select_many", {"max": 3})),
    (SELECT_MANY, Input("1 4"), Invalid("reprompt_select_many", {"max": 3})),
    (SELECT_MANY, Input("1, banan"), Invalid("reprompt_select_many", {"max": 3})),
    (SELECT_MANY, Input(",,,"), Invalid("reprompt_select_many", {"max": 3})),
    (SELECT_MANY, Input("", "choices:"), Invalid("reprompt_select_many", {"max": 3})),
    (SELECT_MANY, Input("", "choices:apple,x"), Invalid("reprompt_select_many", {"max": 3})),
    (NUMERIC, Input("7.5"), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC, Input("0"), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC, Input("101"), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC, Input("sju"), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC, Input("7 eller 8"), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC, Input("9" * 5000), Invalid("reprompt_numeric_range", {"min": 1, "max": 100})),
    (NUMERIC_ANY, Input("-1"), Invalid("reprompt_numeric")),
    (NUMERIC_ANY, Input(""), Invalid("reprompt_numeric")),
    (
        Question("q", QuestionType.NUMERIC, {"sv": "?"}, min=18),
        Input("17"),
        Invalid("reprompt_numeric_min", {"min": 18}),
    ),
    (
        Question("q", QuestionType.NUMERIC, {"sv": "?"}, max=5),
        Input("6"),
        Invalid("reprompt_numeric_max", {"max": 5}),
    ),
    (SMILEY_SCALE, Input("6"), Invalid("reprompt_scale_smileys", {"min": 1, "max": 5})),
    (SMILEY_SCALE, Input("🙂🙂"), Invalid("reprompt_scale_smileys", {"min": 1, "max": 5})),
    (SMILEY_SCALE, Input("4 år"), Invalid("reprompt_scale_smileys", {"min": 1, "max": 5})),
    (SMILEY_SCALE, Input("", "scale:9"), Invalid("reprompt_scale_smileys", {"min": 1, "max": 5})),
    (NUMBER_SCALE, Input("😀"), Invalid("reprompt_scale", {"min": 0, "max": 10})),
    (NUMBER_SCALE, Input("11"), Invalid("reprompt_scale", {"min": 0, "max": 10})),
    (OPEN, Input(""), Invalid("reprompt_open")),
    (OPEN, Input(" \n\t "), Invalid("reprompt_open")),
    (OPEN, Input("\x00\x07"), Invalid("reprompt_open")),
    (DATE, Input("31/2"), Invalid("reprompt_date")),
    (DATE, Input("30 februari"), Invalid("reprompt_date")),
    (DATE, Input("5 smarch"), Invalid("reprompt_date")),
    (DATE, Input("mars"), Invalid("reprompt_date")),
    (DATE, Input("2024-13-01"), Invalid("reprompt_date")),
    (DATE, Input("snart"), Invalid("reprompt_date")),
    (DATE, Input(""), Invalid("reprompt_date")),
]


@pytest.mark.parametrize(("question", "inp", "expected"), REJECTED)
def test_rejected(question: Question, inp: Input, expected: Invalid) -> None:
    result = parse_answer(question, inp, CTX)
    assert result == expected
    assert isinstance(result, Invalid)
    for lang in ("sv", "en", "ar"):
        assert "{" not in text(result.reason, lang, **result.params)


def test_open_answer_is_cut_to_max_length() -> None:
    assert parse_answer(OPEN_SHORT, Input("abc  defgh"), CTX) == Parsed("abc", shortened_to=5)
    assert parse_answer(OPEN, Input("x" * 1001), CTX) == Parsed("x" * 1000, shortened_to=1000)
    assert parse_answer(OPEN, Input("x" * 1000), CTX) == Parsed("x" * 1000)


def test_choice_text_in_another_survey_language_is_accepted() -> None:
    english = ParseContext("en", CTX.today)
    assert parse_answer(SELECT_ONE, Input("Päron"), english) == Parsed("pear")
    assert parse_answer(SELECT_ONE, Input("Pear"), CTX) == Parsed("pear")


def test_message_questions_take_anything() -> None:
    assert parse_answer(MESSAGE, Input("ok"), CTX) == Parsed(None)


NORMALIZE_CASES: list[tuple[str, str]] = [
    ("  Hej  Då! ", "hej da"),
    ("ÅÄÖ", "aao"),
    ("Café", "cafe"),
    ("إيقاف", "ايقاف"),
    ("مُسَاعَدَة", "مساعدة"),
    ("١٢٣", "123"),
    ("\u200fلغة\u200f", "لغة"),
    ("-5", "-5"),
    ("«stop»", "stop"),
    ("", ""),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize(normalize(raw)) == normalize(raw)


@pytest.mark.parametrize(
    ("text", "allow_unit", "expected"),
    [
        ("7", False, 7),
        ("-7", False, -7),
        ("10 000", False, 10000),
        ("7 st", False, None),
        ("7 st", True, 7),
        ("7.5", True, None),
        ("1" * 16, False, None),
        ("", False, None),
    ],
)
def test_parse_int(text: str, allow_unit: bool, expected: int | None) -> None:
    assert parse_int(text, allow_unit=allow_unit) == expected


def test_relative_dates_follow_today() -> None:
    assert parse_date("igar", date(2024, 3, 1)) == date(2024, 2, 29)
    assert parse_date("1/1", date(2030, 6, 1)) == date(2030, 1, 1)
