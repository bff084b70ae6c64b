"""The feedback loop ("you said, we did"): results go back to the people who answered.

Campaigns: when a campaign closes, the campaign code schedules `campaign.feedback` at
closed_at + feedback_delay. The task sends every person who completed the survey (or everyone
invited, per `Campaign.feedback_to`) one short message in their language on the channel they
were invited on: how many answered, up to three headline results (questions with `positive`
choices, withheld ones left out), the staff's "what we will do" text, and the link to the public
results page. Exactly once per person: `Invitation.feedback_sent` is set in the same transaction
that queues the message, so the task is safe to re-run. Held feedback waits (re-checked daily);
opted-out people get nothing; messages wait for the end of quiet hours.

Follow-up surveys never close, so `followup.feedback:<survey>:<period>` runs after every
quarter and feeds back to those whose follow-up conversation was completed in it, once at least
k people have answered (a quarter with fewer is carried into the next one).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inbound.decide import message_payload
from bot.reach import Route, route_to
from bot.results.aggregate import Results
from bot.results.service import CampaignNotFound, ResultsError, campaign_results, load_campaign
from bot.results.service import followup_results as _followup_results
from bot.results.texts import feedback_texts
from bot.timewindows import next_allowed
from flows import engine
from flows.conversation import MessageKind, OutMessage
from flows.model import QuestionType, Survey, localize
from flows.segments import SegmentInfo, segment_info
from storage import repo_audit, repo_contacts, repo_messages, repo_results, repo_tasks
from storage.models import Campaign
from storage.repo_results import FeedbackTarget

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "FEEDBACK_TASK",
    "FOLLOWUP_TASK",
    "Preview",
    "compose",
    "hold",
    "preview",
    "register",
    "release",
    "run_campaign_feedback",
    "run_followup_feedback",
    "schedule_periodic",
    "set_feedback",
]

FEEDBACK_TASK: Final = "campaign.feedback"
FOLLOWUP_TASK: Final = "followup.feedback"
BATCH: Final = 200
"""People per transaction."""
PER_RUN: Final = 2000
"""People per task run; a larger campaign continues in a fresh task right away."""
HELD_RETRY: Final = timedelta(days=1)
MAX_SEGMENTS: Final = 3
MAX_HEADLINES: Final = 3
QUESTION_CHARS: Final = 60
FOLLOWUP_DELAY: Final = timedelta(days=3)
"""After a quarter ends, its follow-up feedback waits this long (late finishers, staff review)."""
FOLLOWUP_HOUR: Final = time(10, 0)

HELD = "held"
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
NONE = "none"


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
        if not q.positive or q.type not in (QuestionType.SELECT_ONE, QuestionType.SELECT_MANY):
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
    """The feedback message in `lang`, at most `max_segments` SMS segments where it can be.

    Nothing withheld is shown: with fewer than k completed it only says there were too few.
    To fit, headlines go first (one is kept), then the staff text is shortened."""
    texts = feedback_texts(lang)
    sender = localize(survey.sender, lang, survey.default_language) if survey.sender else ""
    hello = texts["hello_from"].format(sender=sender) if sender else texts["hello"]
    completed = results.participation.completed
    lines = [hello]
    heads: list[str] = []
    if completed.suppressed or not completed.value or completed.value < results.k:
        lines.append(texts["too_few"])
    else:
        lines.append(texts["answered"].format(n=int(completed.value)))
        heads = headlines(survey, results, lang)
        if not heads:
            lines.append(texts["hidden"])
    staff = " ".join((text or "").split())
    tail_link = [texts["link"].format(link=link)] if link else []
    plan = texts["plan"].format(plan=" ".join(plan_ref.split())) if plan_ref else ""

    def render(head_count: int, staff_text: str) -> str:
        parts = [*lines, *heads[:head_count]]
        if staff_text:
            said = texts["we_will"].format(text=staff_text)
            parts.append(f"{said} {plan}" if plan else said)
        parts.extend(tail_link)
        return "\n".join(parts)

    def fits(message: str) -> bool:
        return segment_info(message).segments <= max_segments

    count = len(heads)
    message = render(count, staff)
    while not fits(message) and count > 1:
        count -= 1
        message = render(count, staff)
    limit = len(staff)
    while not fits(message) and limit > 20:
        limit -= 20
        message = render(count, _shorten(staff, limit))
    if not fits(message) and count:
        message = render(0, _shorten(staff, limit))
    return message


@dataclass(frozen=True, slots=True)
class Preview:
    """The message one language group would get, and what it costs as SMS."""

    lang: str
    text: str
    segments: SegmentInfo
    recipients: int


# -- staff actions ----------------------------------------------------------------------------


async def _campaign_for_update(s: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await repo_results.campaign(s, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


async def set_feedback(
    runtime: Runtime,
    campaign_id: int,
    *,
    text: Mapping[str, str] | None = None,
    plan_ref: str | None = None,
    hold: bool | None = None,
    actor: str,
) -> Campaign:
    """Store the "what we will do" text per language (empty text removes it), the plan
    reference and whether feedback is held. Refused once feedback has gone out."""
    async with runtime.db.transaction() as s:
        campaign = await _campaign_for_update(s, campaign_id)
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
        if campaign.feedback_status in (SENDING, SENT) and (text or plan_ref is not None):
            raise ResultsError(
                f"the feedback of campaign {campaign_id} is already {campaign.feedback_status}"
            )
        texts = dict(campaign.feedback_text or {})
        for lang, value in (text or {}).items():
            if lang not in survey.languages:
                raise ResultsError(
                    f"the survey has no language {lang!r} (it has {', '.join(survey.languages)})"
                )
            if not isinstance(value, str):
                raise ResultsError("feedback text must be text")
            cleaned = " ".join(value.split())
            if len(cleaned) > 300:
                raise ResultsError("feedback text is too long for an SMS (at most 300 characters)")
            if cleaned:
                texts[lang] = cleaned
            else:
                texts.pop(lang, None)
        campaign.feedback_text = texts
        if plan_ref is not None:
            campaign.plan_ref = " ".join(plan_ref.split())[:200] or None
        if hold is not None:
            await _set_held(runtime, s, campaign, hold)
        await repo_audit.log(
            s,
            actor,
            "campaign.feedback.set",
            f"campaign:{campaign_id}",
            {"languages": sorted(texts), "plan_ref": campaign.plan_ref, "hold": hold},
            at=runtime.clock.now(),
        )
        return campaign


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


async def preview(runtime: Runtime, campaign_id: int) -> tuple[Campaign, list[Preview]]:
    """The exact message per language of the survey, as it would be sent now."""
    data = await campaign_results(runtime, campaign_id, with_previous=False)
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
    for lang in survey.languages:
        text = _campaign_text(campaign, survey, data.results, lang, link)
        out.append(Preview(lang, text, segment_info(text), counts.get(lang, 0)))
    return campaign, out


def results_link(runtime: Runtime, campaign_id: int) -> str:
    """The public results page of a campaign."""
    return f"{runtime.settings.server.public_url}/results/{campaign_id}"


# -- sending ----------------------------------------------------------------------------------


async def _route(
    runtime: Runtime, s: AsyncSession, target: FeedbackTarget, wanted: Sequence[str]
) -> Route | None:
    """The channel they were reached on if it still runs, else the best one they have."""
    channel = target.channel
    if channel and channel in runtime.channels:
        address = await repo_contacts.address_on(s, target.contact_id, channel)
        if address is not None:
            return Route(channel, address.address)
    return await route_to(s, target.contact_id, wanted, runtime.channels.keys())


async def _enqueue(
    runtime: Runtime,
    s: AsyncSession,
    route: Route,
    target: FeedbackTarget,
    body: str,
    lang: str,
    campaign_id: int | None,
    not_before: datetime,
) -> None:
    await repo_messages.enqueue(
        s,
        channel=route.channel,
        address=route.address,
        address_key=runtime.service.pseudonymizer.address_key(route.channel, route.address),
        body=body,
        payload=message_payload(OutMessage(body, MessageKind.INFO), lang),
        kind="feedback",
        contact_id=target.contact_id,
        conversation_id=None,
        campaign_id=campaign_id,
        not_before=not_before,
    )


def _allowed(runtime: Runtime, now: datetime) -> datetime:
    schedule = runtime.settings.schedule
    return next_allowed(now, schedule.tz, quiet=schedule.quiet)


def _campaign_text(
    campaign: Campaign, survey: Survey, results: Results, lang: str, link: str
) -> str:
    """A campaign's feedback message in one language, with the staff's "what we will do"."""
    return compose(
        survey,
        results,
        lang,
        text=(campaign.feedback_text or {}).get(lang),
        plan_ref=campaign.plan_ref,
        link=link,
    )


async def run_campaign_feedback(runtime: Runtime, campaign_id: int, *, after: int = 0) -> int:
    """The `campaign.feedback` task: send what is owed; returns how many messages it queued."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await repo_results.campaign(s, campaign_id, for_update=True)
        if campaign is None:
            log.warning("campaign %s no longer exists; no feedback to send", campaign_id)
            return 0
        if campaign.status != "closed" or campaign.feedback_status in (SENT, NONE):
            return 0
        if campaign.feedback_to == NONE:
            campaign.feedback_status = NONE
            return 0
        if campaign.feedback_status == HELD:
            await _schedule_held(s, campaign_id, now)
            return 0
        campaign.feedback_status = SENDING
    data = await campaign_results(runtime, campaign_id, with_previous=False)
    campaign, survey = data.campaign, data.survey
    link = results_link(runtime, campaign_id)
    not_before = _allowed(runtime, now)
    current = campaign

    async def targets(s: AsyncSession, after_id: int) -> Sequence[FeedbackTarget] | None:
        nonlocal current
        current = await load_campaign(s, campaign_id)
        if current.feedback_status == HELD:
            await _schedule_held(s, campaign_id, now)
            return None
        return await repo_results.campaign_feedback_targets(
            s, campaign_id, current.feedback_to, after_id=after_id, limit=BATCH
        )

    queued, done = await _feed_back(
        runtime,
        survey,
        after=after,
        targets=targets,
        claim=repo_results.claim_invitation_feedback,
        body=lambda lang: _campaign_text(current, survey, data.results, lang, link),
        channels=campaign.channels,
        campaign_id=campaign_id,
        now=now,
        not_before=not_before,
        resume=lambda after: (
            FEEDBACK_TASK,
            f"{FEEDBACK_TASK}:{campaign_id}:after:{after}",
            {"campaign_id": campaign_id, "after": after},
        ),
    )
    if not done:
        return queued
    async with runtime.db.transaction() as s:
        current = await _campaign_for_update(s, campaign_id)
        if current.feedback_status == SENDING:
            current.feedback_status = SENT
        sent_total = await repo_results.count_feedback_sent(s, campaign_id)
        await repo_audit.log(
            s,
            "scheduler",
            "campaign.feedback.sent",
            f"campaign:{campaign_id}",
            {"queued": queued, "total": sent_total},
            at=now,
        )
    runtime.dispatcher.wake()
    return queued


async def _feed_back(
    runtime: Runtime,
    survey: Survey,
    *,
    after: int,
    targets: Callable[[AsyncSession, int], Awaitable[Sequence[FeedbackTarget] | None]],
    claim: Callable[[AsyncSession, int], Awaitable[bool]],
    body: Callable[[str], str],
    channels: Sequence[str],
    campaign_id: int | None,
    now: datetime,
    not_before: datetime,
    resume: Callable[[int], tuple[str, str, dict[str, Any]]],
) -> tuple[int, bool]:
    """Queue the feedback message for everyone `targets` lists, in batches of BATCH, each person
    claimed first so nobody gets it twice. After PER_RUN people the work goes on in a new task
    (`resume(after)` gives its kind, key and payload). `targets` answering None stops (held).
    Returns (messages queued, whether everyone was reached)."""
    bodies: dict[str, str] = {}
    queued = processed = 0
    while True:
        async with runtime.db.transaction() as s:
            batch = await targets(s, after)
            if batch is None:
                return queued, False
            for target in batch:
                after = target.row_id
                route = await _route(runtime, s, target, channels)
                if route is None or not await claim(s, target.row_id):
                    continue
                lang = engine.pick_language(survey, target.language)
                if lang not in bodies:
                    bodies[lang] = body(lang)
                await _enqueue(
                    runtime, s, route, target, bodies[lang], lang, campaign_id, not_before
                )
                queued += 1
        processed += len(batch)
        if len(batch) < BATCH:
            return queued, True
        if processed >= PER_RUN:
            kind, key, payload = resume(after)
            async with runtime.db.transaction() as s:
                await repo_tasks.schedule(s, kind, key, now, payload)
            return queued, False


async def _schedule_held(s: AsyncSession, campaign_id: int, now: datetime) -> None:
    later = now + HELD_RETRY
    await repo_tasks.schedule(
        s,
        FEEDBACK_TASK,
        f"{FEEDBACK_TASK}:{campaign_id}:held:{later:%Y%m%dT%H%M}",
        later,
        {"campaign_id": campaign_id},
    )


# -- follow-up surveys ------------------------------------------------------------------------


def period_of(day: date) -> str:
    """The quarter a day falls in, e.g. "2026Q1"."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def period_bounds(period: str) -> tuple[date, date]:
    """A quarter's first day and the first day after it."""
    year_text, _, quarter_text = period.partition("Q")
    year, quarter = int(year_text), int(quarter_text)
    if not 1 <= quarter <= 4:
        raise ValueError(f"not a quarter: {period!r}")
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end


def _followup_due(runtime: Runtime, period: str) -> datetime:
    _, end = period_bounds(period)
    tz = runtime.settings.schedule.tz
    return datetime.combine(end + FOLLOWUP_DELAY, FOLLOWUP_HOUR, tzinfo=tz)


async def _schedule_followup(
    s: AsyncSession, runtime: Runtime, survey_id: str, period: str, since: date
) -> None:
    await repo_tasks.schedule(
        s,
        FOLLOWUP_TASK,
        f"{FOLLOWUP_TASK}:{survey_id}:{period}",
        _followup_due(runtime, period),
        {"survey_id": survey_id, "period": period, "since": since.isoformat()},
        replace=True,
    )


async def schedule_periodic(runtime: Runtime) -> int:
    """Plan this quarter's feedback for every follow-up survey (call at startup, after the
    follow-up rules are loaded); returns how many were newly planned."""
    today = runtime.clock.now().astimezone(runtime.settings.schedule.tz).date()
    period = period_of(today)
    start, _ = period_bounds(period)
    planned = 0
    async with runtime.db.transaction() as s:
        for survey_id in await repo_results.followup_surveys(s):
            planned += await repo_tasks.schedule(
                s,
                FOLLOWUP_TASK,
                f"{FOLLOWUP_TASK}:{survey_id}:{period}",
                _followup_due(runtime, period),
                {"survey_id": survey_id, "period": period, "since": start.isoformat()},
            )
    return planned


async def run_followup_feedback(
    runtime: Runtime, survey_id: str, period: str, since: date, *, after: int = 0
) -> int:
    """Feed one period's follow-up results back; returns how many messages it queued."""
    now = runtime.clock.now()
    start, end = period_bounds(period)
    since = min(since, start)
    next_period, next_start = period_of(end), end
    k = runtime.settings.privacy.min_group_size
    computed = await _followup_results(runtime, survey_id, since, end)
    completed = computed[1].participation.completed if computed else None
    if computed is None or completed is None or completed.suppressed or (completed.value or 0) < k:
        # Too few to publish: this period's people are fed back with the next period's.
        async with runtime.db.transaction() as s:
            await _schedule_followup(s, runtime, survey_id, next_period, since)
        return 0
    survey, results = computed
    not_before = _allowed(runtime, now)

    async def targets(s: AsyncSession, after_id: int) -> Sequence[FeedbackTarget]:
        return await repo_results.followup_feedback_targets(
            s, survey_id, since, end, after_id=after_id, limit=BATCH
        )

    queued, done = await _feed_back(
        runtime,
        survey,
        after=after,
        targets=targets,
        claim=repo_results.claim_followup_feedback,
        body=lambda lang: compose(survey, results, lang),
        channels=(),
        campaign_id=None,
        now=now,
        not_before=not_before,
        resume=lambda after: (
            FOLLOWUP_TASK,
            f"{FOLLOWUP_TASK}:{survey_id}:{period}:after:{after}",
            {"survey_id": survey_id, "period": period, "since": since.isoformat(), "after": after},
        ),
    )
    if not done:
        return queued
    async with runtime.db.transaction() as s:
        await _schedule_followup(s, runtime, survey_id, next_period, next_start)
        await repo_audit.log(
            s,
            "scheduler",
            "followup.feedback.sent",
            f"survey:{survey_id}",
            {"period": period, "since": since.isoformat(), "queued": queued},
            at=now,
        )
    runtime.dispatcher.wake()
    return queued


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
