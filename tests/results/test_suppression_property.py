"""Property: no hidden group (or, under "cells", no hidden cell) can be worked out from what
compute() publishes.

The test recounts every figure from the raw records with its own (naive) code and checks the
published JSON against it, for both rules of `bot.results.suppress`.

Both rules:
- every published figure is the true one;
- a group's n (everybody, or one breakdown group, for one question) is published only when it is
  0 or at least k; a hidden group publishes nothing at all;
- along every dimension whose total n is published, the hidden groups are all empty, or at least
  two of them are not and together hold at least k people. Groups are only linked by these sums
  (a breakdown's groups add up to the total), so a hidden group's n and counts appear only in
  them, together with at least one other hidden group: what a reader can subtract out is the
  hidden groups taken together, a group of at least k, and never a single hidden group.

"groups" (the default): a published group publishes every count, share, share positive, mean and
median in it (the test checks that nothing of a published group is withheld).

"cells" adds, per cell:
- every published count is 0 or at least k; every published share, share positive, mean
  and median has a base of at least k and is built only from published counts;
- along every line with a published total (rows: the categories of a question in one group;
  columns: the groups of one dimension, for n and for every category), the withheld parts are
  all 0, or at least two of them are non-zero and together hold at least k people. So the
  remainder a reader can subtract out is 0 or at least k, and never names a single cell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.results.aggregate import Participation, ResponseRecord, compute
from flows.conversation import AnswerValue
from flows.model import Choice, Question, QuestionType, Survey

ATTRIBUTE_POOLS: Mapping[str, Sequence[str | None]] = {
    "gender": ("kvinna", "man", "annat", None),
    "unit": ("norr", "syd", "ost", "vast", "centrum", None),
    "target_group": ("missbruk", "bistand", None),
    "contact_length": ("<6m", "6-12m", "1-3y", ">3y", None),
}


@dataclass(frozen=True)
class Case:
    survey: Survey
    records: list[ResponseRecord]
    k: int
    dims: tuple[str, ...]


def _choices(ids: Sequence[str]) -> tuple[Choice, ...]:
    return tuple(Choice(c, {"sv": c.upper()}) for c in ids)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    k = draw(st.integers(1, 6))
    dims = tuple(
        draw(st.lists(st.sampled_from(list(ATTRIBUTE_POOLS)), min_size=0, max_size=3, unique=True))
    )
    one_ids = [f"c{i}" for i in range(draw(st.integers(2, 5)))]
    many_ids = [f"m{i}" for i in range(draw(st.integers(1, 4)))]
    positive_one = tuple(draw(st.lists(st.sampled_from(one_ids), max_size=2, unique=True)))
    dont_know_one = tuple(
        c for c in draw(st.lists(st.sampled_from(one_ids), max_size=1)) if c not in positive_one
    )
    positive_many = tuple(draw(st.lists(st.sampled_from(many_ids), max_size=2, unique=True)))
    dont_know_many = tuple(
        c for c in draw(st.lists(st.sampled_from(many_ids), max_size=1)) if c not in positive_many
    )
    scale_max = draw(st.integers(2, 5))
    wide = draw(st.booleans())
    questions = [
        Question(
            id="bg",
            type=QuestionType.SELECT_ONE,
            text={"sv": "Kön"},
            choices=_choices(["kvinna", "man", "annat"]),
            breakdown="gender",
        ),
        Question(
            id="one",
            type=QuestionType.SELECT_ONE,
            text={"sv": "En"},
            choices=_choices(one_ids),
            positive=positive_one,
            dont_know=dont_know_one,
        ),
        Question(
            id="many",
            type=QuestionType.SELECT_MANY,
            text={"sv": "Flera"},
            choices=_choices(many_ids),
            positive=positive_many,
            dont_know=dont_know_many,
        ),
        Question(id="scale", type=QuestionType.SCALE, text={"sv": "Skala"}, min=1, max=scale_max),
        Question(
            id="num",
            type=QuestionType.NUMERIC,
            text={"sv": "Tal"},
            min=0,
            max=60 if wide else 4,
        ),
        Question(id="when", type=QuestionType.DATE, text={"sv": "När"}),
    ]
    survey = Survey(
        id="prop",
        version=1,
        languages=("sv",),
        title={"sv": "P"},
        intro={"sv": ""},
        thanks={"sv": ""},
        questions=tuple(questions),
    )
    size = draw(st.integers(0, 45))
    records = []
    maybe = st.booleans()
    for i in range(size):
        attributes = {key: draw(st.sampled_from(pool)) for key, pool in ATTRIBUTE_POOLS.items()}
        answers: dict[str, AnswerValue] = {
            "bg": draw(st.sampled_from(["kvinna", "man", "annat", None, None])),
            "one": draw(st.sampled_from([*one_ids, None])),
            "many": draw(st.lists(st.sampled_from(many_ids), min_size=1, unique=True))
            if draw(maybe)
            else None,
            "scale": draw(st.integers(1, scale_max)) if draw(maybe) else None,
            "num": draw(st.integers(0, 60 if wide else 4)) if draw(maybe) else None,
            "when": "2025-01-02" if draw(maybe) else None,
        }
        records.append(
            ResponseRecord(
                respondent_id=f"r{i}",
                completed=True,
                started_on=date(2025, 1, 1),
                attributes=attributes,
                answers=answers,
            )
        )
    return Case(survey=survey, records=records, k=k, dims=dims)


# --- The oracle: true figures recounted naively ------------------------------------------------


def group_of(record: ResponseRecord, dim: str) -> str | None:
    if dim == "gender" and record.answers.get("bg") is not None:
        return str(record.answers["bg"])
    return record.attributes.get(dim)


def categories(question: Question, answer: AnswerValue, bins: list[tuple[int, int]]) -> list[str]:
    """The category keys one answer counts in (several for select_many)."""
    if question.type is QuestionType.SELECT_ONE:
        return [str(answer)]
    if question.type is QuestionType.SELECT_MANY:
        assert isinstance(answer, list)
        return sorted(set(answer))
    assert isinstance(answer, int)
    for low, high in bins:
        if low <= answer <= high:
            return [str(low) if low == high else f"{low}..{high}"]
    raise AssertionError(f"{answer} in no bin {bins}")


def bins_from_keys(keys: Sequence[str]) -> list[tuple[int, int]]:
    out = []
    for key in keys:
        low, _, high = key.partition("..")
        out.append((int(low), int(high or low)))
    return out


@dataclass
class Truth:
    n: int
    counts: dict[str, int]
    positive: int = 0
    dont_know: int = 0


def truth(question: Question, records: Sequence[ResponseRecord], keys: Sequence[str]) -> Truth:
    bins = (
        bins_from_keys(keys) if question.type in (QuestionType.SCALE, QuestionType.NUMERIC) else []
    )
    t = Truth(n=0, counts=dict.fromkeys(keys, 0))
    for record in records:
        answer = record.answers.get(question.id)
        if answer is None:
            continue
        t.n += 1
        if question.type is QuestionType.DATE:
            continue
        cats = categories(question, answer, bins)
        for cat in cats:
            t.counts[cat] += 1
        if question.type is QuestionType.SELECT_MANY:
            if set(cats) & set(question.positive):
                t.positive += 1
            elif set(cats) <= set(question.dont_know):
                t.dont_know += 1
    return t


# --- The checks --------------------------------------------------------------------------------


def shown(figure: Mapping[str, Any]) -> bool:
    return not figure["suppressed"] and figure["value"] is not None


def share_known(group: Mapping[str, Any]) -> bool:
    """Whether a group's share positive tells its parts: shown, or not applicable in a group
    whose n is shown (everyone said "vet ej": 0 positive, n don't know)."""
    share = group["share_positive"]
    not_applicable = not share["suppressed"] and share["value"] is None
    return shown(share) or (shown(group["n"]) and not_applicable)


def line_is_safe(total_shown: bool, parts: Sequence[tuple[int, bool]], k: int) -> bool:
    if not total_shown:
        return True
    hidden = [v for v, is_shown in parts if not is_shown and v > 0]
    return not hidden or (len(hidden) >= 2 and sum(hidden) >= k)


def check_group(
    question: Question, figures: Mapping[str, Any], t: Truth, k: int
) -> dict[str, bool]:
    """Check one (question, group) cell block; return which categories count as published."""
    n = figures["n"]
    if n["suppressed"]:
        assert n["value"] is None
        assert all(c["count"]["suppressed"] for c in figures["counts"])
        for name in ("share_positive", "mean", "median"):
            assert figures[name]["value"] is None
        return dict.fromkeys(t.counts, False)
    assert n["value"] == t.n
    assert t.n == 0 or t.n >= k, "a published n below k"
    published: dict[str, bool] = {}
    for cell in figures["counts"]:
        key, count, share = cell["key"], cell["count"], cell["share"]
        published[key] = shown(count)
        if shown(count):
            assert count["value"] == t.counts[key]
            assert count["value"] == 0 or count["value"] >= k, "a published count below k"
        else:
            assert count["suppressed"] and not shown(share)
        if shown(share):
            assert shown(count) and t.n >= k
            assert abs(share["value"] - t.counts[key] / t.n) < 1e-12

    # Rows: what a reader subtracts from n must be 0, or spread over two or more cells with >= k.
    if question.type is QuestionType.SELECT_MANY:
        for key, count in t.counts.items():
            not_picked = t.n - count
            if published[key]:
                assert not_picked == 0 or not_picked >= k, "n - picked names fewer than k"
            else:
                assert line_is_safe(True, [(count, False), (not_picked, False)], k)
    elif question.type is not QuestionType.DATE:
        parts = [(t.counts[key], published[key]) for key in t.counts]
        assert line_is_safe(True, parts, k), f"row of {question.id}: {parts}"

    sp = figures["share_positive"]
    if shown(sp):
        if question.type is QuestionType.SELECT_MANY:
            base = t.n - t.dont_know
            other = base - t.positive
            for part in (t.positive, t.dont_know, other):
                assert part == 0 or part >= k, "share positive reveals a small number"
            assert base >= k
            assert abs(sp["value"] - t.positive / base) < 1e-12
            for key in (*question.positive, *question.dont_know):
                assert published[key]
        else:
            if question.type is QuestionType.SCALE:
                keys = list(t.counts)[-2:]
                positive = sum(t.counts[key] for key in keys)
                base = t.n
            else:
                keys = [*question.positive, *question.dont_know]
                positive = sum(t.counts[key] for key in question.positive)
                base = t.n - sum(t.counts[key] for key in question.dont_know)
            assert all(published[key] for key in keys), "share positive from hidden cells"
            assert base >= k
            assert abs(sp["value"] - positive / base) < 1e-12
    for name in ("mean", "median"):
        if shown(figures[name]):
            assert t.n >= k and all(published.values()), f"{name} would unlock hidden steps"
    return published


def check_whole_group(
    question: Question, figures: Mapping[str, Any], t: Truth, k: int, records: Sequence[Any]
) -> bool:
    """Under "groups": a group is published whole (every figure true) or not at all."""
    n = figures["n"]
    if n["suppressed"]:
        assert n["value"] is None
        assert all(c["count"]["suppressed"] and c["share"]["suppressed"] for c in figures["counts"])
        for name in ("share_positive", "mean", "median"):
            assert figures[name]["value"] is None, f"{name} of a hidden group"
        return False
    assert n["value"] == t.n
    assert t.n == 0 or t.n >= k, "a published group below k"
    for cell in figures["counts"]:
        count, share = cell["count"], cell["share"]
        assert shown(count), "a cell withheld in a published group"
        assert count["value"] == t.counts[cell["key"]]
        if t.n:
            assert abs(share["value"] - t.counts[cell["key"]] / t.n) < 1e-12
    sp = figures["share_positive"]
    assert not sp["suppressed"], "share positive withheld in a published group"
    if question.type is QuestionType.SELECT_MANY and question.positive:
        base = t.n - t.dont_know
        assert (sp["value"] is None) == (base == 0)
        if base:
            assert abs(sp["value"] - t.positive / base) < 1e-12
    elif question.type is QuestionType.SELECT_ONE and question.positive:
        base = t.n - sum(t.counts[c] for c in question.dont_know)
        positive = sum(t.counts[c] for c in question.positive)
        assert (sp["value"] is None) == (base == 0)
        if base:
            assert abs(sp["value"] - positive / base) < 1e-12
    elif question.type is QuestionType.SCALE and t.n:
        top = sum(list(t.counts.values())[-2:])
        assert abs(sp["value"] - top / t.n) < 1e-12
    if question.type in (QuestionType.SCALE, QuestionType.NUMERIC) and t.n:
        values = sorted(
            int(r.answers[question.id])
            for r in records
            if isinstance(r.answers.get(question.id), int)
            and any(low <= int(r.answers[question.id]) <= high for low, high in bins_of(t))
        )
        assert len(values) == t.n
        assert abs(figures["mean"]["value"] - sum(values) / t.n) < 1e-9
        middle = (values[(t.n - 1) // 2] + values[t.n // 2]) / 2
        assert figures["median"]["value"] == middle
    return True


def group_question_index(b_json: Mapping[str, Any], question: Question, dim: str) -> int | None:
    """Where a breakdown keeps a question's figures; None only for the dimension's own
    background question, which is not broken down by itself (and so publishes nothing)."""
    ids = list(b_json["question_ids"])
    assert all(len(g["questions"]) == len(ids) for g in b_json["groups"])
    if question.id in ids:
        return ids.index(question.id)
    assert question.breakdown == dim, f"{question.id} missing from the {dim} breakdown"
    return None


def bins_of(t: Truth) -> list[tuple[int, int]]:
    return bins_from_keys(list(t.counts))


def check_groups_rule(case: Case, data: Mapping[str, Any]) -> None:
    k = case.k
    for qi, q_json in enumerate(data["questions"]):
        question = case.survey.questions[qi]
        keys = [c["key"] for c in q_json["counts"]]
        total = truth(question, case.records, keys)
        total_shown = check_whole_group(question, q_json, total, k, case.records)
        assert total_shown == (total.n == 0 or total.n >= k), "the total is hidden needlessly"
        for b_json, dim in zip(data["breakdowns"], case.dims, strict=True):
            gi = group_question_index(b_json, question, dim)
            if gi is None:
                continue
            sizes = []
            for g_json in b_json["groups"]:
                members = [r for r in case.records if group_of(r, dim) == g_json["value"]]
                t = truth(question, members, keys)
                g_fig = g_json["questions"][gi]
                sizes.append((t.n, check_whole_group(question, g_fig, t, k, members)))
            assert sum(n for n, _ in sizes) == total.n
            # The only sums that link groups: the groups of a dimension add up to the total.
            assert line_is_safe(total_shown, sizes, k), f"{question.id} by {dim}: {sizes}"
            if not total_shown:
                assert not any(n and is_shown for n, is_shown in sizes), "a group of a hidden total"


@pytest.mark.parametrize("rule", ["groups", "cells"])
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
def test_no_hidden_group_can_be_worked_out(rule: str, case: Case) -> None:
    results = compute(
        case.survey,
        case.records,
        Participation(invited=60, started=50, completed=len(case.records), opted_out=3),
        k=case.k,
        breakdowns=case.dims,
        suppression=rule,
    )
    data = json.loads(json.dumps(results.to_json()))
    k = case.k
    p = data["participation"]
    if shown(p["completed"]):
        assert p["completed"]["value"] == 0 or p["completed"]["value"] >= k
    if shown(p["response_rate"]):
        assert len(case.records) >= k
    if rule == "groups":
        check_groups_rule(case, data)
        return
    for name in ("invited", "started", "opted_out"):
        if shown(p[name]):
            assert p[name]["value"] == 0 or p[name]["value"] >= k

    for qi, q_json in enumerate(data["questions"]):
        question = case.survey.questions[qi]
        assert q_json["question_id"] == question.id
        keys = [c["key"] for c in q_json["counts"]]
        total = truth(question, case.records, keys)
        total_pub = check_group(question, q_json, total, k)
        total_n_shown = shown(q_json["n"])
        for b_json, dim in zip(data["breakdowns"], case.dims, strict=True):
            assert b_json["dimension"] == dim
            gi = group_question_index(b_json, question, dim)
            if gi is None:
                continue
            groups = []
            for g_json in b_json["groups"]:
                members = [r for r in case.records if group_of(r, dim) == g_json["value"]]
                g_fig = g_json["questions"][gi]
                t = truth(question, members, keys)
                groups.append((t, check_group(question, g_fig, t, k), g_fig))
            # The groups split everybody.
            assert sum(t.n for t, _, _ in groups) == total.n
            # Column of n.
            n_parts = [(t.n, shown(g["n"])) for t, _, g in groups]
            assert line_is_safe(total_n_shown, n_parts, k), f"n column of {dim}: {n_parts}"
            # Columns of every category.
            for key in keys:
                parts = [(t.counts[key], pub[key]) for t, pub, _ in groups]
                assert line_is_safe(total_pub[key], parts, k), f"{question.id}/{key} by {dim}"
                if question.type is QuestionType.SELECT_MANY:
                    not_picked = [(t.n - t.counts[key], pub[key]) for t, pub, _ in groups]
                    assert line_is_safe(total_pub[key], not_picked, k)
            if question.type is QuestionType.SELECT_MANY and question.positive:
                total_sp = shown(q_json["share_positive"])
                for attr in ("positive", "dont_know"):
                    parts = [(getattr(t, attr), share_known(g)) for t, _, g in groups]
                    assert line_is_safe(total_sp, parts, k), f"share positive by {dim}"
