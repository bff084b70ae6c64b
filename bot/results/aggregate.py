"""Survey results: counts, shares, means and breakdowns, with small-number suppression.

Why one module: the figures and the withholding applied to them are computed together, one pure unit
with its input and output types.

Pure: answers come in as `ResponseRecord` values, figures go out as frozen dataclasses whose
`to_json()` is what the HTTP API and the exports publish. What is withheld and why is decided in
`bot.results.suppress`; its module docstring is the rule staff can quote.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Final

from bot.bands import age_band, contact_length_band
from bot.results.redact import mask_pii
from bot.results.suppress import CELLS, GROUPS, RULES, publishable, suppress
from bot.results.texts import group_texts, target_group_name
from flows.conversation import AnswerValue
from flows.model import Question, Survey, localize
from flows.types import Figures, kind_of
from storage.records import Participation, ResponseRecord

__all__ = [
    "AGE_BANDS",
    "CONTACT_LENGTH_BANDS",
    "DIMENSIONS",
    "Breakdown",
    "Comparison",
    "Count",
    "Figure",
    "Group",
    "OpenAnswer",
    "Participation",
    "ParticipationFigures",
    "QuestionChange",
    "QuestionFigures",
    "ResponseRecord",
    "Results",
    "age_band",
    "compare",
    "compute",
    "contact_length_band",
    "open_answers",
]

DIMENSIONS: Final = ("gender", "target_group", "contact_length", "unit", "age")
"""Breakdown dimensions. "age" uses the `age_group` attribute or an age background question."""

_ATTRIBUTE: Final = {
    "gender": "gender",
    "target_group": "target_group",
    "contact_length": "contact_length",
    "unit": "unit",
    "age": "age_group",
}

CONTACT_LENGTH_BANDS: Final = ("<6m", "6-12m", "1-3y", ">3y")
AGE_BANDS: Final = ("6-12", "13-17", "18-24", "25-44", "45-64", "65+")

# Choice ids the shipped surveys use for their contact-length question, so answers and contact
# attributes land in the same group.
_CONTACT_LENGTH_ALIASES: Final = {
    "under_6_man": "<6m",
    "6_12_man": "6-12m",
    "1_3_ar": "1-3y",
    "over_3_ar": ">3y",
}

_NUMERIC_PER_VALUE_SPAN: Final = 20
_NUMERIC_MAX_BINS: Final = 10

# --- Input -----------------------------------------------------------------------------------


# --- Output ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """One number as published: `value` None means withheld (`suppressed`) or not applicable."""

    value: int | float | None = None
    suppressed: bool = False


NOT_APPLICABLE: Final = Figure()
SUPPRESSED: Final = Figure(None, True)


@dataclass(frozen=True, slots=True)
class Count:
    """People in one category (a choice, a scale step, a numeric value or bin) and their share."""

    key: str
    label: str
    count: Figure
    share: Figure


@dataclass(frozen=True, slots=True)
class QuestionFigures:
    """The figures of one question over one group of people (everybody, or a breakdown group).

    `share_positive` follows SKR's "vet ej" rule: people who answered a `dont_know` choice are left
    out of the denominator, so it is positive / (n - don't know). For a scale it is the share on
    the top two steps. `counts` are the choices (select) or the distribution (scale, numeric).
    For select_many a share is the share of people who picked the choice, so they can add up to
    more than 1.
    """

    question_id: str
    type: str
    label: str
    n: Figure
    counts: tuple[Count, ...] = ()
    share_positive: Figure = NOT_APPLICABLE
    mean: Figure = NOT_APPLICABLE
    median: Figure = NOT_APPLICABLE

    @property
    def suppressed(self) -> bool:
        """The whole group is below k: nothing of it is published."""
        return self.n.suppressed


@dataclass(frozen=True, slots=True)
class Group:
    """One value of a breakdown dimension (None: the attribute was not known)."""

    value: str | None
    label: str
    questions: tuple[QuestionFigures, ...]
    """One per `Breakdown.question_ids`, in that order."""


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One dimension's groups. A background question is not broken down by itself: the
    question a dimension is read from (`breakdown = "gender"`) is left out of its breakdown."""

    dimension: str
    groups: tuple[Group, ...]
    question_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParticipationFigures:
    """Participation counts, each withheld when 1..k-1; the rate needs k completed."""

    invited: Figure
    started: Figure
    completed: Figure
    opted_out: Figure
    response_rate: Figure


@dataclass(frozen=True, slots=True)
class Results:
    """Everything publishable about one survey's answers."""

    survey_id: str
    survey_version: int
    lang: str
    k: int
    participation: ParticipationFigures
    questions: tuple[QuestionFigures, ...]
    breakdowns: tuple[Breakdown, ...] = ()
    suppression: str = GROUPS
    """The rule figures were withheld by (`bot.results.suppress`)."""

    def question(self, question_id: str) -> QuestionFigures | None:
        """The figures of one question; None if the survey has no such question."""
        return next((q for q in self.questions if q.question_id == question_id), None)

    def breakdown(self, dimension: str) -> Breakdown | None:
        """The breakdown by `dimension`; None if the results were not broken down by it."""
        return next((b for b in self.breakdowns if b.dimension == dimension), None)

    def to_json(self) -> dict[str, Any]:
        """The results as plain JSON values (the API's and the exports' shape)."""
        out = _jsonable(self)
        assert isinstance(out, dict)
        return out


@dataclass(frozen=True, slots=True)
class QuestionChange:
    """How one question moved between two result sets (None where either side is withheld)."""

    question_id: str
    share_positive_before: float | None
    share_positive_after: float | None
    share_positive_change: float | None
    mean_before: float | None
    mean_after: float | None
    mean_change: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """How each question's figures changed from a campaign's previous one."""

    questions: tuple[QuestionChange, ...]

    def to_json(self) -> dict[str, Any]:
        """The comparison as plain JSON values."""
        out = _jsonable(self)
        assert isinstance(out, dict)
        return out


@dataclass(frozen=True, slots=True)
class OpenAnswer:
    """A free-text answer for staff, with phone numbers, e-mail and personnummer masked."""

    question_id: str
    text_masked: str


def _jsonable(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(v) for key, v in value.items()}
    return value


# --- Computing -------------------------------------------------------------------------------


def compute(
    survey: Survey,
    records: Iterable[ResponseRecord],
    participation: Participation,
    *,
    k: int,
    breakdowns: Sequence[str] = (),
    lang: str = "sv",
    suppression: str = GROUPS,
) -> Results:
    """Aggregate `records` for `survey`, broken down by `breakdowns`, with nothing below k.

    `suppression` is the rule of `bot.results.suppress`: "groups" (a group of at least k who
    answered a question shows every figure) or "cells" (no count below k anywhere).

    Every record given is counted (pass only completed ones for "completed answers only").
    A dimension's value comes from the survey's background question with that `breakdown` when
    the person answered it, else from the respondent's attributes; people with neither form a
    "not stated" group, so the groups always add up to the total. Answers that do not fit the
    question (unknown choice, out-of-range scale step) are left out as if skipped.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if suppression not in RULES:
        raise ValueError(f"unknown suppression rule {suppression!r} (use {', '.join(RULES)})")
    for dim in breakdowns:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown breakdown {dim!r} (use {', '.join(DIMENSIONS)})")
    if len(set(breakdowns)) != len(breakdowns):
        raise ValueError("a breakdown dimension is given twice")
    questions = [q for q in survey.questions if kind_of(q).counted]
    tally = _Tally.run(survey, records, breakdowns)
    texts = group_texts(lang)
    labels = [_GroupLabels(survey, dim, lang, texts) for dim in breakdowns]
    group_values = [sorted(values, key=labels[d].order) for d, values in enumerate(tally.values)]
    # Global group index: 0 is everybody, then the groups of each dimension in turn.
    index: list[dict[str | None, int]] = []
    dims: list[list[int]] = []
    next_index = 1
    for values in group_values:
        index.append({v: next_index + i for i, v in enumerate(values)})
        dims.append(list(range(next_index, next_index + len(values))))
        next_index += len(values)
    profile_groups = [
        (0, *(index[d][value] for d, value in enumerate(profile))) for profile in tally.profiles
    ]
    per_question: dict[str, list[dict[Hashable, int]]] = {
        q.id: [defaultdict(int) for _ in range(next_index)] for q in questions
    }
    for (qid, pid, value), count in tally.counts.items():
        tables = per_question.get(qid)
        if tables is None:
            continue
        for g in profile_groups[pid]:
            tables[g][value] += count

    overall: list[QuestionFigures] = []
    by_group: list[list[QuestionFigures]] = [[] for _ in range(next_index)]
    for q in questions:
        figures = _QuestionAggregate(
            survey, q, lang, per_question[q.id], dims, k, suppression
        ).figures()
        overall.append(figures[0])
        for g in range(1, next_index):
            by_group[g].append(figures[g])
    result_breakdowns = []
    for d, dim in enumerate(breakdowns):
        own = {q.id for q in survey.questions if q.breakdown == dim}
        shown = [i for i, q in enumerate(questions) if q.id not in own]
        result_breakdowns.append(
            Breakdown(
                dimension=dim,
                groups=tuple(
                    Group(
                        value=v,
                        label=labels[d].label(v),
                        questions=tuple(by_group[index[d][v]][i] for i in shown),
                    )
                    for v in group_values[d]
                ),
                question_ids=tuple(questions[i].id for i in shown),
            )
        )
    return Results(
        survey_id=survey.id,
        survey_version=survey.version,
        lang=lang,
        k=k,
        participation=_participation(participation, k, suppression),
        questions=tuple(overall),
        breakdowns=tuple(result_breakdowns),
        suppression=suppression,
    )


def _participation(p: Participation, k: int, suppression: str) -> ParticipationFigures:
    """Counts of people, not answers. Under "groups" the campaign is the group: with at least k
    invited, how many were asked, started and opted out is shown; how many completed, which
    bounds every question's n, is shown only when 0 or at least k under both rules."""
    group_shown = suppression == GROUPS and p.invited >= k

    def figure(v: int) -> Figure:
        return Figure(v) if group_shown or publishable(v, k) else SUPPRESSED

    if p.invited <= 0 or p.completed > p.invited:
        # More completed than invited: people came another way too (a follow-up sent before
        # the period, a keyword), so a rate would mean nothing.
        rate = NOT_APPLICABLE
    elif p.completed >= k:
        rate = Figure(p.completed / p.invited)
    else:
        rate = SUPPRESSED
    return ParticipationFigures(
        invited=figure(p.invited),
        started=figure(p.started),
        completed=Figure(p.completed) if publishable(p.completed, k) else SUPPRESSED,
        opted_out=figure(p.opted_out),
        response_rate=rate,
    )


_PRESENT: Final = "answered"
"""What every date answer is counted as: only how many answered matters."""


@dataclass(slots=True)
class _Tally:
    """The single pass over the answers: one counter keyed by (question, profile, value)."""

    counts: dict[tuple[str, int, Hashable], int]
    profiles: list[tuple[str | None, ...]]
    values: list[set[str | None]]

    @classmethod
    def run(cls, survey: Survey, records: Iterable[ResponseRecord], dims: Sequence[str]) -> _Tally:
        resolvers = [_resolver(survey, dim) for dim in dims]
        attribute_keys = [_ATTRIBUTE[dim] for dim in dims]
        source_ids = [
            source.id
            for dim in dims
            if (source := next((q for q in survey.questions if q.breakdown == dim), None))
        ]
        collapse = frozenset(q.id for q in survey.questions if kind_of(q).figures is Figures.DATE)
        skip = frozenset(q.id for q in survey.questions if not kind_of(q).counted)
        profile_ids: dict[tuple[str | None, ...], int] = {}
        # Raw attribute and background-answer values -> profile id, so each distinct
        # combination is resolved into groups once, not once per record.
        raw_ids: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = {}
        counts: defaultdict[tuple[str, int, Hashable], int] = defaultdict(int)
        for record in records:
            answers = record.answers
            attributes = record.attributes
            raw = (tuple(map(attributes.get, attribute_keys)), tuple(map(answers.get, source_ids)))
            try:
                pid = raw_ids.get(raw)
                cacheable = True
            except TypeError:  # an unhashable background answer, which names no group
                pid, cacheable = None, False
            if pid is None:
                profile = tuple([resolve(answers, attributes) for resolve in resolvers])
                pid = profile_ids.setdefault(profile, len(profile_ids))
                if cacheable:
                    raw_ids[raw] = pid
            for qid, value in answers.items():
                if value is None or qid in skip:
                    continue
                if qid in collapse:
                    value = _PRESENT
                elif value.__class__ is list:
                    value = tuple(value)  # type: ignore[assignment]
                try:
                    counts[(qid, pid, value)] += 1  # type: ignore[index]
                except TypeError:  # an unhashable value no question type produces
                    continue
        profiles = list(profile_ids)
        values: list[set[str | None]] = [{p[d] for p in profiles} for d in range(len(dims))]
        return cls(counts=dict(counts), profiles=profiles, values=values)


Resolver = Callable[[Mapping[str, AnswerValue], Mapping[str, str | None]], str | None]


def _resolver(survey: Survey, dim: str) -> Resolver:
    """How to read one dimension's group value off a record."""
    attribute = _ATTRIBUTE[dim]
    source = next((q for q in survey.questions if q.breakdown == dim), None)

    def normalize(value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if dim == "contact_length":
            return _CONTACT_LENGTH_ALIASES.get(value, value)
        return value

    if source is None:

        def from_attributes(
            answers: Mapping[str, AnswerValue], attributes: Mapping[str, str | None]
        ) -> str | None:
            value = attributes.get(attribute)
            return normalize(value if isinstance(value, str) else None)

        return from_attributes

    qid = source.id
    choice_ids = frozenset(c.id for c in source.choices)
    numeric = kind_of(source).figures is Figures.NUMBER

    def from_question(
        answers: Mapping[str, AnswerValue], attributes: Mapping[str, str | None]
    ) -> str | None:
        answer = answers.get(qid)
        if numeric and isinstance(answer, int) and not isinstance(answer, bool):
            return age_band(answer) if dim == "age" else str(answer)
        if isinstance(answer, str) and answer in choice_ids:
            return normalize(answer)
        value = attributes.get(attribute)
        return normalize(value if isinstance(value, str) else None)

    return from_question


class _GroupLabels:
    """Order and label the groups of one dimension."""

    def __init__(self, survey: Survey, dim: str, lang: str, texts: Mapping[str, str]) -> None:
        self._texts = texts
        self._dim = dim
        self._lang = lang
        source = next((q for q in survey.questions if q.breakdown == dim), None)
        self._choices: dict[str, str] = {}
        if source is not None:
            for choice in source.choices:
                key = (
                    _CONTACT_LENGTH_ALIASES.get(choice.id, choice.id)
                    if dim == "contact_length"
                    else choice.id
                )
                self._choices.setdefault(key, localize(choice.text, lang, survey.default_language))
        known: tuple[str, ...] = ()
        if dim == "contact_length":
            known = CONTACT_LENGTH_BANDS
        elif dim == "age":
            known = AGE_BANDS
        self._rank: dict[str, int] = {}
        for value in (*known, *self._choices):
            self._rank.setdefault(value, len(self._rank))

    def order(self, value: str | None) -> tuple[int, int, str]:
        if value is None:
            return (2, 0, "")
        rank = self._rank.get(value)
        return (0, rank, "") if rank is not None else (1, 0, value)

    def label(self, value: str | None) -> str:
        if value is None:
            return self._texts["missing"]
        if value in self._choices:
            return self._choices[value]
        if self._dim == "age" and value in AGE_BANDS:
            return f"{value} {self._texts['years']}"
        if self._dim in ("contact_length", "gender") and value in self._texts:
            return self._texts[value]
        if self._dim == "target_group":
            return target_group_name(value, self._lang)
        return value


class _QuestionAggregate:
    """One question's counts per group turned into suppressed figures."""

    def __init__(
        self,
        survey: Survey,
        question: Question,
        lang: str,
        tables: list[dict[Hashable, int]],
        dims: list[list[int]],
        k: int,
        rule: str,
    ) -> None:
        self.q = question
        self.k = k
        self.rule = rule
        # Under "groups" every figure of a published group is published; under "cells" a
        # derived figure also needs a base of k.
        self.min_base = k if rule == CELLS else 1
        self.dims = dims
        self.label = localize(question.text, lang, survey.default_language)
        self.lang = lang
        self.default_lang = survey.default_language
        self.tables = tables

    def figures(self) -> list[QuestionFigures]:
        match kind_of(self.q).figures:
            case Figures.CHOICE:
                return self._select_one()
            case Figures.CHOICES:
                return self._select_many()
            case Figures.NUMBER:
                return self._numeric()
            case _:
                return self._date()

    def _figure(self, question_figures: dict[str, Any]) -> QuestionFigures:
        return QuestionFigures(
            question_id=self.q.id, type=self.q.type.value, label=self.label, **question_figures
        )

    def _choice_label(self, choice_id: str) -> str:
        choice = self.q.choice(choice_id)
        return localize(choice.text, self.lang, self.default_lang) if choice else choice_id

    # select_one ------------------------------------------------------------------------------

    def _select_one(self) -> list[QuestionFigures]:
        keys = [c.id for c in self.q.choices]
        rows = [[table.get(key, 0) for key in keys] for table in self.tables]
        n = [sum(row) for row in rows]
        mask = suppress(n, self.dims, [rows], self.k, rule=self.rule)
        positive = [i for i, key in enumerate(keys) if key in self.q.positive]
        dont_know = [i for i, key in enumerate(keys) if key in self.q.dont_know]
        out = []
        for g, row in enumerate(rows):
            if not mask.n_ok[g]:
                out.append(self._figure({"n": SUPPRESSED, "counts": self._hidden(keys)}))
                continue
            ok = mask.cell_ok[0][g]
            counts = self._counts(keys, row, ok, n[g], self._choice_label)
            share_positive = NOT_APPLICABLE
            if positive:
                base = n[g] - sum(row[i] for i in dont_know)
                share_positive = self._share(
                    sum(row[i] for i in positive), base, all(ok[i] for i in positive + dont_know)
                )
            out.append(
                self._figure(
                    {"n": Figure(n[g]), "counts": counts, "share_positive": share_positive}
                )
            )
        return out

    # select_many -----------------------------------------------------------------------------

    def _select_many(self) -> list[QuestionFigures]:
        keys = [c.id for c in self.q.choices]
        known = frozenset(keys)
        positive_ids = frozenset(self.q.positive)
        dont_know_ids = frozenset(self.q.dont_know)
        picked: list[list[int]] = []
        outcome: list[list[int]] = []  # positive, don't know only, other
        n: list[int] = []
        for table in self.tables:
            per_choice = dict.fromkeys(keys, 0)
            pos = dk = other = total = 0
            for value, count in table.items():
                if not isinstance(value, tuple):
                    continue
                chosen = set(value)
                if not all(isinstance(c, str) for c in chosen) or not chosen <= known:
                    continue
                total += count
                for c in chosen:
                    per_choice[c] += count
                if chosen & positive_ids:
                    pos += count
                elif chosen and chosen <= dont_know_ids:
                    dk += count
                else:
                    other += count
            n.append(total)
            picked.append([per_choice[key] for key in keys])
            outcome.append([pos, dk, other])
        partitions = [
            [[picked[g][i], n[g] - picked[g][i]] for g in range(len(n))] for i in range(len(keys))
        ]
        if positive_ids:
            partitions.append(outcome)
        mask = suppress(n, self.dims, partitions, self.k, rule=self.rule)
        out = []
        for g in range(len(n)):
            if not mask.n_ok[g]:
                out.append(self._figure({"n": SUPPRESSED, "counts": self._hidden(keys)}))
                continue
            ok = [mask.cell_ok[i][g][0] for i in range(len(keys))]
            counts = self._counts(keys, picked[g], ok, n[g], self._choice_label)
            share_positive = NOT_APPLICABLE
            if positive_ids:
                pos, dk, _ = outcome[g]
                components = [
                    ok[i] for i, key in enumerate(keys) if key in positive_ids | dont_know_ids
                ]
                share_positive = self._share(
                    pos, n[g] - dk, all(mask.cell_ok[-1][g]) and all(components)
                )
            out.append(
                self._figure(
                    {"n": Figure(n[g]), "counts": counts, "share_positive": share_positive}
                )
            )
        return out

    # scale and numeric -----------------------------------------------------------------------

    def _numeric(self) -> list[QuestionFigures]:
        scale = kind_of(self.q).each_value
        values: list[dict[int, int]] = []
        for table in self.tables:
            valid: dict[int, int] = {}
            for value, count in table.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    valid[value] = count
            values.append(valid)
        if scale:
            lo, hi = self.q.scale_range
            values = [{v: c for v, c in valid.items() if lo <= v <= hi} for valid in values]
            bins = [(v, v) for v in range(lo, hi + 1)]
        else:
            bins = _numeric_bins(self.q, values[0])
            lo = bins[0][0] if bins else 0
            hi = bins[-1][1] if bins else -1
            values = [{v: c for v, c in valid.items() if lo <= v <= hi} for valid in values]
        keys = [_bin_key(a, b) for a, b in bins]
        labels = dict(zip(keys, (_bin_label(a, b) for a, b in bins), strict=True))
        rows = [_bin_counts(valid, bins) for valid in values]
        n = [sum(row) for row in rows]
        mask = suppress(n, self.dims, [rows], self.k, rule=self.rule)
        top_two = [len(bins) - 2, len(bins) - 1] if scale and len(bins) >= 2 else []
        out = []
        for g, row in enumerate(rows):
            if not mask.n_ok[g]:
                out.append(self._figure({"n": SUPPRESSED, "counts": self._hidden(keys)}))
                continue
            ok = mask.cell_ok[0][g]
            counts = self._counts(keys, row, ok, n[g], labels.__getitem__)
            share_positive = NOT_APPLICABLE
            if top_two:
                share_positive = self._share(
                    sum(row[i] for i in top_two), n[g], all(ok[i] for i in top_two)
                )
            mean = median = NOT_APPLICABLE
            if n[g] > 0:
                if all(ok) and n[g] >= self.min_base:
                    mean, median = _mean_median(values[g], n[g])
                else:
                    mean = median = SUPPRESSED
            out.append(
                self._figure(
                    {
                        "n": Figure(n[g]),
                        "counts": counts,
                        "share_positive": share_positive,
                        "mean": mean,
                        "median": median,
                    }
                )
            )
        return out

    # date ------------------------------------------------------------------------------------

    def _date(self) -> list[QuestionFigures]:
        n = [table.get(_PRESENT, 0) for table in self.tables]
        mask = suppress(n, self.dims, [], self.k, rule=self.rule)
        return [
            self._figure({"n": Figure(count) if mask.n_ok[g] else SUPPRESSED})
            for g, count in enumerate(n)
        ]

    # helpers ---------------------------------------------------------------------------------

    def _hidden(self, keys: Sequence[str]) -> tuple[Count, ...]:
        return tuple(
            Count(key=key, label=self._label_for(key), count=SUPPRESSED, share=SUPPRESSED)
            for key in keys
        )

    def _label_for(self, key: str) -> str:
        if kind_of(self.q).choices:
            return self._choice_label(key)
        low, _, high = key.partition("..")
        return _bin_label(int(low), int(high or low))

    def _counts(
        self,
        keys: Sequence[str],
        row: Sequence[int],
        ok: Sequence[bool],
        n: int,
        label: Callable[[str], str],
    ) -> tuple[Count, ...]:
        return tuple(
            Count(
                key=key,
                label=label(key),
                count=Figure(count) if shown else SUPPRESSED,
                share=(Figure(count / n) if n else NOT_APPLICABLE) if shown else SUPPRESSED,
            )
            for key, count, shown in zip(keys, row, ok, strict=True)
        )

    def _share(self, part: int, base: int, components_ok: bool) -> Figure:
        if base <= 0:
            return NOT_APPLICABLE
        if not components_ok or base < self.min_base:
            return SUPPRESSED
        return Figure(part / base)


def _numeric_bins(question: Question, observed: Mapping[int, int]) -> list[tuple[int, int]]:
    """Per value when the range spans at most 20, else at most 10 equal bins of a round width."""
    declared = question.min is not None and question.max is not None
    if declared and question.max - question.min <= _NUMERIC_PER_VALUE_SPAN:  # type: ignore[operator]
        lo, hi = question.min, question.max
    elif observed:
        lo, hi = min(observed), max(observed)
    else:
        return []
    assert lo is not None and hi is not None
    if hi - lo <= _NUMERIC_PER_VALUE_SPAN:
        return [(v, v) for v in range(lo, hi + 1)]
    width = _round_width(math.ceil((hi - lo + 1) / _NUMERIC_MAX_BINS))
    start = (lo // width) * width
    return [(a, a + width - 1) for a in range(start, hi + 1, width)]


def _bin_key(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}..{high}"


def _bin_label(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def _round_width(minimum: int) -> int:
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= minimum:
                return step * magnitude
        magnitude *= 10


def _bin_counts(values: Mapping[int, int], bins: Sequence[tuple[int, int]]) -> list[int]:
    row = [0] * len(bins)
    if not bins:
        return row
    start, width = bins[0][0], bins[0][1] - bins[0][0] + 1
    for value, count in values.items():
        row[(value - start) // width] += count
    return row


def _mean_median(values: Mapping[int, int], n: int) -> tuple[Figure, Figure]:
    total = sum(v * c for v, c in values.items())
    ordered = sorted(values.items())
    lower_pos, upper_pos = (n - 1) // 2, n // 2
    lower = upper = None
    seen = 0
    for value, count in ordered:
        if lower is None and seen + count > lower_pos:
            lower = value
        if seen + count > upper_pos:
            upper = value
            break
        seen += count
    assert lower is not None and upper is not None
    return Figure(total / n), Figure((lower + upper) / 2)


# --- Comparing and open answers --------------------------------------------------------------


def compare(current: Results, previous: Results) -> Comparison:
    """Change in share positive and mean per question, where both result sets publish them."""
    before = {q.question_id: q for q in previous.questions}
    changes = []
    for q in current.questions:
        old = before.get(q.question_id)
        if old is None:
            continue
        sp_before, sp_after = _published(old.share_positive), _published(q.share_positive)
        m_before, m_after = _published(old.mean), _published(q.mean)
        sp_change = sp_after - sp_before if sp_before is not None and sp_after is not None else None
        m_change = m_after - m_before if m_before is not None and m_after is not None else None
        if sp_change is None and m_change is None:
            continue
        changes.append(
            QuestionChange(
                question_id=q.question_id,
                share_positive_before=sp_before if sp_change is not None else None,
                share_positive_after=sp_after if sp_change is not None else None,
                share_positive_change=sp_change,
                mean_before=m_before if m_change is not None else None,
                mean_after=m_after if m_change is not None else None,
                mean_change=m_change,
            )
        )
    return Comparison(questions=tuple(changes))


def _published(figure: Figure) -> float | None:
    return None if figure.suppressed or figure.value is None else float(figure.value)


def open_answers(survey: Survey, records: Iterable[ResponseRecord]) -> list[OpenAnswer]:
    """Free-text answers for staff, masked, per question in survey order.

    Within a question they are sorted by text, so the order cannot be used to line up one
    person's answers across questions."""
    open_ids = [q.id for q in survey.questions if kind_of(q).figures is Figures.TEXT]
    texts: dict[str, list[str]] = {qid: [] for qid in open_ids}
    for record in records:
        for qid in open_ids:
            value = record.answers.get(qid)
            if isinstance(value, str) and value.strip():
                texts[qid].append(mask_pii(value.strip()))
    return [OpenAnswer(qid, text) for qid in open_ids for text in sorted(texts[qid])]
