from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.results.aggregate import ResponseRecord
from bot.results.floip import (
    FIELDS,
    api_package_document,
    api_packages_document,
    api_responses_document,
    iso639_3,
    package_descriptor,
    page_rows,
    response_rows,
    write_package,
)
from flows.model import Survey
from tests.results.conftest import record

PACKAGE_ID = "0c364ee1-0305-42ad-9fc9-2ec5a80c55fa"
CREATED = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MODIFIED = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)


def records() -> list[ResponseRecord]:
    return [
        record(0, {"bemotande": "ja_helt", "stod": ["samtal"], "nojd": 4, "besok": 2}),
        record(1, {"bemotande": None, "datum": "2025-02-01", "ovrigt": "mejla a@b.se"}),
    ]


def test_descriptor_follows_the_spec(survey: Survey) -> None:
    d = package_descriptor(
        survey, PACKAGE_ID, CREATED, MODIFIED, "sv", responses_path="x-responses.json"
    )
    assert d["profile"] == "flow-results-package"
    assert d["flow_results_specification_version"] == "1.0.0-rc1"
    assert d["id"] == PACKAGE_ID
    assert d["name"] == "uppfoljning-v2"
    assert d["title"] == "Vad tycker du?"
    assert d["created"] == "2025-03-01 08:00:00+00:00"
    assert d["modified"] == "2025-03-02 09:30:00+00:00"
    (resource,) = d["resources"]
    assert resource["path"] == "x-responses.json" and resource["access_method"] == "file"
    schema = resource["schema"]
    assert schema["language"] == "swe"
    assert [f["name"] for f in schema["fields"]] == [
        "timestamp",
        "row_id",
        "contact_id",
        "session_id",
        "question_id",
        "response",
        "response_metadata",
    ]
    questions = schema["questions"]
    assert "tack" not in questions
    assert questions["bemotande"] == {
        "type": "select_one",
        "label": "Blir du bemött med respekt?",
        "type_options": {"choices": ["ja_helt", "ja_delvis", "nej", "vet_ej"]},
    }
    assert questions["stod"]["type"] == "select_many"
    assert questions["nojd"] == {
        "type": "numeric",
        "label": "Hur nöjd?",
        "type_options": {"range": [1, 5]},
    }
    assert questions["besok"]["type_options"] == {}
    assert questions["datum"]["type"] == "date"
    assert questions["ovrigt"]["type"] == "text"


def test_descriptor_needs_exactly_one_access_method(survey: Survey) -> None:
    with pytest.raises(ValueError):
        package_descriptor(survey, PACKAGE_ID, CREATED, MODIFIED, "sv")
    d = package_descriptor(survey, PACKAGE_ID, CREATED, MODIFIED, "en", api_data_url="https://x/r")
    assert d["resources"][0]["access_method"] == "api"
    assert d["resources"][0]["api-data-url"] == "https://x/r"
    assert d["title"] == "What do you think?"
    assert d["resources"][0]["schema"]["language"] == "eng"


@pytest.mark.parametrize(
    ("lang", "code"), [("sv", "swe"), ("sv-x-lattlast", "swe"), ("ar", "ara"), ("xx", "und")]
)
def test_iso639_3(lang: str, code: str) -> None:
    assert iso639_3(lang) == code


def test_response_rows(survey: Survey) -> None:
    rows = list(response_rows(survey, records()))
    assert rows[0] == [
        "2025-03-03T00:00:00+00:00",
        "resp-000/bemotande",
        "resp-000",
        "resp-000",
        "bemotande",
        "ja_helt",
        {},
    ]
    assert [r[4] for r in rows] == ["bemotande", "stod", "nojd", "besok", "datum", "ovrigt"]
    assert rows[1][5] == ["samtal"]
    assert rows[-1][5] == "mejla [e-post]"
    assert all(len(r) == len(FIELDS) for r in rows)
    assert len({r[1] for r in rows}) == len(rows)
    assert [r[4] for r in response_rows(survey, records(), include_open=False)][-1] == "datum"


def test_write_package(tmp_path: Path, survey: Survey) -> None:
    path = write_package(
        tmp_path / "pkg",
        survey,
        records(),
        package_id=PACKAGE_ID,
        created=CREATED,
        modified=MODIFIED,
        lang="sv",
    )
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    data_path = path.parent / descriptor["resources"][0]["path"]
    rows = json.loads(data_path.read_text(encoding="utf-8"))
    assert rows == json.loads(json.dumps(list(response_rows(survey, records()))))


def numbered_rows() -> list[list[object]]:
    return [
        [datetime(2025, 3, day, tzinfo=UTC).isoformat(), f"r{day:02d}", "c", "s", "q", day, {}]
        for day in (5, 1, 4, 2, 3, 6, 7)
    ]


@pytest.mark.parametrize(
    ("kwargs", "ids", "next_cursor", "previous_cursor"),
    [
        ({"page_size": 3}, ["r01", "r02", "r03"], "r03", None),
        ({"page_size": 3, "after_cursor": "r03"}, ["r04", "r05", "r06"], "r06", "r04"),
        ({"page_size": 3, "after_cursor": "r06"}, ["r07"], None, "r07"),
        ({"page_size": 3, "before_cursor": "r04"}, ["r01", "r02", "r03"], "r03", None),
        ({"page_size": 2, "before_cursor": "r06"}, ["r04", "r05"], "r05", "r04"),
        (
            {
                "page_size": 10,
                "start_timestamp": datetime(2025, 3, 2, tzinfo=UTC),
                "end_timestamp": datetime(2025, 3, 4, tzinfo=UTC),
            },
            ["r03", "r04"],
            None,
            None,
        ),
        ({"page_size": 3, "after_cursor": "r07"}, [], None, None),
    ],
)
def test_page_rows(
    kwargs: dict[str, object], ids: list[str], next_cursor: str | None, previous_cursor: str | None
) -> None:
    page = page_rows(numbered_rows(), **kwargs)  # type: ignore[arg-type]
    assert [r[1] for r in page.rows] == ids
    assert page.next_cursor == next_cursor
    assert page.previous_cursor == previous_cursor


def test_paging_through_everything_visits_each_row_once() -> None:
    seen: list[object] = []
    cursor = None
    while True:
        page = page_rows(numbered_rows(), after_cursor=cursor, page_size=2)
        seen += [r[1] for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(r[1] for r in numbered_rows())  # type: ignore[type-var]


def test_api_responses_document() -> None:
    page = page_rows(numbered_rows(), after_cursor="r02", page_size=2)
    doc = api_responses_document(
        PACKAGE_ID,
        page,
        responses_url=f"https://x/flow-results/packages/{PACKAGE_ID}/responses",
        descriptor_url=f"https://x/flow-results/packages/{PACKAGE_ID}",
    )
    data = doc["data"]
    assert data["type"] == "flow-results-data" and data["id"] == PACKAGE_ID
    assert [r[1] for r in data["attributes"]["responses"]] == ["r03", "r04"]
    assert data["relationships"]["descriptor"]["links"]["self"].endswith(PACKAGE_ID)
    links = doc["links"]
    assert data["relationships"]["links"] == links
    assert parse_qs(urlsplit(links["self"]).query) == {
        "page[size]": ["2"],
        "page[afterCursor]": ["r02"],
    }
    assert "page%5BafterCursor%5D=r04" in links["next"]
    assert parse_qs(urlsplit(links["previous"]).query)["page[beforeCursor]"] == ["r03"]
    json.dumps(doc)


def test_api_package_documents(survey: Survey) -> None:
    d = package_descriptor(survey, PACKAGE_ID, CREATED, MODIFIED, "sv", api_data_url="https://x/r")
    one = api_package_document(d, self_url=f"https://x/flow-results/packages/{PACKAGE_ID}")
    assert one["data"]["type"] == "packages" and one["data"]["id"] == PACKAGE_ID
    assert one["data"]["attributes"]["profile"] == "flow-results-package"
    assert one["data"]["relationships"]["responses"]["links"]["related"] == "https://x/r"
    listing = api_packages_document([d], self_url="https://x/flow-results/packages")
    assert listing["links"] == {
        "self": "https://x/flow-results/packages",
        "next": None,
        "previous": None,
    }
    assert listing["data"] == [
        {
            "type": "packages",
            "id": PACKAGE_ID,
            "attributes": {
                "title": "Vad tycker du?",
                "name": "uppfoljning-v2",
                "created": "2025-03-01 08:00:00+00:00",
                "modified": "2025-03-02 09:30:00+00:00",
            },
        }
    ]


def test_naive_datetimes_are_refused(survey: Survey) -> None:
    with pytest.raises(ValueError):
        package_descriptor(
            survey, PACKAGE_ID, datetime(2025, 1, 1), MODIFIED, "sv", responses_path="r.json"
        )
    with pytest.raises(ValueError):
        page_rows([], start_timestamp=datetime(2025, 1, 1), page_size=1)
