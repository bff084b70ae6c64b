"""Benchmark: compute() over 1,000,000 answers with three breakdowns.

Run: .venv/bin/python bench/results.py [--respondents 100000] [--seed 7]
Generation is deterministic (random.Random(seed)) and not timed; compute() must stay under 2 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.results.aggregate import Participation, ResponseRecord, compute
from flows.conversation import AnswerValue
from flows.model import Choice, Question, QuestionType, Survey

_AGREE = tuple(
    Choice(cid, {"sv": label})
    for cid, label in (
        ("ja_helt", "Ja, helt och hållet"),
        ("ja_delvis", "Ja, delvis"),
        ("nej_inte_sarskilt", "Nej, inte särskilt"),
        ("nej_inte_alls", "Nej, inte alls"),
        ("vet_ej", "Vet ej"),
    )
)


def bench_survey() -> Survey:
    """Ten questions of every aggregated type, like the shipped IFO survey plus extras."""
    questions = [
        Question(
            id="kon",
            type=QuestionType.SELECT_ONE,
            text={"sv": "Kön"},
            breakdown="gender",
            choices=tuple(Choice(c, {"sv": c}) for c in ("kvinna", "man", "annat")),
        ),
        *(
            Question(
                id=f"q{i}",
                type=QuestionType.SELECT_ONE,
                text={"sv": f"Fråga {i}"},
                choices=_AGREE,
                positive=("ja_helt", "ja_delvis"),
                dont_know=("vet_ej",),
            )
            for i in range(1, 6)
        ),
        Question(id="nojd", type=QuestionType.SCALE, text={"sv": "Hur nöjd?"}, min=1, max=5),
        Question(id="besok", type=QuestionType.NUMERIC, text={"sv": "Antal besök"}, min=0, max=200),
        Question(
            id="stod",
            type=QuestionType.SELECT_MANY,
            text={"sv": "Vilket stöd?"},
            choices=tuple(Choice(c, {"sv": c}) for c in ("samtal", "ekonomi", "boende", "annat")),
            positive=("samtal",),
        ),
        Question(id="datum", type=QuestionType.DATE, text={"sv": "När?"}),
    ]
    return Survey(
        id="bench",
        version=1,
        languages=("sv",),
        title={"sv": "Bench"},
        intro={"sv": ""},
        thanks={"sv": ""},
        questions=tuple(questions),
    )


def generate(respondents: int, seed: int) -> list[ResponseRecord]:
    """`respondents` records with ten answers each (about 3 % skipped), deterministically."""
    rng = random.Random(seed)
    units = [f"enhet-{i:02d}" for i in range(40)]
    groups = ["missbruk", "ekonomiskt_bistand", "barn_unga", "vald_i_nara"]
    bands = ["<6m", "6-12m", "1-3y", ">3y", None]
    agree = [c.id for c in _AGREE]
    many = ["samtal", "ekonomi", "boende", "annat"]
    start = date(2025, 3, 1)
    records = []
    for i in range(respondents):
        answers: dict[str, AnswerValue] = {
            "kon": rng.choice(("kvinna", "man", "annat", None)),
            "nojd": rng.randint(1, 5),
            "besok": rng.randint(0, 200),
            "stod": rng.sample(many, rng.randint(1, 3)),
            "datum": (start + timedelta(days=rng.randint(0, 60))).isoformat(),
        }
        for q in range(1, 6):
            answers[f"q{q}"] = rng.choice(agree) if rng.random() > 0.03 else None
        records.append(
            ResponseRecord(
                respondent_id=f"r{i:07d}",
                completed=True,
                started_on=start,
                attributes={
                    "gender": rng.choice(("kvinna", "man")),
                    "unit": rng.choice(units),
                    "target_group": rng.choice(groups),
                    "contact_length": rng.choice(bands),
                },
                answers=answers,
            )
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--respondents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--suppression", choices=("groups", "cells"), default="groups", help="privacy.suppression"
    )
    args = parser.parse_args()
    survey = bench_survey()
    records = generate(args.respondents, args.seed)
    answers = sum(len(r.answers) for r in records)
    participation = Participation(
        invited=args.respondents * 2,
        started=args.respondents,
        completed=args.respondents,
        opted_out=100,
    )
    breakdowns = ("gender", "unit", "contact_length")

    rule = args.suppression
    started, cpu_started = time.perf_counter(), time.process_time()
    results = compute(survey, records, participation, k=5, breakdowns=breakdowns, suppression=rule)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started

    tracemalloc.start()
    compute(survey, records, participation, k=5, breakdowns=breakdowns, suppression=rule)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    groups = sum(len(b.groups) for b in results.breakdowns)
    print(f"answers          {answers:,}")
    print(f"respondents      {len(records):,}")
    print(f"breakdowns       {', '.join(breakdowns)} ({groups} groups)")
    print(f"suppression      {rule}")
    print(f"seconds          {seconds:.3f}")
    print(f"cpu seconds      {cpu:.3f} (the process alone, when the machine is shared)")
    print(f"answers/s        {answers / seconds:,.0f}")
    print(f"peak memory      {peak / 1024 / 1024:.1f} MiB (tracemalloc, during compute)")
    q1 = results.question("q1")
    assert q1 is not None
    print(f"q1 share positive {q1.share_positive.value}")
    if seconds >= 2.0:
        print("FAIL: compute() took 2 s or more")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
