"""Fixtures for the storage tests: a fixed clock value and a stored survey version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage import executor, repo_surveys
from storage.db import Database
from storage.executor import Inbound
from storage.sqlexec import Exec

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def survey_version_id(db: Database) -> int:
    """The id of a stored version 1 of survey "nojdhet"."""
    async with db.transaction() as s:
        return await repo_surveys.save_version(
            s, "nojdhet", 1, "a" * 64, {"id": "nojdhet", "version": 1}, "[survey]\n"
        )


async def record_inbound(
    db: Database,
    *,
    channel: str,
    provider_id: str,
    address_key: str,
    body: str,
    payload: dict[str, Any],
    received_at: datetime,
) -> int | None:
    """Store an incoming message as the inbound turn does; its id, or None for a redelivery."""
    inbound = Inbound(channel, provider_id, address_key, body, payload, received_at)

    def turn(x: Exec) -> int | None:
        facts = executor.load_inbound(
            x, inbound, now=received_at, closed_grace=timedelta(days=30), period="2026-q1"
        )
        return None if facts is None else facts.message_id

    return await db.turns.run(turn)
