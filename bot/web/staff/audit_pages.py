"""Page 8, Audit log: who did what and when, filtered by person, action and days, paged.
Readable by everybody signed in: entries hold ids and counts, never personal data."""

from __future__ import annotations

import json

from aiohttp import web

from bot.web.staff import i18n
from bot.web.staff.audit_view import AuditFilter, BadFilter, audit_page, parse_filter
from bot.web.staff.figures import local_time
from bot.web.staff.framework import render, require, runtime, t, url


@require("viewer")
async def index(request: web.Request) -> web.StreamResponse:
    """GET /audit: one page of the audit log, filtered by actor, action and dates."""
    rt = runtime(request)
    error = ""
    try:
        wanted = parse_filter(request.query)
    except BadFilter as e:
        error = t(request, f"aud.bad.{e.field}", detail=str(e))
        wanted = AuditFilter()
    page = await audit_page(rt, wanted)

    def page_url(number: int) -> str:
        return url("/audit", **page.filter.query(number))

    return await render(
        request,
        "audit.html",
        {
            "title": t(request, "nav.audit"),
            "page": page,
            "error": error,
            "query": {k: str(v)[:100] for k, v in request.query.items()} if error else {},
            "page_url": page_url,
            "tz": rt.settings.schedule.tz,
            "local_time": local_time,
            "details": lambda entry: (
                json.dumps(entry.details or {}, ensure_ascii=False) if entry.details else ""
            ),
        },
        status=400 if error else 200,
    )


def add_routes(app: web.Application) -> None:
    """Add the audit log page."""
    app.router.add_get("/audit", index)


i18n.add_messages(
    {
        "sv": {
            "aud.intro": "Vem som gjorde vad, och när. Nyast först, {n} per sida.",
            "aud.filter": "Filtrera",
            "aud.actor": "Vem",
            "aud.action": "Åtgärd",
            "aud.from": "Från och med dag",
            "aud.to": "Till och med dag",
            "aud.anyone": "Alla",
            "aud.any": "Alla",
            "aud.show": "Visa",
            "aud.clear": "Rensa filtret",
            "aud.when": "När",
            "aud.target": "Vad",
            "aud.details": "Detaljer",
            "aud.none": "Inga händelser matchar filtret.",
            "aud.page": "Sida {n}",
            "aud.newer": "Nyare",
            "aud.older": "Äldre",
            "aud.bad.from": "Filtret gick inte att använda: {detail}. Hela loggen visas.",
            "aud.bad.to": "Filtret gick inte att använda: {detail}. Hela loggen visas.",
            "aud.bad.page": "Sidnumret gick inte att använda: {detail}. Första sidan visas.",
        },
        "en": {
            "aud.intro": "Who did what, and when. Newest first, {n} a page.",
            "aud.filter": "Filter",
            "aud.actor": "Who",
            "aud.action": "Action",
            "aud.from": "From day",
            "aud.to": "To day (included)",
            "aud.anyone": "Anyone",
            "aud.any": "Any",
            "aud.show": "Show",
            "aud.clear": "Clear the filter",
            "aud.when": "When",
            "aud.target": "What",
            "aud.details": "Details",
            "aud.none": "No entries match the filter.",
            "aud.page": "Page {n}",
            "aud.newer": "Newer",
            "aud.older": "Older",
            "aud.bad.from": "The filter could not be used: {detail}. The whole log is shown.",
            "aud.bad.to": "The filter could not be used: {detail}. The whole log is shown.",
            "aud.bad.page": "The page number could not be used: {detail}. The first page is shown.",
        },
    }
)
