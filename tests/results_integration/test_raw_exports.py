"""Issue 10 item 8: raw exports carry background attributes only when every combination of
them present holds k people; otherwise they are left out, and the export says so."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from openpyxl import load_workbook

from bot.results.service import export_campaign
from bot.runtime import Runtime
from tests.results_integration.conftest import Person, make_campaign

ANSWERS = {"hjalp": "ja", "bemotande": "bra", "ovrigt": "Bra stöd"}


def fifteen() -> list[Person]:
    """The cycle of the issue: 15 people, one of them the only woman in unit syd."""
    return [
        *(Person(answers=ANSWERS, unit="norr", gender="kvinna") for _ in range(7)),
        Person(answers=ANSWERS, unit="syd", gender="kvinna"),
        *(Person(answers=ANSWERS, unit="ost", gender="man") for _ in range(7)),
    ]


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


async def test_unit_is_left_out_and_every_export_says_so(runtime: Runtime, tmp_path: Path) -> None:
    campaign_id = await make_campaign(runtime, fifteen())

    result = await export_campaign(runtime, campaign_id, "csv", tmp_path / "a.csv", actor="t")
    assert result.attributes is not None and result.attributes.left_out == ("unit",)
    rows = csv_rows(tmp_path / "a.csv")
    assert rows[0][0].startswith("# ") and "unit" in rows[0][0] and "5" in rows[0][0]
    assert len(rows[0]) == 1  # one field: the comment holds no comma
    assert "unit" not in rows[1] and "gender" in rows[1]
    assert not any("syd" in cell for row in rows for cell in row)

    await export_campaign(runtime, campaign_id, "xlsx", tmp_path / "a.xlsx", actor="t")
    book = load_workbook(tmp_path / "a.xlsx")
    assert book.sheetnames[-2:] == ["Svar", "Om svaren"]
    assert "unit" not in [c.value for c in book["Svar"][1]]
    about = " ".join(str(r[0]) for r in book["Om svaren"].iter_rows(values_only=True))
    assert "Bakgrundsuppgifter som inte finns med på raderna: unit." in about

    folder = tmp_path / "package"
    await export_campaign(runtime, campaign_id, "flow-results", folder, actor="t")
    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert descriptor["background_attributes"]["left_out"] == ["unit"]
    assert "unit" in descriptor["description"]
    responses = json.loads((folder / descriptor["resources"][0]["path"]).read_text("utf-8"))
    assert {tuple(sorted(r[6])) for r in responses} == {
        ("age_group", "contact_length", "gender", "language", "target_group")
    }


async def test_balanced_groups_keep_every_attribute(runtime: Runtime, tmp_path: Path) -> None:
    persons = [Person(answers=ANSWERS, unit="norr", gender="kvinna") for _ in range(5)]
    persons += [Person(answers=ANSWERS, unit="syd", gender="man") for _ in range(5)]
    campaign_id = await make_campaign(runtime, persons)
    result = await export_campaign(runtime, campaign_id, "csv", tmp_path / "b.csv", actor="t")
    assert result.attributes is not None and result.attributes.left_out == ()
    rows = csv_rows(tmp_path / "b.csv")
    assert rows[0][0] == "respondent" and "unit" in rows[0]
    assert {row[rows[0].index("unit")] for row in rows[1:]} == {"norr", "syd"}
