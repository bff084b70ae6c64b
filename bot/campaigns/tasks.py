"""The due tasks that run a campaign: start (the audience becomes invitations), invite
rounds, reminders, close; registered on the runtime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.reach import Route, route_to
from flows.expr import compile_expr
from flows.model import Survey, localize
from flows.texts import text
from storage import repo_campaigns, repo_contacts

if TYPE_CHECKING:
    from bot.runtime import Runtime
from bot.campaigns.audience import audience_env
from bot.campaigns.core import (
    AUDIENCE_PAGE,
    CHANNELS,
    CLOSE_TASK,
    INVITE_TASK,
    INVITES_PER_TRANSACTION,
    MESSAGES_PER_INVITATION,
    REMIND_TASK,
    REMINDERS_PER_TRANSACTION,
    ROUND_LIMITS,
    ROUND_SECONDS,
    START_TASK,
    WEBCHAT_RATE,
    CampaignNotFound,
    allowed_time,
    locked_campaign,
    schedule_round,
)
from bot.campaigns.service import close_campaign
from bot.ops import events

log = logging.getLogger(__name__)

# -- tasks ---------------------------------------------------------------------------------------


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
        campaign = await locked_campaign(s, campaign_id)
        size = await repo_campaigns.count_invitations(s, campaign_id)
        campaign.audience_size = size
        if campaign.status == repo_campaigns.RUNNING and size:
            await schedule_round(s, campaign_id, now)
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
    allowed = allowed_time(runtime, now)
    if allowed > now:
        async with runtime.db.transaction() as s:
            await schedule_round(s, campaign_id, allowed)
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
        campaign = await locked_campaign(s, campaign_id)
        if campaign.status == repo_campaigns.RUNNING and await repo_campaigns.has_pending(
            s, campaign_id
        ):
            more = True
            await schedule_round(s, campaign_id, now + timedelta(seconds=ROUND_SECONDS))
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
            not_before=allowed_time(runtime, now),
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
    not_before = allowed_time(runtime, now)
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
