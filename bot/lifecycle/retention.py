"""Retention: personal data is kept only as long as `[retention]` allows.

Once a day (a `retention.run` due task at `retention.run_at` local time) message texts are
blanked and old message rows, inactive contacts, old case events and old audit entries are
deleted, each kind in batches of `retention.batch_size` rows per transaction so the service keeps
serving. Rows a running conversation or the outbox still needs are left alone, and released
anonymous answers are never touched. `retention report` counts what a run would do now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from bot.config import RetentionSettings
from bot.runtime import Runtime
from storage import repo_audit, repo_lifecycle, repo_tasks

log = logging.getLogger(__name__)

RETENTION_TASK = "retention.run"

PERIODS = {
    repo_lifecycle.TEXTS: "message_text_days",
    repo_lifecycle.INBOUND: "inbound_message_days",
    repo_lifecycle.OUTBOUND: "outbound_message_days",
    repo_lifecycle.CONTACTS: "inactive_contact_days",
    repo_lifecycle.EVENTS: "case_event_days",
    repo_lifecycle.AUDIT: "audit_log_days",
}
"""Each kind and the `[retention]` key of its period."""

WHAT = {
    repo_lifecycle.TEXTS: "message texts blanked (the rows stay)",
    repo_lifecycle.INBOUND: "inbound message rows deleted",
    repo_lifecycle.OUTBOUND: "outbound message rows deleted",
    repo_lifecycle.CONTACTS: "inactive contacts erased, with everything about them",
    repo_lifecycle.EVENTS: "case events deleted, with their follow-ups",
    repo_lifecycle.AUDIT: "audit log entries deleted",
}


@dataclass(frozen=True, slots=True)
class KindReport:
    """One kind of data: its period, the cutoff it gives now, and how many rows are past it."""

    kind: str
    days: int
    cutoff: datetime | None
    """None when the period is 0: kept for good."""
    rows: int

    def to_json(self) -> dict[str, Any]:
        """JSON for logs and the API."""
        return {
            "kind": self.kind,
            "days": self.days,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "rows": self.rows,
        }


def cutoffs(settings: RetentionSettings, now: datetime) -> dict[str, tuple[int, datetime | None]]:
    """Each kind's period in days and the time before which its rows go (None: kept)."""
    out: dict[str, tuple[int, datetime | None]] = {}
    for kind in repo_lifecycle.KINDS:
        days = int(getattr(settings, PERIODS[kind]))
        out[kind] = (days, now - timedelta(days=days) if days > 0 else None)
    return out


async def retention_report(runtime: Runtime) -> list[KindReport]:
    """How many rows of each kind a run would blank or delete now; nothing is changed."""
    now = runtime.clock.now()
    reports: list[KindReport] = []
    async with runtime.db.transaction(read_only=True) as s:
        for kind, (days, cutoff) in cutoffs(runtime.settings.retention, now).items():
            rows = 0 if cutoff is None else await repo_lifecycle.count_expired(s, kind, cutoff)
            reports.append(KindReport(kind, days, cutoff, rows))
    return reports


async def run_retention(runtime: Runtime, *, actor: str) -> list[KindReport]:
    """Blank and delete what is past its period, batch by batch; returns what went, per kind.

    Audit-logged with the counts; the log line has counts only."""
    settings = runtime.settings.retention
    now = runtime.clock.now()
    reports: list[KindReport] = []
    for kind, (days, cutoff) in cutoffs(settings, now).items():
        done = 0
        while cutoff is not None:
            async with runtime.db.transaction() as s:
                went = await repo_lifecycle.expire_batch(s, kind, cutoff, settings.batch_size)
            done += went
            if went < settings.batch_size:
                break
        reports.append(KindReport(kind, days, cutoff, done))
    counts = {r.kind: r.rows for r in reports}
    async with runtime.db.transaction() as s:
        await repo_audit.log(s, actor, "retention.run", "retention", counts, at=runtime.clock.now())
    log.info(
        "retention run: %s", ", ".join(f"{r.rows} {WHAT[r.kind]}" for r in reports if r.cutoff)
    )
    return reports


def next_run(runtime: Runtime, after: datetime, *, days: int = 0) -> tuple[str, datetime]:
    """The key and time of the daily run on the local day of `after` plus `days`."""
    tz = runtime.settings.schedule.tz
    day = after.astimezone(tz).date() + timedelta(days=days)
    hour, minute = (int(p) for p in runtime.settings.retention.run_at.strip().split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=tz)
    return f"{RETENTION_TASK}:{day.isoformat()}", local


async def schedule_daily(runtime: Runtime) -> bool:
    """Plan today's run (at startup): a day whose run has happened keeps it (unique key); one
    missed while the service was down runs at once. Returns whether a task was planned."""
    key, due = next_run(runtime, runtime.clock.now())
    async with runtime.db.transaction() as s:
        return await repo_tasks.schedule(s, RETENTION_TASK, key, due, {})


def register(runtime: Runtime) -> None:
    """Register the daily `retention.run` task: it runs retention and plans the next day."""

    async def handle(payload: dict[str, Any]) -> None:
        del payload
        await run_retention(runtime, actor="retention")
        key, due = next_run(runtime, runtime.clock.now(), days=1)
        async with runtime.db.transaction() as s:
            await repo_tasks.schedule(s, RETENTION_TASK, key, due, {})

    runtime.tasks.register(RETENTION_TASK, handle)
