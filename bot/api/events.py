"""Staff API: case events in (`POST /events`), follow-up rules in and out.

Every route needs a staff bearer token. Bad bodies answer 400 (not JSON, wrong shape) or 422
(listing every problem); an event contradicting a stored one answers 409."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot import followups
from bot.api.auth import json_body, json_error, staff_actor
from bot.ops import events as ops_events
from bot.runtime import RUNTIME, Runtime
from bot.web.inputs import path_text
from storage import repo_audit, repo_events, repo_tasks

log = logging.getLogger(__name__)

MAX_EVENTS_BODY = 4 * 1024 * 1024


def add_api_routes(api: web.Application) -> None:
    """Mount the routes on the /api/v1 sub-app."""
    api.router.add_post("/events", post_events)
    api.router.add_get("/events/{event_id}", get_event)
    api.router.add_get("/followup-rules", list_rules)
    api.router.add_post("/followup-rules", post_rule)
    api.router.add_get("/followup-rules/{name}", get_rule)
    api.router.add_put("/followup-rules/{name}", put_rule)
    api.router.add_delete("/followup-rules/{name}", delete_rule)


def _staff(request: web.Request) -> tuple[Runtime, str]:
    runtime = request.app[RUNTIME]
    return runtime, staff_actor(request, runtime.settings.admin.api_tokens)


def _invalid(message: str, problems: list[str]) -> web.Response:
    return json_error(422, message, problems=problems)


# -- events ------------------------------------------------------------------------------------


async def post_events(request: web.Request) -> web.Response:
    """One event object, or {"events": [...]}; all are taken or none."""
    runtime, actor = _staff(request)
    body = await json_body(request, max_bytes=MAX_EVENTS_BODY)
    if not isinstance(body, dict):
        return json_error(400, 'the body must be an event object or {"events": [...]}')
    batch = "events" in body
    if batch:
        items = body["events"]
        extra = sorted(k for k in body if k != "events")
        if extra:
            return json_error(
                400, f'a batch body has only "events"; unexpected: {", ".join(extra)}'
            )
        if not isinstance(items, list):
            return json_error(400, '"events" must be a list of event objects')
        if not items:
            return _invalid("no events given", ["events: the list is empty"])
        if len(items) > followups.MAX_BATCH:
            return _invalid(
                "too many events",
                [f"events: at most {followups.MAX_BATCH} per request; use events import"],
            )
    else:
        items = [body]

    tz = runtime.settings.schedule.tz
    today = runtime.clock.now().astimezone(tz).date()
    events: list[followups.EventInput] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        parsed = followups.parse_event(item, tz=tz, today=today)
        if isinstance(parsed, list):
            problems.extend(_where(batch, index) + p for p in parsed)
        else:
            events.append(parsed)
    if problems:
        return _invalid("invalid event" + ("s" if batch else ""), problems)

    try:
        outcomes = await followups.ingest_events(runtime, events, actor=actor)
    except followups.EventsRefused as e:
        status = 409 if all(p.conflict for p in e.problems) else 422
        return json_error(
            status,
            "nothing was stored",
            problems=[_where(batch, p.index) + p.message for p in e.problems],
        )
    created = any(o.result == "created" for o in outcomes)
    data: dict[str, Any] = (
        {"results": [o.to_json() for o in outcomes]} if batch else outcomes[0].to_json()
    )
    return web.json_response(data, status=201 if created else 200)


def _where(batch: bool, index: int) -> str:
    return f"events[{index}]: " if batch else ""


async def get_event(request: web.Request) -> web.Response:
    """An event and the status of its follow-ups."""
    runtime, _actor = _staff(request)
    event_id = request.match_info["event_id"]
    report = await followups.event_report(runtime, event_id) if path_text(event_id) else None
    if report is None:
        return json_error(404, f"no event with event_id {event_id!r}")
    return web.json_response(report.to_json())


# -- rules -------------------------------------------------------------------------------------


async def list_rules(request: web.Request) -> web.Response:
    """GET /api/v1/followup-rules: every follow-up rule, from the rules file and from the API."""
    runtime, _actor = _staff(request)
    async with runtime.db.transaction(read_only=True) as s:
        rules = await repo_events.list_rules(s)
    return web.json_response({"rules": [followups.rule_json(r) for r in rules]})


async def get_rule(request: web.Request) -> web.Response:
    """GET /api/v1/followup-rules/{name}: one rule; 404 for an unknown or malformed name."""
    runtime, _actor = _staff(request)
    name = request.match_info["name"]
    if path_text(name) is None:
        return json_error(404, "no follow-up rule by that name")
    async with runtime.db.transaction(read_only=True) as s:
        rule = await repo_events.get_rule(s, name)
    if rule is None:
        return json_error(404, f"no follow-up rule named {name!r}")
    return web.json_response(followups.rule_json(rule))


async def _rule_body(
    request: web.Request, runtime: Runtime, name: str | None
) -> repo_events.RuleValues | web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        return json_error(400, "the body must be a rule object")
    parsed = followups.parse_rule(
        body,
        known_surveys=followups.known_surveys(runtime),
        quiet=runtime.settings.schedule.quiet,
        name=name,
    )
    if isinstance(parsed, list):
        return _invalid("invalid follow-up rule", parsed)
    return parsed


def _file_rule(name: str) -> web.Response:
    return json_error(
        409,
        f"rule {name!r} comes from the rules file; change it in flows/followups.toml",
    )


async def post_rule(request: web.Request) -> web.Response:
    """Create a rule (409 if the name is taken)."""
    runtime, actor = _staff(request)
    values = await _rule_body(request, runtime, None)
    if isinstance(values, web.Response):
        return values
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        if await repo_events.get_rule(s, values.name) is not None:
            return json_error(409, f"a follow-up rule named {values.name!r} exists; use PUT")
        rule, _created = await repo_events.save_rule(
            s, values, source=repo_events.SOURCE_API, now=now
        )
        await repo_audit.log(s, actor, "followup_rule.create", values.name, at=now)
        data = followups.rule_json(rule)
    _rule_note(values.name, "created", actor)
    return web.json_response(data, status=201)


def _rule_note(name: str, what: str, actor: str) -> None:
    ops_events.note(
        "followup_rule.changed",
        "follow-up rule {rule} {what} by {by}",
        rule=name,
        what=what,
        by=ops_events.by(actor),
    )


async def put_rule(request: web.Request) -> web.Response:
    """Create or replace an API rule by name."""
    runtime, actor = _staff(request)
    name = request.match_info["name"]
    if path_text(name) is None:
        return json_error(404, "no follow-up rule by that name")
    values = await _rule_body(request, runtime, name)
    if isinstance(values, web.Response):
        return values
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        existing = await repo_events.get_rule(s, name)
        if existing is not None and existing.source == repo_events.SOURCE_FILE:
            return _file_rule(name)
        rule, created = await repo_events.save_rule(
            s, values, source=repo_events.SOURCE_API, now=now
        )
        action = "followup_rule.create" if created else "followup_rule.update"
        await repo_audit.log(s, actor, action, name, at=now)
        data = followups.rule_json(rule)
    _rule_note(name, "created" if created else "updated", actor)
    return web.json_response(data, status=201 if created else 200)


async def delete_rule(request: web.Request) -> web.Response:
    """Delete an API rule; its pending follow-ups are cancelled and its follow-ups removed."""
    runtime, actor = _staff(request)
    name = request.match_info["name"]
    if path_text(name) is None:
        return json_error(404, "no follow-up rule by that name")
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        rule = await repo_events.get_rule(s, name)
        if rule is None:
            return json_error(404, f"no follow-up rule named {name!r}")
        if rule.source == repo_events.SOURCE_FILE:
            return _file_rule(name)
        pending = await repo_events.pending_for_rule(s, rule.id)
        for followup in pending:
            await repo_tasks.cancel(s, followups.task_key(followup.id))
        await repo_events.delete_rule(s, rule)
        await repo_audit.log(
            s, actor, "followup_rule.delete", name, {"pending_cancelled": len(pending)}, at=now
        )
    _rule_note(name, f"deleted ({len(pending)} pending follow-ups cancelled)", actor)
    return web.Response(status=204)
