"""Case events from case systems, the follow-up rules they trigger, and the planned follow-ups."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import (
    CaseEvent,
    Contact,
    Conversation,
    Followup,
    FollowupRule,
    Invitation,
    utcnow,
)

PENDING = "pending"
SENT = "sent"
CANCELLED = "cancelled"
EXPIRED = "expired"
SKIPPED = "skipped"
NOT_PLANNED = "not_planned"
"""A rule for the event's type whose filter did not match: kept, with the reason, so staff can
see why no follow-up came of the event (and re-planned if a changed event matches)."""

SOURCE_FILE = "file"
SOURCE_API = "api"


@dataclass(frozen=True, slots=True)
class RuleValues:
    """A follow-up rule as configured (file or API), durations in seconds."""

    name: str
    event_type: str
    survey_id: str
    delay: int
    filter: str = ""
    window: str = ""
    fatigue_days: int = 0
    expires_after: int = 7 * 24 * 3600
    channels: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FollowupView:
    """A follow-up with the names staff recognise, for listings."""

    followup: Followup
    rule_name: str
    survey_id: str


# -- events ------------------------------------------------------------------------------------


async def get_event(
    s: AsyncSession, event_id: str, *, for_update: bool = False
) -> CaseEvent | None:
    """An event by the case system's id; `for_update` locks its row (PostgreSQL)."""
    stmt = select(CaseEvent).where(CaseEvent.event_id == event_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await s.scalars(stmt)).first()


async def insert_event(
    s: AsyncSession,
    *,
    event_id: str,
    type: str,
    contact_id: int,
    occurred_at: datetime,
    attributes: dict[str, Any],
    cancelled: bool,
    now: datetime,
) -> CaseEvent | None:
    """Store a new event; None (and nothing written) if one with this event_id already exists,
    so two concurrent reports of one event store it once."""
    stmt = (
        dialect_insert(s, CaseEvent)
        .values(
            event_id=event_id,
            type=type,
            contact_id=contact_id,
            occurred_at=occurred_at,
            attributes=attributes,
            cancelled=cancelled,
            received_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[CaseEvent.event_id])
        .returning(CaseEvent)
        .execution_options(populate_existing=True)
    )
    return (await s.scalars(stmt)).first()


# -- rules -------------------------------------------------------------------------------------


async def list_rules(
    s: AsyncSession, *, event_type: str | None = None, enabled_only: bool = False
) -> list[FollowupRule]:
    """Rules by name, optionally only the enabled ones for one event type."""
    stmt = select(FollowupRule).order_by(FollowupRule.name)
    if event_type is not None:
        stmt = stmt.where(FollowupRule.event_type == event_type)
    if enabled_only:
        stmt = stmt.where(FollowupRule.enabled.is_(True))
    return list(await s.scalars(stmt))


async def get_rule(s: AsyncSession, name: str) -> FollowupRule | None:
    """A rule by name."""
    stmt = select(FollowupRule).where(FollowupRule.name == name)
    return (await s.scalars(stmt.execution_options(populate_existing=True))).first()


async def get_rule_by_id(s: AsyncSession, rule_id: int) -> FollowupRule | None:
    """A rule by row id."""
    return await s.get(FollowupRule, rule_id)


def _rule_columns(values: RuleValues) -> dict[str, Any]:
    return {
        "event_type": values.event_type,
        "filter": values.filter,
        "survey_id": values.survey_id,
        "delay": values.delay,
        "window": values.window,
        "fatigue_days": values.fatigue_days,
        "expires_after": values.expires_after,
        "channels": list(values.channels),
        "enabled": values.enabled,
    }


async def save_rule(
    s: AsyncSession, values: RuleValues, *, source: str, now: datetime
) -> tuple[FollowupRule, bool]:
    """Insert or replace a rule by name; returns it and whether it was new."""
    existed = await get_rule(s, values.name) is not None
    columns = _rule_columns(values)
    insert = dialect_insert(s, FollowupRule)
    stmt = (
        insert.values(name=values.name, source=source, created_at=now, updated_at=now, **columns)
        .on_conflict_do_update(
            index_elements=[FollowupRule.name],
            set_={**columns, "source": source, "updated_at": now},
        )
        .returning(FollowupRule)
        .execution_options(populate_existing=True)
    )
    rule: FollowupRule = (await s.scalars(stmt)).one()
    return rule, not existed


async def disable_file_rules_except(s: AsyncSession, names: Collection[str]) -> list[str]:
    """Disable file rules no longer in the file (kept, not deleted, so their follow-ups stay on
    record); returns their names."""
    stmt = select(FollowupRule).where(
        FollowupRule.source == SOURCE_FILE,
        FollowupRule.enabled.is_(True),
        FollowupRule.name.not_in(list(names)),
    )
    gone = list(await s.scalars(stmt))
    for rule in gone:
        rule.enabled = False
        rule.updated_at = utcnow()
    await s.flush()
    return [rule.name for rule in gone]


async def delete_rule(s: AsyncSession, rule: FollowupRule) -> None:
    """Delete a rule; its follow-ups go with it (the caller cancels their tasks first)."""
    await s.delete(rule)
    await s.flush()


# -- follow-ups --------------------------------------------------------------------------------


async def add_followup(
    s: AsyncSession,
    *,
    rule_id: int,
    event_id: int,
    contact_id: int,
    due_at: datetime,
    status: str = PENDING,
    reason: str | None = None,
) -> Followup:
    """The rule's follow-up for this event, created (pending, or `status` with the `reason`
    staff will read) at `due_at` unless it exists."""
    await s.execute(
        dialect_insert(s, Followup)
        .values(
            rule_id=rule_id,
            event_id=event_id,
            contact_id=contact_id,
            due_at=due_at,
            status=status,
            reason=reason,
            feedback_sent=False,
        )
        .on_conflict_do_nothing(index_elements=[Followup.rule_id, Followup.event_id])
    )
    stmt = (
        select(Followup)
        .where(Followup.rule_id == rule_id, Followup.event_id == event_id)
        .execution_options(populate_existing=True)
    )
    return (await s.scalars(stmt)).one()


async def get_followup(
    s: AsyncSession, followup_id: int, *, for_update: bool = False
) -> Followup | None:
    """A follow-up by id; `for_update` locks its row (PostgreSQL) so only one sender acts."""
    stmt = select(Followup).where(Followup.id == followup_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await s.scalars(stmt.execution_options(populate_existing=True))).first()


async def followups_for_event(s: AsyncSession, event_pk: int) -> list[FollowupView]:
    """An event's follow-ups with their rule names, by rule name."""
    stmt = (
        select(Followup, FollowupRule.name, FollowupRule.survey_id)
        .join(FollowupRule, FollowupRule.id == Followup.rule_id)
        .where(Followup.event_id == event_pk)
        .order_by(FollowupRule.name)
        .execution_options(populate_existing=True)
    )
    return [FollowupView(f, name, survey) for f, name, survey in (await s.execute(stmt)).all()]


async def pending_for_rule(s: AsyncSession, rule_id: int) -> list[Followup]:
    """A rule's follow-ups that are still pending."""
    stmt = select(Followup).where(Followup.rule_id == rule_id, Followup.status == PENDING)
    return list(await s.scalars(stmt))


async def set_status(
    s: AsyncSession,
    followups: Sequence[Followup],
    status: str,
    reason: str | None,
) -> None:
    """Give follow-ups a final status and the reason staff will read."""
    for followup in followups:
        followup.status = status
        followup.reason = reason
    await s.flush()


async def surveyed_since(
    s: AsyncSession, contact_id: int, since: datetime, *, other_than: int | None = None
) -> bool:
    """Whether the contact started a conversation, was invited to a campaign or was sent a
    follow-up (other than `other_than`) at or after `since`: the survey-fatigue guard."""
    conditions: list[ColumnElement[bool]] = [
        exists().where(Conversation.contact_id == contact_id, Conversation.started_at >= since),
        exists().where(Invitation.contact_id == contact_id, Invitation.invited_at >= since),
        exists().where(
            Followup.contact_id == contact_id,
            Followup.status == SENT,
            Followup.sent_at >= since,
            Followup.id != (other_than if other_than is not None else -1),
        ),
    ]
    # A dummy FROM keeps the statement portable: SELECT EXISTS(..) OR .. needs none on either
    # database, but selecting from contacts lets the planner stop at one row.
    stmt = select(Contact.id).where(Contact.id == contact_id, or_(*conditions)).limit(1)
    return (await s.scalar(stmt)) is not None


async def pending_counts(s: AsyncSession) -> dict[int, int]:
    """Rule id -> how many of its follow-ups are pending."""
    stmt = (
        select(Followup.rule_id, func.count())
        .where(Followup.status == PENDING)
        .group_by(Followup.rule_id)
    )
    return {int(rule_id): int(n) for rule_id, n in (await s.execute(stmt)).all()}


async def next_due(s: AsyncSession, rule_id: int, limit: int) -> list[datetime]:
    """When a rule's next pending follow-ups are due, soonest first."""
    stmt = (
        select(Followup.due_at)
        .where(Followup.rule_id == rule_id, Followup.status == PENDING)
        .order_by(Followup.due_at, Followup.id)
        .limit(limit)
    )
    return list(await s.scalars(stmt))
