"""A fixture for the end-to-end suites: no log line at any level carries personal data.

It runs each test with the logging the service sets up (provider libraries at WARNING) and the
capture at DEBUG, notes every sender, text and start token that reaches the service and every
web chat token it hands out, and after the test greps every captured line (tracebacks too) for
them, for anything shaped like a phone number, and for the secrets in the test settings. The
redaction filter is deliberately not installed here: it is the last guard, and this proves the
lines are clean without it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.channels.base import InboundMessage
from bot.inbound.service import ConversationService, WebChatSession
from bot.logging_setup import provider_loggers_quiet
from tests.bot.harness import WEBHOOK_SECRET
from tests.fakes.telegram_server import BOT_TOKEN
from tests.fakes.twilio_server import FAKE_AUTH_TOKEN

SECRETS = (
    FAKE_AUTH_TOKEN,
    BOT_TOKEN,
    BOT_TOKEN.partition(":")[2],
    WEBHOOK_SECRET,
    "test-pseudonym-key-0123456789abcdef",
    "staff-token-0123456789abcdef",
)
PHONE_SHAPED = re.compile(r"(?:\+|%2[Bb])[1-9][0-9]{6,14}\b|\b0[67][0-9]{8}\b")
_FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")
MIN_TEXT = 4
"""Shorter texts ("1", "ja", "7") are everywhere in any log; longer ones are what people wrote."""


def _personal(msg: InboundMessage) -> set[str]:
    found = {msg.address, msg.start_token or ""}
    text = msg.text.strip()
    if len(text) >= MIN_TEXT and not text.isdigit() and not text.startswith("/"):
        found.add(text)
    return {value for value in found if value}


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fails the test if any captured log line holds personal data or a secret."""
    seen: set[str] = set()
    handle_inbound = ConversationService.handle_inbound
    start_webchat = ConversationService.start_webchat

    async def spy_inbound(self: ConversationService, msg: InboundMessage) -> Any:
        seen.update(_personal(msg))
        return await handle_inbound(self, msg)

    async def spy_webchat(self: ConversationService, *args: Any, **kwargs: Any) -> WebChatSession:
        session = await start_webchat(self, *args, **kwargs)
        seen.add(session.token)
        return session

    monkeypatch.setattr(ConversationService, "handle_inbound", spy_inbound)
    monkeypatch.setattr(ConversationService, "start_webchat", spy_webchat)
    with provider_loggers_quiet():
        caplog.set_level(logging.DEBUG)
        yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    lines = "\n".join(_FORMAT.format(record) for record in records)
    found = leaks(lines, seen)
    assert not found, f"personal data or secrets in the log: {found}\n{lines}"


def leaks(lines: str, seen: set[str]) -> list[str]:
    """What of `seen`, the test secrets, or anything shaped like a phone number is in `lines`."""
    found = sorted(value for value in seen | set(SECRETS) if value in lines)
    return found + PHONE_SHAPED.findall(lines)
