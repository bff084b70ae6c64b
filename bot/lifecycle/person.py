"""A person's rights: see everything held about them (`export_person`) and have it erased
(`erase_person`). Both are audit-logged under a keyed pseudonym of the person's external_ref,
never the ref itself, so the audit log names nobody once the person is gone."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase

from bot.runtime import Runtime
from storage import repo_audit, repo_lifecycle

log = logging.getLogger(__name__)

EXPORT_FORMAT = "brukardialog.person-export/1"
ANONYMOUS_NOTE = (
    "Answers to anonymous surveys are not in this export and cannot be: when a conversation of an "
    "anonymous survey ends, its answers are released to the results under a new random id, "
    "dated to the day, in a batch with other people's, and nothing is kept that links them to "
    "you (see the service's privacy notes). They are kept as part of the results, and they are "
    "not removed when your data is erased, since nobody can tell which they are."
)
_LEFT_OUT = frozenset({"lease_until", "claimed_by"})
"""Columns about the outbox's own bookkeeping, not about the person."""


class PersonNotFound(Exception):
    """No contact has this external_ref."""

    def __init__(self, external_ref: str) -> None:
        self.external_ref = external_ref
        super().__init__(f"no contact with external_ref {external_ref!r}")


def ref_pseudonym(runtime: Runtime, external_ref: str) -> str:
    """A keyed HMAC of an external_ref, for audit lines and logs: `ref#<16 hex digits>`."""
    digest = runtime.service.pseudonymizer.address_key("external_ref", external_ref)
    return f"ref#{digest[:16]}"


def audit_target(runtime: Runtime, external_ref: str) -> str:
    """The audit target that names a person: `contact:ref#...`."""
    return f"contact:{ref_pseudonym(runtime, external_ref)}"


def _value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _row(obj: DeclarativeBase) -> dict[str, Any]:
    table: Any = obj.__table__
    return {
        column.key: _value(getattr(obj, column.key))
        for column in table.columns
        if column.key not in _LEFT_OUT
    }


def export_json(
    rows: repo_lifecycle.PersonRows, external_ref: str, now: datetime
) -> dict[str, Any]:
    """Everything in `rows` as one JSON document."""
    contact = _row(rows.contact)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "external_ref": external_ref,
        "anonymous_answers": ANONYMOUS_NOTE,
        "contact": contact,
        "addresses": [_row(a) for a in rows.addresses],
        "opt_out": {
            "opted_out": rows.contact.opted_out_at is not None,
            "at": contact["opted_out_at"],
        },
        "invitations": [
            {**_row(i), "campaign": {"id": c.id, "name": c.name, "survey_id": c.survey_id}}
            for i, c in rows.invitations
        ],
        "participations": [_row(p) for p in rows.participations],
        "conversations": [_row(c) for c in rows.conversations],
        "messages": [_row(m) for m in rows.messages],
        "case_events": [_row(e) for e in rows.case_events],
        "followups": [
            {**_row(f), "rule": r.name, "survey_id": r.survey_id} for f, r in rows.followups
        ],
        "answers": [
            {"respondent": _row(r), "answers": [_row(a) for a in answers]}
            for r, answers in rows.respondents
        ],
    }


def summary(export: dict[str, Any]) -> dict[str, int]:
    """How many rows of each kind an export holds."""
    kinds = (
        "addresses",
        "invitations",
        "participations",
        "conversations",
        "messages",
        "case_events",
        "followups",
        "answers",
    )
    return {kind: len(export[kind]) for kind in kinds}


async def export_person(runtime: Runtime, external_ref: str, *, actor: str) -> dict[str, Any]:
    """Everything held about the person with this external_ref, as JSON (addresses readable:
    it is their own data). Raises PersonNotFound."""
    now = runtime.clock.now()
    async with runtime.db.transaction(read_only=True) as s:
        contact_id = await repo_lifecycle.find_contact(s, external_ref)
        rows = None if contact_id is None else await repo_lifecycle.person_rows(s, contact_id)
    if rows is None:
        raise PersonNotFound(external_ref)
    export = export_json(rows, external_ref, now)
    target = audit_target(runtime, external_ref)
    async with runtime.db.transaction() as s:
        await repo_audit.log(s, actor, "contacts.export", target, summary(export), at=now)
    log.info("exported a person's data (%s) for %s", target, actor)
    return export


@dataclass(frozen=True, slots=True)
class Erasure:
    """What erasing one person removed, per kind (no personal data)."""

    target: str
    """The audit target: `contact:ref#...`."""
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """JSON for the API."""
        return {"erased": self.target, "counts": dict(self.counts)}


async def person_summary(runtime: Runtime, external_ref: str) -> dict[str, int]:
    """How many rows of each kind are held about a person (for a confirmation question).
    Raises PersonNotFound."""
    async with runtime.db.transaction(read_only=True) as s:
        contact_id = await repo_lifecycle.find_contact(s, external_ref)
        rows = None if contact_id is None else await repo_lifecycle.person_rows(s, contact_id)
    if rows is None:
        raise PersonNotFound(external_ref)
    return summary(export_json(rows, external_ref, runtime.clock.now()))


async def erase_person(runtime: Runtime, external_ref: str, *, actor: str) -> Erasure:
    """Remove everything held about the person with this external_ref: contact, addresses,
    conversations, messages (inbound ones stay as bare provider ids, for dedupe), invitations,
    follow-ups, case events, answers to surveys that are not anonymous, and their timers.
    Released anonymous answers stay. Audit lines that named the ref now name its pseudonym.
    Raises PersonNotFound."""
    now = runtime.clock.now()
    target = audit_target(runtime, external_ref)
    async with runtime.db.transaction() as s:
        contact_id = await repo_lifecycle.find_contact(s, external_ref, for_update=True)
        if contact_id is None:
            raise PersonNotFound(external_ref)
        counts = await repo_lifecycle.erase_contact(s, contact_id)
        await repo_lifecycle.rename_audit_target(s, f"contact:{external_ref}", target)
        await repo_audit.log(s, actor, "contacts.erase", target, counts, at=now)
    log.info(
        "erased a person's data (%s) for %s: %s",
        target,
        actor,
        ", ".join(f"{n} {kind}" for kind, n in counts.items()),
    )
    return Erasure(target, counts)
