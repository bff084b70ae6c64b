"""Everything a running service (or one CLI command) shares: database, surveys, services.

Built once by `open_runtime` and closed when it exits; the web app keeps it under `RUNTIME`
(here, not in the app module, so that routes can read it without importing the app), CLI commands
use it for the length of one command. The features plug in through `bot.features`, which wraps
`open_runtime`; this module knows none of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.catalog import SurveyCatalog
from bot.channels import PROVIDERS, build_channels, limits_from
from bot.channels.base import Channel
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.inbound.decide import EXPIRE_TASK, Policy
from bot.inbound.service import ConversationService
from bot.ops.metrics import Metrics
from bot.outbox.dispatcher import Dispatcher
from bot.outbox.sendproc import SendProcess
from bot.privacy import Pseudonymizer, load_or_create_key, parse_key
from bot.scheduler import TaskRunner
from storage.db import Database
from storage.migrate import upgrade_async
from storage.sealing import Sealer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running service shares: settings, database, surveys, channels, sender, timers."""

    settings: Settings
    db: Database
    catalog: SurveyCatalog
    service: ConversationService
    clock: Clock
    channels: dict[str, Channel] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    send_process: SendProcess | None = None
    """Where the dispatcher's provider requests go, when `dispatcher.send_process` is on."""
    dispatcher: Dispatcher = field(init=False)
    tasks: TaskRunner = field(init=False)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(
            self.db,
            self.channels,
            self.settings.dispatcher,
            self.clock,
            self.service,
            limits=limits_from(self.settings),
            metrics=self.metrics,
            remote=self.send_process,
        )
        self.service.sender = self.dispatcher
        self.tasks = TaskRunner(
            self.db, self.clock, self.settings.schedule.poll_interval, metrics=self.metrics
        )
        self.metrics.bind(self.db, self.clock, list(self.channels))
        self.tasks.register(EXPIRE_TASK, _payload_handler(self.service.expire_conversation))
        self.tasks.maintenance.append(self.service.release_answers)


RUNTIME = web.AppKey("runtime", Runtime)
"""Where the web app (and its API sub-app) keep the runtime."""


def _payload_handler(
    func: Callable[[str], Awaitable[Any]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def handle(payload: dict[str, Any]) -> None:
        await func(str(payload["conversation_id"]))

    return handle


def send_process_for(settings: Settings, channels: Mapping[str, Channel]) -> SendProcess | None:
    """The send process for the configured channels that send over HTTP, if it is on."""
    names = [p.name for p in PROVIDERS if p.sends_over_http and p.name in channels]
    if not settings.dispatcher.send_process or not names:
        return None
    return SendProcess(settings, names)


def pseudonymizer_for(settings: Settings) -> Pseudonymizer:
    """The HMAC key comes from config/env, or from a key file outside the database."""
    key = settings.privacy.pseudonym_key
    if key:
        return Pseudonymizer(key.encode("utf-8"))
    return Pseudonymizer(load_or_create_key(Path(settings.privacy.pseudonym_key_file)))


def sealer_for(settings: Settings) -> Sealer:
    """The key sealing addresses at rest: from config/env, or a key file outside the database."""
    key = settings.privacy.address_key
    if key:
        return Sealer(parse_key(key))
    return Sealer(load_or_create_key(Path(settings.privacy.address_key_file)))


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    migrate: bool = False,
    plug: Callable[[Runtime], None] | None = None,
) -> AsyncIterator[Runtime]:
    """Open the database, load the surveys, build the services, let `plug` add the features'
    task handlers; close it all on exit."""
    sealer = sealer_for(settings)
    pseudonymizer = pseudonymizer_for(settings)
    if migrate:
        await upgrade_async(settings.database.url, sealer=sealer, keyer=pseudonymizer.address_key)
    db = Database(settings.database.url, sealer=sealer)
    try:
        await db.check()
        catalog = SurveyCatalog(settings.organisation.placeholders())
        async with db.transaction() as s:
            await catalog.load(s, settings.surveys.resolved_paths)
        clock = clock or SystemClock()
        privacy = settings.privacy
        metrics = Metrics()
        service = ConversationService(
            db,
            catalog,
            pseudonymizer,
            clock,
            policy=Policy(starts_per_hour=privacy.keyword_starts_per_hour),
            release_batch=privacy.min_group_size,
            metrics=metrics,
        )
        built = build_channels(settings) if channels is None else channels
        runtime = Runtime(
            settings=settings,
            db=db,
            catalog=catalog,
            service=service,
            clock=clock,
            channels=built,
            metrics=metrics,
            # Only for channels built from the settings: the child builds the same ones.
            send_process=send_process_for(settings, built) if channels is None else None,
        )
        if plug is not None:
            plug(runtime)
        try:
            yield runtime
        finally:
            for channel in runtime.channels.values():
                await channel.close()
    finally:
        await db.dispose()
