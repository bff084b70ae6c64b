"""Staff actions on campaigns: create (with overlap warnings), list, show, pause, resume,
close, and the JSON the API returns.

Why one module: it is the one door the CLI, the staff API and the staff pages use for campaigns, so
every action's checks and audit entry sit beside the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.durations import format_duration, parse_duration
from flows.expr import Expr, ExprError
from flows.model import Participation
from storage import repo_audit, repo_campaigns, repo_tasks
from storage.models import Campaign, Conversation, Invitation
from storage.repo_campaigns import CampaignCounts

if TYPE_CHECKING:
    from bot.runtime import Runtime
from bot.campaigns.audience import compile_audience, overlap_warnings, scan_audience
from bot.campaigns.core import (
    CHANNELS,
    CLOSE_TASK,
    CLOSES_PER_TRANSACTION,
    DEFAULT_FEEDBACK_DELAY,
    FEEDBACK_TASK,
    FEEDBACK_TO,
    INVITE_TASK,
    REMIND_TASK,
    ROUND_SECONDS,
    START_TASK,
    CampaignInvalid,
    CampaignNotFound,
    CampaignRequest,
    CampaignStateError,
    CampaignView,
    EmptyAudience,
    QuietHold,
    allowed_time,
    locked_campaign,
    schedule_round,
)
from bot.ops import events

log = logging.getLogger(__name__)

# -- creating ------------------------------------------------------------------------------------


def parse_instant(value: str, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; without an offset it is local time in `tz`. A date alone is the
    start of that day, or (end_of_day) the start of the next one."""
    value = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            return datetime.combine(day, time(0), tzinfo=tz)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date or time like 2026-06-01T09:00") from None
    return instant.replace(tzinfo=tz) if instant.tzinfo is None else instant


def resolve_ends(ends: str, starts: str | None, tz: ZoneInfo, now: datetime) -> str:
    """`--ends` as given, or for a duration after the start: whole days ("30d") end with that
    local day, shorter ones ("2h", to try a campaign out) at that instant."""
    try:
        seconds = parse_duration(ends)
    except ValueError:
        return ends
    base = now
    if starts:
        with contextlib.suppress(ValueError):  # create_campaign names a bad --starts
            base = max(parse_instant(starts, tz), now)
    end = base + timedelta(seconds=seconds)
    if seconds % 86_400 == 0:
        return end.astimezone(tz).date().isoformat()
    return end.isoformat()


def _duration(value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{value}: a duration must be longer than zero")
        return value
    return parse_duration(str(value))


def _items(value: str | Sequence[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [p.strip() for p in parts if p.strip()]


@dataclass(frozen=True, slots=True)
class CreatedCampaign:
    """A new campaign, and what staff should know about it (e.g. an audience it shares)."""

    campaign: Campaign
    warnings: tuple[str, ...] = ()


async def create_campaign(runtime: Runtime, request: CampaignRequest, *, actor: str) -> Campaign:
    """Validate and create a campaign with its start, reminder and close tasks.

    Raises CampaignInvalid listing every problem, EmptyAudience when nobody matches; nothing is
    stored then."""
    return (await create_campaign_with_warnings(runtime, request, actor=actor)).campaign


async def create_campaign_with_warnings(
    runtime: Runtime, request: CampaignRequest, *, actor: str
) -> CreatedCampaign:
    """`create_campaign`, also saying how much of the audience open campaigns of the same survey
    already cover."""
    settings = runtime.settings
    tz = settings.schedule.tz
    now = runtime.clock.now()
    problems: list[str] = []

    entry = runtime.catalog.latest(request.survey_id)
    if entry is None:
        known = ", ".join(s.id for s in runtime.catalog.surveys) or "none"
        problems.append(f"survey: unknown survey '{request.survey_id}' (known: {known})")

    starts_at = now
    if request.starts:
        try:
            starts_at = max(parse_instant(request.starts, tz), now)
        except ValueError as e:
            problems.append(f"starts: {e}")
    ends_at: datetime | None = None
    try:
        ends_at = parse_instant(request.ends, tz, end_of_day=True)
    except ValueError as e:
        problems.append(f"ends: {e}")
    if ends_at is not None:
        if ends_at <= now:
            problems.append(f"ends: {request.ends} is in the past")
        elif ends_at <= starts_at:
            problems.append(f"ends: {request.ends} is not after the start ({request.starts})")

    reminders: list[int] = []
    for item in _items(request.reminders):
        try:
            reminders.append(parse_duration(item))
        except ValueError as e:
            problems.append(f"reminders: {e}")
    if ends_at is not None and ends_at > starts_at:
        for offset in reminders:
            if starts_at + timedelta(seconds=offset) >= ends_at:
                problems.append(
                    f"reminders: {format_duration(offset)} after the start is after the end"
                )

    channels = _items(request.channels) or list(CHANNELS)
    for channel in channels:
        if channel not in CHANNELS:
            problems.append(f"channels: unknown channel '{channel}' (use {', '.join(CHANNELS)})")
    if len(set(channels)) != len(channels):
        problems.append("channels: a channel is listed twice")

    participation = entry.survey.participation.value if entry else ""
    if request.participation:
        rungs = [p.value for p in Participation]
        if request.participation not in rungs:
            problems.append(
                f"participation: unknown rung '{request.participation}' (use {', '.join(rungs)})"
            )
        else:
            participation = request.participation

    feedback_delay = DEFAULT_FEEDBACK_DELAY
    if request.feedback_delay is not None:
        try:
            feedback_delay = _duration(request.feedback_delay)
        except ValueError as e:
            problems.append(f"feedback_delay: {e}")
    if request.feedback_to not in FEEDBACK_TO:
        problems.append(
            f"feedback_to: '{request.feedback_to}' is not one of {', '.join(FEEDBACK_TO)}"
        )

    expr: Expr | None = None
    try:
        async with runtime.db.transaction(read_only=True) as s:
            expr = await compile_audience(s, request.audience)
    except ExprError as e:
        problems.append(f"audience: {e}")
    if problems:
        raise CampaignInvalid(problems)
    assert entry is not None and ends_at is not None and expr is not None

    async with runtime.db.transaction(read_only=True) as s:
        others = await repo_campaigns.open_for_survey(s, entry.survey.id)
    scan = await scan_audience(runtime, expr, now.astimezone(tz).date(), others)
    if not scan.matched:
        raise EmptyAudience(
            [f"audience: {request.audience!r} matches nobody; the campaign was not created"]
        )

    name = (request.name or "").strip() or f"{entry.survey.id} {starts_at.astimezone(tz):%Y-%m-%d}"
    async with runtime.db.transaction() as s:
        campaign = await repo_campaigns.create(
            s,
            name=name[:200],
            survey_id=entry.survey.id,
            survey_version_id=entry.version_id,
            audience=request.audience,
            channels=channels,
            status=repo_campaigns.SCHEDULED,
            starts_at=starts_at,
            ends_at=ends_at,
            reminders=reminders,
            participation=participation,
            feedback_delay=feedback_delay,
            feedback_to=request.feedback_to,
            feedback_status="none" if request.feedback_to == "none" else "pending",
            created_by=actor,
            created_at=now,
        )
        cid = campaign.id
        payload = {"campaign_id": cid}
        await repo_tasks.schedule(s, START_TASK, f"{START_TASK}:{cid}", starts_at, payload)
        for n, offset in enumerate(reminders, start=1):
            await repo_tasks.schedule(
                s,
                REMIND_TASK,
                f"{REMIND_TASK}:{cid}:{n}",
                starts_at + timedelta(seconds=offset),
                {"campaign_id": cid, "n": n},
            )
        await repo_tasks.schedule(s, CLOSE_TASK, f"{CLOSE_TASK}:{cid}", ends_at, payload)
        await repo_audit.log(
            s,
            actor,
            "campaign.create",
            f"campaign:{cid}",
            {"survey_id": entry.survey.id, "audience": request.audience, "channels": channels},
            at=now,
        )
    events.note(
        "campaign.created",
        "campaign {campaign} created by {by}: survey {survey}, channels {channels}, "
        "starts {starts}, ends {ends}, {reminders} reminders",
        campaign=cid,
        by=events.by(actor),
        survey=entry.survey.id,
        channels=",".join(channels) or "any",
        starts=starts_at.isoformat(timespec="minutes"),
        ends=ends_at.isoformat(timespec="minutes"),
        reminders=len(reminders),
    )
    return CreatedCampaign(campaign, tuple(overlap_warnings(scan, others)))


# -- staff actions -------------------------------------------------------------------------------


async def list_campaigns(runtime: Runtime) -> list[Campaign]:
    """Every campaign, newest first."""
    async with runtime.db.transaction(read_only=True) as s:
        return await repo_campaigns.listing(s)


async def show_campaign(runtime: Runtime, campaign_id: int) -> CampaignView:
    """A campaign with its live counts and what quiet hours hold back."""
    now = runtime.clock.now()
    async with runtime.db.transaction(read_only=True) as s:
        campaign = await repo_campaigns.get(s, campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        counts = await repo_campaigns.counts(s, campaign)
        running = campaign.status == repo_campaigns.RUNNING
        held = await _quiet_hold(s, campaign, now) if running else None
        return CampaignView(campaign, counts, held)


async def _quiet_hold(s: AsyncSession, campaign: Campaign, now: datetime) -> QuietHold | None:
    messages, first = await repo_campaigns.held_outreach(s, campaign.id, now)
    # A round normally follows the last within ROUND_SECONDS; one further off waits for the end
    # of quiet hours.
    rounds = [
        t.due_at
        for t in await repo_tasks.pending(s, kinds=[INVITE_TASK])
        if t.payload.get("campaign_id") == campaign.id
        and t.due_at > now + timedelta(seconds=ROUND_SECONDS)
    ]
    next_round = min(rounds, default=None)
    times = [t for t in (first, next_round) if t is not None]
    if not times:
        return None
    return QuietHold(until=min(times), messages=messages, next_round=next_round)


async def apply_quiet_hours(runtime: Runtime) -> tuple[int, int]:
    """Bring queued campaign messages and waiting invite rounds in line with the current
    `schedule.quiet_hours` (run once at startup, where a changed setting is read): whatever
    the old hours held goes at the next time the new ones allow. Returns (messages, rounds)
    moved."""
    now = runtime.clock.now()
    allowed = allowed_time(runtime, now)
    later = now + timedelta(seconds=ROUND_SECONDS)
    async with runtime.db.transaction() as s:
        messages = await repo_campaigns.retime_outreach(s, allowed, now)
        rounds = 0
        for task in await repo_tasks.pending(s, kinds=[INVITE_TASK]):
            if task.due_at > later and task.due_at != allowed:
                rounds += await repo_tasks.requeue(s, task.key, allowed)
    if messages or rounds:
        log.info(
            "quiet hours %s: %d queued campaign messages and %d invite rounds retimed",
            runtime.settings.schedule.quiet_hours or "none",
            messages,
            rounds,
        )
    return messages, rounds


async def pause_campaign(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Stop inviting and hold queued invitations and reminders until resumed."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await locked_campaign(s, campaign_id)
        if campaign.status == repo_campaigns.PAUSED:
            return campaign
        if campaign.status == repo_campaigns.CLOSED:
            raise CampaignStateError(f"campaign {campaign_id} is closed")
        campaign.status = repo_campaigns.PAUSED
        held = await repo_campaigns.hold_messages(s, campaign_id)
        await repo_tasks.cancel_prefix(s, f"{INVITE_TASK}:{campaign_id}:")
        await repo_audit.log(
            s, actor, "campaign.pause", f"campaign:{campaign_id}", {"held": held}, at=now
        )
    events.note(
        "campaign.paused",
        "campaign {campaign} paused by {by}: {held} queued messages held",
        campaign=campaign_id,
        by=events.by(actor),
        held=held,
    )
    return campaign


async def resume_campaign(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Continue a paused campaign: release held messages and invite the rest."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await locked_campaign(s, campaign_id)
        if campaign.status != repo_campaigns.PAUSED:
            raise CampaignStateError(f"campaign {campaign_id} is {campaign.status}, not paused")
        started = campaign.audience_size is not None
        campaign.status = repo_campaigns.RUNNING if started else repo_campaigns.SCHEDULED
        released = await repo_campaigns.release_messages(s, campaign_id, allowed_time(runtime, now))
        if started:
            await schedule_round(s, campaign_id, now)
        await repo_audit.log(
            s, actor, "campaign.resume", f"campaign:{campaign_id}", {"released": released}, at=now
        )
    events.note(
        "campaign.resumed",
        "campaign {campaign} resumed by {by}: {released} held messages released",
        campaign=campaign_id,
        by=events.by(actor),
        released=released,
    )
    return campaign


async def close_campaign(
    runtime: Runtime, campaign_id: int, *, actor: str = "scheduler"
) -> Campaign:
    """Close now: unfinished conversations end, queued sending is cancelled, feedback planned.

    Safe to run again (the close task retries it after a crash)."""
    now = runtime.clock.now()
    closing, cancelled = False, 0
    async with runtime.db.transaction() as s:
        campaign = await locked_campaign(s, campaign_id)
        if campaign.status != repo_campaigns.CLOSED:
            closing = True
            campaign.status = repo_campaigns.CLOSED
            campaign.closed_at = now
            await repo_campaigns.set_status_where(
                s,
                campaign_id,
                [repo_campaigns.PENDING, repo_campaigns.WAITING],
                repo_campaigns.CLOSED,
            )
            cancelled = await repo_campaigns.cancel_messages(s, campaign_id, "cancelled: closed")
            for prefix in (START_TASK, INVITE_TASK, REMIND_TASK, CLOSE_TASK):
                await repo_tasks.cancel_prefix(s, f"{prefix}:{campaign_id}")
            if campaign.feedback_to != "none":
                await repo_tasks.schedule(
                    s,
                    FEEDBACK_TASK,
                    f"{FEEDBACK_TASK}:{campaign_id}",
                    now + timedelta(seconds=campaign.feedback_delay),
                    {"campaign_id": campaign_id},
                )
            await repo_audit.log(
                s,
                actor,
                "campaign.close",
                f"campaign:{campaign_id}",
                {"cancelled_messages": cancelled},
                at=now,
            )
    after = ""
    while True:
        async with runtime.db.transaction(read_only=True) as s:
            ids = await repo_campaigns.active_conversation_ids(
                s, campaign_id, after, CLOSES_PER_TRANSACTION
            )
        await asyncio.gather(*(runtime.service.close_conversation(i) for i in ids))
        if len(ids) < CLOSES_PER_TRANSACTION:
            break
        after = ids[-1]
    async with runtime.db.transaction() as s:
        await _settle_invitations(s, campaign_id)
    # Whatever anonymous answers of the campaign still wait are released now.
    await runtime.service.release_answers()
    if closing:
        async with runtime.db.transaction(read_only=True) as s:
            c = await repo_campaigns.counts(s, campaign)
        events.note(
            "campaign.closed",
            "campaign {campaign} closed by {by}: {invited} invited, {started} started, "
            "{completed} completed; {cancelled} queued messages cancelled",
            campaign=campaign_id,
            by=events.by(actor),
            invited=c.invited,
            started=c.started,
            completed=c.completed,
            cancelled=cancelled,
        )
    return campaign


async def _settle_invitations(s: AsyncSession, campaign_id: int) -> None:
    """Invitations still marked as reached take their conversation's final status."""
    final = (
        select(
            case(
                (
                    Conversation.status.in_([repo_campaigns.COMPLETED, repo_campaigns.OPTED_OUT]),
                    Conversation.status,
                ),
                else_=repo_campaigns.CLOSED,
            )
        )
        .where(Conversation.id == Invitation.conversation_id)
        .scalar_subquery()
    )
    await s.execute(
        update(Invitation)
        .where(
            Invitation.campaign_id == campaign_id,
            Invitation.status.in_(repo_campaigns.REACHED),
        )
        .values(status=final)
        .execution_options(synchronize_session=False)
    )
    await repo_campaigns.set_status_where(
        s, campaign_id, repo_campaigns.REACHED, repo_campaigns.CLOSED
    )


def campaign_json(
    campaign: Campaign, counts: CampaignCounts | None = None, held: QuietHold | None = None
) -> dict[str, Any]:
    """A campaign as the staff API and the CLI show it; with counts, also "held_by_quiet_hours"
    (null when quiet hours hold nothing back)."""
    data: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "survey_id": campaign.survey_id,
        "status": campaign.status,
        "audience": campaign.audience,
        "channels": list(campaign.channels),
        "starts_at": campaign.starts_at.isoformat(),
        "ends_at": campaign.ends_at.isoformat(),
        "reminders": [format_duration(r) for r in campaign.reminders],
        "participation": campaign.participation,
        "feedback_delay": format_duration(campaign.feedback_delay),
        "feedback_to": campaign.feedback_to,
        "audience_size": campaign.audience_size,
        "closed_at": campaign.closed_at.isoformat() if campaign.closed_at else None,
    }
    if counts is not None:
        data["counts"] = {
            "audience": counts.audience,
            "pending": counts.pending,
            "waiting": counts.waiting,
            "invited": counts.invited,
            "delivered": counts.delivered,
            "started": counts.started,
            "completed": counts.completed,
            "opted_out": counts.opted_out,
            "failed": counts.failed,
            "response_rate": counts.response_rate,
        }
        data["held_by_quiet_hours"] = held.to_json() if held is not None else None
    return data
