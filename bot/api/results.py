"""Results over HTTP: the staff API (`/api/v1/campaigns/{id}/results`, `.../feedback`) and the
FLOIP Flow Results API (`/flow-results/packages...`), both behind the staff bearer token.

Flow Results API (specification 1.0.0-rc1, "API" section): `GET /flow-results/packages` lists
packages, `GET /flow-results/packages/{id}` gives one descriptor, and
`GET /flow-results/packages/{id}/responses` pages the responses with `filter[start-timestamp]`
(exclusive), `filter[end-timestamp]` (inclusive), `page[size]`, `page[afterCursor]` and
`page[beforeCursor]`. Documents are JSON:API (`application/vnd.api+json`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.api.auth import json_body, json_error, staff_actor
from bot.results import feedback, floip
from bot.results.service import (
    CampaignNotFound,
    NotFinal,
    ResultsError,
    campaign_results,
    export_bytes,
    find_package,
    list_packages,
    package_descriptor,
    package_rows,
    parse_breakdowns,
)
from bot.web.inputs import db_id
from storage import repo_audit

if TYPE_CHECKING:
    from bot.runtime import Runtime

JSONAPI: Final = "application/vnd.api+json"
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 10_000
_OFFSET_SPACE: Final = re.compile(r" (\d{2}:?\d{2})$")


def _runtime(request: web.Request) -> tuple[Runtime, str]:
    from bot.app import RUNTIME

    runtime = request.app[RUNTIME]
    return runtime, staff_actor(request, runtime.settings.admin.api_tokens)


def _campaign_id(request: web.Request) -> int | None:
    return db_id(request.match_info["id"])


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


# -- staff API --------------------------------------------------------------------------------


async def get_results(request: web.Request) -> web.StreamResponse:
    runtime, actor = _runtime(request)
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return json_error(404, "no such campaign")
    query = request.query
    fmt = query.get("format", "json")
    lang = query.get("lang", "sv")
    partial = _flag(query.get("partial"))
    try:
        breakdowns = parse_breakdowns(query.get("breakdown"))
        if fmt == "json":
            open_texts = _flag(query.get("open"))
            data = await campaign_results(
                runtime,
                campaign_id,
                lang=lang,
                breakdowns=breakdowns,
                with_records=open_texts,
            )
            if open_texts:
                async with runtime.db.transaction() as s:
                    await repo_audit.log(
                        s,
                        actor,
                        "results.open_answers",
                        f"campaign:{campaign_id}",
                        {"respondents": len(data.records or ())},
                        at=runtime.clock.now(),
                    )
            return web.json_response(data.to_json(open_texts=open_texts))
        body, content_type, name = await export_bytes(
            runtime,
            campaign_id,
            fmt,
            actor=actor,
            lang=lang,
            breakdowns=breakdowns,
            partial=partial,
        )
    except CampaignNotFound as e:
        return json_error(404, str(e))
    except NotFinal as e:
        return json_error(409, str(e))
    except ResultsError as e:
        return json_error(400, str(e))
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _feedback_request(body: Any) -> tuple[dict[str, str] | None, str | None, bool | None]:
    if not isinstance(body, dict):
        raise ResultsError("expected a JSON object")
    unknown = set(body) - {"text", "plan_ref", "hold"}
    if unknown:
        raise ResultsError(f"unknown field {', '.join(sorted(unknown))}")
    text = body.get("text")
    if text is not None and (
        not isinstance(text, dict) or not all(isinstance(v, str) for v in text.values())
    ):
        raise ResultsError('text must be an object of texts per language, e.g. {"sv": "..."}')
    plan_ref = body.get("plan_ref")
    if plan_ref is not None and not isinstance(plan_ref, str):
        raise ResultsError("plan_ref must be a text")
    hold = body.get("hold")
    if hold is not None and not isinstance(hold, bool):
        raise ResultsError("hold must be true or false")
    return text, plan_ref, hold


async def put_feedback(request: web.Request) -> web.Response:
    runtime, actor = _runtime(request)
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return json_error(404, "no such campaign")
    body = await json_body(request)
    try:
        text, plan_ref, hold = _feedback_request(body)
        campaign = await feedback.set_feedback(
            runtime, campaign_id, text=text, plan_ref=plan_ref, hold=hold, actor=actor
        )
    except CampaignNotFound as e:
        return json_error(404, str(e))
    except ResultsError as e:
        return json_error(400, str(e))
    return web.json_response(
        {
            "id": campaign.id,
            "feedback_text": dict(campaign.feedback_text or {}),
            "plan_ref": campaign.plan_ref,
            "feedback_status": campaign.feedback_status,
            "feedback_to": campaign.feedback_to,
        }
    )


def add_api_routes(api: web.Application) -> None:
    """Staff routes, mounted under /api/v1."""
    api.router.add_get("/campaigns/{id}/results", get_results)
    api.router.add_put("/campaigns/{id}/feedback", put_feedback)


# -- FLOIP Flow Results API -------------------------------------------------------------------


def _jsonapi(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, content_type=JSONAPI)


def _jsonapi_error(status: int, title: str, detail: str = "") -> web.Response:
    error = {"status": str(status), "title": title}
    if detail:
        error["detail"] = detail
    return _jsonapi({"errors": [error]}, status)


def _base(runtime: Runtime) -> str:
    return f"{runtime.settings.server.public_url}/flow-results/packages"


def _timestamp(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    # A "+" in a query string that was not percent-encoded arrives as a space.
    text = _OFFSET_SPACE.sub(r"+\1", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} needs a UTC offset, e.g. 2026-03-01T00:00:00+00:00")
    return moment


async def floip_packages(request: web.Request) -> web.Response:
    runtime, _ = _runtime(request)
    base = _base(runtime)
    descriptors = [
        package_descriptor(ref, api_data_url=f"{base}/{ref.id}/responses")
        for ref in await list_packages(runtime)
    ]
    return _jsonapi(floip.api_packages_document(descriptors, self_url=base))


async def floip_package(request: web.Request) -> web.Response:
    runtime, _ = _runtime(request)
    ref = await find_package(runtime, request.match_info["id"])
    if ref is None:
        return _jsonapi_error(404, "no such package")
    base = _base(runtime)
    descriptor = package_descriptor(ref, api_data_url=f"{base}/{ref.id}/responses")
    return _jsonapi(floip.api_package_document(descriptor, self_url=f"{base}/{ref.id}"))


async def floip_responses(request: web.Request) -> web.Response:
    runtime, actor = _runtime(request)
    ref = await find_package(runtime, request.match_info["id"])
    if ref is None:
        return _jsonapi_error(404, "no such package")
    query = request.query
    try:
        size_text = query.get("page[size]", str(DEFAULT_PAGE_SIZE))
        size = db_id(size_text)
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page[size] must be a whole number from 1 to {MAX_PAGE_SIZE}")
        after, before = query.get("page[afterCursor]"), query.get("page[beforeCursor]")
        if after is not None and before is not None:
            raise ValueError("give page[afterCursor] or page[beforeCursor], not both")
        start = _timestamp("filter[start-timestamp]", query.get("filter[start-timestamp]"))
        end = _timestamp("filter[end-timestamp]", query.get("filter[end-timestamp]"))
    except ValueError as e:
        return _jsonapi_error(400, "bad request", str(e))
    rows = await package_rows(runtime, ref)
    page = floip.page_rows(
        rows,
        after_cursor=after,
        before_cursor=before,
        start_timestamp=start,
        end_timestamp=end,
        page_size=size,
    )
    async with runtime.db.transaction() as s:
        await repo_audit.log(
            s,
            actor,
            "results.floip_responses",
            f"package:{ref.id}",
            {"campaign_id": ref.campaign_id, "rows": len(page.rows)},
            at=runtime.clock.now(),
        )
    base = _base(runtime)
    return _jsonapi(
        floip.api_responses_document(
            ref.id,
            page,
            responses_url=f"{base}/{ref.id}/responses",
            descriptor_url=f"{base}/{ref.id}",
        )
    )


def add_public_routes(app: web.Application) -> None:
    """Routes on the main app: the FLOIP API (token-protected) and the public results page."""
    from bot.web import results_page

    app.router.add_get("/flow-results/packages", floip_packages)
    app.router.add_get("/flow-results/packages/{id}", floip_package)
    app.router.add_get("/flow-results/packages/{id}/responses", floip_responses)
    results_page.add_routes(app)
