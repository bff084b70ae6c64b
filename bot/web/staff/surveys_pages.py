"""Page 7, Surveys: the loaded surveys, the problems in the survey files, and a try-out per
language that runs the real engine in memory (nothing stored; see `surveys_view`)."""

from __future__ import annotations

from aiohttp import web

from bot.web.staff import i18n
from bot.web.staff.framework import lang, render, require, runtime, t
from bot.web.staff.surveys_view import (
    TrialError,
    TrialRun,
    file_problems,
    survey_rows,
    trial_answer,
    trial_start,
)
from flows.model import Survey, localize
from flows.texts import language_name

MAX_TOKEN = 200_000


@require("viewer")
async def index(request: web.Request) -> web.StreamResponse:
    """GET /surveys: the loaded surveys and the survey files' problems."""
    rt = runtime(request)
    return await render(
        request,
        "surveys.html",
        {
            "title": t(request, "nav.surveys"),
            "rows": survey_rows(rt, lang(request)),
            "problems": file_problems(rt),
            "language_name": language_name,
        },
    )


def _survey(request: web.Request) -> Survey | None:
    entry = runtime(request).catalog.latest(request.match_info["survey_id"][:100])
    return entry.survey if entry is not None else None


async def _missing(request: web.Request) -> web.Response:
    return await render(
        request,
        "error.html",
        {
            "status": 404,
            "title": t(request, "srv.not_found_title"),
            "message": t(request, "srv.not_found", id=request.match_info["survey_id"][:100]),
        },
        status=404,
    )


async def _page(
    request: web.Request,
    survey: Survey,
    *,
    run: TrialRun | None = None,
    error: str = "",
    status: int = 200,
) -> web.Response:
    code = run.lang if run else lang(request)
    return await render(
        request,
        "survey.html",
        {
            "title": localize(survey.title, lang(request), survey.default_language),
            "survey": survey,
            "run": run,
            "error": error,
            "language_name": language_name,
            "localize": lambda text: localize(text, code, survey.default_language),
            "ui_localize": lambda text: localize(text, lang(request), survey.default_language),
        },
        status=status,
    )


@require("viewer")
async def detail(request: web.Request) -> web.StreamResponse:
    """GET /surveys/{survey_id}: a survey's questions and a try-out; 404 if unknown."""
    survey = _survey(request)
    if survey is None:
        return await _missing(request)
    return await _page(request, survey)


@require("viewer")
async def trial(request: web.Request) -> web.StreamResponse:
    """Start a try-out (`lang`) or go on with one (`token` and `text` or `payload`). A POST
    because it carries state, but it changes nothing: nothing is stored."""
    survey = _survey(request)
    if survey is None:
        return await _missing(request)
    form = await request.post()
    now = runtime(request).clock.now()
    token = form.get("token")
    try:
        if isinstance(token, str) and token:
            if len(token) > MAX_TOKEN:
                raise TrialError("this try-out is too long: start again")
            payload = form.get("payload")
            text = form.get("text")
            run = trial_answer(
                survey,
                token,
                text=text if isinstance(text, str) else "",
                payload=payload if isinstance(payload, str) and payload else None,
                now=now,
            )
        else:
            code = form.get("lang")
            run = trial_start(survey, code if isinstance(code, str) else "", now)
    except TrialError as e:
        return await _page(request, survey, error=str(e), status=400)
    return await _page(request, survey, run=run)


def add_routes(app: web.Application) -> None:
    """Add the survey pages and their try-out."""
    app.router.add_get("/surveys", index)
    app.router.add_get("/surveys/{survey_id}", detail)
    app.router.add_post("/surveys/{survey_id}/try", trial)


i18n.add_messages(
    {
        "sv": {
            "srv.intro": "Enkäterna som tjänsten använder nu (den senaste versionen av varje).",
            "srv.problems": "Problem i enkätfilerna",
            "srv.problems_note": "En fil med problem används inte förrän den är rättad.",
            "srv.no_problems": "Inga problem i enkätfilerna.",
            "srv.id": "Id",
            "srv.title": "Titel",
            "srv.version": "Version",
            "srv.languages": "Språk",
            "srv.questions": "Frågor",
            "srv.keywords": "Nyckelord",
            "srv.file": "Fil",
            "srv.try": "Prova",
            "srv.try_in": "Prova på {language}",
            "srv.try_heading": "Prova enkäten",
            "srv.try_note": (
                "Provkörningen använder samma motor som riktiga samtal men sparas inte och räknas "
                "aldrig som svar. Så här ser det ut i webbchatten; under varje meddelande står "
                "vad det kostar som SMS."
            ),
            "srv.answer": "Ditt svar",
            "srv.send": "Skicka",
            "srv.restart": "Börja om",
            "srv.sms": "Som SMS: {segments} delar ({encoding})",
            "srv.finished": "Provkörningen är slut ({status}). Svaren som skulle ha sparats:",
            "srv.none_answers": "Inga svar.",
            "srv.you": "Du",
            "srv.bot": "Enkäten",
            "srv.not_found_title": "Enkäten finns inte",
            "srv.not_found": "Det finns ingen enkät med id {id}.",
            "srv.question_list": "Frågorna",
            "srv.type": "Typ",
        },
        "en": {
            "srv.intro": "The surveys the service uses now (the newest version of each).",
            "srv.problems": "Problems in the survey files",
            "srv.problems_note": "A file with problems is not used until it is fixed.",
            "srv.no_problems": "No problems in the survey files.",
            "srv.id": "Id",
            "srv.title": "Title",
            "srv.version": "Version",
            "srv.languages": "Languages",
            "srv.questions": "Questions",
            "srv.keywords": "Keywords",
            "srv.file": "File",
            "srv.try": "Try it",
            "srv.try_in": "Try it in {language}",
            "srv.try_heading": "Try the survey",
            "srv.try_note": (
                "The try-out runs the same engine as real conversations but is not stored and is "
                "never counted as an answer. It looks as in the web chat; below each message is "
                "what it costs as an SMS."
            ),
            "srv.answer": "Your answer",
            "srv.send": "Send",
            "srv.restart": "Start again",
            "srv.sms": "As SMS: {segments} segments ({encoding})",
            "srv.finished": "The try-out has ended ({status}). The answers that would be stored:",
            "srv.none_answers": "No answers.",
            "srv.you": "You",
            "srv.bot": "Survey",
            "srv.not_found_title": "No such survey",
            "srv.not_found": "There is no survey with id {id}.",
            "srv.question_list": "The questions",
            "srv.type": "Type",
        },
    }
)
