"""Page 1, the overview: open campaigns with their live response rate and answers per day,
follow-ups sent in the last 30 days, and feedback that waits (and when it goes out).

The page polls `/staff/overview.json`, so the figures change as answers arrive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.results import feedback
from bot.web.staff import i18n
from bot.web.staff.figures import counts_json, day_chart, feedback_when
from bot.web.staff.framework import lang, render, require, runtime, t, url
from storage import repo_campaigns, repo_staff_views

POLL_MS = 3000


async def _figures(request: web.Request) -> dict[str, Any]:
    rt = runtime(request)
    now = rt.clock.now()
    tz = rt.settings.schedule.tz
    today = now.astimezone(tz).date()
    async with rt.db.transaction(read_only=True) as s:
        campaigns = await repo_staff_views.open_campaigns(s)
        counts = [await repo_campaigns.counts(s, c) for c in campaigns]
        per_day = await repo_staff_views.answers_per_day(
            s, [c.id for c in campaigns], today - timedelta(days=13)
        )
        followups = await repo_staff_views.followups_sent_since(s, now - timedelta(days=30))
        waiting = await repo_staff_views.feedback_waiting(s)
    waiting_rows = [
        {
            "campaign": c,
            "when": feedback_when(await feedback.feedback_timing(rt, c), tz, lang(request)),
        }
        for c in waiting
    ]
    return {
        "campaigns": [
            {"campaign": c, "counts": counts_json(c, n), "chart": day_chart(per_day[c.id], today)}
            for c, n in zip(campaigns, counts, strict=True)
        ],
        "followups": followups,
        "waiting": waiting_rows,
    }


@require("viewer")
async def overview(request: web.Request) -> web.StreamResponse:
    """The overview page."""
    figures = await _figures(request)
    return await render(
        request,
        "overview.html",
        {"title": t(request, "nav.overview"), "poll_ms": POLL_MS, **figures},
    )


@require("viewer")
async def overview_json(request: web.Request) -> web.StreamResponse:
    """The overview's live figures."""
    figures = await _figures(request)
    return web.json_response(
        {
            "items": [row["counts"] for row in figures["campaigns"]],
            "followups": figures["followups"],
            "feedback_waiting": len(figures["waiting"]),
            "done": False,
            "detail": url("/campaigns"),
        }
    )


def add_routes(app: web.Application) -> None:
    """The overview at /staff/ and its JSON."""
    app.router.add_get("/", overview)
    app.router.add_get("/overview.json", overview_json)


i18n.add_messages(
    {
        "sv": {
            "overview.open": "Pågående kampanjer",
            "overview.none_open": "Inga pågående kampanjer.",
            "overview.create": "Skapa en kampanj",
            "overview.rate": "Svarsfrekvens",
            "overview.rate_of": "{completed} av {invited} inbjudna har svarat klart",
            "overview.completed": "Klara",
            "overview.invited": "Inbjudna",
            "overview.followups": "Uppföljningar skickade senaste 30 dagarna",
            "overview.feedback": "Återkoppling som väntar",
            "overview.feedback_none": "Ingen återkoppling väntar.",
            "overview.per_day": "Svar per dag, senaste 14 dagarna",
            "overview.per_day_total": "{total} svar senaste 14 dagarna",
            "chart.day": "Dag",
            "chart.answers": "Svar",
            "chart.show_table": "Visa som tabell",
            "campaign.status.scheduled": "planerad",
            "campaign.status.running": "pågår",
            "campaign.status.paused": "pausad",
            "campaign.status.closed": "stängd",
        },
        "en": {
            "overview.open": "Open campaigns",
            "overview.none_open": "No open campaigns.",
            "overview.create": "Create a campaign",
            "overview.rate": "Response rate",
            "overview.rate_of": "{completed} of {invited} invited have finished",
            "overview.completed": "Completed",
            "overview.invited": "Invited",
            "overview.followups": "Follow-ups sent in the last 30 days",
            "overview.feedback": "Feedback waiting",
            "overview.feedback_none": "No feedback is waiting.",
            "overview.per_day": "Answers per day, last 14 days",
            "overview.per_day_total": "{total} answers in the last 14 days",
            "chart.day": "Day",
            "chart.answers": "Answers",
            "chart.show_table": "Show as a table",
            "campaign.status.scheduled": "scheduled",
            "campaign.status.running": "running",
            "campaign.status.paused": "paused",
            "campaign.status.closed": "closed",
        },
    }
)
