"""FLOIP Flow Results packages (specification 1.0.0-rc1) and the Flow Results API documents.

A package is a Data Package descriptor (`datapackage.json`, `profile: "flow-results-package"`)
with exactly one resource: the responses as a JSON "row array", seven columns per row:
timestamp, row_id, contact_id, session_id, question_id, response, response_metadata. The
specification forbids inline data, so the resource points at a file (`path`, access_method
"file") or at the API's responses URL (`api-data-url`, access_method "api").

Our mapping: contact_id and session_id are both the respondent id, which is random and, for
anonymous surveys, unlinked from any contact (one respondent is one run through one survey).
row_id is "<respondent id>/<question id>": unique in the package and stable across exports.
Timestamps are the day answered at 00:00 UTC, because answers are only kept at day precision.
Question types: select_one, select_many and numeric map to themselves, scale to numeric with
its range, date to date, open to text (masked, see `redact`); message questions hold no answers.
Background attributes go in each row's response_metadata only when `background.raw_attributes`
lets them (every combination present holds k people); the descriptor of a written package says
which are there and which were left out (`background_attributes`, `description`), and an API
page says so in its `meta`.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from bot.results.aggregate import ResponseRecord
from bot.results.background import RawAttributes
from bot.results.redact import mask_pii
from flows.model import Question, Survey, base_language, localize
from flows.types import Figures, kind_of

__all__ = [
    "FIELDS",
    "SPEC_VERSION",
    "Page",
    "api_package_document",
    "api_packages_document",
    "api_responses_document",
    "iso639_3",
    "package_descriptor",
    "package_name",
    "page_rows",
    "response_rows",
    "write_package",
]

SPEC_VERSION: Final = "1.0.0-rc1"
PROFILE: Final = "flow-results-package"

FIELDS: Final = (
    {"name": "timestamp", "title": "Timestamp", "type": "datetime"},
    {"name": "row_id", "title": "Row ID", "type": "string"},
    {"name": "contact_id", "title": "Contact ID", "type": "string"},
    {"name": "session_id", "title": "Session ID", "type": "string"},
    {"name": "question_id", "title": "Question ID", "type": "string"},
    {"name": "response", "title": "Response", "type": "any"},
    {"name": "response_metadata", "title": "Response Metadata", "type": "object"},
)

# ISO 639-1 -> ISO 639-3 for the languages Swedish municipalities most often serve.
_ISO639_3: Final = {
    "sv": "swe",
    "en": "eng",
    "ar": "ara",
    "fi": "fin",
    "so": "som",
    "fa": "fas",
    "ti": "tir",
    "uk": "ukr",
    "ru": "rus",
    "pl": "pol",
    "tr": "tur",
    "ku": "kur",
    "bs": "bos",
    "hr": "hrv",
    "sr": "srp",
    "es": "spa",
    "de": "deu",
    "fr": "fra",
    "se": "sme",
    "yi": "yid",
    "ps": "pus",
    "am": "amh",
}


def iso639_3(lang: str) -> str:
    """The ISO 639-3 code FLOIP wants for a language tag ("sv-x-lattlast" -> "swe")."""
    base = base_language(lang).lower()
    return _ISO639_3.get(base, base if len(base) == 3 else "und")


def package_name(survey: Survey) -> str:
    """A url-usable lower-case name: letters, digits, ".", "_" and "-" only."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", f"{survey.id}-v{survey.version}".lower()).strip("-")
    return slug or "survey"


def _timestamp(moment: datetime) -> str:
    """RFC 3339 with an explicit +00:00 offset (the spec asks for that rather than Z)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to a FLOIP timestamp")
    return moment.astimezone(UTC).isoformat()


def _question_schema(survey: Survey, question: Question, lang: str) -> dict[str, Any]:
    type_options: dict[str, Any] = {}
    kind = kind_of(question)
    if kind.choices:
        type_options["choices"] = [c.id for c in question.choices]
    elif kind.figures is Figures.NUMBER and (
        kind.each_value or (question.min is not None and question.max is not None)
    ):
        type_options["range"] = list(question.scale_range)
    return {
        "type": kind.floip_type,
        "label": localize(question.text, lang, survey.default_language),
        "type_options": type_options,
    }


def package_descriptor(
    survey: Survey,
    package_id: str,
    created: datetime,
    modified: datetime,
    lang: str,
    *,
    responses_path: str | None = None,
    api_data_url: str | None = None,
    attributes: RawAttributes | None = None,
) -> dict[str, Any]:
    """The datapackage.json descriptor: file access when `responses_path` is given, else API.

    With `attributes`, it says which background attributes the rows' metadata holds."""
    if (responses_path is None) == (api_data_url is None):
        raise ValueError("give exactly one of responses_path and api_data_url")
    name = package_name(survey)
    resource: dict[str, Any] = {
        "name": f"{name}-responses",
        "mediatype": "application/json",
        "encoding": "utf-8",
    }
    if responses_path is not None:
        resource.update(path=responses_path, access_method="file")
    else:
        resource.update({"path": None, "api-data-url": api_data_url, "access_method": "api"})
    resource["schema"] = {
        "language": iso639_3(lang),
        "fields": [dict(f) for f in FIELDS],
        "questions": {
            q.id: _question_schema(survey, q, lang)
            for q in survey.questions
            if kind_of(q).floip_type
        },
    }
    descriptor: dict[str, Any] = {
        "profile": PROFILE,
        "flow_results_specification_version": SPEC_VERSION,
        "id": package_id,
        "name": name,
        "title": localize(survey.title, lang, survey.default_language),
        "created": _timestamp(created).replace("T", " "),
        "modified": _timestamp(modified).replace("T", " "),
        "resources": [resource],
    }
    if attributes is not None:
        descriptor["description"] = " ".join(attributes.notes(lang))
        descriptor["background_attributes"] = attributes.to_json()
    return descriptor


def response_rows(
    survey: Survey,
    records: Iterable[ResponseRecord],
    *,
    include_open: bool = True,
    attributes: Sequence[str] = (),
) -> Iterator[list[Any]]:
    """Flow Results rows for every answered question, respondent by respondent; the
    `attributes` named (see `background`) go in each row's response_metadata."""
    questions = [
        q
        for q in survey.questions
        if kind_of(q).floip_type and (include_open or kind_of(q).figures is not Figures.TEXT)
    ]
    for record in records:
        metadata = {name: record.attributes.get(name) for name in attributes}
        for q in questions:
            value = record.answers.get(q.id)
            if value is None:
                continue
            day: date = record.answered_on.get(q.id, record.started_on)
            response: Any = value
            if kind_of(q).figures is Figures.TEXT:
                response = mask_pii(str(value))
            elif isinstance(value, list):
                response = list(value)
            yield [
                _timestamp(datetime.combine(day, time(0), UTC)),
                f"{record.respondent_id}/{q.id}",
                record.respondent_id,
                record.respondent_id,
                q.id,
                response,
                dict(metadata),
            ]


def write_package(
    folder: Path,
    survey: Survey,
    records: Iterable[ResponseRecord],
    *,
    package_id: str,
    created: datetime,
    modified: datetime,
    lang: str,
    include_open: bool = True,
    attributes: RawAttributes | None = None,
) -> Path:
    """Write datapackage.json and the responses file into `folder`; returns the descriptor path.

    `attributes`: the background attributes the rows may carry (none if None)."""
    folder.mkdir(parents=True, exist_ok=True)
    responses_name = f"{package_name(survey)}-responses.json"
    attrs = attributes or RawAttributes(())
    descriptor = package_descriptor(
        survey, package_id, created, modified, lang, responses_path=responses_name, attributes=attrs
    )
    rows = response_rows(survey, records, include_open=include_open, attributes=attrs.included)
    with (folder / responses_name).open("w", encoding="utf-8") as out:
        out.write("[")
        for i, row in enumerate(rows):
            out.write(",\n" if i else "\n")
            out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n]\n")
    path = folder / "datapackage.json"
    path.write_text(json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


# --- API paging ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of responses and the cursors around it (row ids), with the request it answers."""

    rows: tuple[list[Any], ...]
    next_cursor: str | None
    previous_cursor: str | None
    page_size: int
    after_cursor: str | None = None
    before_cursor: str | None = None
    start_timestamp: datetime | None = None
    end_timestamp: datetime | None = None


def page_rows(
    rows: Iterable[Sequence[Any]],
    *,
    after_cursor: str | None = None,
    before_cursor: str | None = None,
    start_timestamp: datetime | None = None,
    end_timestamp: datetime | None = None,
    page_size: int,
) -> Page:
    """Filter and page rows as the Flow Results API does.

    Rows are ordered by row id. `start_timestamp` is exclusive and `end_timestamp` inclusive, as
    in the spec's `filter[start-timestamp]` / `filter[end-timestamp]`. `after_cursor` pages forward
    (`page[afterCursor]`), `before_cursor` backward (`page[beforeCursor]`)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    if after_cursor is not None and before_cursor is not None:
        raise ValueError("give at most one of after_cursor and before_cursor")
    for bound in (start_timestamp, end_timestamp):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("naive datetime given as a timestamp filter")
    selected = []
    for row in rows:
        if start_timestamp is not None or end_timestamp is not None:
            moment = datetime.fromisoformat(str(row[0]))
            if start_timestamp is not None and moment <= start_timestamp:
                continue
            if end_timestamp is not None and moment > end_timestamp:
                continue
        selected.append(list(row))
    selected.sort(key=lambda r: str(r[1]))
    ids = [str(r[1]) for r in selected]
    if before_cursor is not None:
        end = bisect_left(ids, before_cursor)
        begin = max(0, end - page_size)
    else:
        begin = bisect_right(ids, after_cursor) if after_cursor is not None else 0
        end = min(len(selected), begin + page_size)
    page = selected[begin:end]
    return Page(
        rows=tuple(page),
        next_cursor=ids[end - 1] if page and end < len(selected) else None,
        previous_cursor=ids[begin] if page and begin > 0 else None,
        page_size=page_size,
        after_cursor=after_cursor,
        before_cursor=before_cursor,
        start_timestamp=start_timestamp,
        end_timestamp=end_timestamp,
    )


def _page_url(responses_url: str, page: Page, **cursor: str) -> str:
    query: dict[str, str] = {"page[size]": str(page.page_size)}
    if page.start_timestamp is not None:
        query["filter[start-timestamp]"] = _timestamp(page.start_timestamp)
    if page.end_timestamp is not None:
        query["filter[end-timestamp]"] = _timestamp(page.end_timestamp)
    query.update(cursor)
    return f"{responses_url}?{urlencode(query)}"


def api_responses_document(
    package_id: str,
    page: Page,
    *,
    responses_url: str,
    descriptor_url: str,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """GET /flow-results/packages/{id}/responses: the page as a `flow-results-data` document.

    The spec's example puts the paging links under `data.relationships.links`; JSON:API puts
    them in the top-level `links`. Both are given, so clients written either way can page."""
    current: dict[str, str] = {}
    if page.after_cursor is not None:
        current["page[afterCursor]"] = page.after_cursor
    if page.before_cursor is not None:
        current["page[beforeCursor]"] = page.before_cursor
    links = {
        "self": _page_url(responses_url, page, **current),
        "next": _page_url(responses_url, page, **{"page[afterCursor]": page.next_cursor})
        if page.next_cursor is not None
        else None,
        "previous": _page_url(responses_url, page, **{"page[beforeCursor]": page.previous_cursor})
        if page.previous_cursor is not None
        else None,
    }
    document: dict[str, Any] = {
        "data": {
            "type": "flow-results-data",
            "id": package_id,
            "attributes": {"responses": [list(row) for row in page.rows]},
            "relationships": {
                "descriptor": {"links": {"self": descriptor_url}},
                "links": dict(links),
            },
        },
        "links": links,
    }
    if meta is not None:
        document["meta"] = dict(meta)
    return document


def api_package_document(descriptor: Mapping[str, Any], *, self_url: str) -> dict[str, Any]:
    """GET /flow-results/packages/{id}: the descriptor (with access_method "api") as a resource."""
    resources = descriptor.get("resources") or [{}]
    related = resources[0].get("api-data-url")
    return {
        "links": {"self": self_url},
        "data": {
            "type": "packages",
            "id": descriptor["id"],
            "attributes": dict(descriptor),
            "relationships": {"responses": {"links": {"related": related}}},
        },
    }


def api_packages_document(
    descriptors: Iterable[Mapping[str, Any]], *, self_url: str
) -> dict[str, Any]:
    """GET /flow-results/packages: every package with title, name, created and modified."""
    return {
        "links": {"self": self_url, "next": None, "previous": None},
        "data": [
            {
                "type": "packages",
                "id": d["id"],
                "attributes": {
                    "title": d.get("title"),
                    "name": d.get("name"),
                    "created": d.get("created"),
                    "modified": d.get("modified"),
                },
            }
            for d in descriptors
        ],
    }
