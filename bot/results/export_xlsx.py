"""Results as an Excel workbook: summary, one sheet per breakdown, and the raw answers.

Sheets: "Sammanfattning" (participation and every question with its choices), one sheet per
breakdown dimension (groups as columns), and "Svar" (one row per answer, pseudonymous, free text
masked) when records are given. Withheld figures are shown as "–" and a note row states the k
rule. Every sheet has a bold, frozen header row and set column widths.
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
from bot.results.export_csv import ATTRIBUTE_COLUMNS, answer_rows, header
from flows.model import Survey, base_language

__all__ = ["SUPPRESSED_MARK", "sheet_title", "write_results_xlsx"]

SUPPRESSED_MARK: Final = "–"
_PERCENT: Final = "0%"
_DECIMAL: Final = "0.0"
_MAX_WIDTH: Final = 60

_LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    "sv": {
        "summary": "Sammanfattning",
        "answers": "Svar",
        "question": "Fråga",
        "row": "Svarsalternativ",
        "count": "Antal",
        "share": "Andel",
        "share_positive": "Andel positiva",
        "mean": "Medelvärde",
        "median": "Median",
        "participation": "Deltagande",
        "invited": "Inbjudna",
        "started": "Påbörjade",
        "completed": "Slutförda",
        "opted_out": "Avböjda",
        "response_rate": "Svarsfrekvens",
        "n": "Antal svar",
        "total": "Totalt",
        "figure": "Uppgift",
        "note": (
            "– = uppgiften visas inte: den bygger på färre än {k} personer, eller skulle kunna "
            "räknas fram ur andra siffror i tabellen. Ingen siffra bygger på färre än {k} personer."
        ),
        "gender": "Kön",
        "target_group": "Målgrupp",
        "contact_length": "Kontakttid",
        "unit": "Enhet",
        "age": "Ålder",
    },
    "en": {
        "summary": "Summary",
        "answers": "Answers",
        "question": "Question",
        "row": "Answer option",
        "count": "Count",
        "share": "Share",
        "share_positive": "Share positive",
        "mean": "Mean",
        "median": "Median",
        "participation": "Participation",
        "invited": "Invited",
        "started": "Started",
        "completed": "Completed",
        "opted_out": "Opted out",
        "response_rate": "Response rate",
        "n": "Answers",
        "total": "Total",
        "figure": "Figure",
        "note": (
            "– = not shown: it rests on fewer than {k} people, or could be worked out from other "
            "figures in the table. No figure rests on fewer than {k} people."
        ),
        "gender": "Gender",
        "target_group": "Target group",
        "contact_length": "Length of contact",
        "unit": "Unit",
        "age": "Age",
    },
}

_FORBIDDEN_IN_TITLE: Final = str.maketrans({c: " " for c in "[]:*?/\\"})


def sheet_title(text: str) -> str:
    """A valid Excel sheet name: at most 31 characters, none of []:*?/\\."""
    return text.translate(_FORBIDDEN_IN_TITLE).strip()[:31] or "Blad"


def write_results_xlsx(
    target: Path | IO[bytes],
    survey: Survey,
    results: Results,
    *,
    records: Iterable[ResponseRecord] | None = None,
    lang: str | None = None,
) -> None:
    """Write the workbook to a path or a binary stream such as BytesIO."""
    labels = _LABELS.get(base_language(lang or results.lang), _LABELS["en"])
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
        sheet = workbook.create_sheet(sheet_title(labels["answers"]))
        sheet.append(header(ATTRIBUTE_COLUMNS))
        for row in answer_rows(survey, records, lang=lang or results.lang):
            sheet.append(row)
        _finish(sheet)
    workbook.save(target)


def _summary(sheet: Worksheet, results: Results, labels: Mapping[str, str]) -> None:
    sheet.append(
        [
            labels["question"],
            labels["row"],
            labels["count"],
            labels["share"],
            labels["share_positive"],
            labels["mean"],
            labels["median"],
        ]
    )
    p = results.participation
    sheet.append([labels["participation"]])
    sheet.cell(sheet.max_row, 1).font = Font(bold=True)
    for name in ("invited", "started", "completed", "opted_out"):
        _row(sheet, ["", labels[name], getattr(p, name)])
    _row(sheet, ["", labels["response_rate"], None, p.response_rate])
    sheet.append([])
    for q in results.questions:
        _row(
            sheet,
            [q.label, labels["n"], q.n, None, q.share_positive, q.mean, q.median],
            decimal_columns=(6, 7),
        )
        sheet.cell(sheet.max_row, 1).font = Font(bold=True)
        for count in q.counts:
            _row(sheet, ["", count.label, count.count, count.share])
    sheet.append([])
    sheet.append([labels["note"].format(k=results.k)])
    sheet.cell(sheet.max_row, 1).font = Font(italic=True)
    _finish(sheet, wrap_first=True)


def _breakdown(
    sheet: Worksheet, results: Results, dimension: str, labels: Mapping[str, str]
) -> None:
    breakdown = results.breakdown(dimension)
    assert breakdown is not None
    groups = breakdown.groups
    sheet.append(
        [labels["question"], labels["figure"], labels["total"], *(g.label for g in groups)]
    )
    for qi, q in enumerate(results.questions):
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
    sheet.append([])
    sheet.append([labels["note"].format(k=results.k)])
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
    sheet.append(cells)
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
