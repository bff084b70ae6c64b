"""The whole service in a test: the aiohttp app on a migrated database, fake providers, a fixed
clock, and the dispatcher and due tasks driven by hand."""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import create_app
from bot.clock import FixedClock
from bot.config import SHIPPED_SURVEYS, Settings, load_settings
from bot.inbound.decide import Address, decide_followup
from bot.inbound.service import new_id
from bot.runtime import RUNTIME, Runtime
from storage import executor
from storage.models import Answer, Conversation, Message, Respondent
from storage.sqlexec import Exec
from tests.fakes.telegram_server import BOT_TOKEN, FakeTelegram
from tests.fakes.twilio_server import (
    FAKE_ACCOUNT_SID,
    FAKE_AUTH_TOKEN,
    FakeTwilio,
    new_sid,
    signed_form_request,
)

PUBLIC_URL = "https://bot.example.se"
WEBHOOK_SECRET = "test-webhook-secret_0123456789"
OUR_NUMBER = "+46700000000"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@functools.cache
def public_shipped_surveys() -> Path:
    """The shipped surveys as public ones (anyone may start them by keyword), for tests of the
    keyword paths; the children's survey stays as it is."""
    folder = Path(tempfile.mkdtemp(prefix="bd-public-surveys-"))
    for source in sorted(SHIPPED_SURVEYS.glob("*.toml")):
        text = source.read_text(encoding="utf-8")
        if "\nminors = true" not in text:
            text = "public = true\n" + re.sub(r"(?m)^public = (true|false)\n", "", text)
        (folder / source.name).write_text(text, encoding="utf-8")
    return folder


def settings_for(
    database_url: str,
    *,
    twilio: FakeTwilio | None = None,
    telegram: FakeTelegram | None = None,
    extra: Mapping[str, str] | None = None,
    public_surveys: bool = True,
) -> Settings:
    """Settings for the whole service in a test; `public_surveys` makes the shipped surveys
    startable by keyword from anyone."""
    env = {
        "BRUKARDIALOG__DATABASE__URL": database_url,
        "BRUKARDIALOG__SERVER__PUBLIC_URL": PUBLIC_URL,
        "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
        "BRUKARDIALOG__SCHEDULE__QUIET_HOURS": "",
        "BRUKARDIALOG__ADMIN__API_TOKENS": "staff-token-0123456789abcdef",
        "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
    }
    if public_surveys:
        env["BRUKARDIALOG__SURVEYS__PATHS"] = str(public_shipped_surveys())
    if twilio is not None:
        env |= {
            "BRUKARDIALOG__TWILIO__ACCOUNT_SID": FAKE_ACCOUNT_SID,
            "BRUKARDIALOG__TWILIO__AUTH_TOKEN": FAKE_AUTH_TOKEN,
            "BRUKARDIALOG__TWILIO__FROM_NUMBER": OUR_NUMBER,
            "BRUKARDIALOG__TWILIO__API_BASE_URL": twilio.base_url,
            "BRUKARDIALOG__TWILIO__MPS": "1000",
        }
    if telegram is not None:
        env |= {
            "BRUKARDIALOG__TELEGRAM__BOT_TOKEN": BOT_TOKEN,
            "BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BRUKARDIALOG__TELEGRAM__API_BASE_URL": telegram.api_base_url,
        }
    return load_settings(None, env | dict(extra or {}))


@dataclass
class Harness:
    client: TestClient[Any, Any]
    clock: FixedClock
    settings: Settings

    @property
    def runtime(self) -> Runtime:
        app = self.client.app
        assert app is not None
        runtime: Runtime = app[RUNTIME]
        return runtime

    async def deliver(self) -> int:
        """Send everything due in the outbox (what the background dispatcher would do)."""
        total = 0
        while sent := await self.runtime.dispatcher.run_once():
            total += sent
        return total

    async def sms(
        self,
        sender: str,
        body: str,
        *,
        sid: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> int:
        """Post a signed Twilio inbound SMS webhook; returns the HTTP status."""
        form = {
            "ToCountry": "SE",
            "SmsMessageSid": sid or new_sid("SM"),
            "NumMedia": "0",
            "SmsStatus": "received",
            "Body": body,
            "FromCountry": "SE",
            "To": OUR_NUMBER,
            "NumSegments": "1",
            "AccountSid": FAKE_ACCOUNT_SID,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        form["MessageSid"] = form["SmsMessageSid"]
        form |= dict(extra or {})
        headers, body_bytes = signed_form_request(
            f"{PUBLIC_URL}/webhooks/twilio", form, FAKE_AUTH_TOKEN
        )
        response = await self.client.post("/webhooks/twilio", data=body_bytes, headers=headers)
        return response.status

    async def telegram(self, update: Mapping[str, Any], *, secret: str = WEBHOOK_SECRET) -> int:
        response = await self.client.post(
            "/webhooks/telegram",
            data=json.dumps(update),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": secret,
            },
        )
        return response.status

    async def count(self, model: type[Any], *where: Any) -> int:
        async with self.runtime.db.transaction(read_only=True) as s:
            return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def release(self) -> int:
        """Release every finished anonymous conversation's answers now, whatever the batch size
        (the service waits for privacy.min_group_size people)."""
        now = self.clock.now()
        return await self.runtime.db.turns.run(lambda x: executor.release(x, min_batch=1, now=now))

    async def answers(self) -> dict[str, Any]:
        """Every stored answer by question, after releasing what has finished."""
        await self.release()
        async with self.runtime.db.transaction(read_only=True) as s:
            rows = (await s.execute(select(Answer.question_id, Answer.value))).all()
        return {q: v for q, v in rows}

    async def start_survey(
        self, contact_id: int, survey_id: str, channel: str, address: str
    ) -> None:
        """Start a survey for a known contact as a follow-up would (a children's survey is never
        started by keyword)."""
        entry = self.runtime.catalog.latest(survey_id)
        assert entry is not None
        now = self.clock.now()
        to = Address(
            channel, address, self.runtime.service.pseudonymizer.address_key(channel, address)
        )

        def turn(x: Exec) -> object:
            facts = executor.load_start(x, contact_id)
            plan = decide_followup(
                facts, entry.survey, entry.version_id, to, followup_id=0, now=now, ids=new_id
            )
            return executor.write(x, plan, now=now)

        await self.runtime.db.turns.run(turn)

    async def running_answers(self) -> dict[str, Any]:
        """The answers held in running conversations' states (anonymous surveys keep them there
        until the conversation finishes and is released)."""
        async with self.runtime.db.transaction(read_only=True) as s:
            states = await s.scalars(
                select(Conversation.state).where(Conversation.status == "active")
            )
            return {q: v for state in states for q, v in state.get("answers", {}).items()}

    async def outbox(self, channel: str | None = None) -> list[Message]:
        async with self.runtime.db.transaction(read_only=True) as s:
            stmt = select(Message).where(Message.direction == "out").order_by(Message.id)
            if channel:
                stmt = stmt.where(Message.channel == channel)
            return list(await s.scalars(stmt))


@asynccontextmanager
async def running(settings: Settings, clock: FixedClock | None = None) -> AsyncIterator[Harness]:
    clock = clock or FixedClock(START)
    app = create_app(settings, clock=clock, background=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Harness(client, clock, settings)
    finally:
        await client.close()


__all__ = [
    "OUR_NUMBER",
    "PUBLIC_URL",
    "START",
    "WEBHOOK_SECRET",
    "Conversation",
    "Harness",
    "Respondent",
    "running",
    "settings_for",
]
