"""The web chat: `/chat` to try the shipped surveys, `/chat/<token>` as a personal link."""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import secrets
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.channels.base import RequestRejected, WebRequest
from bot.config import WebSettings
from bot.runtime import RUNTIME
from bot.web.inputs import db_id, parse_form, read_body
from bot.web.limits import SlidingWindow, client_address
from flows.model import Survey, base_language, localize
from storage import repo_contacts, repo_messages
from storage.models import Contact

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
FORM = "application/x-www-form-urlencoded"
MAX_START_FORM = 4096
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
LANGUAGE_NAMES = {
    "sv": "Svenska",
    "en": "English",
    "ar": "العربية",
    "sv-x-lattlast": "Lättläst svenska",
}
PAGE_TEXT = {
    "sv": {
        "title": "Brukardialog – webbchatt",
        "pick": "Välj en enkät att svara på",
        "start": "Börja",
        "language": "Språk",
        "none": "Inga enkäter finns just nu.",
        "placeholder": "Skriv ditt svar här",
        "send": "Skicka",
        "missing": "Länken är inte giltig längre.",
        "private": "Dina svar sparas utan namn. Skriv STOPP för att sluta.",
        "busy": "Många samtal har startats härifrån på kort tid. Försök igen om en stund.",
        "stale": "Sidan hann bli för gammal. Ladda om den och försök igen.",
        "not_offered": "Den enkäten finns inte här.",
        "again": "Tillbaka till enkäterna",
    },
    "en": {
        "title": "Brukardialog – web chat",
        "pick": "Choose a survey to answer",
        "start": "Start",
        "language": "Language",
        "none": "There are no surveys right now.",
        "placeholder": "Write your answer here",
        "send": "Send",
        "missing": "This link is no longer valid.",
        "private": "Your answers are saved without your name. Write STOP to end.",
        "busy": "Many chats were started from here in a short time. Please try again later.",
        "stale": "This page is out of date. Please reload it and try again.",
        "not_offered": "That survey is not available here.",
        "again": "Back to the surveys",
    },
    "ar": {
        "title": "حوار المستفيدين – دردشة",
        "pick": "اختر استبيانًا للإجابة عليه",
        "start": "ابدأ",
        "language": "اللغة",
        "none": "لا توجد استبيانات الآن.",
        "placeholder": "اكتب إجابتك هنا",
        "send": "إرسال",
        "missing": "هذا الرابط لم يعد صالحًا.",
        "private": "تُحفظ إجاباتك بدون اسمك. اكتب STOP للإنهاء.",
        "busy": "بدأت محادثات كثيرة من هنا خلال وقت قصير. حاول مرة أخرى بعد قليل.",
        "stale": "انتهت صلاحية الصفحة. أعد تحميلها وحاول مرة أخرى.",
        "not_offered": "هذا الاستبيان غير متاح هنا.",
        "again": "العودة إلى الاستبيانات",
    },
}


def runtime(request: web.Request) -> Runtime:
    """The service's runtime, from the app a request came to."""
    return request.app[RUNTIME]


def page_language(request: web.Request) -> str:
    """The page language: ?lang=, else the first supported Accept-Language, else Swedish."""
    lang = request.query.get("lang", "")
    if lang in PAGE_TEXT:
        return lang
    header = request.headers.get("Accept-Language", "")
    for part in header.split(","):
        code = base_language(part.split(";")[0].strip().lower())
        if code in PAGE_TEXT:
            return code
    return "sv"


def layout(lang: str, title: str, body: str, *, script: str = "") -> str:
    """A whole chat page around `body`, written right to left for RTL_LANGUAGES."""
    direction = "rtl" if base_language(lang) in RTL_LANGUAGES else "ltr"
    tail = f'<script src="/chat/static/{script}" defer></script>' if script else ""
    return (
        f'<!doctype html><html lang="{escape(lang)}" dir="{direction}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/chat/static/chat.css">'
        f"{tail}</head><body>{body}</body></html>"
    )


FORM_COOKIE = "bd_form"
"""A random value set with the /chat page and sent back in its form: a POST from another site
has neither (the cookie is SameSite=Strict), so it cannot start conversations in a visitor's
browser. Our pages send no Referer (Referrer-Policy: no-referrer), and then browsers send
`Origin: null` on form posts, so the Origin header alone cannot tell."""
_FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
CHAT_STARTS: web.AppKey[SlidingWindow] = web.AppKey("chat_starts", SlidingWindow)
WEB_SETTINGS: web.AppKey[WebSettings] = web.AppKey("web_settings", WebSettings)


def public_surveys(rt: Runtime) -> list[Survey]:
    """The surveys anyone may start from the /chat page."""
    return [survey for survey in rt.catalog.surveys if survey.public]


def _form_token(request: web.Request) -> str:
    token = request.cookies.get(FORM_COOKIE, "")
    return token if _FORM_TOKEN.fullmatch(token) else secrets.token_urlsafe(24)


def _message_page(
    lang: str, key: str, status: int, headers: Mapping[str, str] | None = None
) -> web.Response:
    t = PAGE_TEXT[lang]
    body = (
        f'<main class="index"><p>{escape(t[key])}</p>'
        f'<p><a href="/chat?lang={escape(lang)}">{escape(t["again"])}</a></p></main>'
    )
    return web.Response(
        text=layout(lang, t["title"], body),
        content_type="text/html",
        status=status,
        headers=headers,
    )


async def index(request: web.Request) -> web.Response:
    """GET /chat: the public surveys to start, each with its languages."""
    rt = runtime(request)
    lang = page_language(request)
    t = PAGE_TEXT[lang]
    token = _form_token(request)
    choices = []
    for survey in public_surveys(rt):
        langs = "".join(
            f'<option value="{escape(code)}"{" selected" if code == lang else ""}>'
            f"{escape(LANGUAGE_NAMES.get(code, code))}</option>"
            for code in survey.languages
        )
        title = localize(survey.title, lang, survey.default_language)
        choices.append(
            '<li class="survey"><form method="post" action="/chat/start">'
            f'<input type="hidden" name="survey" value="{escape(survey.id)}">'
            f'<input type="hidden" name="form" value="{token}">'
            f"<h2>{escape(title)}</h2>"
            f'<label>{escape(t["language"])} <select name="lang">{langs}</select></label>'
            f'<button type="submit">{escape(t["start"])}</button></form></li>'
        )
    switch = " · ".join(
        f'<a href="/chat?lang={code}" lang="{code}">{escape(LANGUAGE_NAMES[code])}</a>'
        for code in PAGE_TEXT
    )
    listing = f'<ul class="surveys">{"".join(choices)}</ul>' if choices else f"<p>{t['none']}</p>"
    body = (
        f'<main class="index"><nav class="langs">{switch}</nav>'
        f'<h1>{escape(t["pick"])}</h1>{listing}<p class="note">{escape(t["private"])}</p></main>'
    )
    response = web.Response(text=layout(lang, t["title"], body), content_type="text/html")
    response.set_cookie(
        FORM_COOKIE,
        token,
        path="/chat",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
    )
    return response


def _same_site(request: web.Request, public_url: str) -> bool:
    """False for a request whose Origin is another site."""
    origin = request.headers.get("Origin")
    return origin in (None, "null") or origin == _origin(public_url)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def start(request: web.Request) -> web.StreamResponse:
    """Start a public survey from the /chat page: same-site posts only, a limited number per
    client address."""
    rt = runtime(request)
    lang = page_language(request)
    try:
        body = await read_body(request, MAX_START_FORM)
        form = parse_form(body) if request.content_type == FORM else {}
    except RequestRejected as e:
        return _message_page(lang, "stale", e.status)
    cookie = request.cookies.get(FORM_COOKIE, "")
    given = form.get("form", "")
    if (
        not _same_site(request, rt.settings.server.public_url)
        or not _FORM_TOKEN.fullmatch(cookie)
        or not hmac.compare_digest(given.encode(), cookie.encode())
    ):
        log.info("web chat start refused: cross-site or stale form")
        return _message_page(lang, "stale", 403)
    survey_id = form.get("survey", "")
    entry = rt.catalog.latest(survey_id)
    if entry is None or not entry.survey.public:
        return _message_page(lang, "not_offered", 404)
    chosen = form.get("lang", "")
    if chosen in PAGE_TEXT:
        lang = chosen
    settings = request.app[WEB_SETTINGS]
    address = client_address(request, trust_forwarded_for=settings.trust_forwarded_for)
    wait = request.app[CHAT_STARTS].hit(address, rt.clock.now().timestamp())
    if wait is not None:
        log.info("web chat start refused: over the per-address limit")
        return _message_page(lang, "busy", 429, {"Retry-After": str(math.ceil(wait))})
    survey_lang = chosen if chosen in entry.survey.languages else entry.survey.default_language
    session = await rt.service.start_webchat(entry.survey.id, survey_lang)
    rt.dispatcher.wake()
    raise web.HTTPSeeOther(f"/chat/{session.token}")


async def _known_contact(request: web.Request) -> tuple[str, Contact]:
    """The personal token in the URL and its contact; 404 for a token nobody has."""
    rt = runtime(request)
    token = request.match_info["token"]
    key = rt.service.pseudonymizer.address_key("webchat", token)
    async with rt.db.transaction(read_only=True) as s:
        contact = await repo_contacts.find_by_address(s, "webchat", key)
    if contact is None:
        raise web.HTTPNotFound(
            text='{"error": "unknown chat link"}', content_type="application/json"
        )
    return token, contact


async def _known_token(request: web.Request) -> str:
    return (await _known_contact(request))[0]


async def chat_page(request: web.Request) -> web.Response:
    """GET /chat/{token}: the chat page of a known token, in the language chosen for the survey."""
    lang = page_language(request)
    try:
        token, contact = await _known_contact(request)
    except web.HTTPNotFound:
        t = PAGE_TEXT[lang]
        body = f'<main class="index"><p>{escape(t["missing"])}</p><a href="/chat">/chat</a></main>'
        return web.Response(
            text=layout(lang, t["title"], body), content_type="text/html", status=404
        )
    # The page speaks the language the person chose for the survey, not the browser's.
    chosen = base_language(contact.language or "")
    if "lang" not in request.query and chosen in PAGE_TEXT:
        lang = chosen
    t = PAGE_TEXT[lang]
    texts = json.dumps({code: PAGE_TEXT[code] for code in PAGE_TEXT}, ensure_ascii=False)
    body = (
        f'<main class="chat" data-token="{escape(token)}" data-texts="{escape(texts)}">'
        f'<header><a href="/chat" class="back" aria-label="/chat">←</a>'
        f"<h1>{escape(t['title'])}</h1></header>"
        '<ol class="log" aria-live="polite"></ol>'
        '<div class="buttons" role="group"></div>'
        '<form class="compose"><label class="visually-hidden" for="answer">'
        f"{escape(t['placeholder'])}</label>"
        f'<textarea id="answer" rows="1" dir="auto" placeholder="{escape(t["placeholder"])}">'
        f'</textarea><button type="submit">{escape(t["send"])}</button></form></main>'
    )
    return web.Response(
        text=layout(lang, t["title"], body, script="chat.js"), content_type="text/html"
    )


def message_json(row: Any, person_lang: str | None = None) -> dict[str, Any]:
    """A message as the page shows it. A cleared message (a finished anonymous conversation)
    has lost its language: it is shown in the person's, so the page never flips direction."""
    payload = row.payload or {}
    lang = payload.get("lang") or person_lang or "sv"
    if row.direction == "in":
        # The person's own message; the client id lets the page skip what it already shows.
        return {
            "id": row.id,
            "who": "me",
            "client_id": (row.provider_id or "").rpartition(":")[2],
            "text": row.body or "",
        }
    return {
        "id": row.id,
        "who": "bot",
        "text": row.body or "",
        "lang": lang,
        "dir": "rtl" if base_language(lang) in RTL_LANGUAGES else "ltr",
        "kind": payload.get("kind", "info"),
        "buttons": [{"payload": p, "label": label} for p, label in payload.get("buttons", [])],
        "numbered": payload.get("numbered", []),
        "multiple": bool(payload.get("multiple", False)),
    }


async def _messages_after(
    request: web.Request, token: str, after: int, person_lang: str | None
) -> list[dict[str, Any]]:
    rt = runtime(request)
    key = rt.service.pseudonymizer.address_key("webchat", token)
    async with rt.db.transaction(read_only=True) as s:
        rows = await repo_messages.chat_history(s, "webchat", key, after, 100, rt.clock.now())
    return [message_json(r, person_lang) for r in rows]


async def poll(request: web.Request) -> web.Response:
    """GET /chat/{token}/messages?after=ID: the messages for the browser after the one it has."""
    token, contact = await _known_contact(request)
    after = db_id(request.query.get("after", "0"))
    if after is None:
        return web.json_response({"error": "'after' must be a message id"}, status=400)
    messages = await _messages_after(request, token, after, contact.language)
    return web.json_response({"messages": messages})


async def post_message(request: web.Request) -> web.Response:
    """POST /chat/{token}/messages: run a turn for the message the browser sent."""
    rt = runtime(request)
    token = await _known_token(request)
    channel = rt.channels["webchat"]
    req = WebRequest(
        url=str(request.url),
        headers={"X-Chat-Token": token},
        body=await request.read(),
        content_type=request.content_type,
    )
    try:
        if not channel.verify(req):
            raise RequestRejected(403, "bad chat token")
        messages = channel.parse(req)
    except RequestRejected as e:
        return web.json_response({"error": e.reason}, status=e.status)
    for message in messages:
        await rt.service.handle_inbound(message)
    rt.dispatcher.wake()
    return web.json_response({"ok": True}, status=202)


def add_routes(app: web.Application, settings: WebSettings) -> None:
    """Add the web chat's pages, static files and message routes under /chat."""
    app[WEB_SETTINGS] = settings
    app[CHAT_STARTS] = SlidingWindow(settings.start_limit, settings.start_window)
    app.router.add_get("/chat", index)
    app.router.add_post("/chat/start", start)
    app.router.add_static("/chat/static", STATIC)
    app.router.add_get("/chat/{token}", chat_page)
    app.router.add_get("/chat/{token}/messages", poll)
    app.router.add_post("/chat/{token}/messages", post_message)
