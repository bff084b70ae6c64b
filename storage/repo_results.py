"""Reading answers for results: respondents and their answers in chunks, participation counts,
and the people results are fed back to.

Records come out in chunks of respondents (ordered by respondent id, so paging is stable): one
query for a page of respondents and one for their answers, with plain Core selects so a million
answers load in seconds without building ORM objects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Answer,
    Campaign,
    Contact,
    Followup,
    FollowupRule,
    Invitation,
    Respondent,
    SurveyVersion,
)
from storage.records import Participation, ResponseRecord

CHUNK = 1000
"""Respondents per chunk (and so the size of the `IN` list for their answers)."""

COMPLETED = "completed"
OPTED_OUT = "opted_out"
NOT_INVITED = ("pending", "unreachable")
FEEDBACK_TO_RESPONDENTS = "respondents"
FEEDBACK_TO_INVITED = "invited"


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which respondents to read: one campaign, or a survey version without campaign in a period.

    `origin` keeps answers of different doors apart: without a campaign, a follow-up survey's
    results read origin "followup" and answers from public starts (the web chat index or a
    keyword) origin "public"; they are never mixed.
    """

    survey_version_id: int
    campaign_id: int | None = None
    since: date | None = None
    """Respondents who started on or after this day (follow-up surveys)."""
    until: date | None = None
    """Respondents who started before this day."""
    completed_only: bool = True
    origin: str | None = None
    """campaign | followup | public; None: any."""

    def condition(self) -> ColumnElement[bool]:
        """The WHERE clause on respondents."""
        r = Respondent.__table__.c
        parts: list[ColumnElement[bool]] = [r.survey_version_id == self.survey_version_id]
        if self.campaign_id is not None:
            parts.append(r.campaign_id == self.campaign_id)
        else:
            parts.append(r.campaign_id.is_(None))
        if self.since is not None:
            parts.append(r.started_on >= self.since)
        if self.until is not None:
            parts.append(r.started_on < self.until)
        if self.completed_only:
            parts.append(r.completed == true())
        if self.origin is not None:
            parts.append(r.origin == self.origin)
        return and_(*parts)


async def record_chunks(
    s: AsyncSession, where: RecordFilter, *, chunk: int = CHUNK
) -> AsyncIterator[list[ResponseRecord]]:
    """The matching respondents with their answers, `chunk` respondents at a time."""
    r = Respondent.__table__.c
    a = Answer.__table__.c
    condition = where.condition()
    after = ""
    while True:
        heads = (
            await s.execute(
                select(r.id, r.completed, r.started_on, r.attributes)
                .where(condition, r.id > after)
                .order_by(r.id)
                .limit(chunk)
            )
        ).all()
        if not heads:
            return
        ids = [row[0] for row in heads]
        answers: dict[str, dict[str, Any]] = {rid: {} for rid in ids}
        days: dict[str, dict[str, date]] = {rid: {} for rid in ids}
        # Values and days come as text and are decoded through small caches: answers repeat
        # (the same choice ids, the same few days), and per-row type processing was the cost.
        rows = await s.execute(
            select(
                a.respondent_id,
                a.question_id,
                cast(a.value, Text),
                a.skipped,
                cast(a.answered_on, String),
            ).where(a.respondent_id.in_(ids))
        )
        for respondent_id, question_id, raw, skipped, day in rows:
            answers[respondent_id][question_id] = None if skipped else _decode(raw)
            days[respondent_id][question_id] = _day(day)
        yield [
            ResponseRecord(
                respondent_id=rid,
                completed=bool(completed),
                started_on=started_on,
                attributes=dict(attributes or {}),
                answers=answers[rid],
                answered_on=days[rid],
            )
            for rid, completed, started_on, attributes in heads
        ]
        if len(heads) < chunk:
            return
        after = ids[-1]


_VALUE_CACHE: dict[str, Any] = {}
_DAY_CACHE: dict[str, date] = {}
_CACHE_LIMIT = 10_000
_CACHEABLE_LENGTH = 64


def _decode(raw: str | None) -> Any:
    """A stored JSON answer value (a fresh list for select_many, so callers may change it)."""
    if raw is None:
        return None
    value = _VALUE_CACHE.get(raw)
    if value is not None:
        return list(value) if isinstance(value, tuple) else value
    value = json.loads(raw)
    if len(raw) <= _CACHEABLE_LENGTH and len(_VALUE_CACHE) < _CACHE_LIMIT:
        _VALUE_CACHE[raw] = tuple(value) if isinstance(value, list) else value
    return value


def _day(text: str | date) -> date:
    if isinstance(text, date):
        return text
    day = _DAY_CACHE.get(text)
    if day is None:
        day = date.fromisoformat(text[:10])
        if len(_DAY_CACHE) < _CACHE_LIMIT:
            _DAY_CACHE[text] = day
    return day


async def records(s: AsyncSession, where: RecordFilter) -> list[ResponseRecord]:
    """Every matching record in one list (results need them all at once)."""
    out: list[ResponseRecord] = []
    async for part in record_chunks(s, where):
        out.extend(part)
    return out


async def participation(s: AsyncSession, campaign_id: int) -> Participation:
    """Invited, started, completed and opted out, counted from the campaign's invitations.

    Invited: reached on some channel (an invitation that was still pending when the campaign
    closed was never sent, so it does not count). Started: answered at least one question, which
    the respondents tell even after invitations have settled to their final status."""
    i = Invitation.__table__.c
    by_status: dict[str, int] = {}
    never_sent = 0
    rows = await s.execute(
        select(i.status, i.invited_at.is_(None), func.count())
        .where(i.campaign_id == campaign_id)
        .group_by(i.status, i.invited_at.is_(None))
    )
    for status, not_invited, count in rows:
        by_status[status] = by_status.get(status, 0) + int(count)
        if status == "closed" and not_invited:
            never_sent += int(count)
    invited = sum(n for st, n in by_status.items() if st not in NOT_INVITED) - never_sent
    r = Respondent.__table__.c
    a = Answer.__table__.c
    answered = int(
        await s.scalar(
            select(func.count(func.distinct(a.respondent_id)))
            .select_from(Answer.__table__.join(Respondent.__table__, a.respondent_id == r.id))
            .where(r.campaign_id == campaign_id)
        )
        or 0
    )
    completed = by_status.get(COMPLETED, 0)
    started = max(answered, completed + by_status.get("started", 0))
    return Participation(
        invited=invited,
        started=min(started, invited) if invited else started,
        completed=completed,
        opted_out=by_status.get(OPTED_OUT, 0),
    )


async def campaign(
    s: AsyncSession, campaign_id: int, *, for_update: bool = False
) -> Campaign | None:
    """A campaign by id."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await s.scalars(stmt.execution_options(populate_existing=True))).first()


async def campaigns(s: AsyncSession) -> list[Campaign]:
    """Every campaign, oldest first."""
    return list(await s.scalars(select(Campaign).order_by(Campaign.id)))


async def previous_campaign(
    s: AsyncSession, current: Campaign, *, min_answers: int = 1
) -> Campaign | None:
    """The last campaign of the same survey that closed before this one (or before now) with at
    least `min_answers` completed respondents: a change is only shown against one that had k."""
    r = Respondent.__table__.c
    answered = (
        select(func.count())
        .select_from(Respondent.__table__)
        .where(r.campaign_id == Campaign.id, r.completed == true())
        .correlate(Campaign)
        .scalar_subquery()
    )
    stmt = select(Campaign).where(
        Campaign.survey_id == current.survey_id,
        Campaign.id != current.id,
        Campaign.status == "closed",
        Campaign.closed_at.is_not(None),
        answered >= min_answers,
    )
    if current.closed_at is not None:
        stmt = stmt.where(Campaign.closed_at < current.closed_at)
    stmt = stmt.order_by(Campaign.closed_at.desc(), Campaign.id.desc()).limit(1)
    return (await s.scalars(stmt)).first()


@dataclass(frozen=True, slots=True)
class FollowupPackage:
    """A stored version of a follow-up survey that has answers outside campaigns."""

    survey_id: str
    survey_version_id: int
    loaded_at: datetime
    respondents: int


async def followup_versions(s: AsyncSession) -> list[FollowupPackage]:
    """Versions of the surveys named by follow-up rules, with how many answered them."""
    r = Respondent.__table__.c
    v = SurveyVersion.__table__.c
    rule_surveys = select(FollowupRule.__table__.c.survey_id).distinct().scalar_subquery()
    rows = await s.execute(
        select(v.survey_id, v.id, v.loaded_at, func.count(r.id))
        .select_from(
            SurveyVersion.__table__.join(Respondent.__table__, r.survey_version_id == v.id)
        )
        .where(r.campaign_id.is_(None), v.survey_id.in_(rule_surveys))
        .group_by(v.survey_id, v.id, v.loaded_at)
        .order_by(v.survey_id, v.id)
    )
    return [
        FollowupPackage(survey_id, int(version_id), loaded_at, int(count))
        for survey_id, version_id, loaded_at, count in rows
    ]


async def followup_version_ids(s: AsyncSession, survey_id: str) -> list[int]:
    """Every stored version of a survey that has answers outside campaigns."""
    r = Respondent.__table__.c
    rows = await s.scalars(
        select(r.survey_version_id)
        .where(r.survey_id == survey_id, r.campaign_id.is_(None))
        .distinct()
        .order_by(r.survey_version_id)
    )
    return [int(v) for v in rows]


async def outside_campaigns(
    s: AsyncSession,
    survey_id: str,
    since: date | None,
    until: date | None,
    origin: str | None = None,
) -> dict[int, tuple[int, int]]:
    """Survey version id -> (started, completed) respondents without a campaign who started in
    [since, until) (None: no bound) and came by `origin` (None: any), for every version that
    has any."""
    r = Respondent.__table__.c
    completed = func.sum(case((r.completed == true(), 1), else_=0))
    stmt = (
        select(r.survey_version_id, func.count(), completed)
        .where(r.survey_id == survey_id, r.campaign_id.is_(None))
        .group_by(r.survey_version_id)
    )
    if since is not None:
        stmt = stmt.where(r.started_on >= since)
    if until is not None:
        stmt = stmt.where(r.started_on < until)
    if origin is not None:
        stmt = stmt.where(r.origin == origin)
    return {int(v): (int(n), int(c or 0)) for v, n, c in await s.execute(stmt)}


async def followups_sent(
    s: AsyncSession, survey_id: str, since: datetime | None, until: datetime | None
) -> int:
    """Follow-ups of a survey sent in [since, until) (None: no bound)."""
    f = Followup.__table__.c
    rules = select(FollowupRule.__table__.c.id).where(
        FollowupRule.__table__.c.survey_id == survey_id
    )
    stmt = (
        select(func.count())
        .select_from(Followup.__table__)
        .where(f.rule_id.in_(rules.scalar_subquery()), f.status == "sent")
    )
    if since is not None:
        stmt = stmt.where(f.sent_at >= since)
    if until is not None:
        stmt = stmt.where(f.sent_at < until)
    return int(await s.scalar(stmt) or 0)


async def followup_surveys(s: AsyncSession) -> list[str]:
    """Survey ids that follow-up rules start."""
    rows = await s.scalars(
        select(FollowupRule.survey_id).distinct().order_by(FollowupRule.survey_id)
    )
    return list(rows)


# -- feedback targets -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackTarget:
    """One person to send results to, and how they were reached."""

    row_id: int
    """The invitation (campaigns) or follow-up (follow-up surveys) id."""
    contact_id: int
    language: str | None
    channel: str | None


async def campaign_feedback_targets(
    s: AsyncSession, campaign_id: int, audience: str, *, after_id: int, limit: int
) -> list[FeedbackTarget]:
    """Invitations still owed feedback, in id order after `after_id`; never opted-out people."""
    i = Invitation.__table__.c
    c = Contact.__table__.c
    if audience == FEEDBACK_TO_INVITED:
        who = and_(
            i.status.not_in([*NOT_INVITED, OPTED_OUT]),
            (i.status != "closed") | i.invited_at.is_not(None),
        )
    else:
        who = i.status == COMPLETED
    rows = await s.execute(
        select(i.id, i.contact_id, c.language, i.channel)
        .select_from(Invitation.__table__.join(Contact.__table__, c.id == i.contact_id))
        .where(
            i.campaign_id == campaign_id,
            i.id > after_id,
            i.feedback_sent == False,  # noqa: E712
            c.opted_out_at.is_(None),
            who,
        )
        .order_by(i.id)
        .limit(limit)
    )
    return [FeedbackTarget(int(a), int(b), lang, ch) for a, b, lang, ch in rows]


async def claim_invitation_feedback(s: AsyncSession, invitation_id: int) -> bool:
    """Mark one invitation's feedback as sent; False if someone already did (send nothing)."""
    result = await s.execute(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.feedback_sent == False)  # noqa: E712
        .values(feedback_sent=True)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def followup_feedback_targets(
    s: AsyncSession,
    survey_id: str,
    finished_from: date,
    finished_to: date,
    *,
    after_id: int,
    limit: int,
) -> list[FeedbackTarget]:
    """Follow-ups whose survey was completed on a day in [from, to), still owed feedback.

    Read from the follow-up's own outcome: the conversation is gone once its anonymous answers
    were released."""
    f = Followup.__table__.c
    rules = FollowupRule.__table__.c
    c = Contact.__table__.c
    rows = await s.execute(
        select(f.id, f.contact_id, c.language)
        .select_from(
            Followup.__table__.join(FollowupRule.__table__, rules.id == f.rule_id).join(
                Contact.__table__, c.id == f.contact_id
            )
        )
        .where(
            f.status == "sent",
            f.id > after_id,
            f.feedback_sent == False,  # noqa: E712
            rules.survey_id == survey_id,
            f.outcome == COMPLETED,
            f.finished_on >= finished_from,
            f.finished_on < finished_to,
            c.opted_out_at.is_(None),
        )
        .order_by(f.id)
        .limit(limit)
    )
    return [FeedbackTarget(int(a), int(b), lang, None) for a, b, lang in rows]


async def claim_followup_feedback(s: AsyncSession, followup_id: int) -> bool:
    """Mark one follow-up's feedback as sent; False if it already was."""
    result = await s.execute(
        update(Followup)
        .where(Followup.id == followup_id, Followup.feedback_sent == False)  # noqa: E712
        .values(feedback_sent=True)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def count_feedback_sent(s: AsyncSession, campaign_id: int) -> int:
    """How many of a campaign's invitations have had their feedback."""
    return int(
        await s.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.campaign_id == campaign_id, Invitation.feedback_sent == True)  # noqa: E712
        )
        or 0
    )


__all__: Sequence[str] = (
    "CHUNK",
    "FeedbackTarget",
    "FollowupPackage",
    "RecordFilter",
    "campaign",
    "campaign_feedback_targets",
    "campaigns",
    "claim_followup_feedback",
    "claim_invitation_feedback",
    "count_feedback_sent",
    "followup_feedback_targets",
    "followup_surveys",
    "followup_version_ids",
    "followup_versions",
    "followups_sent",
    "outside_campaigns",
    "participation",
    "previous_campaign",
    "record_chunks",
    "records",
)
