"""Provider outages, in process with an injected clock: ten minutes of 5xx from Twilio and
Telegram, and 429 storms with Retry-After, while people answer. Nothing is lost, sent twice or
given up, and Retry-After uses up no attempts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.models import Message
from tests.bot.harness import Harness, running, settings_for
from tests.chaos.reference import FAST_CHATS, TELEGRAM_SCRIPT, Reference, reference_replies
from tests.chaos.service import SCRIPT, Counts, count, sms_received
from tests.fakes.telegram_server import Failure, FakeTelegram, text_update
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.chaos

PHONES = [f"+4670{2_000_000 + i:07d}" for i in range(20)]
CHATS = [3_000_000 + i for i in range(20)]
Weather = Callable[[timedelta], None]


def telegram_received(fake: FakeTelegram) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for message in fake.delivered:
        out.setdefault(str(message["chat"]["id"]), []).append(str(message["text"]))
    return out


async def live_through(
    h: Harness,
    twilio: FakeTwilio,
    telegram: FakeTelegram,
    expected: Reference,
    weather: Weather,
    *,
    answer_every: timedelta,
    step: timedelta,
    most: timedelta,
) -> tuple[Counts, timedelta]:
    """Everyone answers the survey while `weather(elapsed)` sets the providers' state; the
    dispatcher is driven every `step` until everyone has every reply. Returns the counts and
    how long (injected time) that took."""
    start = h.clock.now()
    updates = itertools.count(1)

    def elapsed() -> timedelta:
        return h.clock.now() - start

    def everyone_served() -> bool:
        sms, chats = sms_received(twilio), telegram_received(telegram)
        return all(len(sms.get(p, [])) >= len(expected.sms) for p in PHONES) and all(
            len(chats.get(str(c), [])) >= len(expected.telegram) for c in CHATS
        )

    for sms_text, chat_text in zip(SCRIPT, TELEGRAM_SCRIPT, strict=True):
        weather(elapsed())
        for phone in PHONES:
            assert await h.sms(phone, sms_text) == 200
        for chat in CHATS:
            assert await h.telegram(text_update(next(updates), chat, chat_text)) == 200
        await h.deliver()
        h.clock.advance(answer_every)
    while not everyone_served():
        assert elapsed() <= most, f"not everyone served after {most}"
        weather(elapsed())
        await h.deliver()
        if not everyone_served():
            h.clock.advance(step)
    weather(timedelta.max)
    outbox = await h.outbox()
    given_up = sum(1 for m in outbox if m.status == "failed")
    sms = count(sms_received(twilio), expected.sms, PHONES, given_up)
    chats = count(telegram_received(telegram), expected.telegram, map(str, CHATS), 0)
    return Counts(sms.lost + chats.lost, sms.duplicates + chats.duplicates, given_up), elapsed()


async def _max_attempts(h: Harness) -> int:
    async with h.runtime.db.transaction(read_only=True) as s:
        stmt = select(func.max(Message.attempts)).where(Message.direction == "out")
        return int(await s.scalar(stmt) or 0)


async def test_a_10_minute_provider_outage_loses_nothing(
    tmp_path: Path, sqlite_template: Path, database_url: str
) -> None:
    expected = await reference_replies(tmp_path, sqlite_template)
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()

    def outage(elapsed: timedelta) -> None:
        if elapsed < timedelta(minutes=10):
            twilio.start_outage(503)
            telegram.outage = Failure.server_error()
        else:
            twilio.end_outage()
            telegram.outage = None

    try:
        settings = settings_for(database_url, twilio=twilio, telegram=telegram, extra=FAST_CHATS)
        async with running(settings) as h:
            counts, took = await live_through(
                h,
                twilio,
                telegram,
                expected,
                outage,
                answer_every=timedelta(seconds=30),
                step=timedelta(seconds=10),
                most=timedelta(minutes=40),
            )
            attempts = await _max_attempts(h)
    finally:
        await twilio.close()
        await telegram.stop()
    print(f"10-minute outage: everyone served {took} after the first answer: {counts}")
    assert counts == Counts(0, 0, 0), counts
    assert attempts > 3, "the outage was felt"
    assert took < timedelta(minutes=11), "served within a minute of the end of the outage"


async def test_429_storms_lose_nothing_and_use_up_no_attempts(
    tmp_path: Path, sqlite_template: Path, database_url: str
) -> None:
    expected = await reference_replies(tmp_path, sqlite_template)
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()

    def storms(elapsed: timedelta) -> None:
        # Six minutes of storms: 40 s of 429 with Retry-After, 20 s of calm, again and again.
        raging = elapsed < timedelta(minutes=6) and elapsed % timedelta(minutes=1) < timedelta(
            seconds=40
        )
        if raging:
            twilio.start_outage(429, retry_after="7")
            telegram.outage = Failure.rate_limited(5)
        else:
            twilio.end_outage()
            telegram.outage = None

    try:
        settings = settings_for(database_url, twilio=twilio, telegram=telegram, extra=FAST_CHATS)
        async with running(settings) as h:
            counts, took = await live_through(
                h,
                twilio,
                telegram,
                expected,
                storms,
                answer_every=timedelta(seconds=20),
                step=timedelta(seconds=5),
                most=timedelta(minutes=20),
            )
            attempts = await _max_attempts(h)
    finally:
        await twilio.close()
        await telegram.stop()
    print(f"429 storms: everyone served {took} after the first answer: {counts}")
    assert counts == Counts(0, 0, 0), counts
    assert attempts == 1, "a Retry-After is not an attempt"
