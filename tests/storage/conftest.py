"""Fixtures for the storage tests: a fixed clock value and a stored survey version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage import repo_surveys
from storage.db import Database

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def survey_version_id(db: Database) -> int:
    """The id of a stored version 1 of survey "nojdhet"."""
    async with db.transaction() as s:
        return await repo_surveys.save_version(
            s, "nojdhet", 1, "a" * 64, {"id": "nojdhet", "version": 1}, "[survey]\n"
        )
