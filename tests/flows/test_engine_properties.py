"""Property tests: from any reachable state, any input leaves the engine in a valid state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.conversation import Awaiting, ConversationState, Input, Status
from flows.engine import resume, start
from flows.model import Choice, Question, QuestionType, Survey
from flows.render import render_text
from tests.flows.scenario_runner import check_invariants

NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)

YES_NO = (Choice("yes", {"sv": "Ja", "en": "Yes", "ar": "نعم"}), Choice("no", {"sv": "Nej"}))
REASONS = (
    Choice("time", {"sv": "Tid", "en": "Time"}),
    Choice("staff", {"sv": "Personal, ofta", "en": "Staff"}),
    Choice("place", {"sv": "Plats", "ar": "مكان"}),
)

FULL = Survey(
    id="full",
    version=1,
    languages=("sv", "en", "ar", "sv-x-lattlast"),
    title={"sv": "Allt"},
    intro={"sv": "Hej!", "en": "Hi!", "ar": "مرحباً"},
    thanks={"sv": "Tack!"},
    sender={"sv": "Malmö stad"},
    results_use={"sv": "Resultaten visas i juni."},
    max_retries=3,
    expires_after=3600,
    questions=(
        Question("welcome", QuestionType.MESSAGE, {"sv": "Svaren är anonyma."}),
        Question("helped", QuestionType.SELECT_ONE, {"sv": "Fick du hjälp?"}, choices=YES_NO),
        Question(
            "why",
            QuestionType.SELECT_MANY,
            {"sv": "Varför?"},
            choices=REASONS,
            required=False,
            show_if="helped == 'yes'",
        ),
        Question("visits", QuestionType.NUMERIC, {"sv": "Antal besök?"}, min=0, max=99),
        Question("mood", QuestionType.SCALE, {"sv": "Humör?"}, style="smileys", required=False),
        Question("nps", QuestionType.SCALE, {"sv": "0-10?"}, min=0, max=10, show_if="mood <= 2"),
        Question("when", QuestionType.DATE, {"sv": "När?"}, required=False),
        Question("more", QuestionType.OPEN, {"sv": "Mer?"}, max_length=50),
        Question("bye", QuestionType.MESSAGE, {"sv": "Hej då."}),
    ),
)

TINY = Survey(
    id="tiny",
    version=2,
    languages=("sv",),
    title={"sv": "Liten"},
    intro={},
    thanks={},
    max_retries=0,
    expires_after=600,
    questions=(
        Question("q", QuestionType.SELECT_ONE, {"sv": "Ja?"}, choices=YES_NO),
        Question("o", QuestionType.OPEN, {"sv": "Mer?"}, required=False),
    ),
)

MEANINGFUL = [
    "1", "2", "3", "1 3", "1, 2", "2 och 3", "٢", "7", "-1", "100", "😀", "🙂", ":)", "5/3",
    "2024-03-05", "idag", "ja", "Nej", "tid, plats", "STOPP", "stop", "hjälp", "HELP", "hoppa",
    "skip", "tillbaka", "back", "språk", "language", "لغة", "رجوع", "تخطي", "توقف", "börja",
    "START", "English", "العربية", "lättläst", "svenska", "4", "0", "",
]  # fmt: skip
PAYLOADS = [
    "choice:yes", "choice:no", "choice:time", "choices:time,place", "choices:", "scale:3",
    "scale:99", "lang:en", "lang:ar", "lang:xx", "choice:", ":", "lang:sv-x-lattlast",
]  # fmt: skip

garbage = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.text(alphabet="٠١٢٣٤٥٦٧٨٩ ,،و", max_size=20),
    st.text(
        alphabet="\u200f\u200e\u202e\x00\x1b\r\n\t😀🙂👍🏽\ufe0fءآأؤإئابةتثجحخدذر", max_size=20
    ),
    st.sampled_from(["9" * 10_000, "٣" * 10_000, "1 " * 5_000, "😀" * 3_000, "a, " * 3_400]),
    st.text(max_size=8).map(lambda s: (s or "x") * (10_240 // max(len(s), 1))),
)
texts = st.one_of(st.sampled_from(MEANINGFUL), garbage)
payloads = st.one_of(st.none(), st.sampled_from(PAYLOADS), st.text(max_size=40))
inputs = st.builds(Input, texts, payloads)
# Mostly quick replies (TINY expires after a minute); now and then a reply days later.
gaps = st.one_of(*[st.integers(0, 300)] * 7, st.integers(0, 200_000))


def _check_step_output(survey: Survey, state: ConversationState) -> None:
    check_invariants(survey, state)
    if state.status is Status.ACTIVE and state.awaiting is Awaiting.LANGUAGE:
        assert len(survey.languages) > 1
    assert state.lang in survey.languages


def _likely_answers(survey: Survey, state: ConversationState) -> list[Input]:
    """Inputs that probably answer the current question, to reach deep states more often."""
    question = survey.question(state.current) if state.current else None
    if question is None:
        return [Input("1")]
    found = [Input(str(n)) for n in range(question.scale_range[0], question.scale_range[0] + 3)]
    found += [Input("", f"choice:{c.id}") for c in question.choices]
    found += [Input(label) for c in question.choices for label in c.text.values()]
    found += [Input("1 2"), Input("", "scale:3"), Input("5/3"), Input("Bra"), Input("hoppa")]
    return found


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    survey=st.sampled_from([FULL, TINY]),
    lang=st.one_of(st.none(), st.sampled_from(["sv", "en", "ar", "en-GB", "sv-x-lattlast", "fi"])),
    length=st.integers(0, 14),
    data=st.data(),
)
def test_any_input_from_any_reachable_state_is_handled(
    survey: Survey, lang: str | None, length: int, data: st.DataObject
) -> None:
    now = NOW
    step = start(survey, now=now, lang=lang)
    _check_step_output(survey, step.state)
    for _ in range(length):
        likely = st.sampled_from(_likely_answers(survey, step.state))
        inp = data.draw(st.one_of(likely, inputs))
        now += timedelta(seconds=data.draw(gaps))
        before = step.state
        step = resume(survey, before, inp, now)
        _check_step_output(survey, step.state)
        if before.status.finished:
            assert step.state == before and not step.messages and not step.answers
        for message in step.messages:
            assert render_text(message).strip()
        for recorded in step.answers:
            question = survey.question(recorded.question_id)
            assert question is not None and question.type is not QuestionType.MESSAGE
            if recorded.skipped:
                assert recorded.value is None and not question.required
            elif question.type is QuestionType.SELECT_ONE:
                assert question.choice(str(recorded.value)) is not None
            elif question.type is QuestionType.SELECT_MANY:
                assert isinstance(recorded.value, list) and recorded.value
                assert all(question.choice(v) is not None for v in recorded.value)
            elif question.type in (QuestionType.NUMERIC, QuestionType.SCALE):
                low, high = question.scale_range
                assert isinstance(recorded.value, int) and low <= recorded.value <= high
            elif question.type is QuestionType.OPEN:
                assert isinstance(recorded.value, str) and recorded.value
                assert len(recorded.value) <= (question.max_length or 1000)
                assert "\x00" not in recorded.value
            elif question.type is QuestionType.DATE:
                assert isinstance(recorded.value, str)
                datetime.strptime(recorded.value, "%Y-%m-%d")
