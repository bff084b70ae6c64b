"""Raw answers as CSV, one row per answer, for staff with access to row-level data.

Format: UTF-8 with a byte-order mark (so Excel shows å, ä, ö), comma-separated, fields quoted
when they hold a comma, quote or line break (RFC 4180, `\\r\\n` line ends). We use "," rather than
the ";" Swedish Excel expects on double-click because "," is what every other tool reads; staff
who want a spreadsheet use the XLSX export. Free text is masked (`redact.mask_pii`) and every
cell goes through `cells.safe_cell`, so a spreadsheet never runs one as a formula. Respondent ids
are the random respondent ids (pseudonymous), or whatever `pseudonym` maps them to.

Background attributes are the columns `RawAttributes.included` names (see `background`); when
some were left out, the file starts with one `#` comment line that says which and why.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from bot.results.aggregate import ResponseRecord
from bot.results.background import ATTRIBUTE_COLUMNS, RawAttributes, all_attributes
from bot.results.cells import safe_row
from bot.results.redact import mask_pii
from flows.conversation import AnswerValue
from flows.model import Question, Survey, localize
from flows.types import Figures, kind_of

__all__ = ["ATTRIBUTE_COLUMNS", "answer_rows", "header", "write_answers_csv"]

_BASE_COLUMNS = (
    "respondent",
    "question_id",
    "question_type",
    "value",
    "value_label",
    "answered_on",
)


def header(attributes: Sequence[str] = ATTRIBUTE_COLUMNS) -> list[str]:
    """Column names of `answer_rows`."""
    return [*_BASE_COLUMNS, *attributes]


def answer_rows(
    survey: Survey,
    records: Iterable[ResponseRecord],
    *,
    lang: str = "sv",
    attributes: Sequence[str] = ATTRIBUTE_COLUMNS,
    pseudonym: Callable[[str], str] = str,
) -> Iterator[list[str | int]]:
    """One row per answered (not skipped) question, in survey order per respondent.

    Cells are plain values (numbers stay numbers); writers escape them with `cells.safe_row`."""
    questions = [q for q in survey.questions if kind_of(q).records]
    for record in records:
        respondent = pseudonym(record.respondent_id)
        extra = [_text(record.attributes.get(name)) for name in attributes]
        for q in questions:
            value = record.answers.get(q.id)
            if value is None:
                continue
            answered_on = record.answered_on.get(q.id, record.started_on)
            yield [
                respondent,
                q.id,
                q.type.value,
                format_value(q, value),
                value_label(survey, q, value, lang),
                answered_on.isoformat(),
                *extra,
            ]


def format_value(question: Question, value: AnswerValue) -> str | int:
    """The stored value: ids joined by ";", numbers as numbers, free text masked."""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind_of(question).figures is Figures.TEXT:
        return mask_pii(str(value))
    return str(value)


def value_label(survey: Survey, question: Question, value: AnswerValue, lang: str) -> str:
    """What the person saw: choice texts in `lang`; empty for numbers, dates and free text."""
    ids = value if isinstance(value, list) else [value]
    if kind_of(question).choices:
        labels = []
        for choice_id in ids:
            choice = question.choice(str(choice_id))
            labels.append(
                localize(choice.text, lang, survey.default_language) if choice else str(choice_id)
            )
        return "; ".join(labels)
    return ""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def write_answers_csv(
    target: Path | IO[bytes],
    survey: Survey,
    records: Iterable[ResponseRecord],
    *,
    lang: str = "sv",
    attributes: RawAttributes | None = None,
    pseudonym: Callable[[str], str] = str,
) -> int:
    """Write the CSV to a path or a binary stream (left open); returns the number of answers.

    `attributes` is the outcome of `background.raw_attributes` (every attribute if None)."""
    attrs = attributes or all_attributes()
    if isinstance(target, Path):
        with target.open("wb") as stream:
            return _write(stream, survey, records, lang, attrs, pseudonym)
    return _write(target, survey, records, lang, attrs, pseudonym)


def _write(
    stream: IO[bytes],
    survey: Survey,
    records: Iterable[ResponseRecord],
    lang: str,
    attributes: RawAttributes,
    pseudonym: Callable[[str], str],
) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text, dialect="excel")
        if attributes.left_out:
            text.write("# " + " ".join(attributes.notes(lang, sep="; ")) + "\r\n")
        writer.writerow(safe_row(header(attributes.included)))
        count = 0
        for row in answer_rows(
            survey, records, lang=lang, attributes=attributes.included, pseudonym=pseudonym
        ):
            writer.writerow(safe_row(row))
            count += 1
        text.flush()
    finally:
        text.detach()
    return count
