"""Audiences: the expression staff write over contacts' attributes, compiled and checked
against the attributes contacts have, and evaluated page by page."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bands import age_group_of, contact_length_of
from flows.expr import Expr, ExprError, compile_expr
from storage import repo_campaigns
from storage.models import Campaign
from storage.repo_campaigns import AudienceContact

if TYPE_CHECKING:
    from bot.runtime import Runtime
from bot.campaigns.core import AUDIENCE_PAGE

log = logging.getLogger(__name__)

FIXED_ATTRIBUTES = frozenset(
    {
        "language",
        "gender",
        "birth_year",
        "age",
        "age_group",
        "target_group",
        "unit",
        "contact_since",
        "contact_length",
    }
)
"""Names an audience expression may use besides the keys of contacts' free attributes."""

_WORD_OR_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[A-Za-z0-9_]+")


# -- audiences -----------------------------------------------------------------------------------


def audience_env(contact: AudienceContact, today: date) -> dict[str, object]:
    """The names an audience expression sees for one contact; fixed fields win over free ones."""
    env: dict[str, object] = dict(contact.attributes) if contact.attributes else {}
    env["language"] = contact.language
    env["gender"] = contact.gender
    env["birth_year"] = contact.birth_year
    env["age"] = today.year - contact.birth_year if contact.birth_year is not None else None
    env["age_group"] = contact.age_group or age_group_of(contact.birth_year, today)
    env["target_group"] = contact.target_group
    env["unit"] = contact.unit
    since = contact.contact_since
    env["contact_since"] = since.isoformat() if since is not None else None
    env["contact_length"] = contact_length_of(since, today)
    return env


def _name_position(source: str, name: str) -> int:
    for match in _WORD_OR_STRING.finditer(source):
        if match.group() == name:
            return match.start()
    return 0


async def compile_audience(s: AsyncSession, source: str) -> Expr:
    """Compile an audience; raises ExprError at the offending token, also for unknown names."""
    if not source.strip():
        raise ExprError("the audience is empty; write an expression like unit == 'Norr'", 0)
    expr = compile_expr(source)
    unknown = expr.names - FIXED_ATTRIBUTES
    if unknown:
        unknown -= await repo_campaigns.attribute_names(s)
    if unknown:
        first = min(unknown, key=lambda n: _name_position(source, n))
        known = ", ".join(sorted(FIXED_ATTRIBUTES))
        raise ExprError(
            f"unknown attribute '{first}' (known: {known} and contacts' own attributes)",
            _name_position(source, first),
            first,
        )
    return expr


@dataclass(frozen=True, slots=True)
class AudienceScan:
    """How many people an audience matches now, and how many of them each open campaign of the
    same survey already covers (by campaign id)."""

    matched: int
    overlaps: Mapping[int, int]


async def scan_audience(
    runtime: Runtime, expr: Expr, today: date, others: Sequence[Campaign]
) -> AudienceScan:
    """Match the audience over every contact; without `others` it stops at the first match.

    A started campaign covers the people invited to it (its invitation rows); a scheduled one
    covers whoever its own audience matches now."""
    started = [c.id for c in others if c.audience_size is not None]
    scheduled: list[tuple[int, Expr]] = []
    for c in others:
        if c.audience_size is None:
            try:
                scheduled.append((c.id, compile_expr(c.audience)))
            except ExprError:
                log.warning("campaign %s: its audience no longer compiles", c.id)
    matched = 0
    overlaps = dict.fromkeys((c.id for c in others), 0)
    after = 0
    while True:
        async with runtime.db.transaction(read_only=True) as s:
            page = await repo_campaigns.audience_chunk(s, after, AUDIENCE_PAGE)
            envs = [(c.id, audience_env(c, today)) for c in page]
            chosen = [(cid, env) for cid, env in envs if expr.evaluate(env)]
            covered = await repo_campaigns.invited_among(s, started, [cid for cid, _ in chosen])
        matched += len(chosen)
        for campaign_id, _contact in covered:
            overlaps[campaign_id] += 1
        for campaign_id, other in scheduled:
            overlaps[campaign_id] += sum(1 for _, env in chosen if other.evaluate(env))
        if (matched and not others) or len(page) < AUDIENCE_PAGE:
            return AudienceScan(matched, {k: v for k, v in overlaps.items() if v})
        after = page[-1].id


def overlap_warnings(scan: AudienceScan, others: Sequence[Campaign]) -> list[str]:
    """What staff should know about people the new campaign shares with open ones."""
    warnings = []
    for other in others:
        shared = scan.overlaps.get(other.id, 0)
        if shared:
            warnings.append(
                f"{shared} of the {scan.matched} people in this audience are already in "
                f"campaign {other.id} '{other.name}' ({other.status}) of the same survey: anyone "
                "still answering that one gets this campaign's invitation when done (shown as "
                "waiting)"
            )
    return warnings
