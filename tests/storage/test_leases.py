"""Named leases: one holder at a time, renewal, takeover after expiry, release."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage import outbox
from storage.db import Database
from tests.storage.conftest import NOW


async def _acquire(db: Database, holder: str, at_seconds: float, ttl: float = 30) -> bool:
    now = NOW + timedelta(seconds=at_seconds)
    until = now + timedelta(seconds=ttl)
    return await db.turns.run(lambda x: outbox.acquire_lease(x, "outbox:sms", holder, now, until))


async def test_one_holder_until_the_lease_runs_out(db: Database) -> None:
    steps = [
        ("a", 0, True),  # free: a takes it
        ("b", 1, False),  # a holds it
        ("a", 10, True),  # a renews until 40
        ("b", 35, False),  # still a's
        ("b", 41, True),  # a stopped renewing: b takes over
        ("a", 42, False),  # and a cannot take it back
    ]
    for holder, at, expected in steps:
        assert await _acquire(db, holder, at) is expected, (holder, at)


async def test_release_lets_another_take_over_at_once(db: Database) -> None:
    assert await _acquire(db, "a", 0)
    await db.turns.run(lambda x: outbox.release_leases(x, "a"))
    assert await _acquire(db, "b", 1)


async def test_concurrent_acquirers_get_it_once(db: Database) -> None:
    results = await asyncio.gather(*(_acquire(db, f"w{i}", 0) for i in range(8)))
    assert sum(results) == 1
