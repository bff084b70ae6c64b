"""Results as an Excel workbook: summary, one sheet per breakdown, and the raw answers.

Sheets: "Sammanfattning" (participation and every question with its choices), one sheet per
breakdown dimension (groups as columns), and, when records are given, "Svar" (one row per answer,
pseudonymous, free text masked) with "Om svaren", which says what the rows hold and which
background attributes were left out of them (`background`). Headings are in the results'
language (sv, en or ar). Withheld figures are shown as "–" and a note row states the rule. Every
cell goes through `cells.safe_cell` (one `_append` writes every row), so no text from answers,
survey files or contact lists (a unit named `=HYPERLINK(...)`) becomes a formula. Every sheet has
a bold, frozen header row and set column widths.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from bot.results.aggregate import Figure, QuestionFigures, ResponseRecord, Results
from bot.results.background import RawAttributes, all_attributes
from bot.results.cells import safe_row
from bot.results.export_csv import answer_rows, header
from bot.results.texts import staff_texts
from flows.model import Survey

__all__ = ["SUPPRESSED_MARK", "sheet_title", "write_results_xlsx"]

SUPPRESSED_MARK: Final = "–"
_PERCENT: Final = "0%"
_DECIMAL: Final = "0.0"
_MAX_WIDTH: Final = 60

_FORBIDDEN_IN_TITLE: Final = str.maketrans({c: " " for c in "[]:*?/\\"})


def sheet_title(text: str) -> str:
    """A valid Excel sheet name: at most 31 characters, none of []:*?/\\."""
    return text.translate(_FORBIDDEN_IN_TITLE).strip()[:31] or "Blad"


def note(results: Results, labels: Mapping[str, str]) -> str:
    """What "–" means under the rule the results were withheld by."""
    key = "note_cells" if results.suppression == "cells" else "note_groups"
    return labels[key].format(mark=SUPPRESSED_MARK, k=results.k)


def write_results_xlsx(
    target: Path | IO[bytes],
    survey: Survey,
    results: Results,
    *,
    records: Iterable[ResponseRecord] | None = None,
    lang: str | None = None,
    attributes: RawAttributes | None = None,
) -> None:
    """Write the workbook to a path or a binary stream such as BytesIO.

    `attributes` says which background attributes the raw rows carry (every one if None)."""
    labels = staff_texts(lang or results.lang)
    workbook = Workbook()
    summary = workbook.active
    assert summary is not None
    summary.title = sheet_title(labels["summary"])
    _summary(summary, results, labels)
    for breakdown in results.breakdowns:
        sheet = workbook.create_sheet(
            sheet_title(labels.get(breakdown.dimension, breakdown.dimension))
        )
        _breakdown(sheet, results, breakdown.dimension, labels)
    if records is not None:
        attrs = attributes or all_attributes()
        sheet = workbook.create_sheet(sheet_title(labels["answers"]))
        _append(sheet, header(attrs.included))
        for row in answer_rows(
            survey, records, lang=lang or results.lang, attributes=attrs.included
        ):
            _append(sheet, row)
        _finish(sheet)
        about = workbook.create_sheet(sheet_title(labels["about"]))
        _append(about, [labels["about"]])
        for line in (labels["about_rows"], *attrs.notes(lang or results.lang)):
            _append(about, [line])
        _finish(about, wrap_first=True)
    workbook.save(target)


def _append(sheet: Worksheet, values: Iterable[object]) -> None:
    """The one way a row gets into a sheet: every cell escaped."""
    sheet.append(safe_row(values))


def _summary(sheet: Worksheet, results: Results, labels: Mapping[str, str]) -> None:
    _append(
        sheet,
        [
            labels["question"],
            labels["row"],
            labels["count"],
            labels["share"],
            labels["share_positive"],
            labels["mean"],
            labels["median"],
        ],
    )
    p = results.participation
    _append(sheet, [labels["participation"]])
    sheet.cell(sheet.max_row, 1).font = Font(bold=True)
    for name in ("invited", "started", "completed", "opted_out"):
        _row(sheet, ["", labels[name], getattr(p, name)])
    _row(sheet, ["", labels["response_rate"], None, p.response_rate])
    _append(sheet, [])
    for q in results.questions:
        _row(
            sheet,
            [q.label, labels["n"], q.n, None, q.share_positive, q.mean, q.median],
            decimal_columns=(6, 7),
        )
        sheet.cell(sheet.max_row, 1).font = Font(bold=True)
        for count in q.counts:
            _row(sheet, ["", count.label, count.count, count.share])
    _append(sheet, [])
    _append(sheet, [note(results, labels)])
    sheet.cell(sheet.max_row, 1).font = Font(italic=True)
    _finish(sheet, wrap_first=True)


def _breakdown(
    sheet: Worksheet, results: Results, dimension: str, labels: Mapping[str, str]
) -> None:
    breakdown = results.breakdown(dimension)
    assert breakdown is not None
    groups = breakdown.groups
    _append(
        sheet, [labels["question"], labels["figure"], labels["total"], *(g.label for g in groups)]
    )
    for qi, question_id in enumerate(breakdown.question_ids):
        q = results.question(question_id)
        assert q is not None
        columns: list[QuestionFigures] = [q, *(g.questions[qi] for g in groups)]
        _row(sheet, [q.label, labels["n"], *(c.n for c in columns)])
        sheet.cell(sheet.max_row, 1).font = Font(bold=True)
        for ci, count in enumerate(q.counts):
            _row(
                sheet,
                [
                    "",
                    f"{count.label} ({labels['share'].lower()})",
                    *(c.counts[ci].share for c in columns),
                ],
            )
        if q.share_positive.value is not None or q.share_positive.suppressed:
            _row(sheet, ["", labels["share_positive"], *(c.share_positive for c in columns)])
        if q.mean.value is not None or q.mean.suppressed:
            _row(sheet, ["", labels["mean"], *(c.mean for c in columns)], number_format=_DECIMAL)
    _append(sheet, [])
    _append(sheet, [note(results, labels)])
    sheet.cell(sheet.max_row, 1).font = Font(italic=True)
    _finish(sheet, wrap_first=True)


def _row(
    sheet: Worksheet,
    values: Sequence[object],
    *,
    number_format: str = _PERCENT,
    decimal_columns: Sequence[int] = (),
) -> None:
    """Append a row; Figures become numbers, "–" when withheld, blank when not applicable.

    Floats get `number_format` (shares are fractions shown as %), except in `decimal_columns`
    (1-based), which hold means and medians."""
    cells: list[object] = []
    for value in values:
        if isinstance(value, Figure):
            cells.append(SUPPRESSED_MARK if value.suppressed else value.value)
        else:
            cells.append(value)
    _append(sheet, cells)
    row = sheet.max_row
    for col, value in enumerate(cells, start=1):
        cell = sheet.cell(row, col)
        if value == SUPPRESSED_MARK:
            cell.alignment = Alignment(horizontal="right")
        elif isinstance(value, float):
            cell.number_format = _DECIMAL if col in decimal_columns else number_format


def _finish(sheet: Worksheet, *, wrap_first: bool = False) -> None:
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    widths: dict[int, int] = {}
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value is None:
                continue
            text = str(cell.value)
            if wrap_first and cell.column == 1 and len(text) > _MAX_WIDTH and cell.row > 1:
                # Long notes and question texts wrap instead of widening column A.
                cell.alignment = Alignment(wrap_text=True, vertical="top")
                continue
            widths[cell.column] = max(widths.get(cell.column, 0), len(text))
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(width + 2, _MAX_WIDTH)
