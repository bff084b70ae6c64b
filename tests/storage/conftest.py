"""Fixtures for the storage tests: a fixed clock value and a stored survey version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo_surveys, turns
from storage.db import Database
from storage.raw import RawConnection

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def survey_version_id(db: Database) -> int:
    """The id of a stored version 1 of survey "nojdhet"."""
    async with db.transaction() as s:
        return await repo_surveys.save_version(
            s, "nojdhet", 1, "a" * 64, {"id": "nojdhet", "version": 1}, "[survey]\n"
        )


async def record_inbound(s: AsyncSession, **fields: Any) -> int | None:
    """Store an incoming message as the inbound turn does; its id, or None for a redelivery."""
    raw = await RawConnection.of(s)
    (result,) = await raw.run_all([turns.record_inbound(**fields)])
    row = result.first()
    return None if row is None else int(row[0])
