"""What every staff page uses: who is signed in, roles, CSRF, rendering, the audit log, errors.

A page module has `def add_routes(app: web.Application) -> None` (listed in
`bot.web.staff.app.PAGES`) adding routes relative to /staff. Every route needs a signed-in
user unless its handler is marked `@public`; every POST/PUT/PATCH/DELETE must carry the
session's CSRF token (form field `csrf_token`, or the `X-CSRF-Token` header for fetch), checked
here before the handler runs. Handlers:

    @require("analyst")
    async def pause(request: web.Request) -> web.StreamResponse:
        form = await request.post()            # already read and checked for its CSRF token
        rt = runtime(request)
        ...
        await audit(request, "campaign.pause", f"campaign:{id}")   # campaign code logs itself
        raise redirect(request, f"/campaigns/{id}", msg="paused")

    @require("viewer")
    async def page(request):
        return await render(request, "page.html", {"title": t(request, "nav.x"), ...})

A forbidden action raises `web.HTTPForbidden` (a 403 page and one log line without personal
data); a missing object `web.HTTPNotFound`. Any other exception becomes a friendly 500 page,
never a traceback. Upload forms (multipart) put the `csrf_token` field FIRST; the handler then
reads the remaining parts from `multipart(request)`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import BodyPartReader, MultipartReader, web
from markupsafe import Markup, escape

from bot.runtime import RUNTIME, Runtime
from bot.web.staff import i18n
from storage import repo_audit, repo_staff
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

PREFIX = "/staff"
"""Where the staff app is mounted; page routes are relative to it."""
ROLES = ("viewer", "analyst", "admin")
"""Each role may do everything the ones before it may."""
SESSION_COOKIE = "bd_staff"
LOGIN_CSRF_COOKIE = "bd_staff_login"
LANG_COOKIE = "bd_staff_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
TOUCH_EVERY = timedelta(seconds=60)
"""A session's last use is written at most this often (its idle timeout is in minutes)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the main menu: a message key and a path below PREFIX."""

    key: str
    path: str
    role: str = "viewer"
    """Shown to this role and above only."""


NAV = (
    NavItem("nav.overview", "/"),
    NavItem("nav.campaigns", "/campaigns"),
    NavItem("nav.contacts", "/contacts"),
    NavItem("nav.results", "/results"),
    NavItem("nav.feedback", "/feedback"),
    NavItem("nav.followups", "/followups"),
    NavItem("nav.surveys", "/surveys"),
    NavItem("nav.audit", "/audit"),
    NavItem("nav.users", "/users", "admin"),
)


@dataclass(frozen=True, slots=True)
class StaffUser:
    """The person signed in on this request."""

    name: str
    role: str
    csrf_token: str
    session_hash: str

    def can(self, role: str) -> bool:
        """Whether this person has `role` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role) if self.role in ROLES else False

    @property
    def actor(self) -> str:
        """The name the audit log keeps for this person's actions."""
        return f"staff:{self.name}"


USER_KEY = web.RequestKey("staff_user", StaffUser)
LANG_KEY = web.RequestKey("staff_lang", str)
MULTIPART_KEY = web.RequestKey("staff_multipart", MultipartReader)
LOGIN_CSRF_KEY = web.RequestKey("staff_login_csrf", str)
SESSION_STATE_KEY = web.RequestKey("staff_session_state", str)
""""none" (no cookie), "expired" (a cookie whose session ended) or "live"."""


# -- access --------------------------------------------------------------------------------------


def runtime(request: web.Request) -> Runtime:
    """The running service (database, surveys, clock, settings)."""
    return request.config_dict[RUNTIME]


def user(request: web.Request) -> StaffUser:
    """The signed-in person (every non-public route has one)."""
    found: StaffUser | None = request.get(USER_KEY)
    if found is None:
        raise web.HTTPUnauthorized()
    return found


def optional_user(request: web.Request) -> StaffUser | None:
    """The signed-in person, if any (on public routes and error pages)."""
    return request.get(USER_KEY)


def lang(request: web.Request) -> str:
    """The page language: the language cookie, Swedish by default."""
    return request.get(LANG_KEY) or i18n.pick_language(request.cookies.get(LANG_COOKIE))


def t(request: web.Request, key: str, **fields: object) -> str:
    """`key` translated into the request's language."""
    return i18n.translate(lang(request), key, **fields)


def url(path: str, **query: object) -> str:
    """An absolute path in the staff app: url("/campaigns/3") -> "/staff/campaigns/3"."""
    full = PREFIX + (path if path != "/" else "/")
    shown = {k: v for k, v in query.items() if v is not None and v != ""}
    return f"{full}?{urlencode(shown)}" if shown else full


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without signing in (the sign-in page)."""
    handler.staff_public = True  # type: ignore[attr-defined]
    return handler


def require(role: str) -> Callable[[Handler], Handler]:
    """Only people with `role` (or a higher one) may call the handler; others get 403."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not user(request).can(role):
                forbidden(request, role)
            return await handler(request)

        wrapped.staff_role = role  # type: ignore[attr-defined]
        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return decorate


def forbidden(request: web.Request, needed: str) -> None:
    """Refuse with 403 and log it (the role and the path, never who or what)."""
    current = optional_user(request)
    log.warning(
        "staff: forbidden %s %s for role %s (needs %s)",
        request.method,
        request.match_info.route.resource.canonical
        if request.match_info.route.resource is not None
        else request.path,
        current.role if current else "-",
        needed,
    )
    raise web.HTTPForbidden(reason="forbidden")


def redirect(path: str, **query: object) -> web.HTTPSeeOther:
    """A 303 to a staff path (raise it); `msg=` names a flash text `flash.<msg>`."""
    return web.HTTPSeeOther(url(path, **query))


async def audit(
    request: web.Request, action: str, target: str = "", details: Mapping[str, Any] | None = None
) -> None:
    """Write a staff action to the audit log under the signed-in person's name. (Domain code
    that logs its own action takes `actor=user(request).actor` instead.)"""
    rt = runtime(request)
    async with rt.db.transaction() as s:
        await repo_audit.log(s, user(request).actor, action, target, details, at=rt.clock.now())


def multipart(request: web.Request) -> MultipartReader:
    """An upload form's parts after its CSRF token (checked already)."""
    reader: MultipartReader | None = request.get(MULTIPART_KEY)
    if reader is None:
        raise web.HTTPBadRequest(reason="expected an upload form")
    return reader


def csrf_field(request: web.Request) -> Markup:
    """The hidden CSRF input every form carries."""
    token = csrf_token(request)
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


def csrf_token(request: web.Request) -> str:
    """The token a form on this page must send back."""
    current = optional_user(request)
    if current is not None:
        return current.csrf_token
    token = request.get(LOGIN_CSRF_KEY)
    if token is None:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        request[LOGIN_CSRF_KEY] = token
    return token


async def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """Render a template (which extends "base.html") with what every page shows: the user,
    the CSRF field, the language and its texts (`t`), the menu and a flash message."""
    language = lang(request)
    current = optional_user(request)
    msg = request.query.get("msg", "")
    flash = i18n.translate(language, f"flash.{msg}") if msg else ""
    full: dict[str, Any] = {
        "user": current,
        "lang": language,
        "t": lambda key, **fields: i18n.translate(language, key, **fields),
        "url": url,
        "csrf_field": lambda: csrf_field(request),
        "csrf_token": csrf_token(request),
        "nav": NAV if current is not None else (),
        "current_path": request.path,
        "flash": flash if flash != f"flash.{msg}" else "",
        "other_lang": next(code for code in i18n.LANGUAGES if code != language),
        "request_path": request.path_qs,
        "title": i18n.translate(language, "app.staff"),
    }
    full.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    if current is None and request.get(LOGIN_CSRF_KEY):
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            request[LOGIN_CSRF_KEY],
            path=PREFIX,
            httponly=True,
            samesite="Lax",
            secure=secure_cookies(request),
        )
    return response


def secure_cookies(request: web.Request) -> bool:
    """Cookies are Secure when the service is reached over https (server.public_url)."""
    return runtime(request).settings.server.public_url.startswith("https://")


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    """The session cookie: a random id, HttpOnly, SameSite=Lax, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE,
        value,
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(request),
    )


# -- middlewares ---------------------------------------------------------------------------------


def _is_static(request: web.Request) -> bool:
    return request.path.startswith(f"{PREFIX}/static/")


def _is_public(request: web.Request) -> bool:
    handler = request.match_info.handler
    return _is_static(request) or bool(getattr(handler, "staff_public", False))


def _wants_json(request: web.Request) -> bool:
    return request.path.endswith(".json") or "application/json" in request.headers.get("Accept", "")


async def error_page(request: web.Request, status: int, key: str | None = None) -> web.Response:
    """A friendly page (or JSON for the pages' fetch calls) for an error status."""
    message = t(request, key or f"error.{status}")
    if message.startswith("error."):
        message = t(request, "error.400" if status < 500 else "error.500")
    if _wants_json(request):
        return web.json_response({"error": message}, status=status)
    try:
        context = {"status": status, "message": message, "title": t(request, "error.title")}
        return await render(request, "error.html", context, status=status)
    except Exception:
        log.exception("staff: the error page itself failed")
        return web.Response(text=message, status=status, content_type="text/plain")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No traceback ever: HTTP errors become friendly pages, anything else a 500 page."""
    request[LANG_KEY] = i18n.pick_language(request.cookies.get(LANG_COOKIE))
    try:
        response = await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return await error_page(request, e.status, getattr(e, "staff_key", None))
    except DatabaseUnavailable:
        log.error("staff: database unavailable while handling %s %s", request.method, request.path)
        return await error_page(request, 503)
    except Exception:
        log.exception("staff: unexpected error handling %s %s", request.method, request.path)
        return await error_page(request, 500)
    if not _is_static(request):
        response.headers["Cache-Control"] = "no-store"
    return response


def _refused(status: int, key: str) -> web.HTTPException:
    error: web.HTTPException = web.HTTPForbidden() if status == 403 else web.HTTPUnauthorized()
    error.staff_key = key  # type: ignore[attr-defined]
    return error


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the signed-in person from the session cookie; without one, a page sends the
    browser to the sign-in page and anything else is refused."""
    cookie = request.cookies.get(SESSION_COOKIE)
    request[SESSION_STATE_KEY] = "none"
    if cookie:
        found = await load_session(request, cookie)
        if found is not None:
            request[USER_KEY] = found
            request[SESSION_STATE_KEY] = "live"
        else:
            request[SESSION_STATE_KEY] = "expired"
    if USER_KEY in request or _is_public(request):
        return await handler(request)
    if request.method in SAFE_METHODS and not _wants_json(request):
        expired = "1" if request[SESSION_STATE_KEY] == "expired" else None
        raise web.HTTPSeeOther(url("/login", next=request.path_qs, expired=expired))
    raise _refused(
        403 if request.method not in SAFE_METHODS else 401,
        "error.403.session" if request.method not in SAFE_METHODS else "error.401",
    )


async def load_session(request: web.Request, cookie: str) -> StaffUser | None:
    """The live session of this cookie (touched), or None when it ended: idle too long, too
    old, or its user was disabled (then the row is deleted)."""
    rt = runtime(request)
    now = rt.clock.now()
    settings = rt.settings.staff
    async with rt.db.transaction(read_only=True) as s:
        found = await repo_staff.find_session(s, cookie)
    if found is None:
        return None
    idle = now - found.last_seen_at > timedelta(minutes=settings.idle_minutes)
    old = now - found.created_at > timedelta(hours=settings.lifetime_hours)
    if idle or old or found.disabled or found.role not in ROLES:
        async with rt.db.transaction() as s:
            await repo_staff.delete_session(s, found.session_hash)
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        async with rt.db.transaction() as s:
            await repo_staff.touch_session(s, found.session_hash, now)
    return StaffUser(found.name, found.role, found.csrf_token, found.session_hash)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every state-changing request carries the CSRF token, checked before the handler runs:
    the session's, or on the sign-in form the one in its own cookie."""
    if request.method in SAFE_METHODS:
        return await handler(request)
    current = optional_user(request)
    expected = current.csrf_token if current else request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        try:
            if request.content_type == "multipart/form-data":
                given = await _multipart_token(request)
            elif request.content_type == "application/x-www-form-urlencoded":
                form = await request.post()
                value = form.get(CSRF_FIELD, "")
                given = value if isinstance(value, str) else ""
        except (ValueError, UnicodeDecodeError, AssertionError):
            given = ""  # a malformed body: refused below like a missing token
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning(
            "staff: %s %s refused: missing or wrong CSRF token", request.method, request.path
        )
        raise _refused(403, "error.403.csrf")
    return await handler(request)


async def _multipart_token(request: web.Request) -> str:
    reader = await request.multipart()
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD:
        return ""
    token = (await part.read_chunk(1024))[:200].decode("utf-8", "replace")
    request[MULTIPART_KEY] = reader
    return token
