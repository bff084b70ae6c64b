"""The conversation engine: pure and synchronous, `(survey, state, input, now) -> Step`.

Why one module: the steps of a conversation hand over to each other (keywords, the language menu,
questions, the end), so the state machine is read in one file.

No I/O, no clock (`now` is a parameter), no randomness. The caller stores `Step.state`, sends
`Step.messages`, records `Step.answers` and `Step.events`, and arranges expiry itself.

Keywords work at any point as a whole message (see `classify_keyword`). STOP always wins, even
after the conversation expired: the person asked for no more messages. An input that arrives
at or after `expires_at` gets the expired notice and ends the conversation as EXPIRED."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from flows.answers import (
    LANG_PREFIX,
    Invalid,
    ParseContext,
    Parsed,
    lang_payload,
    normalize,
    parse_int,
)
from flows.conversation import (
    Awaiting,
    Button,
    ConversationState,
    Event,
    EventKind,
    Input,
    MessageKind,
    OutMessage,
    RecordedAnswer,
    Status,
    Step,
)
from flows.expr import Expr, ExprError, compile_expr
from flows.model import Question, Survey, base_language, localize
from flows.texts import LANGUAGE_ALIASES, language_name, text
from flows.types import kind_of, parse_answer

__all__ = [
    "Keyword",
    "classify_keyword",
    "close",
    "closed_notice",
    "expire",
    "expired_notice",
    "help_message",
    "opted_in_confirmation",
    "opted_out_confirmation",
    "pick_language",
    "question_message",
    "resume",
    "start",
]


class Keyword(StrEnum):
    """A whole-message command that works at any point of a conversation."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    SKIP = "skip"
    BACK = "back"
    LANGUAGE = "language"


_KEYWORD_WORDS: Final[Mapping[Keyword, tuple[str, ...]]] = {
    Keyword.STOP: (
        "stop", "stopp", "stopall", "sluta", "avsluta", "avbryt", "unsubscribe", "cancel",
        "quit", "end", "توقف", "إيقاف", "أوقف", "قف", "إلغاء",
    ),
    Keyword.START: ("start", "börja", "starta", "unstop", "ابدأ", "بدء"),
    Keyword.HELP: ("hjälp", "help", "info", "مساعدة", "ساعدني"),
    Keyword.SKIP: ("hoppa", "hoppa över", "skip", "تخطي", "تخطى"),
    Keyword.BACK: ("tillbaka", "bakåt", "back", "go back", "رجوع", "ارجع"),
    Keyword.LANGUAGE: ("språk", "language", "لغة", "اللغة"),
}  # fmt: skip
_KEYWORDS: Final[Mapping[str, Keyword]] = {
    normalize(word): keyword for keyword, words in _KEYWORD_WORDS.items() for word in words
}
_LONGEST_KEYWORD: Final = 40


def classify_keyword(text: str) -> Keyword | None:
    """The keyword the whole message is (case, diacritics and punctuation do not matter)."""
    if len(text) > _LONGEST_KEYWORD:
        return None
    return _KEYWORDS.get(normalize(text))


# --- built-in messages --------------------------------------------------------------------------


def closed_notice(lang: str) -> OutMessage:
    """The reply to an answer that arrives after the survey closed."""
    return OutMessage(text("closed", lang), MessageKind.INFO)


def expired_notice(lang: str) -> OutMessage:
    """The reply to an answer that arrives after the conversation expired."""
    return OutMessage(text("expired", lang), MessageKind.INFO)


def opted_out_confirmation(lang: str) -> OutMessage:
    """Confirms STOP and says how to start again."""
    return OutMessage(text("opted_out", lang), MessageKind.OPT_OUT)


def opted_in_confirmation(lang: str) -> OutMessage:
    """Confirms START after an opt-out."""
    return OutMessage(text("opted_in", lang), MessageKind.INFO)


def help_message(survey: Survey | None, lang: str) -> OutMessage:
    """Who is asking and which commands work (SKIP, BACK, LANGUAGE, STOP)."""
    sender = localize(survey.sender, lang, survey.default_language) if survey else ""
    who = text("help_sender", lang, sender=sender) if sender else text("help_no_sender", lang)
    return OutMessage(f"{who} {text('help_commands', lang)}", MessageKind.INFO)


def survey_menu(surveys: Sequence[Survey], lang: str) -> OutMessage:
    """What to send someone who writes outside a survey: the surveys they can start by keyword."""
    offered = [s for s in surveys if s.keywords]
    if not offered:
        return OutMessage(text("no_surveys", lang), MessageKind.INFO)
    lines = [
        f"{s.keywords[0]}: {localize(s.title, pick_language(s, lang), s.default_language)}"
        for s in offered
    ]
    return OutMessage(
        "\n".join([text("survey_menu", lang), *lines]),
        MessageKind.INFO,
        buttons=tuple(
            Button(f"survey:{s.id}", localize(s.title, pick_language(s, lang), s.default_language))
            for s in offered
        ),
    )


def repeat(survey: Survey, state: ConversationState, now: datetime) -> Step:
    """Ask the current question again, e.g. when the person moved to another channel."""
    if state.status.finished:
        return Step(state)
    state = _touch(survey, state, now)
    out = _Out()
    question = survey.question(state.current) if state.current else None
    if question is None or state.awaiting is not Awaiting.ANSWER:
        state = state.evolve(awaiting=Awaiting.ANSWER)
        return out.step(_advance_unanswered(survey, state, out))
    out.messages.append(_question_message(survey, question, state.lang))
    return out.step(state)


# --- languages ----------------------------------------------------------------------------------


def pick_language(survey: Survey, lang: str | None) -> str:
    """The survey language for a requested one: exact, else same base language, else default."""
    if not lang:
        return survey.default_language
    wanted = lang.strip().replace("_", "-").lower()
    by_lower = {code.lower(): code for code in survey.languages}
    if wanted in by_lower:
        return by_lower[wanted]
    base = base_language(wanted)
    if base in by_lower:
        return by_lower[base]
    for code in survey.languages:
        if base_language(code.lower()) == base:
            return code
    return survey.default_language


def _language_from_input(survey: Survey, inp: Input) -> str | None:
    if inp.payload is not None and inp.payload.startswith(LANG_PREFIX):
        code = inp.payload.removeprefix(LANG_PREFIX)
        if code in survey.languages:
            return code
    normalized = normalize(inp.text) if len(inp.text) <= 100 else ""
    if not normalized:
        return None
    number = parse_int(normalized)
    if number is not None:
        return survey.languages[number - 1] if 1 <= number <= len(survey.languages) else None
    for code in survey.languages:
        names = (code, language_name(code), *LANGUAGE_ALIASES.get(code, ()))
        if any(normalize(name) == normalized for name in names):
            return code
    return None


def _language_menu(survey: Survey, lang: str) -> OutMessage:
    names = tuple(language_name(code) for code in survey.languages)
    return OutMessage(
        text("language_menu", lang),
        MessageKind.QUESTION,
        buttons=tuple(
            Button(lang_payload(code), name)
            for code, name in zip(survey.languages, names, strict=True)
        ),
        numbered=names,
    )


# --- questions ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compiled(source: str) -> Expr | None:
    try:
        return compile_expr(source)
    except ExprError:
        return None


def _shown(question: Question, answers: Mapping[str, object]) -> bool:
    if not question.show_if:
        return True
    expr = _compiled(question.show_if)
    # The loader rejects bad expressions; should one slip through, asking beats silently skipping.
    return expr is None or expr.evaluate(answers)


def _question_message(
    survey: Survey,
    question: Question,
    lang: str,
    *,
    kind: MessageKind = MessageKind.QUESTION,
    lead: str = "",
) -> OutMessage:
    kind_ = kind_of(question)
    body = kind_.decorate(localize(question.text, lang, survey.default_language), question, lang)
    if lead:
        body = f"{lead}\n{body}"
    buttons, numbered = kind_.options(survey, question, lang)
    return OutMessage(
        body,
        kind,
        buttons=buttons,
        numbered=numbered,
        question_id=question.id,
        multiple=kind_.multiple,
    )


def question_message(survey: Survey, question: Question, lang: str) -> OutMessage:
    """The message that asks `question` in `lang`; the loader counts its SMS segments."""
    return _question_message(survey, question, lang)


# --- steps --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Out:
    """What one step sends and records, collected while the step runs."""

    messages: list[OutMessage] = field(default_factory=list)
    answers: list[RecordedAnswer] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def step(self, state: ConversationState) -> Step:
        return Step(state, tuple(self.messages), tuple(self.answers), tuple(self.events))


def _touch(survey: Survey, state: ConversationState, now: datetime) -> ConversationState:
    return state.evolve(
        last_activity_at=now, expires_at=now + timedelta(seconds=survey.expires_after)
    )


def _finish(state: ConversationState, status: Status) -> ConversationState:
    return state.evolve(status=status, current=None, retries=0, awaiting=Awaiting.ANSWER)


def _advance(survey: Survey, state: ConversationState, index: int, out: _Out) -> ConversationState:
    """Ask the first applicable question from `index` on (sending message questions on the way)."""
    for question in survey.questions[index:]:
        if not _shown(question, state.answers):
            continue
        if not kind_of(question).records:
            out.messages.append(
                OutMessage(
                    localize(question.text, state.lang, survey.default_language),
                    MessageKind.INFO,
                    question_id=question.id,
                )
            )
            continue
        out.messages.append(_question_message(survey, question, state.lang))
        return state.evolve(current=question.id, retries=0, awaiting=Awaiting.ANSWER)
    thanks = localize(survey.thanks, state.lang, survey.default_language)
    out.messages.append(
        OutMessage(thanks or text("thanks_default", state.lang), MessageKind.THANKS)
    )
    out.events.append(Event(EventKind.COMPLETED))
    return _finish(state, Status.COMPLETED)


def start(survey: Survey, *, now: datetime, lang: str | None = None) -> Step:
    """Start a conversation: the intro (with how results are used), then the first question."""
    chosen = pick_language(survey, lang)
    state = ConversationState(
        survey_id=survey.id,
        survey_version=survey.version,
        lang=chosen,
        status=Status.ACTIVE,
        current=None,
        started_at=now,
        last_activity_at=now,
        expires_at=now + timedelta(seconds=survey.expires_after),
    )
    out = _Out(events=[Event(EventKind.STARTED, lang=chosen)])
    parts = [localize(survey.intro, chosen, survey.default_language)]
    if survey.results_use:
        parts.append(localize(survey.results_use, chosen, survey.default_language))
    intro = "\n\n".join(p for p in parts if p)
    if intro:
        out.messages.append(OutMessage(intro, MessageKind.INFO))
    return out.step(_advance(survey, state, 0, out))


def expire(survey: Survey, state: ConversationState, now: datetime) -> Step:
    """End a silent conversation as EXPIRED (no messages); a finished one is left as it is."""
    if state.status.finished:
        return Step(state)
    return Step(_finish(state, Status.EXPIRED), events=(Event(EventKind.EXPIRED),))


def close(survey: Survey, state: ConversationState, now: datetime) -> Step:
    """End a conversation as CLOSED because its campaign ended; a finished one is left as it is."""
    if state.status.finished:
        return Step(state)
    return Step(_finish(state, Status.CLOSED), events=(Event(EventKind.CLOSED),))


def resume(survey: Survey, state: ConversationState, inp: Input, now: datetime) -> Step:
    """Handle one inbound message; a finished conversation is returned unchanged (no messages)."""
    if state.status.finished:
        return Step(state)
    keyword = classify_keyword(inp.text)
    out = _Out()
    if keyword is Keyword.STOP:
        out.messages.append(opted_out_confirmation(state.lang))
        out.events.append(Event(EventKind.OPTED_OUT))
        return out.step(_finish(_touch(survey, state, now), Status.OPTED_OUT))
    if now >= state.expires_at:
        out.messages.append(expired_notice(state.lang))
        out.events.append(Event(EventKind.EXPIRED))
        return out.step(_finish(state, Status.EXPIRED))
    state = _touch(survey, state, now)
    question = survey.question(state.current) if state.current else None
    if question is None:
        # The survey changed under a stored conversation: continue at the first unanswered one.
        state = state.evolve(awaiting=Awaiting.ANSWER)
        return out.step(_advance_unanswered(survey, state, out))
    if state.awaiting is Awaiting.LANGUAGE:
        return out.step(_on_language_input(survey, state, question, inp, keyword, out))
    return out.step(_on_answer_input(survey, state, question, inp, keyword, now, out))


def _advance_unanswered(survey: Survey, state: ConversationState, out: _Out) -> ConversationState:
    done = set(state.history) | set(state.answers)
    for index, question in enumerate(survey.questions):
        if question.id not in done and kind_of(question).records:
            return _advance(survey, state, index, out)
    return _advance(survey, state, len(survey.questions), out)


def _on_answer_input(
    survey: Survey,
    state: ConversationState,
    question: Question,
    inp: Input,
    keyword: Keyword | None,
    now: datetime,
    out: _Out,
) -> ConversationState:
    ctx = ParseContext(state.lang, now.date())
    if inp.payload is not None:
        # A pressed button wins over its label, which may look like a keyword ("Info").
        pressed = parse_answer(question, Input(payload=inp.payload), ctx)
        if isinstance(pressed, Parsed):
            return _accept(survey, state, question, pressed, out)
        # A language button from an earlier menu still switches language.
        chosen = _language_from_input(survey, Input(payload=inp.payload))
        if chosen is not None:
            return _switch_language(survey, state, question, chosen, out)
    match keyword:
        case Keyword.HELP:
            out.messages.append(help_message(survey, state.lang))
            out.messages.append(_question_message(survey, question, state.lang))
            return state
        case Keyword.START:
            out.messages.append(_question_message(survey, question, state.lang))
            return state
        case Keyword.SKIP:
            if question.required:
                out.messages.append(
                    _question_message(
                        survey, question, state.lang, lead=text("cannot_skip", state.lang)
                    )
                )
                return state
            return _skip(survey, state, question, out)
        case Keyword.BACK:
            return _back(survey, state, question, out)
        case Keyword.LANGUAGE:
            if len(survey.languages) < 2:
                only = text(
                    "only_one_language", state.lang, language=language_name(survey.languages[0])
                )
                out.messages.append(_question_message(survey, question, state.lang, lead=only))
                return state
            out.messages.append(_language_menu(survey, state.lang))
            return state.evolve(awaiting=Awaiting.LANGUAGE, retries=0)
    result = parse_answer(question, Input(text=inp.text), ctx)
    if isinstance(result, Parsed):
        return _accept(survey, state, question, result, out)
    return _reject(survey, state, question, result, out)


def _accept(
    survey: Survey, state: ConversationState, question: Question, parsed: Parsed, out: _Out
) -> ConversationState:
    out.answers.append(RecordedAnswer(question.id, parsed.value))
    if parsed.shortened_to is not None:
        out.messages.append(
            OutMessage(
                text("answer_shortened", state.lang, max_length=parsed.shortened_to),
                MessageKind.INFO,
                question_id=question.id,
            )
        )
    state = state.evolve(
        answers={**state.answers, question.id: parsed.value},
        history=(*state.history, question.id),
        retries=0,
    )
    return _advance(survey, state, survey.index_of(question.id) + 1, out)


def _skip(
    survey: Survey, state: ConversationState, question: Question, out: _Out
) -> ConversationState:
    out.answers.append(RecordedAnswer(question.id, None, skipped=True))
    state = state.evolve(
        answers={k: v for k, v in state.answers.items() if k != question.id},
        history=(*state.history, question.id),
        retries=0,
    )
    return _advance(survey, state, survey.index_of(question.id) + 1, out)


def _reject(
    survey: Survey, state: ConversationState, question: Question, invalid: Invalid, out: _Out
) -> ConversationState:
    if state.retries < survey.max_retries:
        lead = text(invalid.reason, state.lang, **invalid.params)
        out.messages.append(
            _question_message(survey, question, state.lang, kind=MessageKind.REPROMPT, lead=lead)
        )
        return state.evolve(retries=state.retries + 1)
    if not question.required:
        out.messages.append(OutMessage(text("moving_on", state.lang), MessageKind.INFO))
        return _skip(survey, state, question, out)
    out.messages.append(OutMessage(text("ended", state.lang), MessageKind.INFO))
    out.events.append(Event(EventKind.ENDED, question_id=question.id))
    return _finish(state, Status.ENDED)


def _back(
    survey: Survey, state: ConversationState, question: Question, out: _Out
) -> ConversationState:
    previous = survey.question(state.history[-1]) if state.history else None
    if previous is None:
        lead = text("nothing_to_go_back_to", state.lang)
        out.messages.append(_question_message(survey, question, state.lang, lead=lead))
        return state
    out.events.append(Event(EventKind.ANSWER_RETRACTED, question_id=previous.id))
    out.messages.append(_question_message(survey, previous, state.lang))
    return state.evolve(
        current=previous.id,
        history=state.history[:-1],
        answers={k: v for k, v in state.answers.items() if k != previous.id},
        retries=0,
    )


def _switch_language(
    survey: Survey, state: ConversationState, question: Question, lang: str, out: _Out
) -> ConversationState:
    out.events.append(Event(EventKind.LANGUAGE_CHANGED, question_id=question.id, lang=lang))
    out.messages.append(_question_message(survey, question, lang))
    return state.evolve(lang=lang, awaiting=Awaiting.ANSWER, retries=0)


def _on_language_input(
    survey: Survey,
    state: ConversationState,
    question: Question,
    inp: Input,
    keyword: Keyword | None,
    out: _Out,
) -> ConversationState:
    chosen = _language_from_input(survey, inp)
    if chosen is not None:
        return _switch_language(survey, state, question, chosen, out)
    match keyword:
        case Keyword.HELP:
            out.messages.append(help_message(survey, state.lang))
            out.messages.append(_language_menu(survey, state.lang))
            return state
        case Keyword.LANGUAGE:
            out.messages.append(_language_menu(survey, state.lang))
            return state
        case Keyword.BACK | Keyword.SKIP | Keyword.START:
            # Leaving the menu: back to the question, in the language it was in.
            out.messages.append(_question_message(survey, question, state.lang))
            return state.evolve(awaiting=Awaiting.ANSWER, retries=0)
    if state.retries < survey.max_retries:
        out.messages.append(_language_menu(survey, state.lang))
        return state.evolve(retries=state.retries + 1)
    # The menu is not working out; keep the language and carry on with the question.
    out.messages.append(_question_message(survey, question, state.lang))
    return state.evolve(awaiting=Awaiting.ANSWER, retries=0)
