"""Stored survey versions: every loaded version is kept, so old answers keep their definition."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import SurveyVersion, utcnow


async def save_version(
    s: AsyncSession,
    survey_id: str,
    version: int,
    checksum: str,
    definition: dict[str, Any],
    source: str,
) -> int:
    """Store a survey version and return its id; the same (survey, version, checksum) again
    returns the id it already has."""
    stmt = (
        dialect_insert(s, SurveyVersion.__table__)
        .values(
            survey_id=survey_id,
            version=version,
            checksum=checksum,
            definition=definition,
            source=source,
            loaded_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["survey_id", "version", "checksum"])
        .returning(SurveyVersion.__table__.c.id)
    )
    new_id = (await s.execute(stmt)).scalar_one_or_none()
    if new_id is not None:
        return int(new_id)
    existing = await s.scalar(
        select(SurveyVersion.id).where(
            SurveyVersion.survey_id == survey_id,
            SurveyVersion.version == version,
            SurveyVersion.checksum == checksum,
        )
    )
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish mid-transaction
        raise RuntimeError(f"survey version {survey_id} v{version} vanished")
    return int(existing)


async def get(s: AsyncSession, version_id: int) -> SurveyVersion | None:
    """A stored version by id."""
    return await s.get(SurveyVersion, version_id)


async def latest(s: AsyncSession, survey_id: str) -> SurveyVersion | None:
    """The highest version of a survey; of equal versions, the one loaded last."""
    stmt = (
        select(SurveyVersion)
        .where(SurveyVersion.survey_id == survey_id)
        .order_by(SurveyVersion.version.desc(), SurveyVersion.id.desc())
        .limit(1)
    )
    return (await s.scalars(stmt)).first()


async def list_latest(s: AsyncSession) -> list[SurveyVersion]:
    """The latest version of every stored survey, by survey id."""
    ranked = select(
        SurveyVersion.id,
        func.row_number()
        .over(
            partition_by=SurveyVersion.survey_id,
            order_by=(SurveyVersion.version.desc(), SurveyVersion.id.desc()),
        )
        .label("rank"),
    ).subquery()
    stmt = (
        select(SurveyVersion)
        .join(ranked, ranked.c.id == SurveyVersion.id)
        .where(ranked.c.rank == 1)
        .order_by(SurveyVersion.survey_id)
    )
    return list(await s.scalars(stmt))


async def versions(s: AsyncSession, survey_id: str) -> list[SurveyVersion]:
    """Every stored version of a survey, oldest first."""
    stmt = (
        select(SurveyVersion)
        .where(SurveyVersion.survey_id == survey_id)
        .order_by(SurveyVersion.version, SurveyVersion.id)
    )
    return list(await s.scalars(stmt))
