"""Read-only figures the staff web app shows: answers per day, follow-ups sent, feedback that
waits, contacts searched a page at a time. Every query is bounded (an index, a LIMIT)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_name
from storage.models import (
    Campaign,
    Contact,
    Conversation,
    Followup,
    Invitation,
    Message,
    Respondent,
)

CLOSED = "closed"
WAITING_FEEDBACK = ("pending", "held")


async def open_campaigns(s: AsyncSession, limit: int = 100) -> list[Campaign]:
    """Campaigns not closed (scheduled, running, paused), newest first."""
    stmt = (
        select(Campaign).where(Campaign.status != CLOSED).order_by(Campaign.id.desc()).limit(limit)
    )
    return list(await s.scalars(stmt))


async def answers_per_day(
    s: AsyncSession, campaign_ids: Collection[int], since: date
) -> dict[int, list[tuple[date, int]]]:
    """Respondents per day for each campaign since `since` (anonymous ones are dated to the day
    their answers were released), oldest day first."""
    out: dict[int, list[tuple[date, int]]] = {cid: [] for cid in campaign_ids}
    if not campaign_ids:
        return out
    stmt = (
        select(Respondent.campaign_id, Respondent.started_on, func.count())
        .where(Respondent.campaign_id.in_(list(campaign_ids)), Respondent.started_on >= since)
        .group_by(Respondent.campaign_id, Respondent.started_on)
        .order_by(Respondent.campaign_id, Respondent.started_on)
    )
    for cid, day, n in (await s.execute(stmt)).all():
        if cid is not None:
            parsed = day if isinstance(day, date) else date.fromisoformat(str(day))
            out[int(cid)].append((parsed, int(n)))
    return out


async def followups_sent_since(s: AsyncSession, since: datetime) -> int:
    """Follow-up surveys sent since `since`."""
    stmt = select(func.count()).select_from(Followup).where(Followup.sent_at >= since)
    return int(await s.scalar(stmt) or 0)


async def feedback_waiting(s: AsyncSession, limit: int = 50) -> list[Campaign]:
    """Closed campaigns whose feedback has not gone out yet (pending or held), oldest first."""
    stmt = (
        select(Campaign)
        .where(
            Campaign.status == CLOSED,
            Campaign.feedback_to != "none",
            Campaign.feedback_status.in_(WAITING_FEEDBACK),
        )
        .order_by(Campaign.closed_at, Campaign.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """What the contacts page searches for; empty fields match everyone."""

    ref: str = ""
    """The start of an external_ref."""
    unit: str = ""
    target_group: str = ""
    language: str = ""
    opted_out: str = ""
    """"yes", "no" or "" (either)."""
    attribute: str = ""
    """A free attribute's name ..."""
    value: str = ""
    """... and its value."""


FILTERABLE = ("unit", "target_group", "language")


def _where(s: AsyncSession, f: ContactFilter) -> list[Any]:
    where: list[Any] = []
    if f.ref:
        escaped = f.ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Contact.external_ref.like(f"{escaped}%", escape="\\"))
    if f.unit:
        where.append(Contact.unit == f.unit)
    if f.target_group:
        where.append(Contact.target_group == f.target_group)
    if f.language:
        where.append(Contact.language == f.language)
    if f.opted_out == "yes":
        where.append(Contact.opted_out_at.is_not(None))
    elif f.opted_out == "no":
        where.append(Contact.opted_out_at.is_(None))
    if f.attribute:
        if dialect_name(s) == "postgresql":
            where.append(Contact.attributes[f.attribute].astext == f.value)
        else:
            where.append(func.json_extract(Contact.attributes, f"$.{f.attribute}") == f.value)
    return where


async def search_contacts(
    s: AsyncSession, f: ContactFilter, after_id: int, limit: int
) -> list[Contact]:
    """One page of contacts matching the filter, by id above `after_id` (keyset paging)."""
    stmt = (
        select(Contact)
        .where(Contact.id > after_id, *_where(s, f))
        .order_by(Contact.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))


async def count_contacts(s: AsyncSession, f: ContactFilter, cap: int) -> int:
    """How many contacts match, counted up to `cap` (so a count stays fast at any size)."""
    inner = select(Contact.id).where(*_where(s, f)).limit(cap).subquery()
    return int(await s.scalar(select(func.count()).select_from(inner)) or 0)


async def distinct_values(s: AsyncSession, column: str, limit: int = 200) -> list[str]:
    """The values one filterable column has (for the filter's choices)."""
    if column not in FILTERABLE:
        raise ValueError(column)
    col = getattr(Contact, column)
    stmt = select(col).where(col.is_not(None)).distinct().order_by(col).limit(limit)
    return [str(v) for v in await s.scalars(stmt)]


async def contacts_by_ids(s: AsyncSession, ids: Sequence[int]) -> list[Contact]:
    """Contacts by id, in id order."""
    if not ids:
        return []
    return list(
        await s.scalars(select(Contact).where(Contact.id.in_(list(ids))).order_by(Contact.id))
    )


@dataclass(frozen=True, slots=True)
class ChannelFunnel:
    """One channel's part of a campaign's funnel (people, not messages)."""

    channel: str
    invited: int
    delivered: int
    started: int
    completed: int
    opted_out: int


async def funnel_by_channel(s: AsyncSession, campaign_id: int) -> list[ChannelFunnel]:
    """The funnel per channel people were invited on."""
    rows = (
        await s.execute(
            select(Invitation.channel, Invitation.status, func.count())
            .where(Invitation.campaign_id == campaign_id, Invitation.invited_at.is_not(None))
            .group_by(Invitation.channel, Invitation.status)
        )
    ).all()
    delivered = dict(
        (
            await s.execute(
                select(Message.channel, func.count(func.distinct(Message.contact_id)))
                .where(
                    Message.campaign_id == campaign_id,
                    Message.direction == "out",
                    Message.kind == "invitation",
                    Message.status.in_(("delivered", "read")),
                )
                .group_by(Message.channel)
            )
        ).all()
    )
    per: dict[str, dict[str, int]] = {}
    for channel, status, n in rows:
        per.setdefault(str(channel or "-"), {})[str(status)] = int(n)
    out = []
    for channel, statuses in sorted(per.items()):
        completed = statuses.get("completed", 0)
        out.append(
            ChannelFunnel(
                channel=channel,
                invited=sum(statuses.values()),
                delivered=int(delivered.get(channel, 0)),
                started=statuses.get("started", 0) + completed,
                completed=completed,
                opted_out=statuses.get("opted_out", 0),
            )
        )
    return out


async def waiting_for(s: AsyncSession, campaign_id: int) -> list[tuple[int | None, int]]:
    """For the campaign's invitations waiting on a person's other conversation: which campaign
    (None: a survey outside campaigns) they are still answering, and how many."""
    stmt = (
        select(Conversation.campaign_id, func.count(func.distinct(Invitation.contact_id)))
        .select_from(Invitation)
        .join(
            Conversation,
            (Conversation.contact_id == Invitation.contact_id) & (Conversation.status == "active"),
        )
        .where(Invitation.campaign_id == campaign_id, Invitation.status == "waiting")
        .group_by(Conversation.campaign_id)
    )
    return [
        (int(cid) if cid is not None else None, int(n)) for cid, n in (await s.execute(stmt)).all()
    ]
