"""The audit log for staff (page 8 of issue 9): who did what to which target and when,
filtered by person, action and days, a page at a time, newest first.

Days are local days in the service's time zone (`schedule.timezone`), both ends included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

from storage import repo_audit
from storage.models import AuditEntry

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = ["PAGE_SIZE", "AuditFilter", "AuditPage", "BadFilter", "audit_page", "parse_filter"]

PAGE_SIZE: Final = 50
MAX_PAGE: Final = 100_000


class BadFilter(ValueError):
    """A filter a person can fix; `field` names the form field, the message says what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the audit page shows: who, which action, from and to which day, and the page."""

    actor: str = ""
    action: str = ""
    since: date | None = None
    last: date | None = None
    """The last day included."""
    page: int = 1

    def query(self, page: int | None = None) -> dict[str, str]:
        """The filter as query parameters (for paging links)."""
        out = {
            "actor": self.actor,
            "action": self.action,
            "from": self.since.isoformat() if self.since else "",
            "to": self.last.isoformat() if self.last else "",
            "page": str(page if page is not None else self.page),
        }
        return {k: v for k, v in out.items() if v and not (k == "page" and v == "1")}


def _day(name: str, value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadFilter(name, f"{text!r} is not a date (YYYY-MM-DD)") from None
    if not date(1900, 1, 1) <= day <= date(9998, 12, 31):
        raise BadFilter(name, f"{text!r} is out of range")
    return day


def parse_filter(query: dict[str, str] | Any) -> AuditFilter:
    """A filter from the page's query string; BadFilter names what is wrong."""
    actor = str(query.get("actor", "")).strip()[:100]
    action = str(query.get("action", "")).strip()[:60]
    since = _day("from", str(query.get("from", "")))
    last = _day("to", str(query.get("to", "")))
    if since and last and since > last:
        raise BadFilter("from", "the first day is after the last day")
    page_text = str(query.get("page", "1")).strip() or "1"
    if not page_text.isdigit() or not 1 <= int(page_text[:7]) <= MAX_PAGE:
        raise BadFilter("page", f"the page must be a whole number from 1 to {MAX_PAGE}")
    return AuditFilter(actor, action, since, last, int(page_text))


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit entries with the actors and actions to filter by."""

    filter: AuditFilter
    entries: tuple[AuditEntry, ...]
    has_next: bool
    actors: tuple[str, ...]
    actions: tuple[str, ...]


def _start(day: date, runtime: Runtime) -> datetime:
    return datetime.combine(day, time(0), tzinfo=runtime.settings.schedule.tz)


async def audit_page(runtime: Runtime, wanted: AuditFilter) -> AuditPage:
    """One page of entries matching `wanted`, and the names and actions to filter by."""
    since = _start(wanted.since, runtime) if wanted.since else None
    until = _start(wanted.last + timedelta(days=1), runtime) if wanted.last else None
    async with runtime.db.transaction(read_only=True) as s:
        rows = await repo_audit.search(
            s,
            actor=wanted.actor or None,
            action=wanted.action or None,
            since=since,
            until=until,
            offset=(wanted.page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE + 1,
        )
        actors, actions = await repo_audit.distinct_values(s)
    return AuditPage(
        wanted,
        tuple(rows[:PAGE_SIZE]),
        len(rows) > PAGE_SIZE,
        tuple(actors),
        tuple(actions),
    )
