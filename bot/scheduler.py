"""Timers are rows: an APScheduler interval job polls `due_tasks` and runs what is due.

There is one scheduler job per process, never one per person. Each due row is claimed with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL) and has a unique key, so a timer runs once even with
several service processes on one database."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock
from bot.ops.metrics import Metrics
from storage import repo_messages, repo_tasks
from storage.db import Database

log = logging.getLogger(__name__)

TaskHandler = Callable[[dict[str, Any]], Awaitable[None]]

MAX_ATTEMPTS = 5


class TaskRunner:
    """Runs due tasks by kind with the handlers registered for them."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        poll_interval: float,
        *,
        lease_seconds: int = 300,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.metrics = metrics or Metrics()
        self.worker = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.handlers: dict[str, TaskHandler] = {}
        self.maintenance: list[Callable[[], Awaitable[object]]] = [self._scrub_messages]
        """Housekeeping run on every poll, after the due tasks."""
        self._scheduler: AsyncIOScheduler | None = None

    def register(self, kind: str, handler: TaskHandler) -> None:
        """Run `handler` for due tasks of `kind`; a later registration replaces an earlier one."""
        self.handlers[kind] = handler

    async def start(self) -> None:
        """Start polling for due tasks every `poll_interval` seconds (polls never overlap)."""
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(
            self._poll,
            "interval",
            seconds=self.poll_interval,
            id="due-tasks",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop polling; a poll under way is not waited for."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def _poll(self) -> None:
        try:
            await self.run_due()
            for job in self.maintenance:
                await job()
        except Exception:
            log.exception("due-task poll failed; trying again at the next interval")

    async def _scrub_messages(self) -> int:
        """Clear the texts of finished anonymous conversations once their last replies went out."""
        async with self.db.transaction() as s:
            return await repo_messages.scrub_due(s, self.clock.now())

    async def run_due(self, limit: int = 200) -> int:
        """Claim and run every task due now; returns how many ran (successfully or not)."""
        total = 0
        while True:
            now = self.clock.now()
            async with self.db.transaction() as s:
                tasks = await repo_tasks.claim_due(
                    s,
                    worker=self.worker,
                    now=now,
                    lease_seconds=self.lease_seconds,
                    limit=limit,
                    kinds=list(self.handlers),
                )
            for task in tasks:
                self.metrics.task_started(task.kind, task.due_at, now)
                await self._run(task.id, task.kind, task.key, dict(task.payload), task.attempts)
            total += len(tasks)
            if len(tasks) < limit:
                return total

    async def _run(
        self, task_id: int, kind: str, key: str, payload: dict[str, Any], attempts: int
    ) -> None:
        handler = self.handlers[kind]
        try:
            await handler(payload)
        except Exception as e:
            log.exception("task %s (%s) failed", key, kind)
            retry_at = None
            if attempts < MAX_ATTEMPTS:
                retry_at = self.clock.now() + timedelta(seconds=30 * 2 ** (attempts - 1))
            self.metrics.task_done(kind, ok=False)
            async with self.db.transaction() as s:
                await repo_tasks.fail(s, task_id, self.worker, f"{type(e).__name__}: {e}", retry_at)
            return
        self.metrics.task_done(kind, ok=True)
        async with self.db.transaction() as s:
            await repo_tasks.complete(s, task_id, self.worker, self.clock.now())
