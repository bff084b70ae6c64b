from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest

from flows.conversation import (
    Awaiting,
    Button,
    EventKind,
    Input,
    MessageKind,
    OutMessage,
    Status,
)
from flows.engine import (
    Keyword,
    classify_keyword,
    close,
    closed_notice,
    expire,
    expired_notice,
    help_message,
    opted_in_confirmation,
    opted_out_confirmation,
    pick_language,
    question_message,
    resume,
    start,
)
from flows.model import Choice, Question, QuestionType, Survey
from flows.render import render_text
from flows.segments import segment_info
from flows.texts import BUILT_IN_LANGUAGES, TEXTS, language_name, text
from tests.flows.scenario_runner import Scenario, all_scenarios, run

NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
SCENARIOS = all_scenarios()


def _survey(**changes: object) -> Survey:
    fields: dict[str, object] = {
        "id": "s",
        "version": 3,
        "languages": ("sv", "en", "ar"),
        "title": {"sv": "T"},
        "intro": {"sv": "Hej!", "en": "Hi!"},
        "thanks": {"sv": "Tack!", "en": "Thanks!"},
        "questions": (
            Question(
                "q1",
                QuestionType.SELECT_ONE,
                {"sv": "Nöjd?", "en": "Happy?"},
                choices=(
                    Choice("yes", {"sv": "Ja", "en": "Yes"}),
                    Choice("no", {"sv": "Nej", "en": "No"}),
                ),
            ),
            Question("q2", QuestionType.OPEN, {"sv": "Mer?", "en": "More?"}),
        ),
        "expires_after": 3600,
    }
    fields.update(changes)
    return Survey(**fields)  # type: ignore[arg-type]


# --- scenarios ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    run(scenario)


def test_every_question_type_has_a_scenario() -> None:
    covered = set().union(*(s.answered_types() for s in SCENARIOS))
    assert set(QuestionType) - covered == set()


def test_every_keyword_has_a_scenario() -> None:
    covered = set().union(*(s.keywords() for s in SCENARIOS))
    assert set(Keyword) - covered == set()


def test_scenarios_have_distinct_descriptions() -> None:
    descriptions = [s.description for s in SCENARIOS]
    assert len(descriptions) == len(set(descriptions))


# --- keywords -----------------------------------------------------------------------------------

KEYWORD_CASES: list[tuple[str, Keyword | None]] = [
    ("STOP", Keyword.STOP),
    ("stopp", Keyword.STOP),
    (" Sluta! ", Keyword.STOP),
    ("AVSLUTA", Keyword.STOP),
    ("unsubscribe", Keyword.STOP),
    ("Cancel.", Keyword.STOP),
    ("quit", Keyword.STOP),
    ("توقف", Keyword.STOP),
    ("إيقاف", Keyword.STOP),
    ("ايقاف", Keyword.STOP),
    ("START", Keyword.START),
    ("börja", Keyword.START),
    ("BORJA", Keyword.START),
    ("ابدأ", Keyword.START),
    ("HJÄLP", Keyword.HELP),
    ("hjalp?", Keyword.HELP),
    ("help", Keyword.HELP),
    ("Info", Keyword.HELP),
    ("مساعدة", Keyword.HELP),
    ("HOPPA", Keyword.SKIP),
    ("hoppa över", Keyword.SKIP),
    ("Hoppa  Över", Keyword.SKIP),
    ("skip", Keyword.SKIP),
    ("تخطي", Keyword.SKIP),
    ("TILLBAKA", Keyword.BACK),
    ("back", Keyword.BACK),
    ("رجوع", Keyword.BACK),
    ("SPRÅK", Keyword.LANGUAGE),
    ("sprak", Keyword.LANGUAGE),
    ("Language", Keyword.LANGUAGE),
    ("لغة", Keyword.LANGUAGE),
    ("stop it", None),
    ("please stop", None),
    ("hjälpte", None),
    ("lång", None),
    ("", None),
    ("1", None),
    ("stop" * 20, None),
]


@pytest.mark.parametrize(("message", "expected"), KEYWORD_CASES)
def test_classify_keyword(message: str, expected: Keyword | None) -> None:
    assert classify_keyword(message) == expected


def test_stop_wins_even_after_expiry() -> None:
    survey = _survey()
    state = start(survey, now=NOW).state
    step = resume(survey, state, Input("STOP"), NOW + timedelta(days=30))
    assert step.state.status is Status.OPTED_OUT
    assert [m.kind for m in step.messages] == [MessageKind.OPT_OUT]


def test_pressed_button_wins_over_a_label_that_looks_like_a_keyword() -> None:
    survey = _survey(
        questions=(
            Question(
                "q1",
                QuestionType.SELECT_ONE,
                {"sv": "Vad vill du ha?"},
                choices=(Choice("info", {"sv": "Info"}), Choice("call", {"sv": "Samtal"})),
            ),
        )
    )
    state = start(survey, now=NOW).state
    step = resume(survey, state, Input("Info", "choice:info"), NOW)
    assert step.state.answers == {"q1": "info"}
    typed = resume(survey, state, Input("Info"), NOW)
    assert typed.state.answers == {}
    assert typed.messages[0].text.startswith("Det här är en enkät.")


# --- start, expire, close -----------------------------------------------------------------------

LANGUAGE_CASES: list[tuple[tuple[str, ...], str | None, str]] = [
    (("sv", "en"), None, "sv"),
    (("sv", "en"), "en", "en"),
    (("sv", "en"), "EN-us", "en"),
    (("sv", "en"), "en_GB", "en"),
    (("sv", "en"), "sv-x-lattlast", "sv"),
    (("sv-x-lattlast", "en"), "sv", "sv-x-lattlast"),
    (("sv", "sv-x-lattlast"), "sv-x-lattlast", "sv-x-lattlast"),
    (("sv", "en"), "fi", "sv"),
    (("en", "ar"), "", "en"),
]


@pytest.mark.parametrize(("languages", "asked", "expected"), LANGUAGE_CASES)
def test_pick_language(languages: tuple[str, ...], asked: str | None, expected: str) -> None:
    assert pick_language(_survey(languages=languages), asked) == expected


def test_start_sends_intro_with_results_use_then_the_first_question() -> None:
    survey = _survey(results_use={"sv": "Resultaten visas i juni.", "en": "Results in June."})
    step = start(survey, now=NOW, lang="en")
    assert [render_text(m) for m in step.messages] == [
        "Hi!\n\nResults in June.",
        "Happy?\n1. Yes\n2. No",
    ]
    assert [e.kind for e in step.events] == [EventKind.STARTED]
    assert step.events[0].lang == "en"
    question = step.messages[1]
    assert question.buttons == (Button("choice:yes", "Yes"), Button("choice:no", "No"))
    assert question.question_id == "q1" and question.kind is MessageKind.QUESTION
    state = step.state
    assert (state.survey_id, state.survey_version, state.lang) == ("s", 3, "en")
    assert (state.status, state.current, state.awaiting) == (Status.ACTIVE, "q1", Awaiting.ANSWER)
    assert state.started_at == state.last_activity_at == NOW
    assert state.expires_at == NOW + timedelta(hours=1)


def test_every_resume_pushes_expiry() -> None:
    survey = _survey()
    state = start(survey, now=NOW).state
    later = NOW + timedelta(minutes=50)
    step = resume(survey, state, Input("nonsense"), later)
    assert step.state.last_activity_at == later
    assert step.state.expires_at == later + timedelta(hours=1)


def test_a_survey_without_answerable_questions_completes_at_start() -> None:
    survey = _survey(questions=(Question("m", QuestionType.MESSAGE, {"sv": "Info"}),), thanks={})
    step = start(survey, now=NOW)
    assert [m.text for m in step.messages] == ["Hej!", "Info", "Tack för dina svar!"]
    assert step.state.status is Status.COMPLETED
    assert [e.kind for e in step.events] == [EventKind.STARTED, EventKind.COMPLETED]


@pytest.mark.parametrize(
    ("end", "status", "event"),
    [(expire, Status.EXPIRED, EventKind.EXPIRED), (close, Status.CLOSED, EventKind.CLOSED)],
)
def test_expire_and_close(end: object, status: Status, event: EventKind) -> None:
    survey = _survey()
    state = start(survey, now=NOW).state
    step = end(survey, state, NOW)  # type: ignore[operator]
    assert step.state.status is status and step.state.current is None
    assert step.messages == () and [e.kind for e in step.events] == [event]
    again = end(survey, step.state, NOW)  # type: ignore[operator]
    assert again.state == step.state and again.events == ()


def test_resume_on_a_finished_conversation_is_a_no_op() -> None:
    survey = _survey()
    finished = close(survey, start(survey, now=NOW).state, NOW).state
    step = resume(survey, finished, Input("Ja"), NOW)
    assert step.state == finished
    assert (step.messages, step.answers, step.events) == ((), (), ())


def test_a_stored_conversation_whose_question_was_removed_continues() -> None:
    survey = _survey()
    state = start(survey, now=NOW).state.evolve(current="gone", history=("q1",))
    step = resume(survey, state, Input("hej"), NOW)
    assert step.state.current == "q2"
    assert render_text(step.messages[-1]) == "Mer?"


# --- built-in messages --------------------------------------------------------------------------


@pytest.mark.parametrize("lang", [*BUILT_IN_LANGUAGES, "sv-x-lattlast", "fi"])
def test_notices_exist_in_every_language(lang: str) -> None:
    notices = [
        closed_notice(lang),
        expired_notice(lang),
        opted_out_confirmation(lang),
        opted_in_confirmation(lang),
        help_message(None, lang),
    ]
    assert all(m.text and "{" not in m.text for m in notices)
    assert opted_out_confirmation(lang).kind is MessageKind.OPT_OUT


def test_help_names_the_sender_in_the_persons_language() -> None:
    survey = _survey(sender={"sv": "Malmö stad", "en": "City of Malmö"})
    assert help_message(survey, "en").text.startswith("This survey is from City of Malmö.")
    assert help_message(survey, "ar").text.startswith("هذا الاستبيان من Malmö stad.")


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_exists_in_sv_en_ar_with_the_same_params(key: str) -> None:
    variants = TEXTS[key]
    assert set(BUILT_IN_LANGUAGES) <= set(variants)
    params = _placeholders(variants["sv"])
    for lang in BUILT_IN_LANGUAGES:
        assert _placeholders(variants[lang]) == params, lang
        formatted = text(key, lang, **{name: 7 for name in params})
        assert formatted.strip() and "{" not in formatted
        assert len(formatted) <= 160, (key, lang)


def test_text_falls_back_to_the_base_language_then_swedish() -> None:
    assert text("thanks_default", "sv-x-lattlast") == TEXTS["thanks_default"]["sv"]
    assert text("thanks_default", "en-GB") == TEXTS["thanks_default"]["en"]
    assert text("thanks_default", "so") == TEXTS["thanks_default"]["sv"]
    with pytest.raises(KeyError):
        text("reprompt_scale", "sv")


def test_language_names() -> None:
    assert [language_name(c) for c in ("sv", "en", "ar", "sv-x-lattlast", "en-GB", "xx")] == [
        "Svenska",
        "English",
        "العربية",
        "Lättläst svenska",
        "English",
        "xx",
    ]


# --- rendering ----------------------------------------------------------------------------------

RENDER_CASES: list[tuple[OutMessage, str]] = [
    (OutMessage("Hej"), "Hej"),
    (OutMessage("Nöjd?", numbered=("Ja", "Nej")), "Nöjd?\n1. Ja\n2. Nej"),
    (
        OutMessage(
            "Hur var det?",
            buttons=tuple(Button(f"scale:{n}", s) for n, s in enumerate("😞🙁😐🙂😀", 1)),
            numbered=tuple("😞🙁😐🙂😀"),
        ),
        "Hur var det?\n1 😞  2 🙁  3 😐  4 🙂  5 😀",
    ),
    (
        OutMessage(
            "0 till 3?",
            buttons=tuple(Button(f"scale:{n}", str(n)) for n in range(4)),
            numbered=("0", "1", "2", "3"),
        ),
        "0 till 3?\n0-3",
    ),
    (
        OutMessage(
            "0 till 10?",
            buttons=tuple(Button(f"scale:{n}", str(n)) for n in range(11)),
            numbered=tuple(str(n) for n in range(11)),
        ),
        "0 till 10?\n0-10",
    ),
    (
        OutMessage("Språk?", buttons=(Button("lang:sv", "Svenska"),), numbered=("Svenska",)),
        "Språk?\n1. Svenska",
    ),
    (OutMessage("", numbered=("a",)), "1. a"),
]


@pytest.mark.parametrize(("message", "expected"), RENDER_CASES)
def test_render_text(message: OutMessage, expected: str) -> None:
    assert render_text(message) == expected
    assert render_text(message) == render_text(message)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (Question("n", QuestionType.NUMERIC, {"sv": "Ålder?"}, min=6, max=17), "Ålder?\n6-17"),
        (Question("n", QuestionType.NUMERIC, {"sv": "Från 0 till 10?"}, min=0, max=10), None),
        (Question("n", QuestionType.NUMERIC, {"sv": "Hur många?"}, min=0), None),
        (
            Question("n", QuestionType.NUMERIC, {"sv": "1 till 100?"}, min=1, max=10),
            "1 till 100?\n1-10",
        ),
    ],
)
def test_a_numeric_question_shows_its_range_unless_its_text_does(
    question: Question, expected: str | None
) -> None:
    survey = _survey(questions=(question,))
    rendered = render_text(question_message(survey, question, "sv"))
    assert rendered == (expected or localize_sv(question))


def localize_sv(question: Question) -> str:
    return question.text["sv"]


def test_swedish_and_english_texts_stay_in_gsm7() -> None:
    for key, variants in TEXTS.items():
        for lang in ("sv", "en"):
            sample = variants[lang].format(**{n: 7 for n in _placeholders(variants[lang])})
            assert segment_info(sample).encoding == "GSM-7", (key, lang, sample)


def test_a_language_button_from_an_earlier_menu_still_switches() -> None:
    survey = _survey()
    state = start(survey, now=NOW).state
    step = resume(survey, state, Input("English", "lang:en"), NOW)
    assert step.state.lang == "en" and step.state.current == "q1"
    assert [e.kind for e in step.events] == [EventKind.LANGUAGE_CHANGED]
    assert render_text(step.messages[0]) == "Happy?\n1. Yes\n2. No"
