from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from storage import repo_tasks
from storage.db import Database
from storage.models import DueTask
from tests.conftest import TEST_SEALER
from tests.storage.conftest import NOW

LEASE = 30


async def _task(db: Database, key: str) -> DueTask:
    async with db.transaction() as s:
        task = await repo_tasks.get_by_key(s, key)
    assert task is not None
    return task


async def test_schedule_is_idempotent_on_the_key(db: Database) -> None:
    async with db.transaction() as s:
        assert await repo_tasks.schedule(s, "reminder", "r:1", NOW, {"n": 1})
        assert not await repo_tasks.schedule(s, "reminder", "r:1", NOW + timedelta(hours=1), {})
    task = await _task(db, "r:1")
    assert (task.kind, task.due_at, task.payload, task.status) == (
        "reminder",
        NOW,
        {"n": 1},
        "pending",
    )


async def test_replace_moves_only_a_pending_task(db: Database) -> None:
    later = NOW + timedelta(hours=2)
    async with db.transaction() as s:
        await repo_tasks.schedule(s, "expire", "e:1", NOW, {"v": 1})
        assert await repo_tasks.schedule(s, "expire", "e:1", later, {"v": 2}, replace=True)
    task = await _task(db, "e:1")
    assert (task.due_at, task.payload) == (later, {"v": 2})

    async with db.transaction() as s:
        [claimed] = await repo_tasks.claim_due(
            s, worker="w", now=later, lease_seconds=LEASE, limit=5
        )
        assert not await repo_tasks.schedule(s, "expire", "e:1", NOW, {"v": 3}, replace=True), (
            "a running task is not moved"
        )
        assert await repo_tasks.complete(s, claimed.id, "w", later)
        assert not await repo_tasks.schedule(s, "expire", "e:1", NOW, {"v": 3}, replace=True)
    task = await _task(db, "e:1")
    assert (task.status, task.payload, task.done_at) == ("done", {"v": 2}, later)


async def test_cancel(db: Database) -> None:
    async with db.transaction() as s:
        await repo_tasks.schedule(s, "reminder", "r:conv-1:1", NOW, {})
        await repo_tasks.schedule(s, "reminder", "r:conv-1:2", NOW, {})
        await repo_tasks.schedule(s, "reminder", "r:conv-10:1", NOW, {})
        await repo_tasks.schedule(s, "reminder", "r:conv_1:1", NOW, {})
        assert await repo_tasks.cancel(s, "r:conv-1:1")
        assert not await repo_tasks.cancel(s, "r:conv-1:1"), "already cancelled"
        assert not await repo_tasks.cancel(s, "unknown")
        assert await repo_tasks.cancel_prefix(s, "r:conv-1:") == 1
        remaining = await repo_tasks.pending(s)
        claimed = await repo_tasks.claim_due(s, worker="w", now=NOW, lease_seconds=1, limit=9)
    assert [t.key for t in remaining] == ["r:conv-10:1", "r:conv_1:1"]
    assert [t.key for t in claimed] == ["r:conv-10:1", "r:conv_1:1"]


async def test_claim_due_by_time_kind_and_lease(db: Database) -> None:
    async with db.transaction() as s:
        await repo_tasks.schedule(s, "reminder", "a", NOW - timedelta(minutes=1), {})
        await repo_tasks.schedule(s, "campaign.start", "b", NOW, {})
        await repo_tasks.schedule(s, "reminder", "c", NOW + timedelta(seconds=1), {})
    async with db.transaction() as s:
        only_kind = await repo_tasks.claim_due(
            s, worker="w1", now=NOW, lease_seconds=LEASE, limit=10, kinds=["campaign.start"]
        )
        rest = await repo_tasks.claim_due(s, worker="w1", now=NOW, lease_seconds=LEASE, limit=10)
    assert [t.key for t in only_kind] == ["b"]
    assert [(t.key, t.status, t.attempts, t.claimed_by) for t in rest] == [
        ("a", "running", 1, "w1")
    ]
    expired = NOW + timedelta(seconds=LEASE + 1)
    async with db.transaction() as s:
        again = await repo_tasks.claim_due(s, worker="w2", now=expired, lease_seconds=5, limit=10)
        assert not await repo_tasks.complete(s, rest[0].id, "w1", expired), "lease was lost"
        assert await repo_tasks.fail(s, only_kind[0].id, "w2", "boom", None)
    assert [(t.key, t.claimed_by, t.attempts) for t in again] == [
        ("a", "w2", 2),
        ("b", "w2", 2),
        ("c", "w2", 1),
    ]
    failed = await _task(db, "b")
    assert (failed.status, failed.last_error) == ("failed", "boom")


async def test_fail_with_retry_makes_it_pending_again(db: Database) -> None:
    retry_at = NOW + timedelta(minutes=5)
    async with db.transaction() as s:
        await repo_tasks.schedule(s, "reminder", "r", NOW, {})
        [task] = await repo_tasks.claim_due(s, worker="w", now=NOW, lease_seconds=LEASE, limit=1)
        assert not await repo_tasks.fail(s, task.id, "other", "x", retry_at)
        assert await repo_tasks.fail(s, task.id, "w", "timeout", retry_at)
        assert await repo_tasks.claim_due(s, worker="w", now=NOW, lease_seconds=1, limit=1) == []
        [again] = await repo_tasks.claim_due(s, worker="w", now=retry_at, lease_seconds=1, limit=1)
    assert (again.id, again.attempts, again.last_error) == (task.id, 2, "timeout")


async def test_concurrent_task_claimers_never_share_a_task(database_url: str) -> None:
    setup = Database(database_url, sealer=TEST_SEALER)
    async with setup.transaction() as s:
        for i in range(150):
            await repo_tasks.schedule(s, "reminder", f"k{i}", NOW - timedelta(seconds=i), {})
    await setup.dispose()
    databases = [Database(database_url, sealer=TEST_SEALER) for _ in range(2)]

    async def worker(name: str, db: Database) -> list[int]:
        got: list[int] = []
        while True:
            async with db.transaction() as s:
                batch = await repo_tasks.claim_due(
                    s, worker=name, now=NOW, lease_seconds=LEASE, limit=5
                )
            if not batch:
                return got
            got.extend(t.id for t in batch)

    try:
        results = await asyncio.gather(*(worker(f"w{i}", databases[i % 2]) for i in range(6)))
    finally:
        for d in databases:
            await d.dispose()
    counts = Counter(i for got in results for i in got)
    assert len(counts) == 150
    assert max(counts.values()) == 1, "a task was handed to two workers"
