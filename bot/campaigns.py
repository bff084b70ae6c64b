"""Survey campaigns: staff send one survey to an audience of contacts over a time window.

Lifecycle, all driven by due tasks (so several service processes can share the work):

- `campaign.start:<id>` at starts_at: the audience expression is evaluated over the contacts in
  pages (constant memory) and one pending Invitation row per person is added (unique per
  campaign). Opted-out contacts are left out.
- `campaign.invite:<id>:<round>`: each round claims as many pending invitations as the campaign's
  channels can send in the next minute, starts their conversations (the invitation text first,
  then the survey's intro and first question) and schedules the next round. A task key runs once,
  so every round has its own key; rounds wait out quiet hours.
- `campaign.remind:<id>:<n>` at starts_at + the n-th reminder offset: people invited whose
  conversation is still running get a short reminder and the current question again.
- `campaign.close:<id>` at ends_at (or staff closing early): unfinished conversations are closed,
  queued invitations and reminders cancelled, and `campaign.feedback:<id>` is scheduled.

Pausing holds the campaign's queued invitations and reminders (their `not_before` is moved to
repo_campaigns.HELD_UNTIL, so they keep their place and an opt-out still cancels them) and stops
the invite rounds; resuming releases the held messages (outside quiet hours) and starts a round.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bands import age_group_of, contact_length_of
from bot.ops import events
from bot.reach import DEFAULT_ORDER, Route, route_to
from bot.timewindows import next_allowed
from flows.durations import format_duration, parse_duration
from flows.expr import Expr, ExprError, compile_expr
from flows.model import Participation, Survey, localize
from flows.texts import text
from storage import repo_audit, repo_campaigns, repo_contacts, repo_tasks
from storage.models import Campaign, Conversation, Invitation
from storage.repo_campaigns import AudienceContact, CampaignCounts

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

START_TASK = "campaign.start"
INVITE_TASK = "campaign.invite"
REMIND_TASK = "campaign.remind"
CLOSE_TASK = "campaign.close"
FEEDBACK_TASK = "campaign.feedback"

CHANNELS = DEFAULT_ORDER
FEEDBACK_TO = ("respondents", "invited", "none")
DEFAULT_FEEDBACK_DELAY = 3 * 24 * 3600

AUDIENCE_PAGE = 5000
"""Contacts read per transaction while evaluating an audience."""
INVITES_PER_TRANSACTION = 50
REMINDERS_PER_TRANSACTION = 200
CLOSES_PER_TRANSACTION = 200
ROUND_SECONDS = 60
MESSAGES_PER_INVITATION = 3
"""Invitation text, intro and first question."""
ROUND_LIMITS = (5, 2000)
"""Fewest and most invitations one round starts."""
WEBCHAT_RATE = 50.0
"""Web chat "sends" are only outbox rows a browser fetches; this just keeps rounds short."""

FIXED_ATTRIBUTES = frozenset(
    {
        "language",
        "gender",
        "birth_year",
        "age",
        "age_group",
        "target_group",
        "unit",
        "contact_since",
        "contact_length",
    }
)
"""Names an audience expression may use besides the keys of contacts' free attributes."""

_WORD_OR_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[A-Za-z0-9_]+")


class CampaignInvalid(ValueError):
    """A campaign request that cannot be carried out; every problem, each for staff to fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class EmptyAudience(CampaignInvalid):
    """The audience expression matches nobody: the campaign is not created."""


class CampaignNotFound(LookupError):
    """No campaign has this id."""


class CampaignStateError(ValueError):
    """The campaign is not in a state that allows this (e.g. resuming a closed one)."""


@dataclass(frozen=True, slots=True)
class CampaignRequest:
    """What staff ask for, as given on the command line or in the API's JSON."""

    survey_id: str
    audience: str
    ends: str
    name: str | None = None
    starts: str | None = None
    reminders: Sequence[str] = ()
    channels: Sequence[str] = ()
    participation: str | None = None
    feedback_delay: str | int | None = None
    feedback_to: str = "respondents"


@dataclass(frozen=True, slots=True)
class QuietHold:
    """What quiet hours hold back right now, and until when."""

    until: datetime
    messages: int
    """Queued invitation and reminder messages waiting for `until`."""
    next_round: datetime | None
    """When invitations not yet sent start going out again, if a round waits for it."""

    def to_json(self) -> dict[str, Any]:
        """JSON with ISO 8601 UTC times."""
        return {
            "until": self.until.isoformat(),
            "messages": self.messages,
            "next_round": self.next_round.isoformat() if self.next_round else None,
        }


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign, its live counts, and what quiet hours hold back (None: nothing)."""

    campaign: Campaign
    counts: CampaignCounts
    held: QuietHold | None = None


# -- audiences -----------------------------------------------------------------------------------


def audience_env(contact: AudienceContact, today: date) -> dict[str, object]:
    """The names an audience expression sees for one contact; fixed fields win over free ones."""
    env: dict[str, object] = dict(contact.attributes) if contact.attributes else {}
    env["language"] = contact.language
    env["gender"] = contact.gender
    env["birth_year"] = contact.birth_year
    env["age"] = today.year - contact.birth_year if contact.birth_year is not None else None
    env["age_group"] = contact.age_group or age_group_of(contact.birth_year, today)
    env["target_group"] = contact.target_group
    env["unit"] = contact.unit
    since = contact.contact_since
    env["contact_since"] = since.isoformat() if since is not None else None
    env["contact_length"] = contact_length_of(since, today)
    return env


def _name_position(source: str, name: str) -> int:
    for match in _WORD_OR_STRING.finditer(source):
        if match.group() == name:
            return match.start()
    return 0


async def compile_audience(s: AsyncSession, source: str) -> Expr:
    """Compile an audience; raises ExprError at the offending token, also for unknown names."""
    if not source.strip():
        raise ExprError("the audience is empty; write an expression like unit == 'Norr'", 0)
    expr = compile_expr(source)
    unknown = expr.names - FIXED_ATTRIBUTES
    if unknown:
        unknown -= await repo_campaigns.attribute_names(s)
    if unknown:
        first = min(unknown, key=lambda n: _name_position(source, n))
        known = ", ".join(sorted(FIXED_ATTRIBUTES))
        raise ExprError(
            f"unknown attribute '{first}' (known: {known} and contacts' own attributes)",
            _name_position(source, first),
            first,
        )
    return expr


@dataclass(frozen=True, slots=True)
class AudienceScan:
    """How many people an audience matches now, and how many of them each open campaign of the
    same survey already covers (by campaign id)."""

    matched: int
    overlaps: Mapping[int, int]


async def _scan_audience(
    runtime: Runtime, expr: Expr, today: date, others: Sequence[Campaign]
) -> AudienceScan:
    """Match the audience over every contact; without `others` it stops at the first match.

    A started campaign covers the people invited to it (its invitation rows); a scheduled one
    covers whoever its own audience matches now."""
    started = [c.id for c in others if c.audience_size is not None]
    scheduled: list[tuple[int, Expr]] = []
    for c in others:
        if c.audience_size is None:
            try:
                scheduled.append((c.id, compile_expr(c.audience)))
            except ExprError:
                log.warning("campaign %s: its audience no longer compiles", c.id)
    matched = 0
    overlaps = dict.fromkeys((c.id for c in others), 0)
    after = 0
    while True:
        async with runtime.db.transaction(read_only=True) as s:
            page = await repo_campaigns.audience_chunk(s, after, AUDIENCE_PAGE)
            envs = [(c.id, audience_env(c, today)) for c in page]
            chosen = [(cid, env) for cid, env in envs if expr.evaluate(env)]
            covered = await repo_campaigns.invited_among(s, started, [cid for cid, _ in chosen])
        matched += len(chosen)
        for campaign_id, _contact in covered:
            overlaps[campaign_id] += 1
        for campaign_id, other in scheduled:
            overlaps[campaign_id] += sum(1 for _, env in chosen if other.evaluate(env))
        if (matched and not others) or len(page) < AUDIENCE_PAGE:
            return AudienceScan(matched, {k: v for k, v in overlaps.items() if v})
        after = page[-1].id


def overlap_warnings(scan: AudienceScan, others: Sequence[Campaign]) -> list[str]:
    """What staff should know about people the new campaign shares with open ones."""
    warnings = []
    for other in others:
        shared = scan.overlaps.get(other.id, 0)
        if shared:
            warnings.append(
                f"{shared} of the {scan.matched} people in this audience are already in "
                f"campaign {other.id} '{other.name}' ({other.status}) of the same survey: anyone "
                "still answering that one gets this campaign's invitation when done (shown as "
                "waiting)"
            )
    return warnings


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
    scan = await _scan_audience(runtime, expr, now.astimezone(tz).date(), others)
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
    allowed = _allowed(runtime, now)
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
        campaign = await _locked(s, campaign_id)
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
        campaign = await _locked(s, campaign_id)
        if campaign.status != repo_campaigns.PAUSED:
            raise CampaignStateError(f"campaign {campaign_id} is {campaign.status}, not paused")
        started = campaign.audience_size is not None
        campaign.status = repo_campaigns.RUNNING if started else repo_campaigns.SCHEDULED
        released = await repo_campaigns.release_messages(s, campaign_id, _allowed(runtime, now))
        if started:
            await _schedule_round(s, campaign_id, now)
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
        campaign = await _locked(s, campaign_id)
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


async def _locked(s: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await repo_campaigns.get(s, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
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


# -- tasks ---------------------------------------------------------------------------------------


def _allowed(runtime: Runtime, now: datetime) -> datetime:
    schedule = runtime.settings.schedule
    return next_allowed(now, schedule.tz, quiet=schedule.quiet)


async def _schedule_round(s: AsyncSession, campaign_id: int, due_at: datetime) -> None:
    await repo_tasks.schedule(
        s,
        INVITE_TASK,
        f"{INVITE_TASK}:{campaign_id}:{uuid.uuid4().hex[:12]}",
        due_at,
        {"campaign_id": campaign_id},
    )


def round_size(runtime: Runtime, channels: Sequence[str]) -> int:
    """Invitations one round starts: what the campaign's channels can send in a round."""
    rates = {
        "sms": runtime.settings.twilio.mps,
        "telegram": runtime.settings.dispatcher.telegram_rate,
        "webchat": WEBCHAT_RATE,
    }
    usable = [c for c in channels or CHANNELS if c in runtime.channels]
    per_round = sum(rates.get(c, 1.0) for c in usable) * ROUND_SECONDS / MESSAGES_PER_INVITATION
    low, high = ROUND_LIMITS
    return max(low, min(high, int(per_round)))


async def start_task(runtime: Runtime, campaign_id: int) -> int:
    """Evaluate the audience and add the invitation rows; returns the audience size."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await repo_campaigns.get(s, campaign_id, for_update=True)
        if campaign is None or campaign.status == repo_campaigns.CLOSED:
            return 0
        if campaign.status == repo_campaigns.SCHEDULED:
            campaign.status = repo_campaigns.RUNNING
        source = campaign.audience
    expr = compile_expr(source)
    today = now.astimezone(runtime.settings.schedule.tz).date()
    after = 0
    while True:
        async with runtime.db.transaction() as s:
            page = await repo_campaigns.audience_chunk(s, after, AUDIENCE_PAGE)
            matching = [c.id for c in page if expr.evaluate(audience_env(c, today))]
            if matching:
                await repo_campaigns.add_invitations(s, campaign_id, matching)
        if len(page) < AUDIENCE_PAGE:
            break
        after = page[-1].id
    async with runtime.db.transaction() as s:
        campaign = await _locked(s, campaign_id)
        size = await repo_campaigns.count_invitations(s, campaign_id)
        campaign.audience_size = size
        if campaign.status == repo_campaigns.RUNNING and size:
            await _schedule_round(s, campaign_id, now)
    events.note(
        "campaign.started",
        "campaign {campaign} started: an audience of {audience}",
        campaign=campaign_id,
        audience=size,
    )
    if not size:
        log.warning("campaign %s: the audience matches nobody now; closing it", campaign_id)
        await close_campaign(runtime, campaign_id)
    return size


def invitation_text(survey: Survey, lang: str) -> str:
    """The survey's own invitation, else a discreet built-in one naming the sender."""
    if survey.invitation:
        return localize(survey.invitation, lang, survey.default_language)
    sender = localize(survey.sender, lang, survey.default_language) if survey.sender else ""
    if sender:
        return text("campaign_invitation", lang, sender=sender)
    return text("campaign_invitation_no_sender", lang)


async def invite_task(runtime: Runtime, campaign_id: int) -> int:
    """One invite round; returns how many people it invited.

    Each person is invited in a turn of their own (bot.inbound): one still answering another
    survey waits (status "waiting") and is tried again by later rounds."""
    now = runtime.clock.now()
    async with runtime.db.transaction(read_only=True) as s:
        campaign = await repo_campaigns.get(s, campaign_id)
        if campaign is None or campaign.status != repo_campaigns.RUNNING:
            return 0
        if now >= campaign.ends_at:
            return 0
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
        version_id = campaign.survey_version_id
        channels = list(campaign.channels)
    allowed = _allowed(runtime, now)
    if allowed > now:
        async with runtime.db.transaction() as s:
            await _schedule_round(s, campaign_id, allowed)
        return 0

    size = round_size(runtime, channels)
    invited = 0
    # New invitations first; then those waiting for a person to finish another survey.
    for status in (repo_campaigns.PENDING, repo_campaigns.WAITING):
        done = await _invite_round(runtime, campaign_id, survey, version_id, status, size, now)
        if done is None:
            _invited_note(campaign_id, invited, "the campaign stopped")
            return invited
        invited += done
    more = False
    async with runtime.db.transaction() as s:
        campaign = await _locked(s, campaign_id)
        if campaign.status == repo_campaigns.RUNNING and await repo_campaigns.has_pending(
            s, campaign_id
        ):
            more = True
            await _schedule_round(s, campaign_id, now + timedelta(seconds=ROUND_SECONDS))
    _invited_note(campaign_id, invited, "more rounds follow" if more else "the last round")
    return invited


def _invited_note(campaign_id: int, invited: int, then: str) -> None:
    events.note(
        "campaign.invitations",
        "campaign {campaign} invite round: {invited} invitations sent; {then}",
        campaign=campaign_id,
        invited=invited,
        then=then,
    )


async def _invite_round(
    runtime: Runtime,
    campaign_id: int,
    survey: Survey,
    version_id: int,
    status: str,
    size: int,
    now: datetime,
) -> int | None:
    """Invite up to `size` people whose invitation has `status`; None if the campaign stopped."""
    invited = seen = 0
    after = 0
    while seen < size:
        wanted = min(INVITES_PER_TRANSACTION, size - seen)
        async with runtime.db.transaction(read_only=True) as s:
            campaign = await repo_campaigns.get(s, campaign_id)
            if campaign is None or campaign.status != repo_campaigns.RUNNING:
                return None
            channels = list(campaign.channels)
            candidates = await repo_campaigns.invitable(s, campaign_id, status, after, wanted)
            routes = {
                c.contact_id: await route_to(s, c.contact_id, channels, runtime.channels.keys())
                for c in candidates
            }
            unreachable = [c.id for c in candidates if routes[c.contact_id] is None]
        if unreachable:
            async with runtime.db.transaction() as s:
                await repo_campaigns.set_status_by_ids(s, unreachable, repo_campaigns.UNREACHABLE)
        outcomes = await runtime.service.invite(
            campaign_id=campaign_id,
            people=[(c, r) for c, r in routes.items() if r is not None],
            survey=survey,
            version_id=version_id,
            invitation=lambda lang: invitation_text(survey, lang),
            not_before=_allowed(runtime, now),
        )
        invited += sum(1 for o in outcomes if o == "invited")
        seen += len(candidates)
        if len(candidates) < wanted:
            break
        after = candidates[-1].id
    return invited


async def remind_task(runtime: Runtime, campaign_id: int, n: int) -> int:
    """Send the n-th reminder to everyone invited who has not finished; returns how many."""
    now = runtime.clock.now()
    not_before = _allowed(runtime, now)
    sent = 0
    after = 0
    while True:
        async with runtime.db.transaction(read_only=True) as s:
            campaign = await repo_campaigns.get(s, campaign_id)
            if campaign is None or campaign.status not in (
                repo_campaigns.RUNNING,
                repo_campaigns.PAUSED,
            ):
                return sent
            paused = campaign.status == repo_campaigns.PAUSED
            targets = await repo_campaigns.reminder_targets(
                s, campaign_id, after, REMINDERS_PER_TRANSACTION
            )
            # A reminder task retried after a crash skips people it already reminded.
            due = [(i, c) for i, c in targets if i.reminders_sent < n]
            addresses = {
                i.id: await repo_contacts.address_on(s, i.contact_id, c.channel) for i, c in due
            }
        reminded = await asyncio.gather(
            *(
                runtime.service.remind(
                    conversation_id=conv.id,
                    campaign_id=campaign_id,
                    route=Route(conv.channel, address.address),
                    not_before=repo_campaigns.HELD_UNTIL if paused else not_before,
                )
                for invitation, conv in due
                if (address := addresses[invitation.id]) is not None
            )
        )
        sent += sum(1 for r in reminded if r)
        if len(targets) < REMINDERS_PER_TRANSACTION:
            events.note(
                "campaign.reminders",
                "campaign {campaign} reminder {n}: {sent} reminders sent",
                campaign=campaign_id,
                n=n,
                sent=sent,
            )
            return sent
        after = targets[-1][0].id


def register(runtime: Runtime) -> None:
    """Register the campaign task handlers on a runtime."""

    def campaign_id(payload: Mapping[str, Any]) -> int:
        return int(payload["campaign_id"])

    async def start(payload: dict[str, Any]) -> None:
        await start_task(runtime, campaign_id(payload))

    async def invite(payload: dict[str, Any]) -> None:
        await invite_task(runtime, campaign_id(payload))

    async def remind(payload: dict[str, Any]) -> None:
        await remind_task(runtime, campaign_id(payload), int(payload["n"]))

    async def close(payload: dict[str, Any]) -> None:
        try:
            await close_campaign(runtime, campaign_id(payload))
        except CampaignNotFound:
            log.warning("campaign %s no longer exists; nothing to close", payload)

    runtime.tasks.register(START_TASK, start)
    runtime.tasks.register(INVITE_TASK, invite)
    runtime.tasks.register(REMIND_TASK, remind)
    runtime.tasks.register(CLOSE_TASK, close)


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
