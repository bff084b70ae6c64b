"""Page 5, Feedback: the "what we will do" text per language with a live SMS segment count and
the exact message each language gets, hold/release, when it goes out, and send now where the
domain code (`bot.results.feedback`) allows it. Writing is for analysts and admins."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.results import feedback
from bot.results.service import CampaignNotFound, ResultsError
from bot.web.inputs import db_id
from bot.web.staff import i18n
from bot.web.staff.feedback_view import draft_preview, feedback_view
from bot.web.staff.figures import feedback_when, local_time
from bot.web.staff.framework import lang, redirect, render, require, runtime, t, user
from bot.web.staff.results_pages import not_found
from bot.web.staff.results_view import campaign_list
from flows.durations import format_duration
from flows.texts import language_name

MAX_FIELD = 4000
"""Characters read of one form field (the domain refuses over 1000 after spaces are joined)."""


@require("viewer")
async def index(request: web.Request) -> web.StreamResponse:
    """Every campaign with its feedback status and when it goes out."""
    rt = runtime(request)
    tz = rt.settings.schedule.tz
    rows = []
    for campaign in await campaign_list(rt):
        timing = await feedback.feedback_timing(rt, campaign)
        rows.append((campaign, feedback_when(timing, tz, lang(request))))
    return await render(
        request, "feedback_index.html", {"title": t(request, "nav.feedback"), "rows": rows}
    )


async def _page(
    request: web.Request,
    campaign_id: int,
    *,
    error: str = "",
    drafts: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> web.StreamResponse:
    rt = runtime(request)
    view = await feedback_view(rt, campaign_id)
    c = view.campaign
    texts = drafts or {
        "text": {k: str(v) for k, v in (c.feedback_text or {}).items()},
        "plan": {k: str(v) for k, v in (c.plan_refs or {}).items()},
    }
    me = user(request)
    return await render(
        request,
        "feedback.html",
        {
            "title": t(request, "fbp.title", name=c.name),
            "view": view,
            "texts": texts,
            "without": set(c.feedback_without_text or ()),
            "when": feedback_when(view.timing, rt.settings.schedule.tz, lang(request)),
            "delay": format_duration(c.feedback_delay),
            "error": error,
            "can_write": me.can("analyst"),
            "language_name": language_name,
            "max_segments": feedback.MAX_SEGMENTS,
            "local_time": local_time,
            "tz": rt.settings.schedule.tz,
        },
        status=status,
    )


def _campaign_id(request: web.Request) -> int | None:
    return db_id(request.match_info["id"])


@require("viewer")
async def page(request: web.Request) -> web.StreamResponse:
    """GET /campaigns/{id}/feedback: a campaign's feedback texts, previews and timing."""
    campaign_id = _campaign_id(request)
    try:
        if campaign_id is None:
            raise CampaignNotFound(0)
        return await _page(request, campaign_id)
    except CampaignNotFound:
        return await not_found(request, request.match_info["id"])


def _field(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value[:MAX_FIELD] if isinstance(value, str) else ""


@require("analyst")
async def save(request: web.Request) -> web.StreamResponse:
    """Store the texts, plan references, languages without a text and the delay."""
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return await not_found(request, request.match_info["id"])
    rt = runtime(request)
    form = await request.post()
    try:
        view = await feedback_view(rt, campaign_id)
    except CampaignNotFound:
        return await not_found(request, request.match_info["id"])
    languages = view.survey.languages
    texts = {code: _field(form, f"text_{code}") for code in languages}
    plans = {code: _field(form, f"plan_{code}") for code in languages}
    without = [code for code in languages if form.get(f"without_{code}") == "on"]
    drafts = {"text": texts, "plan": plans}
    missing = [code for code in languages if f"text_{code}" not in form]
    if missing:
        # A form from before the survey gained a language, or a hand-made one.
        return await _page(request, campaign_id, error=t(request, "fbp.stale"), status=400)
    empty = [code for code in languages if not texts[code].strip() and code not in without]
    if empty:
        names = ", ".join(language_name(code) for code in empty)
        error = t(request, "fbp.empty", languages=names)
        return await _page(request, campaign_id, error=error, drafts=drafts, status=400)
    plan_values = dict(plans)
    try:
        delay = feedback.parse_delay(_field(form, "delay").strip() or "0s")
        await feedback.set_feedback(
            rt,
            campaign_id,
            text={k: ("" if k in without else v) for k, v in texts.items()},
            plan_ref=plan_values if any(v.strip() for v in plan_values.values()) else {},
            without_text=without,
            delay=delay if view.editable else None,
            actor=user(request).actor,
        )
    except CampaignNotFound:
        return await not_found(request, request.match_info["id"])
    except ResultsError as e:
        return await _page(request, campaign_id, error=str(e), drafts=drafts, status=400)
    raise redirect(f"/campaigns/{campaign_id}/feedback", msg="feedback_saved")


def _action(name: str) -> Any:
    @require("analyst")
    async def act(request: web.Request) -> web.StreamResponse:
        campaign_id = _campaign_id(request)
        if campaign_id is None:
            return await not_found(request, request.match_info["id"])
        rt = runtime(request)
        actor = user(request).actor
        try:
            if name == "hold":
                await feedback.hold(rt, campaign_id, actor=actor)
            elif name == "release":
                await feedback.release(rt, campaign_id, actor=actor)
            else:
                await feedback.send_now(rt, campaign_id, actor=actor)
        except CampaignNotFound:
            return await not_found(request, request.match_info["id"])
        except ResultsError as e:
            return await _page(request, campaign_id, error=str(e), status=409)
        raise redirect(f"/campaigns/{campaign_id}/feedback", msg=f"feedback_{name}")

    act.__name__ = f"feedback_{name}"
    return act


@require("analyst")
async def preview_json(request: web.Request) -> web.StreamResponse:
    """The message each language would get with the draft texts in the query (nothing is
    stored): `text_<lang>` and `plan_<lang>`."""
    campaign_id = _campaign_id(request)
    if campaign_id is None:
        return web.json_response({"error": t(request, "res.not_found", id="?")}, status=404)
    query = request.query
    texts = {k[5:]: v[:MAX_FIELD] for k, v in query.items() if k.startswith("text_")}
    plans = {k[5:]: v[:MAX_FIELD] for k, v in query.items() if k.startswith("plan_")}
    try:
        drafts = await draft_preview(runtime(request), campaign_id, texts, plans)
    except CampaignNotFound:
        return web.json_response({"error": t(request, "res.not_found", id=campaign_id)}, status=404)
    except ResultsError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response(
        {
            "languages": [
                {
                    **d.to_json(),
                    "summary": t(
                        request,
                        "fbp.segments",
                        segments=d.segments.segments,
                        encoding=d.segments.encoding,
                        units=d.segments.units,
                    ),
                    "verdict": t(request, "fbp.fits")
                    if d.fits
                    else t(request, "fbp.too_long", max=feedback.MAX_SEGMENTS),
                }
                for d in drafts
            ]
        }
    )


def add_routes(app: web.Application) -> None:
    """Add the feedback pages and their actions (save, preview, hold, release, send now)."""
    app.router.add_get("/feedback", index)
    app.router.add_get("/campaigns/{id}/feedback", page)
    app.router.add_post("/campaigns/{id}/feedback", save)
    app.router.add_get("/campaigns/{id}/feedback/preview.json", preview_json)
    for name in ("hold", "release", "send-now"):
        app.router.add_post(f"/campaigns/{{id}}/feedback/{name}", _action(name.replace("-", "_")))


i18n.add_messages(
    {
        "sv": {
            "fbp.index_intro": "Återkopplingen (\u201dni sa, vi gör\u201d) per kampanj.",
            "fbp.when": "När den går ut",
            "fbp.title": "Återkoppling: {name}",
            "fbp.intro": (
                "När kampanjen har stängts får de som svarade ett kort meddelande på sitt språk: "
                "hur många som svarade, några resultat, er text om vad ni ska göra och en länk "
                "till resultatsidan. Högst {max} SMS-delar per meddelande; er text kortas aldrig."
            ),
            "fbp.status": "Status",
            "fbp.recipients": "{n} mottagare",
            "fbp.write": "Vad ni ska göra",
            "fbp.text": "Text ({language})",
            "fbp.plan": "Koppling till plan ({language}, valfritt)",
            "fbp.without": "Skicka utan egen text ({language})",
            "fbp.delay": "Skickas så här länge efter att kampanjen stängts",
            "fbp.delay_hint": "T.ex. 3d (dagar), 12h (timmar) eller 0s (direkt).",
            "fbp.save": "Spara texterna",
            "fbp.preview": "Så här blir meddelandet ({language})",
            "fbp.preview_live": "Förhandsvisningen uppdateras medan du skriver.",
            "fbp.segments": "{segments} SMS-delar ({encoding}, {units} tecken)",
            "fbp.fits": "Får plats.",
            "fbp.too_long": (
                "För långt: meddelandet kan bli mer än {max} SMS-delar. Korta texten, annars "
                "går den inte att spara."
            ),
            "fbp.left_out": "{n} resultatrader fick inte plats och utelämnas.",
            "fbp.hold": "Pausa återkopplingen",
            "fbp.release": "Släpp återkopplingen",
            "fbp.send_now": "Skicka nu",
            "fbp.send_now_hint": (
                "Skickar direkt i stället för efter fördröjningen (tysta timmar gäller ändå). "
                "Går när kampanjen är stängd och återkopplingen inte är pausad."
            ),
            "fbp.confirm_send": "Skicka återkopplingen nu?",
            "fbp.readonly": "Texterna skrivs av analytiker och administratörer.",
            "fbp.locked": "Återkopplingen har redan gått ut, så texterna går inte att ändra.",
            "fbp.stale": (
                "Formuläret var inaktuellt (enkätens språk har ändrats). Inget sparades; "
                "skriv texterna igen nedan."
            ),
            "fbp.error": "Det gick inte att spara",
            "fbp.empty": (
                "Skriv en text på {languages}, eller kryssa i att det språket skickas utan egen "
                "text. Inget sparades."
            ),
            "flash.feedback_saved": "Återkopplingen är sparad.",
            "flash.feedback_hold": "Återkopplingen är pausad.",
            "flash.feedback_release": "Återkopplingen är släppt.",
            "flash.feedback_send_now": "Återkopplingen skickas nu.",
            "fbp.status.pending": "väntar",
            "fbp.status.held": "pausad",
            "fbp.status.sending": "skickas",
            "fbp.status.sent": "skickad",
            "fbp.status.none": "ingen",
        },
        "en": {
            "fbp.index_intro": "The feedback (\u201cyou said, we did\u201d) per campaign.",
            "fbp.when": "When it goes out",
            "fbp.title": "Feedback: {name}",
            "fbp.intro": (
                "When the campaign has closed, those who answered get a short message in their "
                "language: how many answered, some results, your text on what you will do and a "
                "link to the results page. At most {max} SMS segments a message; your text is "
                "never cut."
            ),
            "fbp.status": "Status",
            "fbp.recipients": "{n} recipients",
            "fbp.write": "What we will do",
            "fbp.text": "Text ({language})",
            "fbp.plan": "Plan reference ({language}, optional)",
            "fbp.without": "Send without a text of our own ({language})",
            "fbp.delay": "Sent this long after the campaign closes",
            "fbp.delay_hint": "E.g. 3d (days), 12h (hours) or 0s (at once).",
            "fbp.save": "Save the texts",
            "fbp.preview": "The message ({language})",
            "fbp.preview_live": "The preview updates as you write.",
            "fbp.segments": "{segments} SMS segments ({encoding}, {units} characters)",
            "fbp.fits": "Fits.",
            "fbp.too_long": (
                "Too long: the message could take more than {max} SMS segments. Shorten the "
                "text, or it cannot be saved."
            ),
            "fbp.left_out": "{n} result lines did not fit and are left out.",
            "fbp.hold": "Hold the feedback",
            "fbp.release": "Release the feedback",
            "fbp.send_now": "Send now",
            "fbp.send_now_hint": (
                "Sends at once instead of after the delay (quiet hours still apply). Works once "
                "the campaign has closed and the feedback is not held."
            ),
            "fbp.confirm_send": "Send the feedback now?",
            "fbp.readonly": "Texts are written by analysts and administrators.",
            "fbp.locked": "The feedback has gone out, so its texts can no longer change.",
            "fbp.stale": (
                "The form was out of date (the survey's languages changed). Nothing was saved; "
                "write the texts again below."
            ),
            "fbp.error": "Could not save",
            "fbp.empty": (
                "Write a text in {languages}, or tick that the language is sent without a text "
                "of our own. Nothing was saved."
            ),
            "flash.feedback_saved": "The feedback is saved.",
            "flash.feedback_hold": "The feedback is held.",
            "flash.feedback_release": "The feedback is released.",
            "flash.feedback_send_now": "The feedback is being sent now.",
            "fbp.status.pending": "pending",
            "fbp.status.held": "held",
            "fbp.status.sending": "sending",
            "fbp.status.sent": "sent",
            "fbp.status.none": "none",
        },
    }
)
