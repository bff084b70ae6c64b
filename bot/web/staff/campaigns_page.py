"""Page 2, campaigns: the list, the create form (with a live "N people match" count and the
audience's error shown at its token), and a campaign's page: the funnel per channel, answers
per day, what waits and why, and pause/resume/close after a confirmation.

Why one module: it is one staff page (one module per page, HACKING.md); the list, the create form
and a campaign's page share the audience check.

The domain work is `bot.campaigns` (as for the CLI and the staff API); this only asks and shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot import campaigns
from bot.campaigns import (
    AUDIENCE_PAGE,
    CHANNELS,
    FEEDBACK_TO,
    CampaignInvalid,
    CampaignNotFound,
    CampaignRequest,
    CampaignStateError,
    EmptyAudience,
    audience_env,
    compile_audience,
    resolve_ends,
)
from bot.results import feedback
from bot.runtime import Runtime
from bot.web.inputs import db_id
from bot.web.staff import i18n
from bot.web.staff.figures import counts_json, day_chart, feedback_when, local_time
from bot.web.staff.framework import (
    lang,
    redirect,
    render,
    require,
    runtime,
    t,
    user,
)
from flows.expr import ExprError
from flows.model import Participation, localize
from storage import repo_campaigns, repo_staff_views
from storage.models import Campaign

MAX_FIELD = 2000
ACTIONS: dict[str, Callable[..., Awaitable[Campaign]]] = {
    "pause": campaigns.pause_campaign,
    "resume": campaigns.resume_campaign,
    "close": campaigns.close_campaign,
}


# -- audience --------------------------------------------------------------------------------


async def count_audience(rt: Runtime, source: str) -> int:
    """How many people (not opted out) the audience matches now; ExprError if it is wrong."""
    async with rt.db.transaction(read_only=True) as s:
        expr = await compile_audience(s, source)
    today = rt.clock.now().astimezone(rt.settings.schedule.tz).date()
    matched = after = 0
    while True:
        async with rt.db.transaction(read_only=True) as s:
            page = await repo_campaigns.audience_chunk(s, after, AUDIENCE_PAGE)
        matched += sum(1 for c in page if expr.evaluate(audience_env(c, today)) is True)
        if len(page) < AUDIENCE_PAGE:
            return matched
        after = page[-1].id


def pointer(source: str, error: ExprError) -> str:
    """The expression with a caret under the offending token."""
    line = source.replace("\n", " ")
    return f"{line}\n{' ' * min(error.position, len(line))}^"


async def _audience_check(request: web.Request, source: str) -> dict[str, Any]:
    try:
        n = await count_audience(runtime(request), source)
    except ExprError as e:
        return {
            "error": True,
            "message": t(request, "campaigns.audience_error", column=e.column, error=e.message),
            "pointer": pointer(source, e),
            "count": None,
        }
    key = "campaigns.audience_none" if n == 0 else "campaigns.audience_count"
    return {"error": n == 0, "message": t(request, key, n=n), "pointer": "", "count": n}


@require("analyst")
async def audience_count(request: web.Request) -> web.StreamResponse:
    """How many people an audience matches (the create form asks as it is typed)."""
    form = await request.post()
    source = form.get("audience", "")
    if not isinstance(source, str) or len(source) > MAX_FIELD:
        raise web.HTTPBadRequest()
    return web.json_response(await _audience_check(request, source))


# -- list and create ---------------------------------------------------------------------------


@require("viewer")
async def listing(request: web.Request) -> web.StreamResponse:
    """Every campaign, newest first."""
    rt = runtime(request)
    rows = await campaigns.list_campaigns(rt)
    tz = rt.settings.schedule.tz
    return await render(
        request,
        "campaigns/list.html",
        {
            "title": t(request, "nav.campaigns"),
            "rows": [
                {"c": c, "starts": local_time(c.starts_at, tz), "ends": local_time(c.ends_at, tz)}
                for c in rows
            ],
        },
    )


def _defaults(rt: Runtime) -> dict[str, str]:
    today = rt.clock.now().astimezone(rt.settings.schedule.tz).date()
    return {
        "survey": "",
        "name": "",
        "audience": "",
        "starts": "",
        "ends": (today + timedelta(days=30)).isoformat(),
        "reminders": "3d",
        "feedback_delay": "3d",
        "feedback_to": "respondents",
        "participation": "",
    }


async def _form_page(
    request: web.Request,
    values: dict[str, str],
    channels: list[str],
    *,
    problems: list[str] | None = None,
    audience: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    rt = runtime(request)
    surveys = sorted(rt.catalog.surveys, key=lambda s: s.id)
    return await render(
        request,
        "campaigns/new.html",
        {
            "title": t(request, "campaigns.new"),
            "values": values,
            "channels": channels,
            "all_channels": CHANNELS,
            "configured": set(rt.channels),
            "surveys": [
                (s.id, localize(s.title, lang(request), s.default_language) or s.id)
                for s in surveys
            ],
            "rungs": [p.value for p in Participation],
            "feedback_to": FEEDBACK_TO,
            "problems": problems or [],
            "audience": audience,
        },
        status=status,
    )


@require("analyst")
async def new_form(request: web.Request) -> web.StreamResponse:
    """The create form."""
    rt = runtime(request)
    configured = [c for c in CHANNELS if c in rt.channels]
    return await _form_page(request, _defaults(rt), configured or list(CHANNELS))


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


@require("analyst")
async def create(request: web.Request) -> web.StreamResponse:
    """Create the campaign; every problem is shown on the form and nothing is stored."""
    rt = runtime(request)
    form = await request.post()
    values = {key: _text(form, key) for key in _defaults(rt)}
    channels = [c for c in form.getall("channels", []) if isinstance(c, str) and c in CHANNELS]
    try:
        async with rt.db.transaction(read_only=True) as s:
            await compile_audience(s, values["audience"])
    except ExprError as e:
        check = {
            "error": True,
            "message": t(request, "campaigns.audience_error", column=e.column, error=e.message),
            "pointer": pointer(values["audience"], e),
        }
        return await _form_page(request, values, channels, audience=check, status=422)
    tz = rt.settings.schedule.tz
    request_ = CampaignRequest(
        survey_id=values["survey"],
        audience=values["audience"],
        ends=resolve_ends(values["ends"], values["starts"] or None, tz, rt.clock.now())
        if values["ends"]
        else "",
        name=values["name"] or None,
        starts=values["starts"] or None,
        reminders=values["reminders"],
        channels=channels,
        participation=values["participation"] or None,
        feedback_delay=values["feedback_delay"] or None,
        feedback_to=values["feedback_to"] or "respondents",
    )
    if not channels:
        return await _form_page(
            request, values, channels, problems=[t(request, "campaigns.no_channel")], status=422
        )
    try:
        created = await campaigns.create_campaign_with_warnings(
            rt, request_, actor=user(request).actor
        )
    except EmptyAudience:
        check = {
            "error": True,
            "message": t(request, "campaigns.audience_none", n=0),
            "pointer": "",
        }
        return await _form_page(request, values, channels, audience=check, status=422)
    except CampaignInvalid as e:
        return await _form_page(request, values, channels, problems=list(e.problems), status=422)
    raise redirect(
        f"/campaigns/{created.campaign.id}",
        msg="created",
        warn=str(len(created.warnings)) if created.warnings else None,
    )


# -- a campaign ------------------------------------------------------------------------------


def _id(request: web.Request) -> int:
    campaign_id = db_id(request.match_info["id"])
    if campaign_id is None:
        raise web.HTTPNotFound()
    return campaign_id


async def _view(request: web.Request) -> campaigns.CampaignView:
    try:
        return await campaigns.show_campaign(runtime(request), _id(request))
    except CampaignNotFound:
        raise web.HTTPNotFound() from None


async def _waits(request: web.Request, view: campaigns.CampaignView) -> list[str]:
    """Plain statements of what waits, and why."""
    rt = runtime(request)
    tz = rt.settings.schedule.tz
    c = view.campaign
    out: list[str] = []
    if c.status == repo_campaigns.SCHEDULED:
        out.append(t(request, "waits.scheduled", when=local_time(c.starts_at, tz)))
    if c.status == repo_campaigns.PAUSED:
        out.append(t(request, "waits.paused"))
    if view.held is not None:
        until = view.held.until.astimezone(tz)
        out.append(
            t(
                request,
                "waits.quiet",
                until=f"{until:%H:%M}",
                day=f"{until:%Y-%m-%d}",
                n=view.held.messages,
            )
        )
    if not rt.settings.server.public_url_set:
        out.append(t(request, "waits.public_url", url=rt.settings.server.public_url))
    if view.counts.waiting:
        async with rt.db.transaction(read_only=True) as s:
            others = await repo_staff_views.waiting_for(s, c.id)
        for other, n in others:
            if other is None:
                out.append(t(request, "waits.other_survey", n=n))
            else:
                out.append(t(request, "waits.other_campaign", n=n, id=other))
    missing = [ch for ch in c.channels if ch not in rt.channels]
    if missing and c.status != repo_campaigns.CLOSED:
        out.append(t(request, "waits.channels_off", channels=", ".join(missing)))
    return out


@require("viewer")
async def detail(request: web.Request) -> web.StreamResponse:
    """A campaign's page."""
    rt = runtime(request)
    view = await _view(request)
    c = view.campaign
    tz = rt.settings.schedule.tz
    today = rt.clock.now().astimezone(tz).date()
    async with rt.db.transaction(read_only=True) as s:
        funnel = await repo_staff_views.funnel_by_channel(s, c.id)
        per_day = await repo_staff_views.answers_per_day(s, [c.id], today - timedelta(days=13))
    timing = await feedback.feedback_timing(rt, c)
    warnings = request.query.get("warn")
    return await render(
        request,
        "campaigns/detail.html",
        {
            "title": c.name,
            "c": c,
            "n": counts_json(c, view.counts),
            "funnel": funnel,
            "chart": day_chart(per_day[c.id], today),
            "waits": await _waits(request, view),
            "starts": local_time(c.starts_at, tz),
            "ends": local_time(c.ends_at, tz),
            "closed": local_time(c.closed_at, tz) if c.closed_at else "",
            "feedback": feedback_when(timing, tz, lang(request)),
            "actions": _actions(c.status),
            "overlap": t(request, "campaigns.overlap", n=warnings) if warnings else "",
        },
    )


def _actions(status: str) -> list[str]:
    if status == repo_campaigns.CLOSED:
        return []
    if status == repo_campaigns.PAUSED:
        return ["resume", "close"]
    return ["pause", "close"]


@require("viewer")
async def detail_json(request: web.Request) -> web.StreamResponse:
    """A campaign's live counts."""
    view = await _view(request)
    return web.json_response({**counts_json(view.campaign, view.counts), "done": False})


@require("analyst")
async def confirm(request: web.Request) -> web.StreamResponse:
    """Ask before pausing, resuming or closing."""
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    view = await _view(request)
    if action not in _actions(view.campaign.status):
        raise redirect(f"/campaigns/{view.campaign.id}", msg="not_now")
    return await render(
        request,
        "campaigns/confirm.html",
        {
            "title": t(request, f"campaigns.confirm.{action}", name=view.campaign.name),
            "c": view.campaign,
            "action": action,
            "explain": t(request, f"campaigns.explain.{action}"),
        },
    )


@require("analyst")
async def act(request: web.Request) -> web.StreamResponse:
    """Pause, resume or close (the campaign code writes the audit entry under this person)."""
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    campaign_id = _id(request)
    try:
        await ACTIONS[action](runtime(request), campaign_id, actor=user(request).actor)
    except CampaignNotFound:
        raise web.HTTPNotFound() from None
    except CampaignStateError:
        raise redirect(f"/campaigns/{campaign_id}", msg="not_now") from None
    raise redirect(f"/campaigns/{campaign_id}", msg=action + "d" if action != "close" else "closed")


def add_routes(app: web.Application) -> None:
    """The campaign pages."""
    app.router.add_get("/campaigns", listing)
    app.router.add_get("/campaigns/new", new_form)
    app.router.add_post("/campaigns/new", create)
    app.router.add_post("/campaigns/audience-count", audience_count)
    app.router.add_get("/campaigns/{id}.json", detail_json)
    app.router.add_get("/campaigns/{id}", detail)
    app.router.add_get("/campaigns/{id}/{action:pause|resume|close}", confirm)
    app.router.add_post("/campaigns/{id}/{action:pause|resume|close}", act)


i18n.add_messages(
    {
        "sv": {
            "campaigns.new": "Ny kampanj",
            "campaigns.none": "Inga kampanjer ännu.",
            "campaigns.name": "Namn",
            "campaigns.name_hint": "Valfritt; annars enkätens id och startdatum.",
            "campaigns.survey": "Enkät",
            "campaigns.status": "Status",
            "campaigns.starts": "Start",
            "campaigns.ends": "Slut",
            "campaigns.audience": "Målgrupp",
            "campaigns.audience_hint": "Ett uttryck, t.ex. unit == 'Norr' and age >= 18",
            "campaigns.audience_count": "{n} personer matchar just nu.",
            "campaigns.audience_none": (
                "Målgruppen matchar ingen just nu, så kampanjen skapas inte."
            ),
            "campaigns.audience_error": "Fel i målgruppen vid tecken {column}: {error}",
            "campaigns.channels": "Kanaler (i tur och ordning)",
            "campaigns.channel_off": "(inte konfigurerad)",
            "campaigns.no_channel": "Välj minst en kanal.",
            "campaigns.starts_hint": "Tomt: nu. Lokal tid.",
            "campaigns.ends_hint": "Ett datum (kampanjen slutar vid dagens slut) eller t.ex. 30d.",
            "campaigns.reminders": "Påminnelser",
            "campaigns.reminders_hint": "Tid efter start, t.ex. 3d,7d. Tomt: inga.",
            "campaigns.feedback_delay": "Återkoppling efter stängning",
            "campaigns.feedback_to": "Återkoppling till",
            "campaigns.feedback_to.respondents": "de som svarat",
            "campaigns.feedback_to.invited": "alla inbjudna",
            "campaigns.feedback_to.none": "ingen",
            "campaigns.participation": "Delaktighetsnivå",
            "campaigns.participation_default": "enkätens egen",
            "campaigns.create": "Skapa kampanjen",
            "campaigns.problems": "Kampanjen skapades inte:",
            "campaigns.funnel": "Tratten",
            "campaigns.all_channels": "Alla kanaler",
            "campaigns.channel": "Kanal",
            "funnel.audience": "Målgrupp",
            "funnel.invited": "Inbjudna",
            "funnel.delivered": "Levererade",
            "funnel.started": "Påbörjade",
            "funnel.completed": "Klara",
            "funnel.opted_out": "Avanmälda",
            "campaigns.rate": "Svarsfrekvens (klara / inbjudna)",
            "campaigns.waits": "Det här väntar",
            "campaigns.facts": "Uppgifter",
            "campaigns.feedback": "Återkoppling",
            "campaigns.closed_at": "Stängd",
            "campaigns.created_by": "Skapad av",
            "campaigns.overlap": (
                "Obs: {n} andra öppna kampanjer av samma enkät delar personer med den här; "
                "den som svarar på en av dem bjuds in när den är klar."
            ),
            "campaigns.confirm.pause": "Pausa {name}?",
            "campaigns.confirm.resume": "Återuppta {name}?",
            "campaigns.confirm.close": "Stäng {name}?",
            "campaigns.explain.pause": (
                "Inga fler inbjudningar eller påminnelser går ut förrän du återupptar. "
                "De som redan svarar kan svara klart."
            ),
            "campaigns.explain.resume": (
                "Väntande inbjudningar och påminnelser går ut (utanför tysta timmar)."
            ),
            "campaigns.explain.close": (
                "Pågående samtal avslutas, köade inbjudningar och påminnelser stryks och "
                "återkopplingen planeras. Det går inte att ångra."
            ),
            "action.pause": "Pausa",
            "action.resume": "Återuppta",
            "action.close": "Stäng",
            "flash.created": "Kampanjen är skapad.",
            "flash.paused": "Kampanjen är pausad.",
            "flash.resumed": "Kampanjen är återupptagen.",
            "flash.closed": "Kampanjen är stängd.",
            "flash.not_now": "Det går inte just nu: kampanjen har ändrat status. Se nedan.",
            "waits.scheduled": "Startar {when}.",
            "waits.paused": (
                "Pausad: inga inbjudningar eller påminnelser går ut förrän du återupptar."
            ),
            "waits.quiet": (
                "Hålls av tysta timmar till {until} ({day}): {n} meddelanden och inbjudningar "
                "som inte skickats ännu."
            ),
            "waits.public_url": (
                "server.public_url är inte satt: länkar skulle peka på den här datorn ({url})."
            ),
            "waits.other_campaign": (
                "{n} personer svarar fortfarande på kampanj {id} och bjuds in när de är klara."
            ),
            "waits.other_survey": (
                "{n} personer svarar fortfarande på en annan enkät och bjuds in när de är klara."
            ),
            "waits.channels_off": "Kanaler som inte är konfigurerade: {channels}.",
        },
        "en": {
            "campaigns.new": "New campaign",
            "campaigns.none": "No campaigns yet.",
            "campaigns.name": "Name",
            "campaigns.name_hint": "Optional; else the survey's id and the start date.",
            "campaigns.survey": "Survey",
            "campaigns.status": "Status",
            "campaigns.starts": "Starts",
            "campaigns.ends": "Ends",
            "campaigns.audience": "Audience",
            "campaigns.audience_hint": "An expression, e.g. unit == 'Norr' and age >= 18",
            "campaigns.audience_count": "{n} people match right now.",
            "campaigns.audience_none": (
                "The audience matches nobody right now, so the campaign is not created."
            ),
            "campaigns.audience_error": "Error in the audience at character {column}: {error}",
            "campaigns.channels": "Channels (in order of preference)",
            "campaigns.channel_off": "(not configured)",
            "campaigns.no_channel": "Choose at least one channel.",
            "campaigns.starts_hint": "Empty: now. Local time.",
            "campaigns.ends_hint": "A date (the campaign ends at the end of that day) or e.g. 30d.",
            "campaigns.reminders": "Reminders",
            "campaigns.reminders_hint": "Time after the start, e.g. 3d,7d. Empty: none.",
            "campaigns.feedback_delay": "Feedback after closing",
            "campaigns.feedback_to": "Feedback to",
            "campaigns.feedback_to.respondents": "those who answered",
            "campaigns.feedback_to.invited": "everyone invited",
            "campaigns.feedback_to.none": "nobody",
            "campaigns.participation": "Participation rung",
            "campaigns.participation_default": "the survey's own",
            "campaigns.create": "Create the campaign",
            "campaigns.problems": "The campaign was not created:",
            "campaigns.funnel": "Funnel",
            "campaigns.all_channels": "All channels",
            "campaigns.channel": "Channel",
            "funnel.audience": "Audience",
            "funnel.invited": "Invited",
            "funnel.delivered": "Delivered",
            "funnel.started": "Started",
            "funnel.completed": "Completed",
            "funnel.opted_out": "Opted out",
            "campaigns.rate": "Response rate (completed / invited)",
            "campaigns.waits": "What waits",
            "campaigns.facts": "Details",
            "campaigns.feedback": "Feedback",
            "campaigns.closed_at": "Closed",
            "campaigns.created_by": "Created by",
            "campaigns.overlap": (
                "Note: {n} other open campaigns of the same survey share people with this one; "
                "anyone answering one of them is invited when they finish."
            ),
            "campaigns.confirm.pause": "Pause {name}?",
            "campaigns.confirm.resume": "Resume {name}?",
            "campaigns.confirm.close": "Close {name}?",
            "campaigns.explain.pause": (
                "No more invitations or reminders go out until you resume. People already "
                "answering can finish."
            ),
            "campaigns.explain.resume": (
                "Waiting invitations and reminders go out (outside quiet hours)."
            ),
            "campaigns.explain.close": (
                "Running conversations end, queued invitations and reminders are cancelled and "
                "the feedback is planned. This cannot be undone."
            ),
            "action.pause": "Pause",
            "action.resume": "Resume",
            "action.close": "Close",
            "flash.created": "The campaign was created.",
            "flash.paused": "The campaign is paused.",
            "flash.resumed": "The campaign is resumed.",
            "flash.closed": "The campaign is closed.",
            "flash.not_now": "Not possible now: the campaign's status changed. See below.",
            "waits.scheduled": "Starts {when}.",
            "waits.paused": "Paused: no invitations or reminders go out until you resume.",
            "waits.quiet": (
                "Held by quiet hours until {until} ({day}): {n} messages, and invitations not "
                "sent yet."
            ),
            "waits.public_url": (
                "server.public_url is not set: links would point at this machine ({url})."
            ),
            "waits.other_campaign": (
                "{n} people are still answering campaign {id} and will be invited when they finish."
            ),
            "waits.other_survey": (
                "{n} people are still answering another survey and will be invited when they "
                "finish."
            ),
            "waits.channels_off": "Channels that are not configured: {channels}.",
        },
    }
)
