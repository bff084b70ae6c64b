"""Every feature plugged into the service, in one place: task handlers, staff API routes,
public pages and commands. Imports are lazy because the features import the app and the CLI."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from bot.runtime import Runtime


def register(runtime: Runtime) -> None:
    """Task handlers of every feature, on a fresh runtime."""
    from bot import campaigns, followups
    from bot.results import feedback

    campaigns.register(runtime)
    followups.register(runtime)
    feedback.register(runtime)


async def start(runtime: Runtime) -> None:
    """What the service does once at startup: load the follow-up rules file, then plan this
    period's feedback for the follow-up surveys those rules use, and retime campaign messages
    to the current quiet hours."""
    from bot import campaigns, followups
    from bot.results import feedback

    await followups.load_rules(runtime)
    await feedback.schedule_periodic(runtime)
    await campaigns.apply_quiet_hours(runtime)


def add_api_routes(api: web.Application) -> None:
    """Staff API routes, mounted under /api/v1."""
    from bot.api import campaigns, contacts, events, results

    contacts.add_api_routes(api)
    campaigns.add_api_routes(api)
    events.add_api_routes(api)
    results.add_api_routes(api)


def add_public_routes(app: web.Application) -> None:
    """Pages and APIs on the main app: the public results page and the FLOIP results API."""
    from bot.api import results

    results.add_public_routes(app)


def add_staff_app(app: web.Application) -> None:
    """The staff web app, mounted under /staff."""
    from bot.web.staff import app as staff

    staff.mount(app)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Sub-commands of `brukardialog`."""
    from bot import cli_campaigns, cli_events, cli_results
    from bot.web.staff import commands as staff_commands

    cli_campaigns.add_commands(sub)
    cli_events.add_commands(sub)
    cli_results.add_commands(sub)
    staff_commands.add_commands(sub)
