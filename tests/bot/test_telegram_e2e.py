"""Telegram end to end: webhook updates in, the outbox out to a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.webchat import WebChatChannel  # noqa: F401  (the web chat is always on)
from bot.lifecycle import run_retention
from storage.models import Contact, ContactAddress, Message
from tests.bot.harness import WEBHOOK_SECRET, Harness, running, settings_for
from tests.fakes.telegram_server import (
    Failure,
    FakeTelegram,
    callback_update,
    my_chat_member_blocked,
    text_update,
)
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)

CHAT = 424242


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def harness(database_url: str, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    async with running(settings_for(database_url, telegram=telegram)) as h:
        yield h


@pytest.fixture
def ids() -> Iterator[int]:
    return itertools.count(1000)


def sent(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [dict(c.params) for c in telegram.calls_to("sendMessage")]


def last_question(telegram: FakeTelegram) -> dict[str, Any]:
    return next(p for p in reversed(sent(telegram)) if p.get("reply_markup"))


def button_data(params: dict[str, Any]) -> list[str]:
    return [b["callback_data"] for row in params["reply_markup"]["inline_keyboard"] for b in row]


async def press(h: Harness, telegram: FakeTelegram, update_id: int, data: str) -> None:
    """Press a button under the last question the bot sent."""
    question = last_question(telegram)
    message_id = _message_id(telegram, question)
    update = callback_update(
        update_id, CHAT, data, message_id, question["text"], callback_query_id=f"q{update_id}"
    )
    assert await h.telegram(update) == 200
    await h.deliver()


def _message_id(telegram: FakeTelegram, params: dict[str, Any]) -> int:
    for message_id in range(100, 1000):
        message = telegram.message(CHAT, message_id)
        if message is not None and message.get("text") == params["text"]:
            found = message_id
    return found


async def test_start_offers_the_surveys_and_a_button_starts_one(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    assert await harness.telegram(text_update(next(ids), CHAT, "/start")) == 200
    await harness.deliver()
    menu = sent(telegram)[-1]
    assert "survey:uppfoljning-insats" in button_data(menu)

    await harness.telegram(
        callback_update(
            next(ids),
            CHAT,
            "survey:uppfoljning-insats",
            100,
            menu["text"],
            callback_query_id="menu",
        )
    )
    await harness.deliver()
    question = last_question(telegram)
    assert button_data(question) == ["choice:yes", "choice:partly", "choice:no"]


async def test_a_survey_is_completed_with_buttons_and_typed_answers(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    await press(harness, telegram, next(ids), "choice:no")
    # The pressed button was acknowledged and the question now shows the choice.
    assert telegram.calls_to("answerCallbackQuery")
    edit = telegram.calls_to("editMessageText")[-1].params
    assert edit["text"].endswith("✓ Nej")
    await harness.telegram(text_update(next(ids), CHAT, "Ingen ringde tillbaka"))
    await harness.telegram(text_update(next(ids), CHAT, "3"))
    await harness.deliver()
    await press(harness, telegram, next(ids), "scale:2")
    await harness.telegram(text_update(next(ids), CHAT, "Nej"))
    await harness.deliver()
    assert await harness.answers() == {
        "helped": "no",
        "improve": "Ingen ringde tillbaka",
        "score": 3,
        "mood": 2,
        "again": "no",
    }
    # The acknowledgement showed an answer: nothing of it is kept once sent.
    async with harness.runtime.db.transaction(read_only=True) as s:
        acks = list(await s.scalars(select(Message).where(Message.kind == "ack")))
    assert acks and all(not a.body and "edit_text" not in str(a.payload) for a in acks)


async def test_a_redelivered_update_changes_nothing(
    harness: Harness, telegram: FakeTelegram
) -> None:
    update = text_update(77, CHAT, "UPPFOLJNING")
    await harness.telegram(update)
    await harness.deliver()
    before = (await harness.count(Message), len(telegram.calls))
    assert await harness.telegram(update) == 200
    await harness.deliver()
    assert (await harness.count(Message), len(telegram.calls)) == before


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
async def test_a_bad_secret_is_refused_and_nothing_stored(harness: Harness, secret: str) -> None:
    assert await harness.telegram(text_update(1, CHAT, "UPPFOLJNING"), secret=secret) == 403
    assert await harness.count(Message) == 0


async def test_unknown_update_kinds_are_acknowledged_and_ignored(harness: Harness) -> None:
    update = {
        "update_id": 5,
        "channel_post": {
            "message_id": 1,
            "date": 0,
            "text": "hi",
            "chat": {"id": -100, "type": "channel"},
        },
    }
    assert await harness.telegram(update) == 200
    assert await harness.count(Message) == 0


async def test_blocking_the_bot_opts_out(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    await harness.telegram(my_chat_member_blocked(next(ids), CHAT))
    async with harness.runtime.db.transaction(read_only=True) as s:
        contact = (await s.scalars(select(Contact))).one()
    assert contact.opted_out_at is not None


async def test_forbidden_on_send_opts_out(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    telegram.fail_next("sendMessage", Failure.blocked(), chat_id=CHAT)
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    async with harness.runtime.db.transaction(read_only=True) as s:
        contact = (await s.scalars(select(Contact))).one()
    assert contact.opted_out_at is not None


async def test_start_with_a_token_links_the_chat_to_the_web_chat_contact(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    session = await harness.runtime.service.start_webchat("uppfoljning-insats", "sv")
    await harness.telegram(text_update(next(ids), CHAT, f"/start {session.token}"))
    await harness.deliver()
    async with harness.runtime.db.transaction(read_only=True) as s:
        contacts = list(await s.scalars(select(Contact)))
        channels = sorted(a.channel for a in await s.scalars(select(ContactAddress)))
    assert len(contacts) == 1 and channels == ["telegram", "webchat"]
    # The conversation continues in Telegram where it stopped.
    assert button_data(last_question(telegram)) == ["choice:yes", "choice:partly", "choice:no"]
    await press(harness, telegram, next(ids), "choice:yes")
    assert (await harness.running_answers())["helped"] == "yes"


async def test_typed_stop_opts_out_and_nothing_more_is_sent(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    await harness.telegram(text_update(next(ids), CHAT, "SLUTA"))
    await harness.deliver()
    confirmation = sent(telegram)[-1]
    assert not confirmation.get("reply_markup")
    count = len(sent(telegram))
    await harness.telegram(text_update(next(ids), CHAT, "hallå?"))
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    assert len(sent(telegram)) == count


async def test_refused_updates_leave_a_log_line_without_personal_data(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    update = text_update(777, CHAT, "mitt hemliga svar")
    cases = [
        (403, json.dumps(update).encode(), "application/json", "wrong-secret"),
        (400, b'{"update_id": 778, "message": ', "application/json", WEBHOOK_SECRET),
        (400, b'{"update_id": "x"}', "application/json", WEBHOOK_SECRET),
        (415, json.dumps(update).encode(), "text/plain", WEBHOOK_SECRET),
        (
            413,
            b'{"update_id": 779, "x": "' + b"a" * 70_000 + b'"}',
            "application/json",
            WEBHOOK_SECRET,
        ),
    ]
    for status, body, content_type, secret in cases:
        caplog.clear()
        response = await harness.client.post(
            "/webhooks/telegram",
            data=body,
            headers={"Content-Type": content_type, "X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert response.status == status
        [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert f"HTTP {status}" in line and "telegram" in line
        assert str(CHAT) not in line and "hemliga" not in line
        if status == 403:
            assert "provider id 777" in line
    assert await harness.count(Message) == 0


async def test_a_date_far_in_the_future_is_no_server_error(harness: Harness) -> None:
    update = text_update(780, CHAT, "/start")
    update["message"]["date"] = 10**19
    assert await harness.telegram(update) == 200
    update = text_update(781, CHAT, "/start")
    update["message"]["chat"]["id"] = 10**30
    assert await harness.telegram(update) == 200


async def test_a_redelivery_is_a_duplicate_after_retention_whatever_date_telegram_gave(
    harness: Harness, telegram: FakeTelegram
) -> None:
    # Telegram's `date` of this message is over a year old (a phone with a wrong clock, or a
    # replayed update); retention counts from when we stored the row, so the row that dedupes
    # the redelivery stays.
    update = text_update(7001, CHAT, "UPPFOLJNING", date=1_600_000_000)
    assert await harness.telegram(update) == 200
    await harness.deliver()
    replies = len(sent(telegram))
    assert replies >= 1
    await run_retention(harness.runtime, actor="test")
    assert await harness.telegram(update) == 200
    await harness.deliver()
    assert len(sent(telegram)) == replies
    async with harness.runtime.db.transaction(read_only=True) as s:
        inbound = list(await s.scalars(select(Message).where(Message.direction == "in")))
    assert [m.provider_id for m in inbound] == ["7001"]
