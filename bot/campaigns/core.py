"""What the campaign modules share: task names, limits, errors and the values staff work with."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.reach import DEFAULT_ORDER
from bot.timewindows import next_allowed
from storage import repo_campaigns, repo_tasks
from storage.models import Campaign
from storage.repo_campaigns import CampaignCounts

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


async def locked_campaign(s: AsyncSession, campaign_id: int) -> Campaign:
    """The campaign row locked for update; raises CampaignNotFound if there is none."""
    campaign = await repo_campaigns.get(s, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def allowed_time(runtime: Runtime, now: datetime) -> datetime:
    """`now`, or the end of the quiet hours if `now` falls in them (in the schedule's time zone)."""
    schedule = runtime.settings.schedule
    return next_allowed(now, schedule.tz, quiet=schedule.quiet)


async def schedule_round(s: AsyncSession, campaign_id: int, due_at: datetime) -> None:
    """Schedule one invitation round of a campaign at `due_at` (each round has its own task key)."""
    await repo_tasks.schedule(
        s,
        INVITE_TASK,
        f"{INVITE_TASK}:{campaign_id}:{uuid.uuid4().hex[:12]}",
        due_at,
        {"campaign_id": campaign_id},
    )
