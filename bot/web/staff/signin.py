"""Sign-in, sign-out and the language switch."""

from __future__ import annotations

from aiohttp import web

from bot.web.staff import accounts, i18n
from bot.web.staff.framework import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    optional_user,
    public,
    redirect,
    render,
    require,
    runtime,
    secure_cookies,
    set_session_cookie,
    t,
    url,
    user,
)

MAX_FIELD = 1024


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path in the staff app, never another site."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
        and not value.startswith(f"{PREFIX}/login")
        and len(value) < 2000
    ):
        return value
    return url("/")


async def _login_page(
    request: web.Request, *, error: str = "", name: str = "", status: int = 200
) -> web.Response:
    notice = ""
    if request.query.get("expired"):
        notice = "login.expired"
    elif request.query.get("signed_out"):
        notice = "login.signed_out"
    return await render(
        request,
        "login.html",
        {
            "error": error,
            "notice": notice,
            "name": name,
            "next": safe_next(request.query.get("next")),
            "title": t(request, "login.title"),
        },
        status=status,
    )


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in page (a signed-in person goes straight on)."""
    if optional_user(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return await _login_page(request)


@public
async def login(request: web.Request) -> web.StreamResponse:
    """Check the name and password; the same message whichever was wrong."""
    form = await request.post()
    name = form.get("username", "")
    password = form.get("password", "")
    if not isinstance(name, str) or not isinstance(password, str):
        return await _login_page(request, error="login.missing", status=400)
    name = name[:MAX_FIELD]
    if not name.strip() or not password:
        return await _login_page(request, error="login.missing", name=name, status=400)
    signed = await accounts.sign_in(runtime(request), name, password)
    if signed is None:
        return await _login_page(request, error="login.failed", name=name, status=401)
    next_value = form.get("next")
    response = web.HTTPSeeOther(safe_next(next_value if isinstance(next_value, str) else None))
    set_session_cookie(response, request, signed.session_id)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    raise response


@require("viewer")
async def logout(request: web.Request) -> web.StreamResponse:
    """End this session."""
    current = user(request)
    await accounts.sign_out(runtime(request), current.session_hash, current.name)
    response = redirect("/login", signed_out=1)
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    raise response


@public
async def language(request: web.Request) -> web.StreamResponse:
    """Switch the page language (a cookie) and go back to the page."""
    code = request.match_info["lang"]
    if code not in i18n.LANGUAGES:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(
        LANG_COOKIE,
        code,
        path=PREFIX,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        httponly=True,
        secure=secure_cookies(request),
    )
    raise response


def add_routes(app: web.Application) -> None:
    """Sign-in, sign-out and language routes."""
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/language/{lang}", language)
