"""Staff API: campaigns (`/api/v1/campaigns`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot import campaigns
from bot.api.auth import json_body, json_error, staff_actor
from bot.campaigns import (
    CampaignInvalid,
    CampaignNotFound,
    CampaignRequest,
    CampaignStateError,
    EmptyAudience,
)
from bot.runtime import RUNTIME, Runtime
from bot.web.inputs import db_id

MAX_FEEDBACK_DELAY = 366 * 24 * 3600

_TEXT_FIELDS = ("survey", "audience", "ends", "name", "starts", "participation", "feedback_to")


def _runtime(request: web.Request) -> tuple[Runtime, str]:

    runtime = request.app[RUNTIME]
    return runtime, staff_actor(request, runtime.settings.admin.api_tokens)


def _list_field(body: dict[str, Any], name: str) -> list[str] | str:
    value = body.get(name) or []
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of texts")
    return value


def _request(body: Any) -> CampaignRequest:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    for name in _TEXT_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValueError(f"{name} must be a text")
    missing = [name for name in ("survey", "audience", "ends") if not body.get(name)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    delay = body.get("feedback_delay")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, str | int)):
        raise ValueError("feedback_delay must be a duration like 3d or seconds")
    if isinstance(delay, int) and not 0 <= delay <= MAX_FEEDBACK_DELAY:
        raise ValueError(f"feedback_delay must be 0 to {MAX_FEEDBACK_DELAY} seconds (a year)")
    if isinstance(delay, str) and len(delay) > 20:
        raise ValueError("feedback_delay must be a duration like 3d or seconds")
    return CampaignRequest(
        survey_id=body["survey"],
        audience=body["audience"],
        ends=body["ends"],
        name=body.get("name"),
        starts=body.get("starts"),
        reminders=_list_field(body, "reminders"),
        channels=_list_field(body, "channels"),
        participation=body.get("participation"),
        feedback_delay=delay,
        feedback_to=body.get("feedback_to") or "respondents",
    )


async def create(request: web.Request) -> web.StreamResponse:
    """Create a campaign (201, with "warnings", e.g. people an open campaign of the same survey
    already covers); 422 lists every problem, or says the audience matches nobody."""
    runtime, actor = _runtime(request)
    try:
        spec = _request(await json_body(request))
    except ValueError as e:
        return json_error(400, str(e))
    try:
        created = await campaigns.create_campaign_with_warnings(runtime, spec, actor=actor)
    except EmptyAudience as e:
        return json_error(422, str(e), problems=list(e.problems), empty_audience=True)
    except CampaignInvalid as e:
        return json_error(422, "the campaign was not created", problems=list(e.problems))
    data = campaigns.campaign_json(created.campaign)
    data["warnings"] = list(created.warnings)
    return web.json_response(data, status=201)


async def listing(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/campaigns: every campaign with its status, survey and period."""
    runtime, _ = _runtime(request)
    rows = await campaigns.list_campaigns(runtime)
    return web.json_response({"campaigns": [campaigns.campaign_json(c) for c in rows]})


def _campaign_id(request: web.Request) -> int:
    campaign_id = db_id(request.match_info["id"])
    if campaign_id is None:
        raise web.HTTPNotFound(
            text='{"error": "no such campaign"}', content_type="application/json"
        )
    return campaign_id


async def show(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/campaigns/{id}: a campaign with its counts and held sends; 404 if none."""
    runtime, _ = _runtime(request)
    try:
        view = await campaigns.show_campaign(runtime, _campaign_id(request))
    except CampaignNotFound:
        return json_error(404, "no such campaign")
    return web.json_response(campaigns.campaign_json(view.campaign, view.counts, view.held))


Action = Callable[..., Awaitable[Any]]


def _action(func: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        runtime, actor = _runtime(request)
        try:
            campaign = await func(runtime, _campaign_id(request), actor=actor)
        except CampaignNotFound:
            return json_error(404, "no such campaign")
        except CampaignStateError as e:
            return json_error(409, str(e))
        return web.json_response(campaigns.campaign_json(campaign))

    return handler


def add_api_routes(api: web.Application) -> None:
    """Mount the campaign routes on the /api/v1 sub-app."""
    api.router.add_post("/campaigns", create)
    api.router.add_get("/campaigns", listing)
    api.router.add_get("/campaigns/{id}", show)
    api.router.add_post("/campaigns/{id}/pause", _action(campaigns.pause_campaign))
    api.router.add_post("/campaigns/{id}/resume", _action(campaigns.resume_campaign))
    api.router.add_post("/campaigns/{id}/close", _action(campaigns.close_campaign))
