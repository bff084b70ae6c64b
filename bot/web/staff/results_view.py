"""What the staff results page shows, gathered from `bot.results.service` (page 4 of issue 9).

Every figure comes from `campaign_results`, so it has been through the same small-number
suppression as the API, the CLI and the exports (`bot.results.suppress`); this module only
arranges published figures into charts and tables and never counts anything itself. A withheld
figure is written "hidden (fewer than k)", never as a number.

Open answers are read only when asked for by someone allowed to (analyst or admin), masked by
`bot.results.aggregate.open_answers`, and every reading is audit-logged under the person's
name, like `GET /api/v1/campaigns/{id}/results?open=1`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from markupsafe import Markup

from bot.results.aggregate import (
    DIMENSIONS,
    Breakdown,
    Figure,
    OpenAnswer,
    QuestionChange,
    QuestionFigures,
    open_answers,
)
from bot.results.service import CampaignResults, campaign_results
from bot.results.texts import STAFF_LANGUAGES
from bot.web.staff.charts import Bar, bar_chart, bars_from_counts, percent, share_bar
from flows.model import QuestionType, Survey, base_language, localize
from storage import repo_audit, repo_results
from storage.models import Campaign

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "BREAKDOWNS",
    "BreakdownView",
    "QuestionView",
    "ResultsView",
    "campaign_list",
    "read_open_answers",
    "results_languages",
    "results_view",
]

BREAKDOWNS: Final = DIMENSIONS
"""Dimensions a person can break the results down by (gender, target group, length of
contact, unit, age)."""
_CHARTED: Final = frozenset(
    {QuestionType.SELECT_ONE, QuestionType.SELECT_MANY, QuestionType.SCALE, QuestionType.NUMERIC}
)

Translate = Callable[..., str]
"""`t(key, **fields)` in the page's language."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One row of a question's table: a choice (or step, bin), its count and share."""

    label: str
    count: str
    share: str


@dataclass(frozen=True, slots=True)
class Change:
    """The change against the previous campaign, as written on the page."""

    share_positive: str = ""
    mean: str = ""


@dataclass(frozen=True, slots=True)
class QuestionView:
    """One question as the results page shows it: figures as text, chart and change."""

    id: str
    label: str
    type: str
    n: str
    hidden: bool
    """Fewer than k answered: nothing of the question is shown."""
    chart: Markup | None
    rows: tuple[Cell, ...]
    share_positive: str = ""
    mean: str = ""
    median: str = ""
    change: Change | None = None


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One group of a breakdown for one question."""

    label: str
    n: str
    share_positive: str
    mean: str
    shares: tuple[str, ...]
    """The share of each choice (in `BreakdownQuestion.columns` order)."""


@dataclass(frozen=True, slots=True)
class BreakdownQuestion:
    id: str
    label: str
    metric: str
    """What the chart shows: "share_positive", "mean" or "" (table only)."""
    chart: Markup | None
    columns: tuple[str, ...]
    rows: tuple[GroupRow, ...]


@dataclass(frozen=True, slots=True)
class BreakdownView:
    """One breakdown dimension with each question's figures per group."""

    dimension: str
    label: str
    questions: tuple[BreakdownQuestion, ...]


@dataclass(frozen=True, slots=True)
class ParticipationRow:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class ResultsView:
    """Everything the results page of a campaign shows."""

    campaign: Campaign
    survey: Survey
    data: CampaignResults
    lang: str
    """The language the figures are labelled in."""
    languages: tuple[str, ...]
    """Languages the figures can be shown in."""
    breakdowns: tuple[str, ...]
    participation: tuple[ParticipationRow, ...]
    questions: tuple[QuestionView, ...]
    breakdown_views: tuple[BreakdownView, ...]
    too_few: bool
    previous: Campaign | None = None
    open: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    """(question, masked answers) when open answers were read."""

    @property
    def final(self) -> bool:
        """True once the campaign is closed and the figures will not change."""
        return self.data.final

    @property
    def k(self) -> int:
        """The smallest group shown (suppression threshold)."""
        return self.data.results.k


def results_languages(survey: Survey) -> tuple[str, ...]:
    """The survey's languages that staff outputs have headings in."""
    return tuple(lang for lang in survey.languages if base_language(lang) in STAFF_LANGUAGES)


def _count(figure: Figure, hidden: str) -> str:
    if figure.suppressed:
        return hidden
    return "" if figure.value is None else str(figure.value)


def _share(figure: Figure, hidden: str) -> str:
    if figure.suppressed:
        return hidden
    return percent(figure)


def _number(figure: Figure, hidden: str) -> str:
    if figure.suppressed:
        return hidden
    if figure.value is None:
        return ""
    return f"{float(figure.value):.1f}"


def _points(value: float | None) -> str:
    if value is None:
        return ""
    points = round(value * 100)
    return f"{points:+d}"


def _change(t: Translate, c: QuestionChange | None) -> Change | None:
    if c is None:
        return None
    sp = ""
    if c.share_positive_change is not None:
        sp = t(
            "results.change.share_positive",
            before=f"{(c.share_positive_before or 0) * 100:.0f} %",
            after=f"{(c.share_positive_after or 0) * 100:.0f} %",
            points=_points(c.share_positive_change),
        )
    mean = ""
    if c.mean_change is not None:
        mean = t(
            "results.change.mean",
            before=f"{c.mean_before or 0:.1f}",
            after=f"{c.mean_after or 0:.1f}",
            diff=f"{c.mean_change:+.1f}",
        )
    return Change(sp, mean) if sp or mean else None


def _question_view(
    t: Translate,
    q: QuestionFigures,
    index: int,
    hidden: str,
    changes: dict[str, QuestionChange],
    charted: bool,
) -> QuestionView:
    if q.suppressed or q.n.value is None:
        return QuestionView(q.question_id, q.label, q.type, hidden, True, None, (), change=None)
    n = int(q.n.value)
    chart = None
    if charted and q.counts and n > 0:
        chart = bar_chart(
            bars_from_counts(q.counts, hidden),
            chart_id=f"chart-q{index}",
            title=t("results.chart_title", question=q.label),
            desc=t("results.chart_desc", n=n),
        )
    rows = tuple(Cell(c.label, _count(c.count, hidden), _share(c.share, hidden)) for c in q.counts)
    return QuestionView(
        q.question_id,
        q.label,
        q.type,
        str(n),
        False,
        chart,
        rows,
        share_positive=_share(q.share_positive, hidden),
        mean=_number(q.mean, hidden),
        median=_number(q.median, hidden),
        change=_change(t, changes.get(q.question_id)),
    )


def _scale_top(survey: Survey, question_id: str) -> float | None:
    question = survey.question(question_id)
    if question is None or question.type is not QuestionType.SCALE:
        return None
    return float(question.scale_range[1])


def _breakdown_view(
    t: Translate,
    survey: Survey,
    overall: dict[str, QuestionFigures],
    b: Breakdown,
    d: int,
    hidden: str,
) -> BreakdownView:
    questions = []
    for i, qid in enumerate(b.question_ids):
        total = overall.get(qid)
        question = survey.question(qid)
        if total is None or question is None or question.type not in _CHARTED:
            continue
        groups = [(g.label, g.questions[i]) for g in b.groups]
        columns = tuple(c.label for c in total.counts)
        metric = ""
        if total.share_positive != Figure() and question.positive:
            metric = "share_positive"
        elif question.type in (QuestionType.SCALE, QuestionType.NUMERIC):
            metric = "mean"
        rows = tuple(
            GroupRow(
                label=label,
                n=_count(f.n, hidden),
                share_positive=_share(f.share_positive, hidden) if not f.suppressed else hidden,
                mean=_number(f.mean, hidden) if not f.suppressed else hidden,
                shares=tuple(hidden if f.suppressed else _share(c.share, hidden) for c in f.counts)
                or tuple(hidden for _ in columns),
            )
            for label, f in groups
        )
        chart = None
        if metric == "share_positive":
            bars = [
                share_bar(label, SUPPRESSED_FIGURE if f.suppressed else f.share_positive, hidden)
                for label, f in groups
                if not (f.n.value == 0 and not f.suppressed)
            ]
            if bars:
                chart = bar_chart(
                    bars,
                    chart_id=f"chart-b{d}-q{i}",
                    title=t("results.breakdown_chart_sp", question=total.label, by=b_label(t, b)),
                )
        elif metric == "mean":
            top = _scale_top(survey, qid)
            values = [
                float(f.mean.value)
                for _, f in groups
                if not f.suppressed and not f.mean.suppressed and f.mean.value is not None
            ]
            scale = top or (max(values) if values else 1.0) or 1.0
            bars = [
                _mean_bar(label, f.mean if not f.suppressed else SUPPRESSED_FIGURE, hidden)
                for label, f in groups
                if not (f.n.value == 0 and not f.suppressed)
            ]
            if bars:
                chart = bar_chart(
                    bars,
                    chart_id=f"chart-b{d}-q{i}",
                    title=t("results.breakdown_chart_mean", question=total.label, by=b_label(t, b)),
                    scale=scale,
                )
        questions.append(BreakdownQuestion(qid, total.label, metric, chart, columns, rows))
    return BreakdownView(b.dimension, b_label(t, b), tuple(questions))


SUPPRESSED_FIGURE: Final = Figure(None, True)


def _mean_bar(label: str, figure: Figure, hidden: str) -> Bar:
    if figure.suppressed or figure.value is None:
        return Bar(label, None, hidden)
    return Bar(label, float(figure.value), f"{float(figure.value):.1f}")


def b_label(t: Translate, b: Breakdown) -> str:
    return t(f"results.dimension.{b.dimension}")


def _participation(
    t: Translate, data: CampaignResults, hidden: str
) -> tuple[ParticipationRow, ...]:
    p = data.results.participation
    rows = []
    for key, figure, is_share in (
        ("invited", p.invited, False),
        ("started", p.started, False),
        ("completed", p.completed, False),
        ("opted_out", p.opted_out, False),
        ("response_rate", p.response_rate, True),
    ):
        value = _share(figure, hidden) if is_share else _count(figure, hidden)
        if value:
            rows.append(ParticipationRow(t(f"results.participation.{key}"), value))
    return tuple(rows)


def _too_few(data: CampaignResults) -> bool:
    completed = data.results.participation.completed
    return completed.suppressed or not completed.value or int(completed.value) < data.results.k


async def results_view(
    runtime: Runtime,
    campaign_id: int,
    t: Translate,
    *,
    lang: str | None,
    breakdowns: Sequence[str] = (),
    open_texts: bool = False,
    actor: str = "",
) -> ResultsView:
    """A campaign's results arranged for the page; raises the `bot.results.service` errors
    (CampaignNotFound, ResultsError for a language the survey lacks or an unknown breakdown).

    With `open_texts` the masked free-text answers are read too and the reading is logged
    under `actor` (the caller checks the person may)."""
    data = await campaign_results(
        runtime, campaign_id, lang=lang, breakdowns=breakdowns, with_records=open_texts
    )
    k = data.results.k
    hidden = t("results.hidden", k=k)
    changes = {c.question_id: c for c in (data.comparison.questions if data.comparison else ())}
    charted = {q.id for q in data.survey.questions if q.type in _CHARTED}
    questions = tuple(
        _question_view(t, q, i, hidden, changes, q.question_id in charted)
        for i, q in enumerate(data.results.questions)
    )
    overall = {q.question_id: q for q in data.results.questions}
    views = tuple(
        _breakdown_view(t, data.survey, overall, b, d, hidden)
        for d, b in enumerate(data.results.breakdowns)
    )
    previous = None
    if data.previous_campaign_id is not None:
        async with runtime.db.transaction(read_only=True) as s:
            previous = await repo_results.campaign(s, data.previous_campaign_id)
    opened: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if open_texts:
        answers = open_answers(data.survey, data.records or ())
        opened = _group_open(data.survey, data.lang, answers)
        async with runtime.db.transaction() as s:
            await repo_audit.log(
                s,
                actor,
                "results.open_answers",
                f"campaign:{campaign_id}",
                {"respondents": len(data.records or ()), "via": "staff"},
                at=runtime.clock.now(),
            )
    return ResultsView(
        campaign=data.campaign,
        survey=data.survey,
        data=data,
        lang=data.lang,
        languages=results_languages(data.survey),
        breakdowns=tuple(breakdowns),
        participation=_participation(t, data, hidden),
        questions=questions,
        breakdown_views=views,
        too_few=_too_few(data),
        previous=previous,
        open=opened,
    )


def _group_open(
    survey: Survey, lang: str, answers: Sequence[OpenAnswer]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for question in survey.questions:
        if question.type is not QuestionType.OPEN:
            continue
        texts = tuple(a.text_masked for a in answers if a.question_id == question.id)
        label = localize(question.text, lang, survey.default_language)
        out.append((label, texts))
    return tuple(out)


async def read_open_answers(runtime: Runtime, campaign_id: int, *, actor: str) -> list[OpenAnswer]:
    """The masked open answers of a campaign, audit-logged under `actor`."""
    data = await campaign_results(runtime, campaign_id, with_records=True, with_previous=False)
    async with runtime.db.transaction() as s:
        await repo_audit.log(
            s,
            actor,
            "results.open_answers",
            f"campaign:{campaign_id}",
            {"respondents": len(data.records or ()), "via": "staff"},
            at=runtime.clock.now(),
        )
    return open_answers(data.survey, data.records or ())


async def campaign_list(runtime: Runtime) -> list[Campaign]:
    """Every campaign, newest first."""
    async with runtime.db.transaction(read_only=True) as s:
        return list(reversed(await repo_results.campaigns(s)))
