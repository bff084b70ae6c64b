"""The staff web app under /staff: pages for the people who run surveys, signed in with a role.

Server-rendered with Jinja2 (aiohttp-jinja2); every asset is served from ./static. See
`bot.web.staff.framework` for how a page module plugs in."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.runtime import RUNTIME
from bot.web.staff import (
    accounts,
    audit_pages,
    campaigns_page,
    contacts_page,
    feedback_pages,
    overview,
    person_pages,
    results_pages,
    rules_pages,
    signin,
    surveys_pages,
    users_page,
)
from bot.web.staff.framework import (
    PREFIX,
    csrf_middleware,
    errors_middleware,
    session_middleware,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

PAGES: tuple[ModuleType, ...] = (
    signin,
    overview,
    campaigns_page,
    person_pages,
    contacts_page,
    results_pages,
    feedback_pages,
    rules_pages,
    surveys_pages,
    audit_pages,
    users_page,
)
"""Page modules; each has `add_routes(app)`. Add a new page module here."""

NO_USER_HINT = (
    "no staff user exists yet: add one with `brukardialog users add NAME --role admin`, "
    "then sign in at {url}/login"
)


def create_staff_app() -> web.Application:
    """The staff sub-application (its routes are relative to /staff)."""
    app = web.Application(middlewares=[errors_middleware, session_middleware, csrf_middleware])
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.router.add_static("/static", STATIC, name="static")
    for page in PAGES:
        page.add_routes(app)
    return app


def mount(app: web.Application) -> None:
    """Mount the staff app under /staff on the service's main app; at startup, say how to add
    the first user when there is none."""
    app.add_subapp(PREFIX, create_staff_app())

    async def hint(main: web.Application) -> None:
        rt = main.get(RUNTIME)
        if rt is not None and not await accounts.has_users(rt):
            log.warning(NO_USER_HINT.format(url=rt.settings.server.public_url + PREFIX))

    app.on_startup.append(hint)
