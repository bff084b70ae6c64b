"""The loaded surveys, the problems in their files, and a try-out that runs the real engine
(page 7 of issue 9).

A try-out is an in-memory run of `flows.engine` (the same `start`/`resume` every channel's
turns call): nothing of it touches the database, so it can never be counted as an answer, sent
to anyone or show up in results. Its state travels in the page's form as a signed token (HMAC
with a key made when the process starts): a token that was changed, comes from before a
restart or is for another survey is refused as "start again", never trusted."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from bot.survey_files import load_paths
from flows import engine
from flows.conversation import ConversationState, Input, OutMessage
from flows.loader import Problem
from flows.model import Survey, localize
from flows.render import render_text
from flows.segments import segment_info

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "SurveyRow",
    "TrialError",
    "TrialLine",
    "TrialRun",
    "file_problems",
    "survey_rows",
    "trial_answer",
    "trial_start",
]

_KEY: Final = secrets.token_bytes(32)
MAX_LINES: Final = 40
"""Lines of a try-out's transcript kept in its token (older ones scroll away)."""
MAX_INPUT: Final = 1000


class TrialError(Exception):
    """A try-out that cannot go on (stale or changed token, unknown survey or language)."""


@dataclass(frozen=True, slots=True)
class SurveyRow:
    """One survey in the surveys list: its latest version, title and question count."""

    survey: Survey
    version_id: int
    title: str
    questions: int

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the survey is written in, default first."""
        return self.survey.languages


def survey_rows(runtime: Runtime, lang: str) -> list[SurveyRow]:
    """The surveys the service serves (the newest version of each), titles in `lang`."""
    rows = []
    for survey in runtime.catalog.surveys:
        entry = runtime.catalog.latest(survey.id)
        if entry is None:
            continue
        rows.append(
            SurveyRow(
                survey,
                entry.version_id,
                localize(survey.title, lang, survey.default_language),
                len(survey.questions),
            )
        )
    return rows


def file_problems(runtime: Runtime) -> list[Problem]:
    """What is wrong in the survey files as they are now (a broken file is not served)."""
    settings = runtime.settings
    result = load_paths(
        list(settings.surveys.resolved_paths),
        placeholders=settings.organisation.placeholders(),
    )
    return list(result.problems)


# -- try-outs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialLine:
    """One line of a try-out's transcript."""

    who: str
    """"bot" or "me"."""
    text: str
    sms: str = ""
    """The message as an SMS gets it (numbered choices), bot lines only."""
    segments: int = 0
    encoding: str = ""
    buttons: tuple[tuple[str, str], ...] = ()
    """(payload, label) of the buttons a chat shows."""


@dataclass(frozen=True, slots=True)
class TrialRun:
    """A try-out of a survey on the staff page: the exchange so far and the answers recorded."""

    survey: Survey
    lang: str
    lines: tuple[TrialLine, ...]
    finished: bool
    status: str
    token: str
    answers: tuple[tuple[str, str], ...]
    """(question id, value) as the engine recorded them: what a real run would store."""

    @property
    def buttons(self) -> tuple[tuple[str, str], ...]:
        """The buttons of the last bot message, while the try-out goes on."""
        if self.finished:
            return ()
        for line in reversed(self.lines):
            if line.who == "bot":
                return line.buttons
        return ()


def _bot_line(message: OutMessage) -> TrialLine:
    sms = render_text(message)
    info = segment_info(sms)
    return TrialLine(
        "bot",
        message.text,
        sms,
        info.segments,
        info.encoding,
        tuple((b.payload, b.label) for b in message.buttons),
    )


def _line_json(line: TrialLine) -> dict[str, Any]:
    return {
        "w": line.who,
        "t": line.text,
        "s": line.sms,
        "n": line.segments,
        "e": line.encoding,
        "b": [list(b) for b in line.buttons],
    }


def _line_from(data: Any) -> TrialLine:
    return TrialLine(
        str(data["w"]),
        str(data["t"]),
        str(data.get("s", "")),
        int(data.get("n", 0)),
        str(data.get("e", "")),
        tuple((str(p), str(label)) for p, label in data.get("b", [])),
    )


def _sign(body: bytes) -> str:
    return hmac.new(_KEY, body, hashlib.sha256).hexdigest()


def _token(survey: Survey, state: ConversationState, lines: Sequence[TrialLine]) -> str:
    body = json.dumps(
        {
            "survey": survey.id,
            "version": survey.version,
            "state": state.to_json(),
            "lines": [_line_json(line) for line in lines[-MAX_LINES:]],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    encoded = base64.urlsafe_b64encode(body).decode("ascii")
    return f"{encoded}.{_sign(encoded.encode('ascii'))}"


def _read_token(token: str, survey: Survey) -> tuple[ConversationState, list[TrialLine]]:
    stale = TrialError("this try-out is out of date (the page is old or the service restarted)")
    encoded, _, signature = token.strip().rpartition(".")
    try:
        raw = encoded.encode("ascii")
        if not encoded or not hmac.compare_digest(_sign(raw), signature):
            raise stale
        body = base64.urlsafe_b64decode(raw)
    except (binascii.Error, ValueError, UnicodeEncodeError, TypeError):
        raise stale from None
    data = json.loads(body)
    if data.get("survey") != survey.id or data.get("version") != survey.version:
        raise TrialError("the survey changed since this try-out started: start again")
    return ConversationState.from_json(data["state"]), [_line_from(x) for x in data["lines"]]


def _run(
    survey: Survey, state: ConversationState, lines: list[TrialLine], messages: Sequence[OutMessage]
) -> TrialRun:
    lines = [*lines, *(_bot_line(m) for m in messages)][-MAX_LINES:]
    answers = tuple(
        (qid, json.dumps(value, ensure_ascii=False)) for qid, value in state.answers.items()
    )
    return TrialRun(
        survey,
        state.lang,
        tuple(lines),
        state.status.finished,
        state.status.value,
        _token(survey, state, lines),
        answers,
    )


def trial_start(survey: Survey, lang: str, now: datetime) -> TrialRun:
    """Start a try-out of `survey` in `lang` (refused when the survey lacks it)."""
    if lang not in survey.languages:
        raise TrialError(
            f"the survey has no language {lang!r} (it has {', '.join(survey.languages)})"
        )
    step = engine.start(survey, now=now, lang=lang)
    return _run(survey, step.state, [], step.messages)


def trial_answer(
    survey: Survey, token: str, *, text: str = "", payload: str | None = None, now: datetime
) -> TrialRun:
    """One more input into a try-out: typed text, or a button's payload."""
    if len(text) > MAX_INPUT:
        raise TrialError(f"an answer can be at most {MAX_INPUT} characters")
    try:
        state, lines = _read_token(token, survey)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, TrialError):
            raise
        raise TrialError("this try-out is out of date: start again") from None
    if state.status.finished:
        raise TrialError("this try-out has ended: start again")
    said = text.strip()
    if payload is not None:
        label = next(
            (label for line in reversed(lines) for p, label in line.buttons if p == payload),
            None,
        )
        if label is None:
            raise TrialError("that button is not on the last question: answer it again")
        said = label
    if not said:
        raise TrialError("write an answer, or press one of the buttons")
    step = engine.resume(survey, state, Input(text=text.strip(), payload=payload), now)
    return _run(survey, step.state, [*lines, TrialLine("me", said)], step.messages)
