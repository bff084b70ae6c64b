"""The feedback loop ("you said, we did"): results go back to the people who answered.

Campaigns: when a campaign closes, the campaign code schedules `campaign.feedback` at
closed_at + feedback_delay. The task sends every person who completed the survey (or everyone
invited, per `Campaign.feedback_to`) one short message in their language on the channel they
were invited on: how many answered, up to three headline results (questions with `positive`
choices, withheld ones left out), the staff's "what we will do" text and plan reference in that
language, and the link to the public results page. Exactly once per person:
`Invitation.feedback_sent` is set in the same transaction that queues the message, so the task is
safe to re-run. Held feedback waits (re-checked daily); opted-out people get nothing; messages
wait for the end of quiet hours. `send_now` brings the task forward; `set_feedback(delay=...)`
moves it.

At most three SMS segments, and the staff's text is never cut: `set_feedback` refuses a text that
would not fit (saying how many segments each language would take), checking the longest form the
rest of the message can take, and `compose` fits by leaving out headlines, never words. A
language with no text is refused unless staff say to send that language without one.

Follow-up surveys never close, so `followup.feedback:<survey>:<period>` runs after every
quarter and feeds back to those whose follow-up conversation was completed in it, once at least
k people have answered (a quarter with fewer is carried into the next one).

This module has the staff actions (texts, delay, hold, release, send now, preview) and registers
the tasks; the message is composed in `feedback_message`, the tasks and the timing are in
`feedback_sending`, and everything others use is re-exported from here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.results.feedback_message import (
    MAX_SEGMENTS,
    Preview,
    compose,
    compose_fitted,
    headlines,
    longest_frame,
)
from bot.results.feedback_sending import (
    FEEDBACK_TASK,
    FOLLOWUP_TASK,
    HELD,
    NONE,
    PENDING,
    SENDING,
    SENT,
    FeedbackTiming,
    campaign_for_update,
    feedback_timing,
    period_bounds,
    period_of,
    read_timing,
    results_link,
    run_campaign_feedback,
    run_followup_feedback,
    schedule_periodic,
)
from bot.results.service import ResultsError, campaign_results
from flows import engine
from flows.durations import parse_duration
from flows.model import Survey, base_language
from flows.segments import SegmentInfo, segment_info
from storage import repo_audit, repo_results, repo_tasks
from storage.models import Campaign

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "FEEDBACK_TASK",
    "FOLLOWUP_TASK",
    "HELD",
    "MAX_DELAY",
    "MAX_SEGMENTS",
    "MAX_TEXT",
    "NONE",
    "PENDING",
    "SENDING",
    "SENT",
    "FeedbackTiming",
    "Preview",
    "compose",
    "feedback_timing",
    "headlines",
    "hold",
    "longest_frame",
    "parse_delay",
    "period_bounds",
    "period_of",
    "preview",
    "register",
    "release",
    "results_link",
    "run_campaign_feedback",
    "run_followup_feedback",
    "schedule_periodic",
    "send_now",
    "set_feedback",
]

MAX_TEXT: Final = 1000
"""Characters of a staff text or plan reference (the segment check is the real limit)."""
MAX_DELAY: Final = 365 * 24 * 3600


# -- staff actions ----------------------------------------------------------------------------


def parse_delay(value: object) -> int:
    """A feedback delay: a duration text ("3d", "12h", "0s") or whole seconds, 0 to a year."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ResultsError('the delay must be a duration like "3d" or whole seconds')
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit() or text in ("0s", "0m", "0h", "0d"):
            seconds = int(text.rstrip("smhd") or 0)
        else:
            try:
                seconds = parse_duration(text)
            except ValueError as e:
                raise ResultsError(f"delay: {e}") from None
    else:
        seconds = value
    if not 0 <= seconds <= MAX_DELAY:
        raise ResultsError("the delay must be between 0 and 365 days")
    return seconds


def _clean(value: object, what: str, lang: str) -> str:
    if not isinstance(value, str):
        raise ResultsError(f"the {what} in {lang} must be text")
    cleaned = " ".join(value.split())
    if len(cleaned) > MAX_TEXT:
        raise ResultsError(f"the {what} in {lang} is longer than {MAX_TEXT} characters")
    return cleaned


def _check_languages(survey: Survey, langs: Iterable[str]) -> None:
    for lang in langs:
        if lang not in survey.languages:
            raise ResultsError(
                f"the survey has no language {lang!r} (it has {', '.join(survey.languages)})"
            )


def _not_gsm(text: str) -> list[str]:
    """Characters that turn an SMS into UCS-2 (70 instead of 160 characters a segment)."""
    return sorted({c for c in text if segment_info(c).encoding == "UCS-2"})


_GSM_HINTS: Final = {"–": "-", "—": "-", "…": "...", "’": "'", "‘": "'", "“": '"', "”": '"'}


def _too_long(
    costs: Mapping[str, SegmentInfo],
    texts: Mapping[str, str],
    plans: Mapping[str, str],
) -> str | None:
    """The refusal when some language's message would be over the cap, else None."""
    over = [lang for lang, info in costs.items() if info.segments > MAX_SEGMENTS]
    if not over:
        return None
    parts = []
    for lang, info in costs.items():
        mark = f" (over {MAX_SEGMENTS})" if lang in over else ""
        parts.append(
            f"{lang} {info.segments} segment(s), {info.encoding}, {info.units} characters{mark}"
        )
    lines = [
        f"the feedback message would be more than {MAX_SEGMENTS} SMS segments: "
        + "; ".join(parts)
        + f". Shorten the text in {', '.join(over)} (nothing is cut to fit)."
    ]
    for lang in over:
        if costs[lang].encoding != "UCS-2" or base_language(lang) not in ("sv", "en"):
            continue
        odd = _not_gsm(f"{texts.get(lang, '')} {plans.get(lang, '')}")
        if odd:
            hints = ", ".join(
                f"'{c}' (write '{_GSM_HINTS[c]}')" if c in _GSM_HINTS else f"'{c}'" for c in odd
            )
            lines.append(
                f"{lang}: {hints} is not in the SMS alphabet, so the whole message goes as "
                "UCS-2, 67 characters a segment instead of 153."
            )
    return " ".join(lines)


async def set_feedback(
    runtime: Runtime,
    campaign_id: int,
    *,
    text: Mapping[str, str] | None = None,
    plan_ref: Mapping[str, str] | str | None = None,
    without_text: Sequence[str] | None = None,
    hold: bool | None = None,
    delay: int | None = None,
    actor: str,
) -> Campaign:
    """Store the "what we will do" text per language (an empty text removes it), the plan
    reference (per language, or one text for all), the languages to send without a text, the
    delay after closing, and whether feedback is held. Refused once feedback has gone out.

    Texts: every language of the survey must then have one, or be in `without_text`. Each
    language's message must fit in three SMS segments in its longest form; the refusal gives
    each language's segment count. Nothing is stored when anything is refused."""
    async with runtime.db.transaction() as s:
        campaign = await campaign_for_update(s, campaign_id)
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
        changes_text = text is not None or plan_ref is not None or without_text is not None
        if campaign.feedback_status in (SENDING, SENT) and (changes_text or delay is not None):
            raise ResultsError(
                f"the feedback of campaign {campaign_id} is already {campaign.feedback_status}"
            )
        texts = dict(campaign.feedback_text or {})
        bare = set(campaign.feedback_without_text or ())
        plans = dict(campaign.plan_refs or {})
        if text is not None:
            _check_languages(survey, text)
            for lang, value in text.items():
                cleaned = _clean(value, "feedback text", lang)
                if cleaned:
                    texts[lang] = cleaned
                    bare.discard(lang)
                else:
                    texts.pop(lang, None)
        if without_text is not None:
            _check_languages(survey, without_text)
            given = [lang for lang in without_text if text and (text.get(lang) or "").strip()]
            if given:
                raise ResultsError(
                    f"{', '.join(given)}: given a text and told to go without one; pick one"
                )
            for lang in without_text:
                texts.pop(lang, None)
                bare.add(lang)
        if text is not None or without_text is not None:
            missing = [lang for lang in survey.languages if lang not in texts and lang not in bare]
            if missing:
                raise ResultsError(
                    f"no feedback text in {', '.join(missing)}: give one per language "
                    f'(--text {missing[0]}="..."), or send '
                    f"{'that language' if len(missing) == 1 else 'those languages'} without "
                    f"one (--without-text {','.join(missing)})"
                )
        if plan_ref is not None:
            plans = _plan_refs(survey, plan_ref)
        if changes_text:
            await _check_fits(runtime, s, campaign, survey, texts, plans)
            campaign.feedback_text = texts
            campaign.feedback_without_text = [lang for lang in survey.languages if lang in bare]
            campaign.plan_refs = plans
        if delay is not None:
            await _set_delay(runtime, s, campaign, delay)
        if hold is not None:
            await _set_held(runtime, s, campaign, hold)
        await repo_audit.log(
            s,
            actor,
            "campaign.feedback.set",
            f"campaign:{campaign_id}",
            {
                "languages": sorted(texts),
                "without_text": sorted(bare),
                "plan_refs": sorted(plans),
                "hold": hold,
                "delay": delay,
            },
            at=runtime.clock.now(),
        )
        return campaign


def _plan_refs(survey: Survey, plan_ref: Mapping[str, str] | str) -> dict[str, str]:
    if isinstance(plan_ref, str):
        cleaned = _clean(plan_ref, "plan reference", "every language")
        return dict.fromkeys(survey.languages, cleaned) if cleaned else {}
    _check_languages(survey, plan_ref)
    plans = {lang: _clean(v, "plan reference", lang) for lang, v in plan_ref.items()}
    plans = {lang: v for lang, v in plans.items() if v}
    missing = [lang for lang in survey.languages if lang not in plans]
    if plans and missing:
        raise ResultsError(
            f"no plan reference in {', '.join(missing)}: give one per language, "
            'or one for all (--plan-ref "...")'
        )
    return plans


async def _check_fits(
    runtime: Runtime,
    s: AsyncSession,
    campaign: Campaign,
    survey: Survey,
    texts: Mapping[str, str],
    plans: Mapping[str, str],
) -> None:
    participation = await repo_results.participation(s, campaign.id)
    most = max(participation.invited, campaign.audience_size or 0, participation.completed)
    link = results_link(runtime, campaign.id)
    costs = {
        lang: longest_frame(
            survey,
            lang,
            text=texts.get(lang),
            plan_ref=plans.get(lang),
            link=link,
            most_answered=most,
        )
        for lang in survey.languages
    }
    refusal = _too_long(costs, texts, plans)
    if refusal:
        raise ResultsError(refusal)


async def _set_delay(runtime: Runtime, s: AsyncSession, campaign: Campaign, delay: int) -> None:
    """A new delay after closing; an already planned send moves with it."""
    campaign.feedback_delay = parse_delay(delay)
    if campaign.closed_at is None or campaign.feedback_status != PENDING:
        return
    due = max(runtime.clock.now(), campaign.closed_at + timedelta(seconds=campaign.feedback_delay))
    await _plan(s, campaign.id, due, "delay")


async def _plan(s: AsyncSession, campaign_id: int, due: datetime, why: str) -> None:
    """Move the campaign's planned feedback task to `due` (or plan one if it already ran)."""
    key = f"{FEEDBACK_TASK}:{campaign_id}"
    payload = {"campaign_id": campaign_id}
    if await repo_tasks.schedule(s, FEEDBACK_TASK, key, due, payload, replace=True):
        return
    # The first task has run (e.g. while held): plan a fresh one.
    await repo_tasks.schedule(
        s, FEEDBACK_TASK, f"{key}:{why}:{uuid.uuid4().hex[:12]}", due, payload
    )


async def _set_held(runtime: Runtime, s: AsyncSession, campaign: Campaign, held: bool) -> None:
    status = campaign.feedback_status
    if held:
        if status in (SENT, NONE):
            raise ResultsError(f"the feedback of campaign {campaign.id} is already {status}")
        campaign.feedback_status = HELD
        return
    if status == HELD:
        campaign.feedback_status = PENDING
        if campaign.closed_at is not None and campaign.feedback_to != NONE:
            due = max(
                runtime.clock.now(),
                campaign.closed_at + timedelta(seconds=campaign.feedback_delay),
            )
            await repo_tasks.schedule(
                s,
                FEEDBACK_TASK,
                f"{FEEDBACK_TASK}:{campaign.id}:release:{uuid.uuid4().hex[:12]}",
                due,
                {"campaign_id": campaign.id},
            )


async def hold(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Keep the feedback from going out until released."""
    return await set_feedback(runtime, campaign_id, hold=True, actor=actor)


async def release(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Let held feedback go out (at its planned time, or now if that has passed)."""
    return await set_feedback(runtime, campaign_id, hold=False, actor=actor)


async def send_now(runtime: Runtime, campaign_id: int, *, actor: str) -> FeedbackTiming:
    """Send a closed campaign's feedback now instead of after its delay (staff are done early).

    The service's scheduler picks it up on its next poll; quiet hours still hold the messages."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await campaign_for_update(s, campaign_id)
        status = campaign.feedback_status
        if campaign.feedback_to == NONE or status == NONE:
            raise ResultsError(f"campaign {campaign_id} sends no feedback (feedback_to none)")
        if status in (SENDING, SENT):
            raise ResultsError(f"the feedback of campaign {campaign_id} is already {status}")
        if status == HELD:
            raise ResultsError(
                f"the feedback of campaign {campaign_id} is held: release it first "
                f"(brukardialog feedback release {campaign_id})"
            )
        if campaign.status != "closed" or campaign.closed_at is None:
            raise ResultsError(
                f"campaign {campaign_id} is {campaign.status}: feedback can go out once it "
                f"has closed (brukardialog campaigns close {campaign_id})"
            )
        await _plan(s, campaign_id, now, "now")
        await repo_audit.log(
            s, actor, "campaign.feedback.send_now", f"campaign:{campaign_id}", {}, at=now
        )
        return await read_timing(runtime, s, campaign)


async def preview(runtime: Runtime, campaign_id: int) -> tuple[Campaign, list[Preview]]:
    """The exact message per language of the survey, as it would be sent now."""
    data = await campaign_results(runtime, campaign_id, with_previous=False, headings=False)
    campaign, survey = data.campaign, data.survey
    counts: dict[str, int] = {}
    async with runtime.db.transaction(read_only=True) as s:
        after = 0
        while True:
            batch = await repo_results.campaign_feedback_targets(
                s, campaign_id, campaign.feedback_to, after_id=after, limit=5000
            )
            for target in batch:
                lang = engine.pick_language(survey, target.language)
                counts[lang] = counts.get(lang, 0) + 1
            if len(batch) < 5000:
                break
            after = batch[-1].row_id
    if campaign.feedback_to == NONE:
        counts = {}
    link = results_link(runtime, campaign_id)
    out = []
    bare = set(campaign.feedback_without_text or ())
    for lang in survey.languages:
        staff = (campaign.feedback_text or {}).get(lang)
        text, left_out = compose_fitted(
            survey,
            data.results,
            lang,
            staff,
            (campaign.plan_refs or {}).get(lang),
            link,
            MAX_SEGMENTS,
        )
        out.append(
            Preview(
                lang,
                text,
                segment_info(text),
                counts.get(lang, 0),
                staff_text=staff,
                without_text=lang in bare,
                left_out=left_out,
            )
        )
    return campaign, out


# -- registration -----------------------------------------------------------------------------


def register(runtime: Runtime) -> None:
    """Register the feedback task handlers on a runtime."""

    async def campaign_feedback(payload: dict[str, Any]) -> None:
        await run_campaign_feedback(
            runtime, int(payload["campaign_id"]), after=int(payload.get("after", 0))
        )

    async def followup_feedback(payload: dict[str, Any]) -> None:
        await run_followup_feedback(
            runtime,
            str(payload["survey_id"]),
            str(payload["period"]),
            date.fromisoformat(str(payload["since"])),
            after=int(payload.get("after", 0)),
        )

    runtime.tasks.register(FEEDBACK_TASK, campaign_feedback)
    runtime.tasks.register(FOLLOWUP_TASK, followup_feedback)
