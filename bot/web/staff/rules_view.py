"""Follow-up rules for the staff page (page 6 of issue 9): the rules file's rules (read-only
here: they are changed in the file), the API rules (an admin edits them on the page), and the
follow-ups each rule has planned.

Saving goes through the same `bot.followups.parse_rule` and `repo_events.save_rule` as
`PUT /api/v1/followup-rules/{name}`, with the same refusals: a rule from the file cannot be
changed or deleted here, and deleting an API rule cancels its pending follow-ups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from bot import followups
from flows.durations import format_duration
from storage import repo_audit, repo_events, repo_tasks
from storage.models import FollowupRule
from storage.repo_events import RuleValues

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "RuleRefused",
    "RuleRow",
    "RulesView",
    "delete_rule",
    "form_to_rule",
    "rule_form",
    "rules_view",
    "save_rule",
]

UPCOMING: Final = 5
"""Planned follow-ups listed per rule (the count says how many there are in all)."""


class RuleRefused(Exception):
    """A rule change that is refused; `problems` are "key: what is wrong" lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One rule on the follow-ups page, with its delays as text and its pending follow-ups."""

    rule: FollowupRule
    delay: str
    expires_after: str
    pending: int
    upcoming: tuple[datetime, ...]
    """When the next planned follow-ups are due (UTC), soonest first."""

    @property
    def from_file(self) -> bool:
        """True for a rule from the rules file (edited there, not on the page)."""
        return self.rule.source == repo_events.SOURCE_FILE


@dataclass(frozen=True, slots=True)
class RulesView:
    """The follow-ups page: every rule, and the rules file's problems."""

    rules: tuple[RuleRow, ...]
    problems: tuple[str, ...]
    """What is wrong in the rules file as it is now."""


async def rules_view(runtime: Runtime) -> RulesView:
    """Every rule with its pending follow-ups, and the rules file's problems."""
    async with runtime.db.transaction(read_only=True) as s:
        rules = await repo_events.list_rules(s)
        counts = await repo_events.pending_counts(s)
        rows = []
        for rule in rules:
            upcoming = tuple(await repo_events.next_due(s, rule.id, UPCOMING))
            rows.append(
                RuleRow(
                    rule,
                    format_duration(rule.delay),
                    format_duration(rule.expires_after),
                    int(counts.get(rule.id, 0)),
                    upcoming,
                )
            )
    parsed = followups.read_rules_file(
        followups.RULES_FILE,
        known_surveys=followups.known_surveys(runtime),
        quiet=runtime.settings.schedule.quiet,
    )
    return RulesView(tuple(rows), parsed.problems)


def rule_form(rule: FollowupRule | None) -> dict[str, object]:
    """A rule as the form's fields (empty for a new rule)."""
    if rule is None:
        return {
            "name": "",
            "event": "",
            "filter": "",
            "survey": "",
            "delay": "",
            "window": "",
            "fatigue_days": "0",
            "expires_after": "7d",
            "channels": [],
            "enabled": True,
        }
    return {
        "name": rule.name,
        "event": rule.event_type,
        "filter": rule.filter,
        "survey": rule.survey_id,
        "delay": format_duration(rule.delay),
        "window": rule.window,
        "fatigue_days": str(rule.fatigue_days),
        "expires_after": format_duration(rule.expires_after),
        "channels": list(rule.channels),
        "enabled": rule.enabled,
    }


def form_to_rule(
    fields: Mapping[str, str], channels: list[str], *, name: str | None
) -> dict[str, object]:
    """Form fields -> the rule object `parse_rule` takes (the API's vocabulary)."""
    data: dict[str, object] = {}
    # Empty fields are left out, so a required one is reported as "required".
    keys = ("event", "survey", "filter", "window", "delay", "expires_after")
    for key in ("name", *keys) if name is None else keys:
        value = fields.get(key, "").strip()
        if value:
            data[key] = value
    fatigue = fields.get("fatigue_days", "").strip() or "0"
    data["fatigue_days"] = int(fatigue) if fatigue.isdigit() and len(fatigue) < 6 else fatigue
    data["channels"] = channels
    data["enabled"] = fields.get("enabled") == "on"
    return data


def _parse(runtime: Runtime, data: Mapping[str, object], name: str | None) -> RuleValues:
    parsed = followups.parse_rule(
        data,
        known_surveys=followups.known_surveys(runtime),
        quiet=runtime.settings.schedule.quiet,
        name=name,
    )
    if isinstance(parsed, list):
        raise RuleRefused(parsed)
    return parsed


async def save_rule(
    runtime: Runtime, data: Mapping[str, object], *, name: str | None, actor: str
) -> FollowupRule:
    """Create a rule (`name` None: the name is in `data`, and must be free) or replace the API
    rule `name`; audit-logged like the API."""
    values = _parse(runtime, data, name)
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        existing = await repo_events.get_rule(s, values.name)
        if name is None and existing is not None:
            raise RuleRefused([f"name: a follow-up rule named {values.name!r} exists"])
        if name is not None and existing is None:
            raise RuleRefused([f"no follow-up rule named {name!r} (it may have been deleted)"])
        if existing is not None and existing.source == repo_events.SOURCE_FILE:
            raise RuleRefused(
                [f"rule {values.name!r} comes from the rules file; change it in the file"]
            )
        rule, created = await repo_events.save_rule(
            s, values, source=repo_events.SOURCE_API, now=now
        )
        action = "followup_rule.create" if created else "followup_rule.update"
        await repo_audit.log(s, actor, action, values.name, {"via": "staff"}, at=now)
        return rule


async def delete_rule(runtime: Runtime, name: str, *, actor: str) -> int:
    """Delete an API rule, cancelling its pending follow-ups; returns how many were pending."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        rule = await repo_events.get_rule(s, name)
        if rule is None:
            raise RuleRefused([f"no follow-up rule named {name!r} (it may have been deleted)"])
        if rule.source == repo_events.SOURCE_FILE:
            raise RuleRefused([f"rule {name!r} comes from the rules file; change it in the file"])
        pending = await repo_events.pending_for_rule(s, rule.id)
        for followup in pending:
            await repo_tasks.cancel(s, followups.task_key(followup.id))
        await repo_events.delete_rule(s, rule)
        await repo_audit.log(
            s,
            actor,
            "followup_rule.delete",
            name,
            {"pending_cancelled": len(pending), "via": "staff"},
            at=now,
        )
        return len(pending)
