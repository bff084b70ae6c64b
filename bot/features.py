"""Every feature plugged into the service, in one place: task handlers, staff API routes and
public pages, and the runtime opened with all of them (`open_runtime`). The app and the CLI
import this module; no feature imports it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bot import campaigns, followups, lifecycle
from bot import runtime as runtimes
from bot.api import campaigns as api_campaigns
from bot.api import contacts as api_contacts
from bot.api import events as api_events
from bot.api import results as api_results
from bot.channels.base import Channel
from bot.clock import Clock
from bot.config import Settings
from bot.results import feedback
from bot.runtime import Runtime
from bot.web.staff import app as staff_app


def register(runtime: Runtime) -> None:
    """Task handlers of every feature, on a fresh runtime."""
    campaigns.register(runtime)
    followups.register(runtime)
    feedback.register(runtime)
    lifecycle.register(runtime)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    migrate: bool = False,
) -> AsyncIterator[Runtime]:
    """A runtime (see `bot.runtime.open_runtime`) with every feature's task handlers."""
    async with runtimes.open_runtime(
        settings, clock=clock, channels=channels, migrate=migrate, plug=register
    ) as runtime:
        yield runtime


async def start(runtime: Runtime) -> None:
    """What the service does once at startup: load the follow-up rules files, then plan this
    period's feedback for the follow-up surveys those rules use, retime campaign messages
    to the current quiet hours, and plan today's retention run."""
    await followups.load_rules(runtime)
    await feedback.schedule_periodic(runtime)
    await campaigns.apply_quiet_hours(runtime)
    await lifecycle.schedule_daily(runtime)


def add_api_routes(api: web.Application) -> None:
    """Staff API routes, mounted under /api/v1."""
    api_contacts.add_api_routes(api)
    api_campaigns.add_api_routes(api)
    api_events.add_api_routes(api)
    api_results.add_api_routes(api)


def add_public_routes(app: web.Application) -> None:
    """Pages and APIs on the main app: the public results page and the FLOIP results API."""
    api_results.add_public_routes(app)


def add_staff_app(app: web.Application) -> None:
    """The staff web app, mounted under /staff."""
    staff_app.mount(app)
