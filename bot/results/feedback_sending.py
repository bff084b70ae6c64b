"""Sending feedback: the `campaign.feedback` and `followup.feedback` tasks.

Each person is sent one message, exactly once (`Invitation.feedback_sent` is set in the
transaction that queues it); follow-up surveys are fed back per quarter once k have answered.
The states of a campaign's feedback, and when it goes out (`FeedbackTiming`), are here too.
Part of `bot.results.feedback`, which re-exports what others use and registers the tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inbound.decide import message_payload
from bot.ops import events
from bot.reach import Route, route_to
from bot.results.aggregate import Results
from bot.results.feedback_message import compose
from bot.results.service import CampaignNotFound, campaign_results, load_campaign
from bot.results.service import followup_results as _followup_results
from bot.timewindows import next_allowed
from flows import engine
from flows.conversation import MessageKind, OutMessage
from flows.durations import format_duration
from flows.model import Survey
from storage import repo_audit, repo_contacts, repo_messages, repo_results, repo_tasks
from storage.models import Campaign
from storage.repo_results import FeedbackTarget

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

FEEDBACK_TASK: Final = "campaign.feedback"
FOLLOWUP_TASK: Final = "followup.feedback"
BATCH: Final = 200
"""People per transaction."""
PER_RUN: Final = 2000
"""People per task run; a larger campaign continues in a fresh task right away."""
HELD_RETRY: Final = timedelta(days=1)
FOLLOWUP_DELAY: Final = timedelta(days=3)
"""After a quarter ends, its follow-up feedback waits this long (late finishers, staff review)."""
FOLLOWUP_HOUR: Final = time(10, 0)

HELD = "held"
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
NONE = "none"


@dataclass(frozen=True, slots=True)
class FeedbackTiming:
    """When a campaign's feedback goes out, as staff are told it."""

    status: str
    """pending, held, sending, sent or none."""
    due: datetime | None = None
    """When the feedback task is planned (planned close + delay while the campaign is open)."""
    sends_from: datetime | None = None
    """When messages can leave: `due` (now, if that has passed), or the end of quiet hours."""
    quiet_hours: bool = False
    """Quiet hours move `sends_from` past the planned time."""
    after_close: int | None = None
    """The delay, while the campaign has not closed yet."""

    def describe(self, tz: ZoneInfo) -> str:
        """One line for a terminal, local times in `tz`."""

        def local(moment: datetime) -> str:
            return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"

        if self.status == NONE:
            return "none: no feedback is sent (feedback_to none)"
        if self.status == SENT:
            return "sent"
        if self.status == SENDING:
            return "being sent now"
        when = ""
        if self.sends_from is not None:
            when = f"{local(self.sends_from)} {tz.key}"
            if self.quiet_hours:
                when += " (after quiet hours)"
        if self.after_close is not None:
            when = f"{format_duration(self.after_close)} after the campaign closes" + (
                f" (as planned: {when})" if when else ""
            )
        if self.status == HELD:
            return f"held: goes out when released{f'; planned {when}' if when else ''}"
        return f"pending: goes out {when}" if when else "pending"

    def to_json(self) -> dict[str, Any]:
        """The timing for the API and the staff page: status, due and send times as ISO text."""
        return {
            "status": self.status,
            "due": self.due.isoformat() if self.due else None,
            "sends_from": self.sends_from.isoformat() if self.sends_from else None,
            "quiet_hours": self.quiet_hours,
            "after_close": format_duration(self.after_close)
            if self.after_close is not None
            else None,
        }


async def feedback_timing(runtime: Runtime, campaign: Campaign) -> FeedbackTiming:
    """When a campaign's feedback goes out (for `feedback preview` and `campaigns show`)."""
    async with runtime.db.transaction(read_only=True) as s:
        return await read_timing(runtime, s, campaign)


async def read_timing(runtime: Runtime, s: AsyncSession, campaign: Campaign) -> FeedbackTiming:
    """`feedback_timing` inside a transaction the caller holds."""
    status = NONE if campaign.feedback_to == NONE else campaign.feedback_status
    if status in (NONE, SENT, SENDING):
        return FeedbackTiming(status)
    if campaign.closed_at is None:
        due = campaign.ends_at + timedelta(seconds=campaign.feedback_delay)
        after_close: int | None = campaign.feedback_delay
    else:
        planned = [
            task.due_at
            for task in await repo_tasks.pending(s, kinds=[FEEDBACK_TASK])
            if task.payload.get("campaign_id") == campaign.id and ":held:" not in task.key
        ]
        due = (
            min(planned)
            if planned
            else campaign.closed_at + timedelta(seconds=campaign.feedback_delay)
        )
        after_close = None
    start = max(due, runtime.clock.now())
    sends_from = allowed_time(runtime, start)
    return FeedbackTiming(status, due, sends_from, sends_from > start, after_close)


async def campaign_for_update(s: AsyncSession, campaign_id: int) -> Campaign:
    """The campaign row locked for update; raises CampaignNotFound if there is none."""
    campaign = await repo_results.campaign(s, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


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


def allowed_time(runtime: Runtime, now: datetime) -> datetime:
    """`now`, or the end of the quiet hours if `now` falls in them: when feedback may go out."""
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
        plan_ref=(campaign.plan_refs or {}).get(lang),
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
    data = await campaign_results(runtime, campaign_id, with_previous=False, headings=False)
    campaign, survey = data.campaign, data.survey
    link = results_link(runtime, campaign_id)
    not_before = allowed_time(runtime, now)
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
        current = await campaign_for_update(s, campaign_id)
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
    events.note(
        "campaign.feedback",
        "campaign {campaign} feedback sent: {queued} messages queued, {total} people in all",
        campaign=campaign_id,
        queued=queued,
        total=sent_total,
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
    not_before = allowed_time(runtime, now)

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
    events.note(
        "followup.feedback",
        "follow-up survey {survey} feedback for {period} sent: {queued} messages queued",
        survey=survey_id,
        period=period,
        queued=queued,
    )
    runtime.dispatcher.wake()
    return queued
