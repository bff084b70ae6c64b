"""Campaigns, their invitations, and the campaign-wide views of messages and respondents.

An invitation row is one person in one campaign (unique), so inviting is idempotent: rows are
added with ON CONFLICT DO NOTHING, and a pending row is claimed (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, the single writer on SQLite) before it becomes `invited` in the same transaction that
starts the person's conversation."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert, dialect_name
from storage.models import (
    Campaign,
    Contact,
    Conversation,
    Invitation,
    Message,
    utcnow,
)

PENDING = "pending"
WAITING = "waiting"
"""Invited people still answering another survey: their invitation waits until that ends."""
INVITED = "invited"
STARTED = "started"
COMPLETED = "completed"
OPTED_OUT = "opted_out"
UNREACHABLE = "unreachable"
CLOSED = "closed"
REACHED = (INVITED, STARTED)
"""Invitation statuses of people who got the invitation and have not finished."""

SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"

CAMPAIGN_KINDS = ("invitation", "reminder")
"""Outbox kinds that belong to a campaign's sending (held on pause, cancelled on close)."""
HELD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
"""`not_before` of a held (paused) campaign message: the dispatcher never reaches it."""

INSERT_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class AudienceContact:
    """The attributes of one contact an audience expression is evaluated over."""

    id: int
    language: str | None
    gender: str | None
    birth_year: int | None
    age_group: str | None
    target_group: str | None
    unit: str | None
    contact_since: date | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """Live counts for one campaign; people, never messages."""

    audience: int
    pending: int
    invited: int
    delivered: int
    started: int
    completed: int
    opted_out: int
    failed: int
    waiting: int = 0
    """Invitations held back while the person is still answering another campaign."""

    @property
    def response_rate(self) -> float | None:
        """Completed per invited, or None before anyone was invited."""
        return self.completed / self.invited if self.invited else None


async def create(s: AsyncSession, **attrs: Any) -> Campaign:
    """A new campaign, flushed so it has an id."""
    campaign = Campaign(**attrs)
    s.add(campaign)
    await s.flush()
    return campaign


async def get(s: AsyncSession, campaign_id: int, *, for_update: bool = False) -> Campaign | None:
    """A campaign by id; `for_update` locks its row (PostgreSQL) until the transaction ends."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await s.scalars(stmt.execution_options(populate_existing=True))).first()


async def listing(s: AsyncSession, limit: int = 200) -> list[Campaign]:
    """Campaigns, newest first."""
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    return list(await s.scalars(stmt))


async def open_for_survey(s: AsyncSession, survey_id: str) -> list[Campaign]:
    """The survey's campaigns that are not closed (scheduled, running or paused), oldest first."""
    stmt = (
        select(Campaign)
        .where(Campaign.survey_id == survey_id, Campaign.status != CLOSED)
        .order_by(Campaign.id)
    )
    return list(await s.scalars(stmt))


async def invited_among(
    s: AsyncSession, campaign_ids: Collection[int], contact_ids: Collection[int]
) -> list[tuple[int, int]]:
    """(campaign id, contact id) of each of these contacts in the audience of these campaigns."""
    if not campaign_ids or not contact_ids:
        return []
    stmt = select(Invitation.campaign_id, Invitation.contact_id).where(
        Invitation.campaign_id.in_(list(campaign_ids)),
        Invitation.contact_id.in_(list(contact_ids)),
    )
    return [(int(c), int(p)) for c, p in (await s.execute(stmt)).all()]


async def attribute_names(s: AsyncSession) -> set[str]:
    """Every key used in any contact's free `attributes` (for checking audience expressions)."""
    if dialect_name(s) == "postgresql":
        pg = select(func.jsonb_object_keys(Contact.attributes)).distinct()
        return {str(name) for name in await s.scalars(pg)}
    each = func.json_each(Contact.attributes).table_valued("key")
    lite = select(each.c.key).select_from(Contact).join(each, Contact.attributes.is_not(None))
    return {str(name) for name in await s.scalars(lite.distinct())}


async def audience_chunk(s: AsyncSession, after_id: int, limit: int) -> list[AudienceContact]:
    """Contacts not opted out with id above `after_id`, by id: one page of an audience scan."""
    stmt = (
        select(
            Contact.id,
            Contact.language,
            Contact.gender,
            Contact.birth_year,
            Contact.age_group,
            Contact.target_group,
            Contact.unit,
            Contact.contact_since,
            Contact.attributes,
        )
        .where(Contact.id > after_id, Contact.opted_out_at.is_(None))
        .order_by(Contact.id)
        .limit(limit)
    )
    return [AudienceContact(*row) for row in (await s.execute(stmt)).all()]


async def add_invitations(s: AsyncSession, campaign_id: int, contact_ids: Sequence[int]) -> int:
    """Add pending invitations; people already invited to the campaign are left as they are.
    Returns how many rows were new."""
    table = Invitation.__table__
    added = 0
    for start in range(0, len(contact_ids), INSERT_CHUNK):
        chunk = contact_ids[start : start + INSERT_CHUNK]
        stmt = dialect_insert(s, table).on_conflict_do_nothing(
            index_elements=[table.c.campaign_id, table.c.contact_id]
        )
        result = await s.execute(
            stmt,
            [
                {
                    "campaign_id": campaign_id,
                    "contact_id": cid,
                    "status": PENDING,
                    "reminders_sent": 0,
                    "feedback_sent": False,
                }
                for cid in chunk
            ],
        )
        added += max(int(getattr(result, "rowcount", 0) or 0), 0)
    return added


async def count_invitations(s: AsyncSession, campaign_id: int) -> int:
    """Invitation rows of a campaign (its audience once started)."""
    stmt = select(func.count()).select_from(Invitation).where(Invitation.campaign_id == campaign_id)
    return int(await s.scalar(stmt) or 0)


async def invitable(
    s: AsyncSession, campaign_id: int, status: str, after_id: int, limit: int
) -> list[Invitation]:
    """Up to `limit` invitations with `status` (pending or waiting), by id above `after_id`.

    Not locked: each is invited in a turn of its own, which checks its status again."""
    stmt = (
        select(Invitation)
        .where(
            Invitation.campaign_id == campaign_id,
            Invitation.status == status,
            Invitation.id > after_id,
        )
        .order_by(Invitation.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list(await s.scalars(stmt))


async def set_status_by_ids(s: AsyncSession, invitation_ids: Collection[int], status: str) -> None:
    """Set the status of these invitations."""
    if invitation_ids:
        await s.execute(
            update(Invitation)
            .where(Invitation.id.in_(list(invitation_ids)))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


async def has_pending(s: AsyncSession, campaign_id: int) -> bool:
    """Whether any invitation of the campaign is still to be sent (or waits to be)."""
    stmt = select(
        exists().where(
            Invitation.campaign_id == campaign_id, Invitation.status.in_([PENDING, WAITING])
        )
    )
    return bool(await s.scalar(stmt))


async def for_conversation(s: AsyncSession, conversation_id: str) -> Invitation | None:
    """The invitation whose conversation this is."""
    stmt = (
        select(Invitation)
        .where(Invitation.conversation_id == conversation_id)
        .execution_options(populate_existing=True)
    )
    return (await s.scalars(stmt)).first()


async def reminder_targets(
    s: AsyncSession, campaign_id: int, after_id: int, limit: int
) -> list[tuple[Invitation, Conversation]]:
    """Invited people whose conversation is still running and who have not opted out, by
    invitation id above `after_id` (one page)."""
    stmt = (
        select(Invitation, Conversation)
        .join(Conversation, Conversation.id == Invitation.conversation_id)
        .join(Contact, Contact.id == Invitation.contact_id)
        .where(
            Invitation.campaign_id == campaign_id,
            Invitation.id > after_id,
            Invitation.status.in_(REACHED),
            Conversation.status == "active",
            Contact.opted_out_at.is_(None),
        )
        .order_by(Invitation.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return [(inv, conv) for inv, conv in (await s.execute(stmt)).all()]


async def active_conversation_ids(
    s: AsyncSession, campaign_id: int, after_id: str, limit: int
) -> list[str]:
    """Up to `limit` ids of the campaign's conversations still running, above `after_id`."""
    stmt = (
        select(Conversation.id)
        .where(
            Conversation.campaign_id == campaign_id,
            Conversation.status == "active",
            Conversation.id > after_id,
        )
        .order_by(Conversation.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))


async def set_status_where(
    s: AsyncSession, campaign_id: int, from_statuses: Collection[str], to_status: str
) -> int:
    """Move the campaign's invitations in `from_statuses` to `to_status`; returns how many."""
    result = await s.execute(
        update(Invitation)
        .where(Invitation.campaign_id == campaign_id, Invitation.status.in_(list(from_statuses)))
        .values(status=to_status)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def hold_messages(s: AsyncSession, campaign_id: int) -> int:
    """Hold the campaign's queued invitations and reminders (pause): `not_before` = HELD_UNTIL."""
    result = await s.execute(
        update(Message)
        .where(
            Message.campaign_id == campaign_id,
            Message.direction == "out",
            Message.status == "queued",
            Message.kind.in_(CAMPAIGN_KINDS),
        )
        .values(not_before=HELD_UNTIL)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def release_messages(s: AsyncSession, campaign_id: int, not_before: datetime) -> int:
    """Release held messages (resume) to go out from `not_before`."""
    result = await s.execute(
        update(Message)
        .where(
            Message.campaign_id == campaign_id,
            Message.direction == "out",
            Message.status == "queued",
            Message.not_before >= HELD_UNTIL,
        )
        .values(not_before=not_before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _queued_outreach(*where: Any) -> Any:
    """Queued campaign invitations and reminders, not held by a pause."""
    return and_(
        Message.campaign_id.is_not(None),
        Message.direction == "out",
        Message.status == "queued",
        Message.kind.in_(CAMPAIGN_KINDS),
        Message.not_before < HELD_UNTIL,
        *where,
    )


async def retime_outreach(s: AsyncSession, allowed: datetime, now: datetime) -> int:
    """Give every queued campaign invitation and reminder (not paused) the next allowed time
    under the current quiet hours, `allowed` (= now outside them): messages held for hours
    that are no longer quiet go now, and due ones wait if now is quiet. Returns how many moved."""
    waiting = Message.not_before > now
    if allowed > now:
        waiting = or_(waiting, Message.not_before <= now)
    result = await s.execute(
        update(Message)
        .where(_queued_outreach(waiting, Message.not_before != allowed))
        .values(not_before=allowed)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def held_outreach(
    s: AsyncSession, campaign_id: int, now: datetime
) -> tuple[int, datetime | None]:
    """How many of the campaign's queued invitation and reminder messages wait for a later
    time (quiet hours), and the earliest such time."""
    row = (
        await s.execute(
            select(func.count(), func.min(Message.not_before)).where(
                _queued_outreach(Message.campaign_id == campaign_id, Message.not_before > now)
            )
        )
    ).one()
    return int(row[0] or 0), row[1]


async def cancel_messages(s: AsyncSession, campaign_id: int, reason: str) -> int:
    """Cancel the campaign's queued invitations and reminders (close)."""
    result = await s.execute(
        update(Message)
        .where(
            Message.campaign_id == campaign_id,
            Message.direction == "out",
            Message.status == "queued",
            Message.kind.in_(CAMPAIGN_KINDS),
        )
        .values(status="cancelled", error=reason, status_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _count_distinct(column: Any) -> Any:
    return func.count(func.distinct(column))


async def counts(s: AsyncSession, campaign: Campaign) -> CampaignCounts:
    """Live counts of a campaign, from its invitations, outbox and respondents."""
    cid = campaign.id
    by_status = dict(
        (
            await s.execute(
                select(Invitation.status, func.count())
                .where(Invitation.campaign_id == cid)
                .group_by(Invitation.status)
            )
        ).all()
    )
    invited = int(
        await s.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.campaign_id == cid, Invitation.invited_at.is_not(None))
        )
        or 0
    )
    invitation_messages = and_(
        Message.campaign_id == cid, Message.direction == "out", Message.kind == "invitation"
    )
    delivered = int(
        await s.scalar(
            select(_count_distinct(Message.contact_id)).where(
                invitation_messages, Message.status.in_(("delivered", "read"))
            )
        )
        or 0
    )
    failed_sends = int(
        await s.scalar(
            select(_count_distinct(Message.contact_id)).where(
                invitation_messages,
                Message.status.in_(("failed", "undelivered")),
            )
        )
        or 0
    )
    # From the invitations: who took part, never what they said (answers are released later,
    # in batches, and cannot be counted per person).
    completed = int(by_status.get(COMPLETED, 0))
    started = int(by_status.get(STARTED, 0)) + completed
    opted_out = int(
        await s.scalar(
            select(func.count())
            .select_from(Invitation)
            .join(Contact, Contact.id == Invitation.contact_id)
            .where(
                Invitation.campaign_id == cid,
                or_(
                    Invitation.status == OPTED_OUT,
                    and_(Invitation.invited_at.is_not(None), Contact.opted_out_at.is_not(None)),
                ),
            )
        )
        or 0
    )
    total = sum(by_status.values())
    return CampaignCounts(
        audience=campaign.audience_size if campaign.audience_size is not None else total,
        pending=int(by_status.get(PENDING, 0)),
        invited=invited,
        delivered=delivered,
        started=started,
        completed=completed,
        opted_out=opted_out,
        failed=int(by_status.get(UNREACHABLE, 0)) + failed_sends,
        waiting=int(by_status.get(WAITING, 0)),
    )
