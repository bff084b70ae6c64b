"""Case events in, follow-ups out: store events, plan one follow-up per matching rule, send it when
due (checking everything again at that moment), and report what happened to an event.

Why one module: planning a follow-up and sending it when due apply the same rule, contact and time-
window checks, and must not drift apart.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bands import age_group_of
from bot.catalog import CatalogEntry
from bot.followups.events import EventInput, duplicate_event_ids
from bot.followups.rules import CHANNELS
from bot.reach import Route, route_to
from bot.runtime import Runtime
from bot.timewindows import DailyWindow, next_allowed
from flows.durations import format_duration
from flows.expr import ExprError, compile_expr
from storage import repo_audit, repo_contacts, repo_conversations, repo_events, repo_tasks
from storage.models import CaseEvent, Contact, Followup, FollowupRule

log = logging.getLogger(__name__)

SEND_TASK = "followup.send"
BUSY_RETRY = timedelta(hours=1)
BUSY_MIN_RETRY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class FollowupInfo:
    """A follow-up as reported back to the case system and staff."""

    id: int
    rule: str
    survey: str
    due_at: datetime
    status: str
    reason: str | None
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """JSON with ISO 8601 UTC times."""
        return {
            "id": self.id,
            "rule": self.rule,
            "survey": self.survey,
            "due_at": self.due_at.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What reporting one event did: created, updated, cancelled or unchanged."""

    event_id: str
    result: str
    contact_created: bool
    followups: tuple[FollowupInfo, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "event_id": self.event_id,
            "result": self.result,
            "contact_created": self.contact_created,
            "followups": [f.to_json() for f in self.followups],
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one event of a report was refused; `conflict` when it contradicts a stored event."""

    index: int
    message: str
    conflict: bool = False


class EventsRefused(Exception):
    """Nothing of the report was stored: every problem, by the event's position."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in problems))


class _Refused(Exception):
    def __init__(self, message: str, *, conflict: bool = False) -> None:
        self.message = message
        self.conflict = conflict
        super().__init__(message)


async def ingest_events(
    runtime: Runtime, events: Sequence[EventInput], *, actor: str
) -> list[EventOutcome]:
    """Store events and plan, re-time or cancel their follow-ups, all in one transaction.

    Raises EventsRefused, storing nothing, if any event cannot be taken (an unknown person
    without contact details, or an event_id reused for another person or type)."""
    problems = [
        Problem(index, f"event_id {events[index].event_id!r} is also event {first + 1} here")
        for index, first in duplicate_event_ids(events).items()
    ]
    if problems:
        raise EventsRefused(problems)
    now = runtime.clock.now()
    outcomes: list[EventOutcome] = []
    async with runtime.db.transaction() as s:
        for index, event in enumerate(events):
            try:
                outcomes.append(await _ingest_one(s, runtime, event, now))
            except _Refused as e:
                problems.append(Problem(index, e.message, e.conflict))
        if problems:
            raise EventsRefused(problems)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        await repo_audit.log(s, actor, "events.report", "case_events", counts, at=now)
    return outcomes


async def _ingest_one(
    s: AsyncSession, runtime: Runtime, event: EventInput, now: datetime
) -> EventOutcome:
    row = await repo_events.get_event(s, event.event_id, for_update=True)
    if row is None:
        contact, created = await _contact_for(s, runtime, event, now)
        row = await repo_events.insert_event(
            s,
            event_id=event.event_id,
            type=event.type,
            contact_id=contact.id,
            occurred_at=event.occurred_at,
            attributes=dict(event.attributes),
            cancelled=event.cancelled,
            now=now,
        )
        if row is not None:
            if not event.cancelled:
                await _plan(s, runtime, row, contact)
            return await _outcome(s, row, "created", created)
        # Reported concurrently by someone else a moment ago: treat it as a repeat.
        row = await repo_events.get_event(s, event.event_id, for_update=True)
        assert row is not None
    return await _update(s, runtime, row, event, now)


async def _update(
    s: AsyncSession, runtime: Runtime, row: CaseEvent, event: EventInput, now: datetime
) -> EventOutcome:
    contact = await repo_contacts.get(s, row.contact_id)
    assert contact is not None
    if contact.external_ref != event.external_ref:
        raise _Refused(
            f"event_id {event.event_id!r} was reported for another person; "
            "a new event needs a new event_id",
            conflict=True,
        )
    if row.type != event.type:
        raise _Refused(
            f"event_id {event.event_id!r} was reported as type {row.type!r}, not {event.type!r}",
            conflict=True,
        )
    if row.cancelled:
        if not event.cancelled:
            raise _Refused(
                f"event {event.event_id!r} was cancelled; report a new event_id to plan again",
                conflict=True,
            )
        return await _outcome(s, row, "unchanged", False)
    if event.cancelled:
        row.cancelled = True
        row.updated_at = now
        await _cancel_pending(s, row.id, "the event was cancelled")
        return await _outcome(s, row, "cancelled", False)
    if row.occurred_at == event.occurred_at and row.attributes == dict(event.attributes):
        return await _outcome(s, row, "unchanged", False)
    row.occurred_at = event.occurred_at
    row.attributes = dict(event.attributes)
    row.updated_at = now
    await s.flush()
    await _plan(s, runtime, row, contact)
    return await _outcome(s, row, "updated", False)


async def _cancel_pending(s: AsyncSession, event_pk: int, reason: str) -> None:
    views = await repo_events.followups_for_event(s, event_pk)
    pending = [v.followup for v in views if v.followup.status == repo_events.PENDING]
    for followup in pending:
        await repo_tasks.cancel(s, task_key(followup.id))
    await repo_events.set_status(s, pending, repo_events.CANCELLED, reason)


async def _outcome(s: AsyncSession, row: CaseEvent, result: str, created: bool) -> EventOutcome:
    views = await repo_events.followups_for_event(s, row.id)
    return EventOutcome(row.event_id, result, created, tuple(_info(v) for v in views))


def _info(view: repo_events.FollowupView) -> FollowupInfo:
    f = view.followup
    return FollowupInfo(
        f.id, view.rule_name, view.survey_id, f.due_at, f.status, f.reason, f.sent_at
    )


async def _contact_for(
    s: AsyncSession, runtime: Runtime, event: EventInput, now: datetime
) -> tuple[Contact, bool]:
    """The person the event is about; created from the event's contact details if unknown."""
    contact = await repo_contacts.get_by_external_ref(s, event.external_ref)
    if contact is not None:
        return contact, False
    details = event.contact
    if details is None:
        raise _Refused(
            f"no contact with external_ref {event.external_ref!r}; "
            "include contact details to create one"
        )
    attrs = {
        "external_ref": event.external_ref,
        "language": details.language,
        "gender": details.gender,
        "birth_year": details.birth_year,
        "target_group": details.target_group,
        "unit": details.unit,
        "contact_since": details.contact_since,
        "attributes": dict(details.attributes),
        "created_at": now,
        "updated_at": now,
    }
    try:
        # A savepoint: two reports creating one person at once must not abort the transaction.
        async with s.begin_nested():
            contact = await repo_contacts.create(s, **attrs)
    except IntegrityError:
        found = await repo_contacts.get_by_external_ref(s, event.external_ref)
        if found is None:
            raise
        return found, False
    pseudonymizer = runtime.service.pseudonymizer
    addresses = [("webchat", secrets.token_urlsafe(18))]
    if details.phone:
        addresses.append(("sms", details.phone))
    if details.telegram_chat_id:
        addresses.append(("telegram", details.telegram_chat_id))
    for channel, address in addresses:
        key = pseudonymizer.address_key(channel, address)
        await repo_contacts.add_address(s, contact.id, channel, address, key)
    return contact, True


def task_key(followup_id: int) -> str:
    """The due task that sends one follow-up."""
    return f"{SEND_TASK}:{followup_id}"


def _window(rule: FollowupRule) -> DailyWindow | None:
    return DailyWindow.parse(rule.window) if rule.window.strip() else None


def allowed_at(
    when: datetime, tz: ZoneInfo, quiet: DailyWindow | None, window: DailyWindow | None
) -> datetime:
    """The first instant from `when` outside quiet hours and inside the rule's window.

    Should the window have come to lie inside quiet hours (the quiet hours were changed after
    the rule was checked), quiet hours win and the window is ignored rather than never sending."""
    try:
        return next_allowed(when, tz, quiet=quiet, allowed=window)
    except ValueError as e:
        log.error("follow-up window ignored: %s", e)
        return next_allowed(when, tz, quiet=quiet)


def due_time(
    occurred_at: datetime,
    delay: int,
    tz: ZoneInfo,
    *,
    quiet: DailyWindow | None,
    window: DailyWindow | None,
) -> datetime:
    """When a follow-up comes due: `delay` after the event, moved to the next allowed time.

    Whole days are calendar days in `tz`, so "14d" after 17:55 is 17:55 two weeks later even
    across a daylight-saving change; the rest of the delay is elapsed time."""
    days, seconds = divmod(delay, 86_400)
    wall = occurred_at.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    # A wall time in a spring-forward gap reads with the offset before it: just after the gap.
    target = wall.replace(tzinfo=tz).astimezone(UTC) + timedelta(seconds=seconds)
    return allowed_at(target, tz, quiet, window)


def _local_date(when: datetime, tz: ZoneInfo) -> date:
    return when.astimezone(tz).date()


def filter_env(event: CaseEvent, contact: Contact, tz: ZoneInfo) -> dict[str, object]:
    """What a rule filter sees: the contact's attributes and columns, then the event's
    attributes (the fresher word), and `age` in whole years on the event's day."""
    on = _local_date(event.occurred_at, tz)
    env: dict[str, object] = dict(contact.attributes or {})
    env.update(
        language=contact.language,
        gender=contact.gender,
        birth_year=contact.birth_year,
        age_group=contact.age_group or age_group_of(contact.birth_year, on),
        target_group=contact.target_group,
        unit=contact.unit,
        contact_since=contact.contact_since.isoformat() if contact.contact_since else None,
    )
    env.update(event.attributes or {})
    env["event_type"] = event.type
    birth_year = env.get("birth_year")
    if env.get("age") is None and isinstance(birth_year, int) and not isinstance(birth_year, bool):
        env["age"] = on.year - birth_year
    return env


def rule_matches(rule: FollowupRule, env: Mapping[str, object]) -> bool:
    """Whether a rule's filter holds (an empty filter matches everyone)."""
    if not rule.filter.strip():
        return True
    try:
        return compile_expr(rule.filter).evaluate(env)
    except ExprError as e:
        log.error("follow-up rule %r has a broken filter, skipped: %s", rule.name, e)
        return False


def filter_mismatch(rule: FollowupRule) -> str:
    """Why a rule planned no follow-up for an event, as staff read it."""
    return f"not planned: rule {rule.name!r} has a filter the event did not match ({rule.filter})"


async def _plan(s: AsyncSession, runtime: Runtime, event: CaseEvent, contact: Contact) -> None:
    """Create the follow-ups of matching rules; re-time the ones still pending.

    A rule whose filter does not match gets a follow-up marked not planned, with the reason, so
    `events show` can say why nothing came of the event; should a changed event match it later,
    that follow-up is planned after all. A pending follow-up whose rule no longer matches is left
    for the send-time check, which cancels it with a reason staff can read."""
    schedule = runtime.settings.schedule
    tz, quiet = schedule.tz, schedule.quiet
    env = filter_env(event, contact, tz)
    existing = {
        v.followup.rule_id: v.followup for v in await repo_events.followups_for_event(s, event.id)
    }
    for rule in await repo_events.list_rules(s, event_type=event.type, enabled_only=True):
        followup = existing.get(rule.id)
        due = due_time(event.occurred_at, rule.delay, tz, quiet=quiet, window=_window(rule))
        unplanned = followup is None or followup.status == repo_events.NOT_PLANNED
        if unplanned and not rule_matches(rule, env):
            if followup is None:
                await repo_events.add_followup(
                    s,
                    rule_id=rule.id,
                    event_id=event.id,
                    contact_id=contact.id,
                    due_at=due,
                    status=repo_events.NOT_PLANNED,
                    reason=filter_mismatch(rule),
                )
            else:
                followup.due_at, followup.reason = due, filter_mismatch(rule)
                await s.flush()
            continue
        if followup is None:
            followup = await repo_events.add_followup(
                s, rule_id=rule.id, event_id=event.id, contact_id=contact.id, due_at=due
            )
        elif followup.status == repo_events.NOT_PLANNED:
            followup.status, followup.reason = repo_events.PENDING, None
        elif followup.status != repo_events.PENDING or followup.due_at == due:
            continue
        followup.due_at = due
        await s.flush()
        await repo_tasks.schedule(
            s, SEND_TASK, task_key(followup.id), due, {"followup_id": followup.id}, replace=True
        )


async def send_followup(runtime: Runtime, followup_id: int) -> str:
    """The `followup.send` task: send one follow-up now if everything still holds.

    Returns the follow-up's status afterwards ("pending" when moved to a later time)."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        followup = await repo_events.get_followup(s, followup_id, for_update=True)
        if followup is None:
            return "missing"
        if followup.status != repo_events.PENDING:
            return followup.status
        checked = await _try_send(s, runtime, followup, now)
        contact_id = followup.contact_id
    if isinstance(checked, _Ready):
        # The conversation starts in a turn of its own (bot.inbound), which checks again that
        # the follow-up is pending and the person is not busy.
        outcome = await runtime.service.start_followup(
            followup_id=followup_id,
            contact_id=contact_id,
            survey=checked.entry.survey,
            version_id=checked.entry.version_id,
            route=checked.route,
        )
        if outcome == "busy":
            async with runtime.db.transaction() as s:
                await repo_tasks.requeue(s, task_key(followup_id), now + BUSY_MIN_RETRY)
            checked = repo_events.PENDING
        else:
            checked = outcome
    if checked == repo_events.SENT:
        runtime.dispatcher.wake()
    log.info("follow-up %s: %s", followup_id, checked)
    return checked


@dataclass(frozen=True, slots=True)
class _Ready:
    """Every check passed: start the survey on this route."""

    entry: CatalogEntry
    route: Route


async def _try_send(s: AsyncSession, runtime: Runtime, f: Followup, now: datetime) -> str | _Ready:
    schedule = runtime.settings.schedule
    if f.due_at > now:  # moved later (a changed occurred_at) while this run was queued
        await repo_tasks.requeue(s, task_key(f.id), f.due_at)
        return f.status
    rule = await repo_events.get_rule_by_id(s, f.rule_id)
    event = await s.get(CaseEvent, f.event_id)
    contact = await repo_contacts.get(s, f.contact_id)
    assert rule is not None and event is not None and contact is not None

    async def finish(status: str, reason: str | None) -> str:
        await repo_events.set_status(s, [f], status, reason)
        return status

    if event.cancelled:
        return await finish(repo_events.CANCELLED, "the event was cancelled")
    if not rule.enabled:
        return await finish(repo_events.CANCELLED, f"rule {rule.name!r} is disabled")
    deadline = f.due_at + timedelta(seconds=rule.expires_after)
    expiry = format_duration(rule.expires_after)
    if now > deadline:
        return await finish(repo_events.EXPIRED, f"not sent within {expiry} of coming due")
    if contact.opted_out_at is not None:
        return await finish(repo_events.SKIPPED, "the person has opted out")
    if not rule_matches(rule, filter_env(event, contact, schedule.tz)):
        return await finish(repo_events.CANCELLED, "no longer matches the rule's filter")

    async def later(when: datetime, why: str) -> str:
        if when > deadline:
            return await finish(repo_events.EXPIRED, f"{why}, and {expiry} after due has passed")
        await repo_tasks.requeue(s, task_key(f.id), when)
        return f.status

    window = _window(rule)
    allowed = allowed_at(now, schedule.tz, schedule.quiet, window)
    if allowed > now:  # e.g. the service was down and came back at night
        return await later(allowed, "outside the delivery window")
    if rule.fatigue_days and await repo_events.surveyed_since(
        s, contact.id, now - timedelta(days=rule.fatigue_days), other_than=f.id
    ):
        return await finish(
            repo_events.SKIPPED,
            f"fatigue guard: already surveyed within the last {rule.fatigue_days} days",
        )
    active = await repo_conversations.active_for_contact(s, contact.id)
    if active is not None:
        retry = max(min(active.expires_at, now + BUSY_RETRY), now + BUSY_MIN_RETRY)
        retry = allowed_at(retry, schedule.tz, schedule.quiet, window)
        return await later(retry, "the person is answering another survey")
    entry = runtime.catalog.latest(rule.survey_id)
    if entry is None:
        return await finish(repo_events.SKIPPED, f"survey {rule.survey_id!r} is not loaded")
    wanted = list(rule.channels) or list(CHANNELS)
    route = await route_to(s, contact.id, wanted, runtime.channels)
    if route is None:
        return await finish(
            repo_events.SKIPPED,
            f"unreachable: no address on the rule's channels ({', '.join(wanted)}) that is on",
        )
    return _Ready(entry, route)


def register(runtime: Runtime) -> None:
    """Register the `followup.send` task handler (rules are loaded by `load_rules`)."""

    async def handle(payload: dict[str, Any]) -> None:
        await send_followup(runtime, int(payload["followup_id"]))

    runtime.tasks.register(SEND_TASK, handle)


@dataclass(frozen=True, slots=True)
class EventReport:
    """An event and its follow-ups, for `events show` and GET /events/{id}."""

    event_id: str
    type: str
    external_ref: str | None
    occurred_at: datetime
    cancelled: bool
    attributes: Mapping[str, object]
    followups: tuple[FollowupInfo, ...]
    note: str | None = None
    """Why the event has no follow-ups at all (e.g. no rule for its type), else None."""

    def to_json(self) -> dict[str, Any]:
        """JSON with ISO 8601 UTC times."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "external_ref": self.external_ref,
            "occurred_at": self.occurred_at.isoformat(),
            "cancelled": self.cancelled,
            "attributes": dict(self.attributes),
            "followups": [f.to_json() for f in self.followups],
            "note": self.note,
        }


def _no_followups(event: CaseEvent, rules: Sequence[FollowupRule]) -> str:
    """Why an event that is not cancelled has no follow-ups: every enabled rule for its type
    leaves one (planned or not), so there was no such rule when it was reported."""
    if not rules:
        return f"no follow-up rule for event type {event.type!r}"
    enabled = [r.name for r in rules if r.enabled]
    if not enabled:
        names = ", ".join(r.name for r in rules)
        return f"the rules for event type {event.type!r} are disabled ({names})"
    return (
        f"no rule for event type {event.type!r} was enabled when it was reported "
        f"({', '.join(enabled)} came later)"
    )


async def event_report(runtime: Runtime, event_id: str) -> EventReport | None:
    """An event by the case system's id with its follow-ups; None if unknown."""
    async with runtime.db.transaction(read_only=True) as s:
        row = await repo_events.get_event(s, event_id)
        if row is None:
            return None
        contact = await repo_contacts.get(s, row.contact_id)
        views = await repo_events.followups_for_event(s, row.id)
        note = None
        if not views and not row.cancelled:
            note = _no_followups(row, await repo_events.list_rules(s, event_type=row.type))
    return EventReport(
        event_id=row.event_id,
        type=row.type,
        external_ref=contact.external_ref if contact else None,
        occurred_at=row.occurred_at,
        cancelled=row.cancelled,
        attributes=dict(row.attributes),
        followups=tuple(_info(v) for v in views),
        note=note,
    )
