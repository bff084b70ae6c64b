"""Everything a running service (or one CLI command) shares: database, surveys, services.

Built once by `open_runtime` and closed when it exits; the web app keeps it under `RUNTIME`, CLI
commands use it for the length of one command."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import features
from bot.catalog import SurveyCatalog
from bot.channels.base import Channel
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.dispatcher import Dispatcher, limits_from
from bot.privacy import Pseudonymizer, load_or_create_key
from bot.scheduler import TaskRunner
from bot.service import EXPIRE_TASK, ConversationService
from storage.db import Database
from storage.migrate import upgrade_async

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    catalog: SurveyCatalog
    service: ConversationService
    clock: Clock
    channels: dict[str, Channel] = field(default_factory=dict)
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
        )
        self.tasks = TaskRunner(self.db, self.clock, self.settings.schedule.poll_interval)
        self.tasks.register(EXPIRE_TASK, _payload_handler(self.service.expire_conversation))


def _payload_handler(
    func: Callable[[str], Awaitable[Any]],
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def handle(payload: dict[str, Any]) -> None:
        await func(str(payload["conversation_id"]))

    return handle


def pseudonymizer_for(settings: Settings) -> Pseudonymizer:
    """The HMAC key comes from config/env, or from a key file outside the database."""
    key = settings.privacy.pseudonym_key
    if key:
        return Pseudonymizer(key.encode("utf-8"))
    return Pseudonymizer(load_or_create_key(Path(settings.privacy.pseudonym_key_file)))


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels whose credentials are configured; the web chat is always on."""
    from bot.channels.webchat import WebChatChannel

    channels: dict[str, Channel] = {"webchat": WebChatChannel()}
    if settings.twilio.enabled:
        from bot.channels.twilio import TwilioChannel, TwilioSettings

        channels["sms"] = TwilioChannel(
            TwilioSettings(
                account_sid=settings.twilio.account_sid,
                auth_token=settings.twilio.auth_token,
                from_number=settings.twilio.from_number or None,
                messaging_service_sid=settings.twilio.messaging_service_sid or None,
                api_base_url=settings.twilio.api_base_url,
                status_callback_url=f"{settings.server.public_url}/webhooks/twilio/status",
                timeout=settings.twilio.timeout,
            )
        )
    else:
        log.info("SMS (Twilio) is off: twilio.account_sid is not set")
    if settings.telegram.enabled:
        from bot.channels.telegram import TelegramChannel, TelegramSettings

        channels["telegram"] = TelegramChannel(
            TelegramSettings(
                bot_token=settings.telegram.bot_token,
                webhook_secret=settings.telegram.webhook_secret,
                api_base_url=settings.telegram.api_base_url,
            )
        )
    else:
        log.info("Telegram is off: telegram.bot_token is not set")
    return channels


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    migrate: bool = False,
) -> AsyncIterator[Runtime]:
    """Open the database, load the surveys, build the services; close it all on exit."""
    if migrate:
        await upgrade_async(settings.database.url)
    db = Database(settings.database.url)
    try:
        await db.check()
        catalog = SurveyCatalog()
        async with db.transaction() as s:
            await catalog.load(s, settings.surveys.resolved_paths)
        clock = clock or SystemClock()
        service = ConversationService(db, catalog, pseudonymizer_for(settings), clock)
        runtime = Runtime(
            settings=settings,
            db=db,
            catalog=catalog,
            service=service,
            clock=clock,
            channels=channels if channels is not None else build_channels(settings),
        )
        features.register(runtime)
        try:
            yield runtime
        finally:
            for channel in runtime.channels.values():
                await channel.close()
    finally:
        await db.dispose()
