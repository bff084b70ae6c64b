"""Survey campaigns: staff send one survey to an audience of contacts over a time window.

The package: `core` (task names, limits, errors, values), `audience`, `service` (staff
actions) and `tasks` (the due tasks); this module re-exports them.

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

from bot.campaigns.audience import (
    FIXED_ATTRIBUTES,
    AudienceScan,
    audience_env,
    compile_audience,
    overlap_warnings,
    scan_audience,
)
from bot.campaigns.core import (
    AUDIENCE_PAGE,
    CHANNELS,
    CLOSE_TASK,
    CLOSES_PER_TRANSACTION,
    DEFAULT_FEEDBACK_DELAY,
    FEEDBACK_TASK,
    FEEDBACK_TO,
    INVITE_TASK,
    INVITES_PER_TRANSACTION,
    MESSAGES_PER_INVITATION,
    REMIND_TASK,
    REMINDERS_PER_TRANSACTION,
    ROUND_LIMITS,
    ROUND_SECONDS,
    START_TASK,
    WEBCHAT_RATE,
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
from bot.campaigns.service import (
    CreatedCampaign,
    apply_quiet_hours,
    campaign_json,
    close_campaign,
    create_campaign,
    create_campaign_with_warnings,
    list_campaigns,
    parse_instant,
    pause_campaign,
    resolve_ends,
    resume_campaign,
    show_campaign,
)
from bot.campaigns.tasks import (
    invitation_text,
    invite_task,
    register,
    remind_task,
    round_size,
    start_task,
)

__all__ = [
    "AUDIENCE_PAGE",
    "CHANNELS",
    "CLOSES_PER_TRANSACTION",
    "CLOSE_TASK",
    "DEFAULT_FEEDBACK_DELAY",
    "FEEDBACK_TASK",
    "FEEDBACK_TO",
    "FIXED_ATTRIBUTES",
    "INVITES_PER_TRANSACTION",
    "INVITE_TASK",
    "MESSAGES_PER_INVITATION",
    "REMINDERS_PER_TRANSACTION",
    "REMIND_TASK",
    "ROUND_LIMITS",
    "ROUND_SECONDS",
    "START_TASK",
    "WEBCHAT_RATE",
    "AudienceScan",
    "CampaignInvalid",
    "CampaignNotFound",
    "CampaignRequest",
    "CampaignStateError",
    "CampaignView",
    "CreatedCampaign",
    "EmptyAudience",
    "QuietHold",
    "allowed_time",
    "apply_quiet_hours",
    "audience_env",
    "campaign_json",
    "close_campaign",
    "compile_audience",
    "create_campaign",
    "create_campaign_with_warnings",
    "invitation_text",
    "invite_task",
    "list_campaigns",
    "locked_campaign",
    "overlap_warnings",
    "parse_instant",
    "pause_campaign",
    "register",
    "remind_task",
    "resolve_ends",
    "resume_campaign",
    "round_size",
    "scan_audience",
    "schedule_round",
    "show_campaign",
    "start_task",
]
