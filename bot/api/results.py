"""Results over HTTP: the staff API (`/api/v1/campaigns/{id}/results`, `.../feedback`) and the
FLOIP Flow Results API (`/flow-results/packages...`), both behind the staff bearer token.

Flow Results API (specification 1.0.0-rc1, "API" section): `GET /flow-results/packages` lists
packages, `GET /flow-results/packages/{id}` gives one descriptor, and
`GET /flow-results/packages/{id}/responses` pages the responses with `filter[start-timestamp]`
(exclusive), `filter[end-timestamp]` (inclusive), `page[size]`, `page[afterCursor]` and
`page[beforeCursor]`. Documents are JSON:API (`application/vnd.api+json`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.api.auth import json_body, json_error, staff_actor
from bot.results import feedback, floip
from bot.results.service import (
    CampaignNotFound,
    NotFinal,
    ResultsError,
    SurveyNotFound,
    campaign_results,
    export_bytes,
    find_package,
    list_packages,
    load_campaign,
    package_descriptor,
    package_rows,
    parse_breakdowns,
    period,
    survey_results,
)
from bot.runtime import RUNTIME
from bot.web import results_page
from bot.web.inputs import db_id
from flows.durations import format_duration
from storage import repo_audit
from storage.models import Campaign

if TYPE_CHECKING:
    from bot.runtime import Runtime

JSONAPI: Final = "application/vnd.api+json"
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 10_000
_OFFSET_SPACE: Final = re.compile(r" (\d{2}:?\d{2})$")


def _runtime(request: web.Request) -> tuple[Runtime, str]:

    runtime = request.app[RUNTIME]
    return runtime, staff_actor(request, runtime.settings.admin.api_tokens)


def _campaign_id(request: web.Request) -> int | None:
    return db_id(request.match_info["id"])


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


# -- staff API --------------------------------------------------------------------------------


async def get_results(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/campaigns/{id}/results: figures as JSON, or an audited export (?format=)."""
    runtime, actor = _runtime(request)
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return json_error(404, "no such campaign")
    query = request.query
    fmt = query.get("format", "json")
    lang = query.get("lang")
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


def _query_day(name: str, value: str | None) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ResultsError(f"{name} is not a date (YYYY-MM-DD)") from None


async def get_survey_results(request: web.Request) -> web.Response:
    """A survey's results outside campaigns, `from` to `to` (both days included, both optional):
    answers to follow-ups, or with `origin=public` answers from public starts (never mixed)."""
    runtime, _ = _runtime(request)
    query = request.query
    try:
        since, until = period(
            _query_day("from", query.get("from")), _query_day("to", query.get("to"))
        )
        data = await survey_results(
            runtime,
            request.match_info["survey_id"],
            since=since,
            until=until,
            lang=query.get("lang"),
            breakdowns=parse_breakdowns(query.get("breakdown")),
            origin=query.get("origin", "followup"),
        )
    except SurveyNotFound as e:
        return json_error(404, str(e))
    except ResultsError as e:
        return json_error(400, str(e))
    return web.json_response(data.to_json())


@dataclass(frozen=True, slots=True)
class _FeedbackRequest:
    text: dict[str, str] | None = None
    plan_ref: dict[str, str] | str | None = None
    without_text: list[str] | None = None
    hold: bool | None = None
    delay: int | None = None


_FEEDBACK_FIELDS: Final = ("text", "plan_ref", "without_text", "hold", "delay")


def _texts(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ResultsError(f'{name} must be an object of texts per language, e.g. {{"sv": "..."}}')
    return value


def _feedback_request(body: Any) -> _FeedbackRequest:
    if not isinstance(body, dict):
        raise ResultsError("expected a JSON object")
    unknown = set(body) - set(_FEEDBACK_FIELDS)
    if unknown:
        raise ResultsError(
            f"unknown field {', '.join(sorted(unknown))} (use {', '.join(_FEEDBACK_FIELDS)})"
        )
    text = body.get("text")
    plan_ref = body.get("plan_ref")
    if plan_ref is not None and not isinstance(plan_ref, str):
        plan_ref = _texts("plan_ref", plan_ref)
    without = body.get("without_text")
    if without is not None and (
        not isinstance(without, list) or not all(isinstance(v, str) for v in without)
    ):
        raise ResultsError('without_text must be a list of languages, e.g. ["ar"]')
    hold = body.get("hold")
    if hold is not None and not isinstance(hold, bool):
        raise ResultsError("hold must be true or false")
    delay = body.get("delay")
    return _FeedbackRequest(
        text=_texts("text", text) if text is not None else None,
        plan_ref=plan_ref,
        without_text=without,
        hold=hold,
        delay=feedback.parse_delay(delay) if delay is not None else None,
    )


async def _feedback_json(runtime: Runtime, campaign: Campaign) -> dict[str, Any]:
    timing = await feedback.feedback_timing(runtime, campaign)
    return {
        "id": campaign.id,
        "feedback_text": dict(campaign.feedback_text or {}),
        "feedback_without_text": list(campaign.feedback_without_text or ()),
        "plan_refs": dict(campaign.plan_refs or {}),
        "feedback_status": campaign.feedback_status,
        "feedback_to": campaign.feedback_to,
        "feedback_delay": format_duration(campaign.feedback_delay),
        "feedback_timing": timing.to_json(),
    }


async def put_feedback(request: web.Request) -> web.Response:
    """The "what we will do" text and plan reference per language, the languages sent without a
    text, the delay after closing and the hold: what `brukardialog feedback set` takes."""
    runtime, actor = _runtime(request)
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return json_error(404, "no such campaign")
    body = await json_body(request)
    try:
        wanted = _feedback_request(body)
        campaign = await feedback.set_feedback(
            runtime,
            campaign_id,
            text=wanted.text,
            plan_ref=wanted.plan_ref,
            without_text=wanted.without_text,
            hold=wanted.hold,
            delay=wanted.delay,
            actor=actor,
        )
    except CampaignNotFound as e:
        return json_error(404, str(e))
    except ResultsError as e:
        return json_error(400, str(e))
    return web.json_response(await _feedback_json(runtime, campaign))


async def post_feedback_send_now(request: web.Request) -> web.Response:
    """Send a closed campaign's feedback now rather than after its delay."""
    runtime, actor = _runtime(request)
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return json_error(404, "no such campaign")
    try:
        await feedback.send_now(runtime, campaign_id, actor=actor)
        async with runtime.db.transaction(read_only=True) as s:
            campaign = await load_campaign(s, campaign_id)
    except CampaignNotFound as e:
        return json_error(404, str(e))
    except ResultsError as e:
        return json_error(409, str(e))
    return web.json_response(await _feedback_json(runtime, campaign))


def add_api_routes(api: web.Application) -> None:
    """Staff routes, mounted under /api/v1."""
    api.router.add_get("/campaigns/{id}/results", get_results)
    api.router.add_get("/surveys/{survey_id}/results", get_survey_results)
    api.router.add_put("/campaigns/{id}/feedback", put_feedback)
    api.router.add_post("/campaigns/{id}/feedback/send-now", post_feedback_send_now)


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
    """GET /flow-results/packages: a FLOIP descriptor for every results package there is."""
    runtime, _ = _runtime(request)
    base = _base(runtime)
    descriptors = [
        package_descriptor(ref, api_data_url=f"{base}/{ref.id}/responses")
        for ref in await list_packages(runtime)
    ]
    return _jsonapi(floip.api_packages_document(descriptors, self_url=base))


async def floip_package(request: web.Request) -> web.Response:
    """GET /flow-results/packages/{id}: one FLOIP package descriptor; 404 if there is none."""
    runtime, _ = _runtime(request)
    ref = await find_package(runtime, request.match_info["id"])
    if ref is None:
        return _jsonapi_error(404, "no such package")
    base = _base(runtime)
    descriptor = package_descriptor(ref, api_data_url=f"{base}/{ref.id}/responses")
    return _jsonapi(floip.api_package_document(descriptor, self_url=f"{base}/{ref.id}"))


async def floip_responses(request: web.Request) -> web.Response:
    """GET /flow-results/packages/{id}/responses: one page of responses; 400 on bad paging."""
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
    rows, attributes = await package_rows(runtime, ref)
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
            meta={"background_attributes": attributes.to_json()},
        )
    )


def add_public_routes(app: web.Application) -> None:
    """Routes on the main app: the FLOIP API (token-protected) and the public results page."""

    app.router.add_get("/flow-results/packages", floip_packages)
    app.router.add_get("/flow-results/packages/{id}", floip_package)
    app.router.add_get("/flow-results/packages/{id}/responses", floip_responses)
    results_page.add_routes(app)
