"""Data over its lifetime: retention, a person's rights (export, erasure) and backups.

`export_person` / `erase_person` are what the staff API and the staff app call; the commands are
in `bot.lifecycle.commands`."""

from __future__ import annotations

from bot.lifecycle.person import (
    ANONYMOUS_NOTE,
    Erasure,
    PersonNotFound,
    erase_person,
    export_person,
    person_summary,
    ref_pseudonym,
)
from bot.lifecycle.retention import (
    RETENTION_TASK,
    KindReport,
    register,
    retention_report,
    run_retention,
    schedule_daily,
)

__all__ = [
    "ANONYMOUS_NOTE",
    "RETENTION_TASK",
    "Erasure",
    "KindReport",
    "PersonNotFound",
    "erase_person",
    "export_person",
    "person_summary",
    "ref_pseudonym",
    "register",
    "retention_report",
    "run_retention",
    "schedule_daily",
]
