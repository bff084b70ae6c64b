"""The audit log: who did what to which target (staff actions, imports, campaign changes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, utcnow


async def log(
    s: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    details: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Append an entry. Keep personal data out of `details`: ids and counts, not names."""
    entry = AuditEntry(
        at=at or utcnow(), actor=actor, action=action, target=target, details=dict(details or {})
    )
    s.add(entry)
    await s.flush()
    return entry


async def recent(
    s: AsyncSession, limit: int = 100, *, action: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, optionally of one action."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    return list(await s.scalars(stmt))


async def search(
    s: AsyncSession,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> list[AuditEntry]:
    """Entries newest first, filtered by actor, action (exact, or a prefix ending in ".") and
    time (`since` inclusive, `until` exclusive), one page of `limit` from `offset`."""
    stmt = select(AuditEntry)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("."):
            stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    stmt = (
        stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset(max(0, offset))
        .limit(limit)
    )
    return list(await s.scalars(stmt))


async def distinct_values(s: AsyncSession) -> tuple[list[str], list[str]]:
    """Every actor and every action in the log, sorted (for filter menus)."""
    actors = await s.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor))
    actions = await s.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    return list(actors), list(actions)
