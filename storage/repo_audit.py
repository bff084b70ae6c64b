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
