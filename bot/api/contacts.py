"""Staff API: bulk contact import (`POST /api/v1/contacts`), a person's personal links
(`GET /api/v1/contacts/{external_ref}/link`), and a person's rights: everything held about
them (`GET /api/v1/contacts/{external_ref}/export`) and erasure
(`DELETE /api/v1/contacts/{external_ref}`)."""

from __future__ import annotations

from aiohttp import web

from bot import lifecycle
from bot.api.auth import json_body, json_error, staff_actor
from bot.contacts import links as contact_links
from bot.contacts.importer import ImportRefused, import_validated, validate_records
from bot.runtime import RUNTIME
from bot.web.inputs import path_text
from storage import repo_audit

MAX_IMPORT_BYTES = 16 * 1024 * 1024


async def import_contacts(request: web.Request) -> web.StreamResponse:
    """Insert or update contacts; all-or-nothing unless "skip_invalid" is true (422 lists why)."""

    runtime = request.app[RUNTIME]
    actor = staff_actor(request, runtime.settings.admin.api_tokens)
    body = await json_body(request, max_bytes=MAX_IMPORT_BYTES)
    if not isinstance(body, dict) or not isinstance(body.get("contacts"), list):
        return json_error(400, 'expected {"contacts": [...]}')
    skip_invalid = body.get("skip_invalid", False)
    if not isinstance(skip_invalid, bool):
        return json_error(400, "skip_invalid must be true or false")
    today = runtime.clock.now().astimezone(runtime.settings.schedule.tz).date()
    validated = validate_records(body["contacts"], today=today)
    errors = [{"index": e.line, "reason": e.reason} for e in validated.errors]
    try:
        report = await import_validated(
            runtime.db,
            runtime.service.pseudonymizer,
            validated,
            skip_invalid=skip_invalid,
            actor=actor,
            source="api",
        )
    except ImportRefused:
        return json_error(422, "invalid contacts; nothing was imported", errors=errors)
    return web.json_response(
        {"inserted": report.inserted, "updated": report.updated, "skipped": errors}
    )


async def contact_link(request: web.Request) -> web.StreamResponse:
    """One person's web chat link (and Telegram deep link when the bot is known)."""

    runtime = request.app[RUNTIME]
    actor = staff_actor(request, runtime.settings.admin.api_tokens)
    external_ref = request.match_info["external_ref"]
    link = (
        await contact_links.contact_link(runtime, external_ref)
        if path_text(external_ref, 100) is not None
        else None
    )
    if link is None:
        return json_error(404, f"no contact with external_ref {external_ref!r} and a personal link")
    async with runtime.db.transaction() as s:
        await repo_audit.log(
            s, actor, "contacts.link", f"contact:{external_ref}", at=runtime.clock.now()
        )
    return web.json_response(link.to_json())


async def export_contact(request: web.Request) -> web.StreamResponse:
    """Everything held about one person, as a JSON download (a subject access request)."""
    runtime = request.app[RUNTIME]
    actor = staff_actor(request, runtime.settings.admin.api_tokens)
    external_ref = request.match_info["external_ref"]
    if path_text(external_ref, 100) is None:
        return json_error(404, f"no contact with external_ref {external_ref!r}")
    try:
        export = await lifecycle.export_person(runtime, external_ref, actor=actor)
    except lifecycle.PersonNotFound as e:
        return json_error(404, str(e))
    name = lifecycle.ref_pseudonym(runtime, external_ref).replace("#", "-")
    return web.json_response(
        export,
        headers={"Content-Disposition": f'attachment; filename="person-{name}.json"'},
    )


async def erase_contact(request: web.Request) -> web.StreamResponse:
    """Erase everything held about one person; released anonymous answers stay."""
    runtime = request.app[RUNTIME]
    actor = staff_actor(request, runtime.settings.admin.api_tokens)
    external_ref = request.match_info["external_ref"]
    if path_text(external_ref, 100) is None:
        return json_error(404, f"no contact with external_ref {external_ref!r}")
    try:
        erasure = await lifecycle.erase_person(runtime, external_ref, actor=actor)
    except lifecycle.PersonNotFound as e:
        return json_error(404, str(e))
    return web.json_response(erasure.to_json())


def add_api_routes(api: web.Application) -> None:
    """Mount the contact routes on the /api/v1 sub-app."""
    api.router.add_post("/contacts", import_contacts)
    api.router.add_get("/contacts/{external_ref}/link", contact_link)
    api.router.add_get("/contacts/{external_ref}/export", export_contact)
    api.router.add_delete("/contacts/{external_ref}", erase_contact)
