"""Page 4, Results: every question as an accessible chart and a table, breakdowns, the change
against the previous campaign, open answers (analyst and up, masked, logged) and downloads
(analyst and up, logged). Figures come from `results_view`; nothing below k is ever shown."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

from bot.results.service import (
    CampaignNotFound,
    NotFinal,
    ResultsError,
    export_bytes,
    export_campaign,
    load_campaign,
    results_language,
)
from bot.web.inputs import db_id
from bot.web.staff import i18n
from bot.web.staff.figures import local_time
from bot.web.staff.framework import lang, render, require, runtime, t, url, user
from bot.web.staff.results_view import BREAKDOWNS, campaign_list, results_view

DOWNLOADS = ("csv", "xlsx", "floip")


async def not_found(request: web.Request, campaign_id: str) -> web.Response:
    """A 404 page that says which campaign is missing."""
    return await render(
        request,
        "error.html",
        {
            "status": 404,
            "title": t(request, "res.not_found_title"),
            "message": t(request, "res.not_found", id=campaign_id[:40]),
        },
        status=404,
    )


async def bad_request(request: web.Request, message: str) -> web.Response:
    """The error page with status 400 and `message` (a bad breakdown or period)."""
    return await render(
        request,
        "error.html",
        {"status": 400, "title": t(request, "error.title"), "message": message},
        status=400,
    )


@require("viewer")
async def index(request: web.Request) -> web.StreamResponse:
    """Every campaign, newest first, with links to its results and feedback."""
    rt = runtime(request)
    campaigns = await campaign_list(rt)
    return await render(
        request,
        "results_index.html",
        {
            "title": t(request, "nav.results"),
            "campaigns": campaigns,
            "tz": rt.settings.schedule.tz,
            "local_time": local_time,
        },
    )


def _wanted_breakdowns(request: web.Request) -> tuple[list[str], list[str]]:
    """The breakdowns asked for (known ones, once each) and the unknown ones."""
    asked = [v.strip() for v in request.query.getall("breakdown", []) if v.strip()]
    known: list[str] = [d for d in BREAKDOWNS if d in asked]
    unknown = [v[:40] for v in asked if v not in BREAKDOWNS]
    return known, unknown


@require("viewer")
async def page(request: web.Request) -> web.StreamResponse:
    """One campaign's results."""
    raw_id = request.match_info["id"]
    campaign_id = db_id(raw_id)
    if campaign_id is None:
        return await not_found(request, raw_id)
    rt = runtime(request)
    me = user(request)
    breakdowns, unknown = _wanted_breakdowns(request)
    problems = [t(request, "res.bad_breakdown", name=name) for name in unknown]
    wanted_lang = request.query.get("lang", "").strip().lower()[:20] or None
    open_texts = request.query.get("open") == "1"
    if open_texts and not me.can("analyst"):
        raise web.HTTPForbidden()

    def tr(key: str, **fields: object) -> str:
        return t(request, key, **fields)

    try:
        try:
            view = await results_view(
                rt,
                campaign_id,
                tr,
                lang=wanted_lang or lang(request),
                breakdowns=breakdowns,
                open_texts=open_texts,
                actor=me.actor,
            )
        except CampaignNotFound:
            raise
        except ResultsError:
            if wanted_lang is not None:
                problems.append(t(request, "res.bad_language", code=wanted_lang))
            view = await results_view(
                rt,
                campaign_id,
                tr,
                lang=None,
                breakdowns=breakdowns,
                open_texts=open_texts,
                actor=me.actor,
            )
    except CampaignNotFound:
        return await not_found(request, raw_id)
    base = f"/campaigns/{campaign_id}/results"
    chosen = {"lang": view.lang, "breakdown": list(view.breakdowns)}

    def download_url(fmt: str) -> str:
        return url(f"{base}/download/{fmt}", lang=view.lang, partial=None if view.final else "1")

    return await render(
        request,
        "results.html",
        {
            "open_url": url(base)
            + "?"
            + urlencode({**chosen, "open": "1"}, doseq=True)
            + "#open-heading",
            "download_url": download_url,
            "title": t(request, "res.title", name=view.campaign.name),
            "view": view,
            "problems": problems,
            "all_breakdowns": BREAKDOWNS,
            "language_name": i18n.LANGUAGE_NAMES,
            "can_open": me.can("analyst"),
            "can_download": me.can("analyst"),
            "downloads": DOWNLOADS,
            "tz": rt.settings.schedule.tz,
            "local_time": local_time,
        },
    )


@require("analyst")
async def download(request: web.Request) -> web.StreamResponse:
    """A campaign's answers as CSV, XLSX or a Flow Results package (ZIP); audit-logged under
    the person's name by `bot.results.service`."""
    raw_id = request.match_info["id"]
    campaign_id = db_id(raw_id)
    fmt = request.match_info["fmt"]
    if campaign_id is None:
        return await not_found(request, raw_id)
    if fmt not in DOWNLOADS:
        return await bad_request(request, t(request, "res.bad_format", fmt=fmt[:20]))
    rt = runtime(request)
    actor = user(request).actor
    partial = request.query.get("partial") == "1"
    wanted_lang = request.query.get("lang", "").strip().lower()[:20] or None
    try:
        # A language the survey lacks is refused before anything is written or logged.
        from_lang = (
            await results_view_language(request, campaign_id, wanted_lang)
            if wanted_lang is not None
            else None
        )
        if fmt == "floip":
            body, name = await _floip_zip(request, campaign_id, actor, partial)
            content_type = "application/zip"
        else:
            body, content_type, name = await export_bytes(
                rt, campaign_id, fmt, actor=actor, lang=from_lang, partial=partial
            )
    except CampaignNotFound:
        return await not_found(request, raw_id)
    except NotFinal:
        return await bad_request(request, t(request, "res.not_final"))
    except ResultsError as e:
        return await bad_request(request, str(e))
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def results_view_language(request: web.Request, campaign_id: int, wanted: str) -> str:
    """`wanted` if the campaign's survey has results in it (ResultsError otherwise)."""
    rt = runtime(request)
    async with rt.db.transaction(read_only=True) as s:
        campaign = await load_campaign(s, campaign_id)
        survey = await rt.catalog.version(s, campaign.survey_version_id)
    return results_language(survey, wanted)


async def _floip_zip(
    request: web.Request, campaign_id: int, actor: str, partial: bool
) -> tuple[bytes, str]:
    rt = runtime(request)
    with tempfile.TemporaryDirectory(prefix="bd-floip-") as folder:
        out = Path(folder) / f"campaign-{campaign_id}"
        await export_campaign(rt, campaign_id, "flow-results", out, actor=actor, partial=partial)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(out.iterdir()):
                archive.write(path, f"campaign-{campaign_id}/{path.name}")
    return buffer.getvalue(), f"campaign-{campaign_id}-flow-results.zip"


def add_routes(app: web.Application) -> None:
    """Add the results pages and their downloads."""
    app.router.add_get("/results", index)
    app.router.add_get("/campaigns/{id}/results", page)
    app.router.add_get("/campaigns/{id}/results/download/{fmt}", download)


i18n.add_messages(
    {
        "sv": {
            "res.index_intro": "Välj en kampanj för att se dess resultat.",
            "res.none": "Det finns inga kampanjer ännu.",
            "res.campaign": "Kampanj",
            "res.survey": "Enkät",
            "res.status": "Status",
            "res.closed_at": "Stängd",
            "res.show": "Resultat",
            "res.feedback": "Återkoppling",
            "res.title": "Resultat: {name}",
            "res.not_found_title": "Kampanjen finns inte",
            "res.not_found": "Det finns ingen kampanj med nummer {id}. Välj en i listan.",
            "res.bad_language": (
                "Resultaten finns inte på språket {code}; de visas på enkätens förvalda språk."
            ),
            "res.bad_breakdown": (
                "Det går inte att dela upp efter {name}; den delningen hoppades över."
            ),
            "res.bad_format": "Det finns ingen nedladdning i formatet {fmt}.",
            "res.not_final": (
                "Kampanjen pågår fortfarande, så resultaten är inte slutliga. Ladda ner en "
                "preliminär kopia i stället."
            ),
            "res.preliminary": ("Kampanjen pågår: siffrorna är preliminära tills den stängs."),
            "res.k_rule": (
                "Grupper där färre än {k} personer svarat visas inte (\u201ddold\u201d), och "
                "inte heller det som skulle gå att räkna ut ur dem."
            ),
            "res.options": "Visa",
            "res.language": "Resultatens språk",
            "res.breakdowns": "Dela upp efter",
            "res.update": "Uppdatera",
            "res.participation": "Deltagande",
            "results.participation.invited": "Inbjudna",
            "results.participation.started": "Började svara",
            "results.participation.completed": "Svarade",
            "results.participation.opted_out": "Avböjde",
            "results.participation.response_rate": "Svarsfrekvens",
            "res.too_few": "Färre än {k} har svarat: inga resultat visas ännu.",
            "res.questions": "Frågor",
            "results.hidden": "dold (färre än {k})",
            "results.chart_title": "{question}: andel per svarsalternativ",
            "results.chart_desc": "Andel av {n} svar per svarsalternativ.",
            "res.n": "{n} svar",
            "res.hidden_question": "Färre än {k} svarade på frågan, så inget visas.",
            "res.table_caption": "{question}: antal och andel per svarsalternativ",
            "res.choice": "Svarsalternativ",
            "res.count": "Antal",
            "res.share": "Andel",
            "res.share_positive": "Andel positiva",
            "res.mean": "Medelvärde",
            "res.median": "Median",
            "res.change": "Jämfört med {name}",
            "results.change.share_positive": (
                "andel positiva {before} → {after} ({points} procentenheter)"
            ),
            "results.change.mean": "medelvärde {before} → {after} ({diff})",
            "res.no_previous": (
                "Ingen tidigare stängd kampanj av samma enkät med minst {k} svar att jämföra med."
            ),
            "res.previous": "Förändringar jämförs med {name} (stängd {closed}).",
            "res.breakdown_heading": "Uppdelat efter {by}",
            "results.dimension.gender": "kön",
            "results.dimension.target_group": "målgrupp",
            "results.dimension.contact_length": "hur länge personen haft kontakt",
            "results.dimension.unit": "enhet",
            "results.dimension.age": "ålder",
            "results.breakdown_chart_sp": "{question}: andel positiva per {by}",
            "results.breakdown_chart_mean": "{question}: medelvärde per {by}",
            "res.group": "Grupp",
            "res.group_n": "Svar",
            "res.breakdown_caption": "{question} uppdelat efter {by}",
            "res.open": "Fritextsvar",
            "res.open_show": "Visa fritextsvar",
            "res.open_note": (
                "Telefonnummer, e-postadresser och personnummer är maskerade. Att du läser "
                "svaren loggas under ditt namn."
            ),
            "res.open_viewer": "Fritextsvar kan läsas av analytiker och administratörer.",
            "res.open_none": "Inga fritextsvar.",
            "res.downloads": "Ladda ner",
            "res.download_note": (
                "Filerna innehåller svar per person (utan namn). Varje nedladdning loggas under "
                "ditt namn."
            ),
            "res.download_viewer": (
                "Nedladdningar med svar per person kan göras av analytiker och administratörer."
            ),
            "res.download.csv": "Svar som CSV",
            "res.download.xlsx": "Resultat och svar som Excel (XLSX)",
            "res.download.floip": "Flow Results-paket (ZIP)",
            "res.download_partial": "Preliminära nedladdningar (kampanjen pågår)",
            "res.status.scheduled": "planerad",
            "res.status.running": "pågår",
            "res.status.paused": "pausad",
            "res.status.closed": "stängd",
        },
        "en": {
            "res.index_intro": "Choose a campaign to see its results.",
            "res.none": "There are no campaigns yet.",
            "res.campaign": "Campaign",
            "res.survey": "Survey",
            "res.status": "Status",
            "res.closed_at": "Closed",
            "res.show": "Results",
            "res.feedback": "Feedback",
            "res.title": "Results: {name}",
            "res.not_found_title": "No such campaign",
            "res.not_found": "There is no campaign number {id}. Pick one from the list.",
            "res.bad_language": (
                "The results are not available in {code}; they are shown in the survey's "
                "default language."
            ),
            "res.bad_breakdown": "Results cannot be broken down by {name}; that was left out.",
            "res.bad_format": "There is no download in the format {fmt}.",
            "res.not_final": (
                "The campaign is still running, so the results are not final. Download a "
                "preliminary copy instead."
            ),
            "res.preliminary": "The campaign is running: figures are preliminary until it closes.",
            "res.k_rule": (
                "Groups where fewer than {k} people answered are not shown (\u201chidden\u201d), "
                "nor anything that could be worked out from them."
            ),
            "res.options": "Show",
            "res.language": "Language of the results",
            "res.breakdowns": "Break down by",
            "res.update": "Update",
            "res.participation": "Participation",
            "results.participation.invited": "Invited",
            "results.participation.started": "Started",
            "results.participation.completed": "Answered",
            "results.participation.opted_out": "Opted out",
            "results.participation.response_rate": "Response rate",
            "res.too_few": "Fewer than {k} have answered: no results are shown yet.",
            "res.questions": "Questions",
            "results.hidden": "hidden (fewer than {k})",
            "results.chart_title": "{question}: share per answer",
            "results.chart_desc": "Share of {n} answers per answer option.",
            "res.n": "{n} answers",
            "res.hidden_question": "Fewer than {k} answered this question, so nothing is shown.",
            "res.table_caption": "{question}: count and share per answer",
            "res.choice": "Answer",
            "res.count": "Count",
            "res.share": "Share",
            "res.share_positive": "Share positive",
            "res.mean": "Mean",
            "res.median": "Median",
            "res.change": "Compared with {name}",
            "results.change.share_positive": (
                "share positive {before} → {after} ({points} percentage points)"
            ),
            "results.change.mean": "mean {before} → {after} ({diff})",
            "res.no_previous": (
                "No earlier closed campaign of the same survey with at least {k} answers to "
                "compare with."
            ),
            "res.previous": "Changes are against {name} (closed {closed}).",
            "res.breakdown_heading": "Broken down by {by}",
            "results.dimension.gender": "gender",
            "results.dimension.target_group": "target group",
            "results.dimension.contact_length": "length of contact",
            "results.dimension.unit": "unit",
            "results.dimension.age": "age",
            "results.breakdown_chart_sp": "{question}: share positive by {by}",
            "results.breakdown_chart_mean": "{question}: mean by {by}",
            "res.group": "Group",
            "res.group_n": "Answers",
            "res.breakdown_caption": "{question} broken down by {by}",
            "res.open": "Open answers",
            "res.open_show": "Show open answers",
            "res.open_note": (
                "Phone numbers, e-mail addresses and personal identity numbers are masked. "
                "Your reading them is logged under your name."
            ),
            "res.open_viewer": "Open answers can be read by analysts and administrators.",
            "res.open_none": "No open answers.",
            "res.downloads": "Download",
            "res.download_note": (
                "The files hold answers per person (without names). Every download is logged "
                "under your name."
            ),
            "res.download_viewer": (
                "Downloads with answers per person can be made by analysts and administrators."
            ),
            "res.download.csv": "Answers as CSV",
            "res.download.xlsx": "Results and answers as Excel (XLSX)",
            "res.download.floip": "Flow Results package (ZIP)",
            "res.download_partial": "Preliminary downloads (the campaign is running)",
            "res.status.scheduled": "scheduled",
            "res.status.running": "running",
            "res.status.paused": "paused",
            "res.status.closed": "closed",
        },
    }
)
