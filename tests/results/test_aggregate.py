from __future__ import annotations

import json
from datetime import date

import pytest

from bot.results.aggregate import (
    Figure,
    Participation,
    QuestionFigures,
    Results,
    compare,
    compute,
    contact_length_band,
    open_answers,
)
from flows.model import Choice, Question, QuestionType, Survey
from tests.results.conftest import make_survey, record

PARTICIPATION = Participation(invited=100, started=60, completed=50, opted_out=2)


def counts(q: QuestionFigures) -> dict[str, int | float | None]:
    return {c.key: c.count.value for c in q.counts}


def question(results: Results, qid: str) -> QuestionFigures:
    q = results.question(qid)
    assert q is not None
    return q


def test_share_positive_leaves_dont_know_out_of_the_denominator(survey: Survey) -> None:
    answers = ["ja_helt"] * 10 + ["ja_delvis"] * 5 + ["nej"] * 5 + ["vet_ej"] * 10 + [None] * 3
    records = [record(i, {"bemotande": a}) for i, a in enumerate(answers)]
    q = question(compute(survey, records, PARTICIPATION, k=1), "bemotande")
    assert q.n == Figure(30)
    assert counts(q) == {"ja_helt": 10, "ja_delvis": 5, "nej": 5, "vet_ej": 10}
    assert q.share_positive == Figure(15 / 20)
    assert [c.share.value for c in q.counts] == [10 / 30, 5 / 30, 5 / 30, 10 / 30]
    assert q.mean == Figure() and q.median == Figure()


def test_select_many_shares_are_per_person(survey: Survey) -> None:
    picks = [["samtal"], ["samtal", "ekonomi"], ["boende", "samtal"], ["ekonomi"]]
    records = [record(i, {"stod": p}) for i, p in enumerate(picks)]
    q = question(compute(survey, records, PARTICIPATION, k=1), "stod")
    assert q.n == Figure(4)
    assert counts(q) == {"samtal": 3, "ekonomi": 2, "boende": 1}
    assert [c.share.value for c in q.counts] == [0.75, 0.5, 0.25]


def test_scale_mean_median_distribution_and_top_two(survey: Survey) -> None:
    values = [1, 2, 4, 4, 5, 5, 5, 3]
    records = [record(i, {"nojd": v}) for i, v in enumerate(values)]
    q = question(compute(survey, records, PARTICIPATION, k=1), "nojd")
    assert counts(q) == {"1": 1, "2": 1, "3": 1, "4": 2, "5": 3}
    assert q.mean == Figure(sum(values) / 8)
    assert q.median == Figure(4.0)
    assert q.share_positive == Figure(5 / 8)


@pytest.mark.parametrize(
    ("values", "keys"),
    [
        ([0, 3, 7], [str(v) for v in range(0, 8)]),
        ([0, 20], [str(v) for v in range(0, 21)]),
        ([0, 21], ["0..4", "5..9", "10..14", "15..19", "20..24"]),
        ([5, 130], [f"{a}..{a + 19}" for a in range(0, 140, 20)]),
    ],
)
def test_numeric_per_value_up_to_a_span_of_20_else_round_bins(
    survey: Survey, values: list[int], keys: list[str]
) -> None:
    records = [record(i, {"besok": v}) for i, v in enumerate(values)]
    q = question(compute(survey, records, PARTICIPATION, k=1), "besok")
    assert [c.key for c in q.counts] == keys
    assert sum(c.count.value or 0 for c in q.counts) == len(values)
    assert q.share_positive == Figure()


def test_date_reports_n_only_and_open_and_message_are_not_aggregated(survey: Survey) -> None:
    records = [record(i, {"datum": "2025-03-0" + str(i + 1), "ovrigt": "hej"}) for i in range(3)]
    results = compute(survey, records, PARTICIPATION, k=1)
    q = question(results, "datum")
    assert q.n == Figure(3) and q.counts == ()
    assert results.question("ovrigt") is None and results.question("tack") is None


def test_answers_that_do_not_fit_the_question_count_as_skipped(survey: Survey) -> None:
    records = [
        record(0, {"bemotande": "okant", "nojd": 9, "stod": ["samtal", "okant"]}),
        record(1, {"bemotande": "nej", "nojd": True, "stod": ["samtal"]}),
    ]
    results = compute(survey, records, PARTICIPATION, k=1)
    assert question(results, "bemotande").n == Figure(1)
    assert question(results, "nojd").n == Figure(0)
    assert question(results, "stod").n == Figure(1)


def test_small_groups_are_withheld_with_a_flag(survey: Survey) -> None:
    records = [record(i, {"bemotande": "ja_helt"}, unit="norr") for i in range(6)]
    records += [record(10 + i, {"bemotande": "nej"}, unit="syd") for i in range(2)]
    records += [record(20 + i, {"bemotande": "nej"}, unit="ost") for i in range(5)]
    results = compute(survey, records, PARTICIPATION, k=5, breakdowns=("unit",))
    breakdown = results.breakdown("unit")
    assert breakdown is not None
    by_unit = {
        g.value: g.questions[breakdown.question_ids.index("bemotande")] for g in breakdown.groups
    }
    assert by_unit["syd"].suppressed and by_unit["syd"].n == Figure(None, True)
    # syd alone could be worked out as total - norr - ost, so the next smallest group goes too.
    assert by_unit["ost"].suppressed
    assert by_unit["norr"].n == Figure(6)
    assert question(results, "bemotande").n == Figure(13)


def test_a_group_of_k_or_more_shows_every_share_by_default(survey: Survey) -> None:
    """Issue 10 item 6: "11 positive of 12" is shown; the per-cell rule hid it (1 < k)."""
    answers = ["ja_helt"] * 6 + ["ja_delvis"] * 5 + ["nej"]
    records = [record(i, {"bemotande": a}) for i, a in enumerate(answers)]
    participation = Participation(invited=30, started=13, completed=12, opted_out=2)
    results = compute(survey, records, participation, k=5)
    q = question(results, "bemotande")
    assert q.n == Figure(12)
    assert counts(q) == {"ja_helt": 6, "ja_delvis": 5, "nej": 1, "vet_ej": 0}
    assert q.share_positive == Figure(11 / 12)
    assert results.participation.opted_out == Figure(2)
    cells = compute(survey, records, participation, k=5, suppression="cells")
    assert question(cells, "bemotande").share_positive == Figure(None, True)
    assert cells.participation.opted_out == Figure(None, True)


def test_a_group_below_k_is_hidden_with_a_second_one_by_default(survey: Survey) -> None:
    records = [record(i, {"nojd": 4}, unit="norr") for i in range(7)]
    records += [record(10 + i, {"nojd": 2}, unit="syd") for i in range(6)]
    records += [record(20 + i, {"nojd": 1}, unit="ost") for i in range(2)]
    results = compute(survey, records, PARTICIPATION, k=5, breakdowns=("unit",))
    breakdown = results.breakdown("unit")
    assert breakdown is not None
    by_unit = {g.value: g.questions[breakdown.question_ids.index("nojd")] for g in breakdown.groups}
    assert by_unit["ost"].suppressed
    # ost alone would be total - norr - syd: the smaller of the others, syd, goes too.
    assert by_unit["syd"].suppressed and by_unit["syd"].mean.value is None
    assert by_unit["norr"].mean == Figure(4.0)
    assert question(results, "nojd").counts[0].count == Figure(2)


def test_unknown_suppression_rule(survey: Survey) -> None:
    with pytest.raises(ValueError, match="unknown suppression rule"):
        compute(survey, [], PARTICIPATION, k=5, suppression="rows")


def test_mean_is_withheld_when_a_step_of_its_distribution_is(survey: Survey) -> None:
    values = [1, 1, 2, 2, 2] + [5] * 10
    records = [record(i, {"nojd": v}) for i, v in enumerate(values)]
    q = question(compute(survey, records, PARTICIPATION, k=5, suppression="cells"), "nojd")
    assert q.counts[0].count.suppressed and q.counts[1].count.suppressed
    assert q.mean == Figure(None, True) and q.median == Figure(None, True)
    assert q.share_positive == Figure(10 / 15)


def test_breakdown_from_background_question_else_attributes_else_missing(
    survey: Survey,
) -> None:
    records = [
        record(0, {"kon": "man", "bemotande": "nej"}, gender="kvinna"),
        record(1, {"kon": None, "bemotande": "nej"}, gender="kvinna"),
        record(2, {"bemotande": "nej"}, gender=None),
    ]
    results = compute(survey, records, PARTICIPATION, k=1, breakdowns=("gender",), lang="en")
    breakdown = results.breakdown("gender")
    assert breakdown is not None
    assert [(g.value, g.label, g.questions[0].n.value) for g in breakdown.groups] == [
        ("kvinna", "Woman", 1),
        ("man", "Man", 1),
        (None, "Not stated", 1),
    ]
    # The gender question itself is not broken down by gender.
    assert (
        breakdown.question_ids[:2] == ("bemotande", "stod") and "kon" not in breakdown.question_ids
    )


def test_contact_length_groups_follow_band_order_and_survey_aliases() -> None:
    survey = make_survey(
        Question(
            id="kontakttid",
            type=QuestionType.SELECT_ONE,
            text={"sv": "Hur länge?"},
            choices=(
                Choice("under_6_man", {"sv": "Under ett halvår"}),
                Choice("1_3_ar", {"sv": "Ett till tre år"}),
            ),
            breakdown="contact_length",
        ),
        Question(id="nojd", type=QuestionType.SCALE, text={"sv": "Nöjd?"}),
    )
    records = [
        record(0, {"nojd": 3}, contact_length=">3y"),
        record(1, {"nojd": 3}, contact_length="<6m"),
        record(2, {"nojd": 3, "kontakttid": "1_3_ar"}),
    ]
    results = compute(survey, records, PARTICIPATION, k=1, breakdowns=("contact_length",))
    breakdown = results.breakdown("contact_length")
    assert breakdown is not None
    # Labels come from the survey's own choices where it has them, else the built-in ones.
    assert [(g.value, g.label) for g in breakdown.groups] == [
        ("<6m", "Under ett halvår"),
        ("1-3y", "Ett till tre år"),
        (">3y", "Mer än 3 år"),
    ]


@pytest.mark.parametrize(
    ("participation", "k", "rate", "completed"),
    [
        (Participation(100, 60, 50, 2), 5, Figure(0.5), Figure(50)),
        (Participation(0, 0, 0, 0), 5, Figure(), Figure(0)),
        (Participation(100, 5, 3, 0), 5, Figure(None, True), Figure(None, True)),
        (Participation(10, 5, 5, 0), 5, Figure(0.5), Figure(5)),
    ],
)
def test_participation_and_response_rate(
    survey: Survey, participation: Participation, k: int, rate: Figure, completed: Figure
) -> None:
    results = compute(survey, [], participation, k=k)
    assert results.participation.response_rate == rate
    assert results.participation.completed == completed


@pytest.mark.parametrize(
    ("since", "on", "band"),
    [
        (date(2025, 1, 1), date(2025, 1, 1), "<6m"),
        (date(2025, 1, 2), date(2025, 7, 1), "<6m"),
        (date(2025, 1, 1), date(2025, 7, 1), "6-12m"),
        (date(2024, 7, 2), date(2025, 7, 1), "6-12m"),
        (date(2024, 7, 1), date(2025, 7, 1), "1-3y"),
        (date(2022, 7, 2), date(2025, 7, 1), "1-3y"),
        (date(2022, 7, 1), date(2025, 7, 1), ">3y"),
        (date(2026, 1, 1), date(2025, 7, 1), "<6m"),
    ],
)
def test_contact_length_band(since: date, on: date, band: str) -> None:
    assert contact_length_band(since, on) == band


def test_compare_only_where_both_are_published(survey: Survey) -> None:
    before = compute(
        survey,
        [record(i, {"bemotande": "ja_helt" if i < 6 else "nej", "nojd": 4}) for i in range(10)],
        PARTICIPATION,
        k=1,
    )
    after = compute(
        survey,
        [record(i, {"bemotande": "ja_helt" if i < 8 else "nej", "nojd": 5}) for i in range(10)],
        PARTICIPATION,
        k=1,
    )
    changes = {c.question_id: c for c in compare(after, before).questions}
    assert set(changes) == {"bemotande", "nojd"}
    assert changes["bemotande"].share_positive_change == pytest.approx(0.2)
    assert changes["nojd"].mean_change == pytest.approx(1.0)
    assert changes["bemotande"].mean_change is None
    withheld = compute(survey, [record(0, {"bemotande": "nej"})], PARTICIPATION, k=5)
    assert compare(withheld, before).questions == ()


def test_open_answers_are_masked_and_sorted(survey: Survey) -> None:
    records = [
        record(0, {"ovrigt": "Ring mig på 070-123 45 67"}),
        record(1, {"ovrigt": "  "}),
        record(2, {"ovrigt": "Bra bemötande"}),
    ]
    answers = open_answers(survey, records)
    assert [(a.question_id, a.text_masked) for a in answers] == [
        ("ovrigt", "Bra bemötande"),
        ("ovrigt", "Ring mig på [telefon]"),
    ]


def test_to_json_is_plain_json(survey: Survey) -> None:
    records = [record(i, {"bemotande": "nej", "stod": ["samtal"], "nojd": 3}) for i in range(6)]
    results = compute(survey, records, PARTICIPATION, k=5, breakdowns=("unit", "gender"))
    data = json.loads(json.dumps(results.to_json()))
    assert data["k"] == 5
    assert data["questions"][1]["n"] == {"value": 6, "suppressed": False}
    assert [b["dimension"] for b in data["breakdowns"]] == ["unit", "gender"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"k": 5, "breakdowns": ("shoe_size",)}, "unknown breakdown"),
        ({"k": 5, "breakdowns": ("unit", "unit")}, "twice"),
    ],
)
def test_bad_arguments(survey: Survey, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute(survey, [], PARTICIPATION, **kwargs)  # type: ignore[arg-type]
