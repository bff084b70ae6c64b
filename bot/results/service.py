"""Results of stored campaigns and follow-up surveys: loading, computing, exporting, auditing.

Why one module: it is the single gate to published figures (see below); exports and FLOIP packages
stay in it so no second way around the suppression appears.

The one place the CLI, the staff API, the FLOIP API, the public page and the feedback task get
their figures from, so all of them publish through the same suppression (`bot.results.suppress`).

Open campaigns: figures are preliminary until a campaign closes. Staff may look at them (the
`show` command and the JSON API say `"final": false`), but files are only exported for a closed
campaign unless the export is asked for as partial (`--partial`, `?partial=1`), and the public
page and the feedback message only ever use closed campaigns.

Who is counted: respondents who completed the survey (the same people in figures and raw
exports; the response rate is completed / invited).
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from bot.ops import events
from bot.results import floip
from bot.results.aggregate import (
    DIMENSIONS,
    Comparison,
    Participation,
    ResponseRecord,
    Results,
    compare,
    compute,
    open_answers,
)
from bot.results.background import RawAttributes, raw_attributes
from bot.results.export_csv import write_answers_csv
from bot.results.export_xlsx import write_results_xlsx
from bot.results.texts import STAFF_LANGUAGES, staff_texts
from flows.model import Survey, base_language
from storage import repo_audit, repo_results
from storage.models import Campaign
from storage.repo_results import RecordFilter

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "FORMATS",
    "CampaignNotFound",
    "CampaignResults",
    "ExportResult",
    "NotFinal",
    "PackageRef",
    "ResultsError",
    "SurveyNotFound",
    "SurveyResults",
    "campaign_package_id",
    "campaign_results",
    "export_bytes",
    "export_campaign",
    "find_package",
    "list_packages",
    "load_campaign",
    "package_descriptor",
    "package_rows",
    "parse_breakdowns",
    "period",
    "results_language",
    "survey_results",
]

FORMATS: Final = ("csv", "xlsx", "flow-results")
RAW_FORMATS: Final = frozenset(FORMATS)
"""Every export carries row-level answers (the XLSX has its raw sheet), so every one is audited."""
CLOSED: Final = "closed"
_PACKAGE_NAMESPACE: Final = uuid.UUID("6f1c2d0e-4f7b-5a53-9a8e-0b6c6f1d2a11")


class ResultsError(Exception):
    """A results request a person can fix; the message is written for them."""


class CampaignNotFound(ResultsError):
    """No campaign has this id."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"no campaign with id {campaign_id}")
        self.campaign_id = campaign_id


class NotFinal(ResultsError):
    """The campaign is still open: its results are not final."""


class SurveyNotFound(ResultsError):
    """No loaded survey has this id."""

    def __init__(self, survey_id: str) -> None:
        super().__init__(f"no survey with id {survey_id!r}")
        self.survey_id = survey_id


def results_language(survey: Survey, lang: str | None, *, headings: bool = True) -> str:
    """The language results are shown in: `lang`, or the survey's default when None.

    Refused (ResultsError) when the survey has no texts in it, so questions and headings never
    come out in two languages, or, with `headings`, when the staff outputs have no headings in
    it (they have sv, en and ar)."""
    if lang is None or not lang.strip():
        return survey.default_language
    wanted = lang.strip().lower()
    if wanted not in survey.languages:
        raise ResultsError(
            f"survey {survey.id} has no texts in {wanted!r} (it has {', '.join(survey.languages)})"
        )
    if headings and base_language(wanted) not in STAFF_LANGUAGES:
        raise ResultsError(
            f"results can be shown in {', '.join(STAFF_LANGUAGES)}; not in {wanted!r}"
        )
    return wanted


def parse_breakdowns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """ "gender,unit" -> ("gender", "unit"); unknown or repeated dimensions are an error."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(item.strip() for item in items if item.strip())
    unknown = [n for n in names if n not in DIMENSIONS]
    if unknown:
        raise ResultsError(f"unknown breakdown {', '.join(unknown)} (use {', '.join(DIMENSIONS)})")
    if len(set(names)) != len(names):
        raise ResultsError("a breakdown is given twice")
    return names


@dataclass(frozen=True, slots=True)
class CampaignResults:
    """A campaign's published figures, and the change since the campaign before it."""

    campaign: Campaign
    survey: Survey
    results: Results
    participation: Participation
    final: bool
    previous_campaign_id: int | None = None
    comparison: Comparison | None = None
    records: tuple[ResponseRecord, ...] | None = None
    """The row-level records, only when asked for (exports)."""
    lang: str = "sv"
    """The language the figures are labelled in."""

    def to_json(self, *, open_texts: bool = False) -> dict[str, Any]:
        """What the staff API returns; masked open answers only when `open_texts`."""
        c = self.campaign
        data: dict[str, Any] = {
            "campaign": {
                "id": c.id,
                "name": c.name,
                "survey_id": c.survey_id,
                "status": c.status,
                "closed_at": c.closed_at.isoformat() if c.closed_at else None,
                "feedback_status": c.feedback_status,
                "feedback_text": dict(c.feedback_text or {}),
                "feedback_without_text": list(c.feedback_without_text or ()),
                "plan_refs": dict(c.plan_refs or {}),
            },
            "final": self.final,
            "results": self.results.to_json(),
            "previous_campaign_id": self.previous_campaign_id,
            "comparison": self.comparison.to_json() if self.comparison else None,
        }
        if open_texts and self.records is not None:
            data["open_answers"] = [
                {"question_id": a.question_id, "text": a.text_masked}
                for a in open_answers(self.survey, self.records)
            ]
        return data


async def load_campaign(s: AsyncSession, campaign_id: int) -> Campaign:
    """A campaign, or CampaignNotFound."""
    campaign = await repo_results.campaign(s, campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


async def campaign_results(
    runtime: Runtime,
    campaign_id: int,
    *,
    lang: str | None = None,
    breakdowns: Sequence[str] = (),
    with_records: bool = False,
    with_previous: bool = True,
    headings: bool = True,
) -> CampaignResults:
    """Compute a campaign's results (all in one read-only transaction), in `lang` (the survey's
    default when None; see `results_language`). The change is against the last earlier closed
    campaign of the same survey that had at least k completed answers, if any."""
    k = runtime.settings.privacy.min_group_size
    suppression = runtime.settings.privacy.suppression
    async with runtime.db.transaction(read_only=True) as s:
        campaign = await load_campaign(s, campaign_id)
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
        lang = results_language(survey, lang, headings=headings)
        records = await repo_results.records(
            s, RecordFilter(campaign.survey_version_id, campaign_id=campaign.id)
        )
        participation = await repo_results.participation(s, campaign.id)
        results = compute(
            survey,
            records,
            participation,
            k=k,
            breakdowns=breakdowns,
            lang=lang,
            suppression=suppression,
        )
        previous_id: int | None = None
        comparison: Comparison | None = None
        if with_previous:
            previous = await repo_results.previous_campaign(s, campaign, min_answers=k)
            if previous is not None:
                previous_id = previous.id
                old_survey = await runtime.catalog.version(s, previous.survey_version_id)
                old_lang = lang if lang in old_survey.languages else old_survey.default_language
                old = compute(
                    old_survey,
                    await repo_results.records(
                        s, RecordFilter(previous.survey_version_id, campaign_id=previous.id)
                    ),
                    await repo_results.participation(s, previous.id),
                    k=k,
                    lang=old_lang,
                    suppression=suppression,
                )
                comparison = compare(results, old)
    return CampaignResults(
        campaign=campaign,
        survey=survey,
        results=results,
        participation=participation,
        final=campaign.status == CLOSED,
        previous_campaign_id=previous_id,
        comparison=comparison,
        records=tuple(records) if with_records else None,
        lang=lang,
    )


# -- exports ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A written export file: where, in which format, how many respondents, and its attributes."""

    path: Path
    format: str
    answers: int
    """Respondents in the export (people, not rows)."""
    final: bool
    attributes: RawAttributes | None = None
    """The background attributes on the rows, and those left out (see `background`)."""


def _check_target(fmt: str, out: Path) -> None:
    """Refuse an unwritable target before any work is done."""
    if fmt == "flow-results":
        if out.exists() and not out.is_dir():
            raise ResultsError(f"{out} exists and is not a folder (flow-results writes a folder)")
        folder = out if out.exists() else out.parent
    else:
        if out.is_dir():
            raise ResultsError(f"{out} is a folder; give a file name")
        folder = out.parent
        if out.exists() and not os.access(out, os.W_OK):
            raise ResultsError(f"cannot write {out}: permission denied")
    folder = folder if str(folder) else Path(".")
    if not folder.is_dir():
        raise ResultsError(f"cannot write {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ResultsError(f"cannot write {out}: permission denied")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ResultsError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")


def _check_final(data: CampaignResults, partial: bool) -> None:
    if not data.final and not partial:
        raise NotFinal(
            f"campaign {data.campaign.id} is {data.campaign.status}: results are final when it "
            "closes (export a preliminary copy with --partial)"
        )


async def _audit_export(
    runtime: Runtime,
    actor: str,
    data: CampaignResults,
    fmt: str,
    target: str,
    attributes: RawAttributes,
) -> None:
    async with runtime.db.transaction() as s:
        await repo_audit.log(
            s,
            actor,
            "results.export",
            f"campaign:{data.campaign.id}",
            {
                "format": fmt,
                "respondents": len(data.records or ()),
                "final": data.final,
                "to": target,
                "attributes": list(attributes.included),
                "attributes_left_out": list(attributes.left_out),
            },
            at=runtime.clock.now(),
        )
    events.note(
        "results.export",
        "campaign {campaign} results exported by {by}: {format}, {respondents} respondents, "
        "{final}, to {to}",
        campaign=data.campaign.id,
        by=events.by(actor),
        format=fmt,
        respondents=len(data.records or ()),
        final="final" if data.final else "partial",
        to="the staff API" if target == "api" else "a file",
    )


async def export_campaign(
    runtime: Runtime,
    campaign_id: int,
    fmt: str,
    out: Path,
    *,
    actor: str,
    lang: str | None = None,
    breakdowns: Sequence[str] = (),
    partial: bool = False,
) -> ExportResult:
    """Write a campaign's answers to `out` as csv, xlsx or a flow-results folder; audited."""
    _check_format(fmt)
    _check_target(fmt, out)
    data = await campaign_results(
        runtime,
        campaign_id,
        lang=lang,
        breakdowns=breakdowns,
        with_records=True,
        with_previous=False,
    )
    _check_final(data, partial)
    records = data.records or ()
    attributes = raw_attributes(records, runtime.settings.privacy.min_group_size)
    try:
        if fmt == "csv":
            write_answers_csv(out, data.survey, records, lang=data.lang, attributes=attributes)
        elif fmt == "xlsx":
            write_results_xlsx(
                out,
                data.survey,
                data.results,
                records=records,
                lang=data.lang,
                attributes=attributes,
            )
        else:
            now = runtime.clock.now()
            floip.write_package(
                out,
                data.survey,
                records,
                package_id=campaign_package_id(campaign_id),
                created=data.campaign.created_at,
                modified=data.campaign.closed_at or now,
                lang=data.survey.default_language,
                attributes=attributes,
            )
    except OSError as e:
        raise ResultsError(f"cannot write {out}: {e.strerror or e}") from None
    await _audit_export(runtime, actor, data, fmt, str(out), attributes)
    return ExportResult(out, fmt, len(records), data.final, attributes)


CONTENT_TYPES: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


async def export_bytes(
    runtime: Runtime,
    campaign_id: int,
    fmt: str,
    *,
    actor: str,
    lang: str | None = None,
    breakdowns: Sequence[str] = (),
    partial: bool = False,
) -> tuple[bytes, str, str]:
    """A download for the staff API: (body, content type, file name); audited."""
    if fmt not in CONTENT_TYPES:
        raise ResultsError(f"unknown format {fmt!r} (use {', '.join(CONTENT_TYPES)})")
    data = await campaign_results(
        runtime,
        campaign_id,
        lang=lang,
        breakdowns=breakdowns,
        with_records=True,
        with_previous=False,
    )
    _check_final(data, partial)
    buffer = io.BytesIO()
    records = data.records or ()
    attributes = raw_attributes(records, runtime.settings.privacy.min_group_size)
    if fmt == "csv":
        write_answers_csv(buffer, data.survey, records, lang=data.lang, attributes=attributes)
    else:
        write_results_xlsx(
            buffer,
            data.survey,
            data.results,
            records=records,
            lang=data.lang,
            attributes=attributes,
        )
    await _audit_export(runtime, actor, data, fmt, "api", attributes)
    name = f"campaign-{campaign_id}-{data.survey.id}.{fmt}"
    return buffer.getvalue(), CONTENT_TYPES[fmt], name


# -- FLOIP packages ---------------------------------------------------------------------------


def campaign_package_id(campaign_id: int) -> str:
    """The stable FLOIP package id (a UUID) of a campaign."""
    return str(uuid.uuid5(_PACKAGE_NAMESPACE, f"campaign:{campaign_id}"))


def followup_package_id(survey_version_id: int) -> str:
    """The stable FLOIP package id of one version of a follow-up survey."""
    return str(uuid.uuid5(_PACKAGE_NAMESPACE, f"followup:{survey_version_id}"))


@dataclass(frozen=True, slots=True)
class PackageRef:
    """One Flow Results package: a campaign, or a follow-up survey version's answers."""

    id: str
    survey: Survey
    where: RecordFilter
    created: datetime
    modified: datetime
    campaign_id: int | None = None


async def list_packages(runtime: Runtime) -> list[PackageRef]:
    """One package per campaign and per follow-up survey version with answers."""
    now = runtime.clock.now()
    refs: list[PackageRef] = []
    async with runtime.db.transaction(read_only=True) as s:
        for c in await repo_results.campaigns(s):
            refs.append(
                PackageRef(
                    id=campaign_package_id(c.id),
                    survey=await runtime.catalog.version(s, c.survey_version_id),
                    where=RecordFilter(c.survey_version_id, campaign_id=c.id),
                    created=c.created_at,
                    modified=c.closed_at or now,
                    campaign_id=c.id,
                )
            )
        for v in await repo_results.followup_versions(s):
            refs.append(
                PackageRef(
                    id=followup_package_id(v.survey_version_id),
                    survey=await runtime.catalog.version(s, v.survey_version_id),
                    where=RecordFilter(v.survey_version_id),
                    created=v.loaded_at,
                    modified=now,
                )
            )
    return refs


async def find_package(runtime: Runtime, package_id: str) -> PackageRef | None:
    """A package by id, or None."""
    return next((p for p in await list_packages(runtime) if p.id == package_id), None)


def package_descriptor(ref: PackageRef, *, api_data_url: str) -> dict[str, Any]:
    """The package's descriptor as the API serves it."""
    return floip.package_descriptor(
        ref.survey,
        ref.id,
        ref.created,
        ref.modified,
        ref.survey.default_language,
        api_data_url=api_data_url,
    )


async def package_rows(runtime: Runtime, ref: PackageRef) -> tuple[list[list[Any]], RawAttributes]:
    """Every response row of a package (masked free text), for paging, and the background
    attributes its rows carry (see `background`)."""
    async with runtime.db.transaction(read_only=True) as s:
        records = await repo_results.records(s, ref.where)
    attributes = raw_attributes(records, runtime.settings.privacy.min_group_size)
    rows = floip.response_rows(ref.survey, records, attributes=attributes.included)
    return list(rows), attributes


@dataclass(frozen=True, slots=True)
class SurveyResults:
    """A survey's answers outside campaigns that came by one door (`origin`: follow-ups, or
    public starts by the web chat index or a keyword) from respondents who started in
    [since, until), on the newest version of the survey that has answers there."""

    survey: Survey
    results: Results
    since: date | None
    until: date | None
    """Exclusive."""
    followups_sent: int
    other_versions: dict[int, int]
    """Version number -> completed answers on it in the period that these results leave out."""
    lang: str
    origin: str = "followup"
    """followup | public: the answers of one door only, never mixed."""

    @property
    def origin_label(self) -> str:
        """What these answers are, in the results' language."""
        return staff_texts(self.lang)[f"origin_{self.origin}"]

    def to_json(self) -> dict[str, Any]:
        """What the staff API returns."""
        last = self.until - timedelta(days=1) if self.until else None
        return {
            "survey": {"id": self.survey.id, "version": self.survey.version},
            "origin": self.origin,
            "origin_label": self.origin_label,
            "from": self.since.isoformat() if self.since else None,
            "to": last.isoformat() if last else None,
            "followups_sent": self.followups_sent,
            "other_versions": {str(v): n for v, n in sorted(self.other_versions.items())},
            "results": self.results.to_json(),
        }


ORIGINS: Final = ("followup", "public")
"""The doors by which answers outside campaigns come; results never mix them."""

_EARLIEST: Final = date(1900, 1, 1)
_LATEST: Final = date(9998, 12, 31)


def period(
    since: date | None, last: date | None, *, names: tuple[str, str] = ("from", "to")
) -> tuple[date | None, date | None]:
    """A period given as first and last day (both included, either open) -> [since, until)."""
    for name, day in zip(names, (since, last), strict=True):
        if day is not None and not _EARLIEST <= day <= _LATEST:
            raise ResultsError(
                f"{name} {day.isoformat()} is out of range (1900-01-01 to 9998-12-31)"
            )
    if since is not None and last is not None and since > last:
        raise ResultsError(f"{names[0]} is after {names[1]}")
    return since, last + timedelta(days=1) if last is not None else None


async def survey_results(
    runtime: Runtime,
    survey_id: str,
    *,
    since: date | None = None,
    until: date | None = None,
    lang: str | None = None,
    breakdowns: Sequence[str] = (),
    headings: bool = True,
    origin: str = "followup",
) -> SurveyResults:
    """Results of a survey's answers outside campaigns in [since, until) that came by `origin`:
    "followup" (follow-ups sent by the rules) or "public" (starts by the web chat index or a
    keyword), kept apart so that public answers never enter a follow-up survey's figures.

    For follow-ups, invited is the number of follow-ups of the survey sent in the period; as
    people may answer a follow-up sent before it, the response rate is only given when that is
    not exceeded. Public starts have no invitations: invited is who started."""
    if origin not in ORIGINS:
        raise ResultsError(f"unknown origin {origin!r}: use one of {', '.join(ORIGINS)}")
    if since is not None and until is not None and since >= until:
        raise ResultsError("the period is empty: --from must not be after --to")
    k = runtime.settings.privacy.min_group_size
    tz = runtime.settings.schedule.tz
    async with runtime.db.transaction(read_only=True) as s:
        counts = await repo_results.outside_campaigns(s, survey_id, since, until, origin)
        answered = [v for v, (_, completed) in counts.items() if completed]
        if answered:
            version_id = max(answered)
            survey = await runtime.catalog.version(s, version_id)
            records = await repo_results.records(
                s, RecordFilter(version_id, since=since, until=until, origin=origin)
            )
            started = counts[version_id][0]
        else:
            entry = runtime.catalog.latest(survey_id)
            if entry is None:
                raise SurveyNotFound(survey_id)
            version_id, survey, records, started = entry.version_id, entry.survey, [], 0
        others: dict[int, int] = {}
        for other_id, (_, completed) in counts.items():
            if other_id != version_id and completed:
                version = (await runtime.catalog.version(s, other_id)).version
                others[version] = others.get(version, 0) + completed
        sent = (
            await repo_results.followups_sent(
                s,
                survey_id,
                datetime.combine(since, time(0), tzinfo=tz) if since else None,
                datetime.combine(until, time(0), tzinfo=tz) if until else None,
            )
            if origin == "followup"
            else 0
        )
    lang = results_language(survey, lang, headings=headings)
    started = max(started, len(records))
    participation = Participation(
        invited=sent if origin == "followup" else started,
        started=started,
        completed=len(records),
        opted_out=0,
    )
    results = compute(
        survey,
        records,
        participation,
        k=k,
        breakdowns=breakdowns,
        lang=lang,
        suppression=runtime.settings.privacy.suppression,
    )
    return SurveyResults(survey, results, since, until, sent, others, lang, origin)


async def followup_results(
    runtime: Runtime,
    survey_id: str,
    since: date,
    until: date,
    *,
    lang: str | None = None,
) -> tuple[Survey, Results] | None:
    """Follow-up answers of respondents who started in [since, until), on the newest version
    that has answers in it (None when nobody answered)."""
    try:
        data = await survey_results(
            runtime, survey_id, since=since, until=until, lang=lang, headings=False
        )
    except SurveyNotFound:
        return None
    if data.results.participation.completed.value == 0:
        return None
    return data.survey, data.results
