"""The feedback message: headlines, the staff's text and the link, fitted to the SMS cap.

At most three SMS segments, and the staff's text is never cut: `compose` fits by leaving out
headlines, never words, and `longest_frame` is what `bot.results.feedback.set_feedback` checks a
staff text against. Part of `bot.results.feedback`, which re-exports what others use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot.results.aggregate import Results
from bot.results.texts import feedback_texts
from flows.model import Survey, localize
from flows.segments import SegmentInfo, segment_info
from flows.types import kind_of

MAX_SEGMENTS: Final = 3
MAX_HEADLINES: Final = 3
QUESTION_CHARS: Final = 60


# -- the message ------------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word, with "..." (GSM-7 has no ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 3)].rsplit(" ", 1)[0].rstrip(",.;:!?")
    return f"{cut}..."


def headlines(survey: Survey, results: Results, lang: str) -> list[str]:
    """Up to three published "x in 10" lines, from the questions with positive choices."""
    texts = feedback_texts(lang)
    out: list[str] = []
    for q in survey.questions:
        if len(out) >= MAX_HEADLINES:
            break
        if not q.positive or not kind_of(q).choices:
            continue
        figures = results.question(q.id)
        if figures is None or figures.suppressed:
            continue
        share = figures.share_positive
        if share.suppressed or share.value is None:
            continue
        x = max(0, min(10, round(float(share.value) * 10)))
        question = _shorten(localize(q.text, lang, survey.default_language), QUESTION_CHARS)
        if len(q.positive) == 1 and (choice := q.choice(q.positive[0])) is not None:
            label = _shorten(localize(choice.text, lang, survey.default_language), 30)
            out.append(texts["one"].format(x=x, choice=label, question=question))
        else:
            out.append(texts["many"].format(x=x, question=question))
    return out


def _staff_part(lang: str, text: str | None, plan_ref: str | None) -> str:
    """The staff's part in `lang`: "What we will do: ... (plan)"; a plan only goes with a text."""
    texts = feedback_texts(lang)
    staff = " ".join((text or "").split())
    if not staff:
        return ""
    said = texts["we_will"].format(text=staff)
    plan = " ".join((plan_ref or "").split())
    return f"{said} {texts['plan'].format(plan=plan)}" if plan else said


def _hello(survey: Survey, lang: str) -> str:
    texts = feedback_texts(lang)
    sender = localize(survey.sender, lang, survey.default_language) if survey.sender else ""
    return texts["hello_from"].format(sender=sender) if sender else texts["hello"]


def _fit(
    fixed_head: Sequence[str],
    optional: Sequence[str],
    fixed_tail: Sequence[str],
    max_segments: int,
) -> tuple[str, int]:
    """The message with as many of the `optional` lines (in order) as fit in `max_segments`,
    and how many that was. The fixed lines always go in whole."""
    for count in range(len(optional), -1, -1):
        message = "\n".join([*fixed_head, *optional[:count], *fixed_tail])
        if segment_info(message).segments <= max_segments or count == 0:
            return message, count
    raise AssertionError("unreachable")


def compose(
    survey: Survey,
    results: Results,
    lang: str,
    *,
    text: str | None = None,
    plan_ref: str | None = None,
    link: str | None = None,
    max_segments: int = MAX_SEGMENTS,
) -> str:
    """The feedback message in `lang`, within `max_segments` SMS segments where it can be.

    Nothing withheld is shown: with fewer than k completed it only says there were too few.
    Headlines (or, without any, the note that results are hidden) go in only as far as they fit;
    the greeting, the count, the staff's text with the plan reference and the link always go in
    whole (`set_feedback` makes sure they fit)."""
    return compose_fitted(survey, results, lang, text, plan_ref, link, max_segments)[0]


def compose_fitted(
    survey: Survey,
    results: Results,
    lang: str,
    text: str | None,
    plan_ref: str | None,
    link: str | None,
    max_segments: int,
) -> tuple[str, int]:
    """The message and how many of its optional lines had to be left out to fit."""
    texts = feedback_texts(lang)
    completed = results.participation.completed
    optional: list[str] = []
    if completed.suppressed or not completed.value or completed.value < results.k:
        head = [_hello(survey, lang), texts["too_few"]]
    else:
        head = [_hello(survey, lang), texts["answered"].format(n=int(completed.value))]
        optional = headlines(survey, results, lang) or [texts["hidden"]]
    tail = [part for part in (_staff_part(lang, text, plan_ref),) if part]
    if link:
        tail.append(texts["link"].format(link=link))
    message, kept = _fit(head, optional, tail, max_segments)
    return message, len(optional) - kept


def longest_frame(
    survey: Survey,
    lang: str,
    *,
    text: str | None,
    plan_ref: str | None,
    link: str | None,
    most_answered: int,
) -> SegmentInfo:
    """What the parts of the message that always go in can cost at most: the greeting, "too
    few answered" or "N answered" (N at most `most_answered`), the staff's part and the link."""
    texts = feedback_texts(lang)
    tail = [part for part in (_staff_part(lang, text, plan_ref),) if part]
    if link:
        tail.append(texts["link"].format(link=link))
    costs = [
        segment_info("\n".join([_hello(survey, lang), opening, *tail]))
        for opening in (
            texts["too_few"],
            texts["answered"].format(n=max(most_answered, 10)),
        )
    ]
    return max(costs, key=lambda info: (info.segments, info.units))


@dataclass(frozen=True, slots=True)
class Preview:
    """The message one language group would get, and what it costs as SMS."""

    lang: str
    text: str
    segments: SegmentInfo
    recipients: int
    staff_text: str | None = None
    """The "what we will do" text in this language (None: sent without one)."""
    without_text: bool = False
    """Staff chose to send this language without a text."""
    left_out: int = 0
    """Headlines (or the "hidden" note) left out to fit the SMS cap."""
