"""What an undisturbed run sends back for a script, and how many messages a run gave up."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Message
from tests.bot.harness import running, settings_for
from tests.chaos.service import SCRIPT, Service
from tests.fakes.telegram_server import FakeTelegram, text_update
from tests.fakes.twilio_server import FakeTwilio

TELEGRAM_SCRIPT = ("UPPFOLJNING", "Delvis", "Det tog för lång tid", "7", "4", "Ja")
"""SCRIPT as typed in Telegram (choices by their label)."""
FAST_CHATS = {
    "BRUKARDIALOG__DISPATCHER__TELEGRAM_PER_CHAT_RATE": "1000",
    "BRUKARDIALOG__DISPATCHER__TELEGRAM_RATE": "1000",
}
"""In-process runs drive the dispatcher by hand with an injected clock: pacing, which counts real
seconds, is set out of the way."""


@dataclass(frozen=True, slots=True)
class Reference:
    sms: list[str]
    telegram: list[str]


async def reference_replies(
    tmp_path: Path,
    sqlite_template: Path,
    *,
    script: Sequence[str] = SCRIPT,
    telegram_script: Sequence[str] = TELEGRAM_SCRIPT,
) -> Reference:
    """The replies one person gets for the script, SMS and Telegram, on an undisturbed service."""
    path = tmp_path / "reference.db"
    shutil.copyfile(sqlite_template, path)
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()
    try:
        settings = settings_for(
            f"sqlite+aiosqlite:///{path}", twilio=twilio, telegram=telegram, extra=FAST_CHATS
        )
        async with running(settings) as h:
            for text in script:
                assert await h.sms("+46709999999", text) == 200
                await h.deliver()
            for i, text in enumerate(telegram_script[: len(script)]):
                assert await h.telegram(text_update(9_000_000 + i, 99_999, text)) == 200
                await h.deliver()
        sms = [m["body"] for m in twilio.messages.values()]
        chat = [str(m["text"]) for m in telegram.delivered]
    finally:
        await twilio.close()
        await telegram.stop()
    assert len(sms) > len(script) // 2 and len(chat) > len(script) // 2
    return Reference(sms, chat)


async def given_up(service: Service | Database | str) -> int:
    """Outgoing messages that ended failed."""
    if isinstance(service, Database):
        return await _failed(service)
    db = Database(service if isinstance(service, str) else service.database_url)
    try:
        return await _failed(db)
    finally:
        await db.dispose()


async def _failed(db: Database) -> int:
    async with db.transaction(read_only=True) as s:
        stmt = (
            select(func.count())
            .select_from(Message)
            .where(Message.direction == "out", Message.status == "failed")
        )
        return int(await s.scalar(stmt) or 0)
