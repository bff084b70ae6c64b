"""The outbox dispatcher: lanes per channel, pacing, concurrency, retries over an outage, leases.

Time is injected twice: a FixedClock for the business clock (not_before, leases, the retry
horizon) and a FakeTimer for pacing (token buckets, a chat's one message a second), so nothing
here waits for real time to pass."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.base import (
    ChannelLimits,
    InboundMessage,
    OutboundMessage,
    SendError,
    SendResult,
    WebRequest,
)
from bot.channels.telegram.channel import TelegramChannel, TelegramSettings
from bot.channels.twilio.channel import TwilioChannel, TwilioSettings
from bot.clock import FixedClock
from bot.config import DispatcherSettings
from bot.outbox.dispatcher import CLAIM_BATCH, Dispatcher, TokenBucket, backoff
from storage import executor, outbox, repo_messages
from storage.db import Database
from storage.models import Lease, Message
from storage.plan import Enqueue, TurnPlan
from tests.conftest import TEST_SEALER
from tests.fakes.telegram_server import BOT_TOKEN, Failure, FakeTelegram
from tests.fakes.twilio_server import FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, FakeTwilio

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
OUR_NUMBER = "+46700000000"


class FakeTimer:
    """Pacing time that moves only when the dispatcher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class RecordingChannel:
    """A channel that records (pacing time, message) per send and fails as scripted."""

    name: str = "sms"
    timer: FakeTimer | None = None
    sent: list[tuple[float, OutboundMessage]] = field(default_factory=list)
    failures: list[SendError] = field(default_factory=list)
    gate: asyncio.Event | None = None
    """While set, sends wait for it (a send in flight)."""
    jitter: random.Random | None = None
    """Sends take 0-3 ms, so they finish in another order than they started."""
    started: int = 0

    def verify(self, request: WebRequest) -> bool:
        return True

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        return []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.started += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.jitter is not None:
            await asyncio.sleep(self.jitter.random() * 0.003)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((self.timer.now if self.timer else 0.0, message))
        return SendResult(provider_id=f"p{message.id}", segments=1, encoding="GSM-7")

    async def close(self) -> None:
        return None


@dataclass
class Timed:
    """A real channel whose sends are stamped with the pacing time they started at."""

    inner: Any
    timer: FakeTimer
    sent: list[tuple[float, OutboundMessage]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def verify(self, request: WebRequest) -> bool:
        return bool(self.inner.verify(request))

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        return list(self.inner.parse(request))

    async def send(self, message: OutboundMessage) -> SendResult:
        at = self.timer.now
        result: SendResult = await self.inner.send(message)
        self.sent.append((at, message))
        return result

    async def close(self) -> None:
        await self.inner.close()


def sms_address(i: int) -> str:
    return f"+4670{i:07d}"


async def enqueue(
    db: Database,
    n: int,
    *,
    channel: str = "sms",
    address: Callable[[int], str] = sms_address,
    at: datetime = NOW,
    kind: str = "reply",
) -> list[int]:
    async with db.transaction() as s:
        return [
            await repo_messages.enqueue(
                s,
                channel=channel,
                address=address(i),
                body=f"message {i}",
                payload={},
                kind=kind,
                contact_id=None,
                conversation_id=None,
                campaign_id=None,
                not_before=at,
            )
            for i in range(n)
        ]


async def rows(db: Database) -> list[Message]:
    async with db.transaction(read_only=True) as s:
        return list(await s.scalars(select(Message).order_by(Message.id)))


def make(
    db: Database,
    channels: list[Any],
    clock: FixedClock,
    *,
    timer: FakeTimer | None = None,
    limits: dict[str, ChannelLimits] | None = None,
    **settings: Any,
) -> Dispatcher:
    return Dispatcher(
        db,
        {c.name: c for c in channels},
        DispatcherSettings(**settings),
        clock,
        limits=limits or {c.name: ChannelLimits(1000.0, concurrency=8) for c in channels},
        timer=timer or FakeTimer(),
        rng=random.Random(7),
    )


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait for a condition, failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def twilio_channel(fake: FakeTwilio, timeout: float = 15.0) -> TwilioChannel:
    return TwilioChannel(
        TwilioSettings(
            FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, OUR_NUMBER, None, fake.base_url, timeout=timeout
        )
    )


def telegram_channel(fake: FakeTelegram) -> TelegramChannel:
    return TelegramChannel(
        TelegramSettings(BOT_TOKEN, "test-secret_0123456789", api_base_url=fake.api_base_url)
    )


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# -- rates and pacing ----------------------------------------------------------------------------


async def test_the_channel_rate_is_kept(db: Database) -> None:
    timer = FakeTimer()
    channel = RecordingChannel(timer=timer)
    await enqueue(db, 60)
    d = make(db, [channel], FixedClock(NOW), timer=timer, limits={"sms": ChannelLimits(10.0)})
    while await d.run_once():
        pass
    times = sorted(t for t, _ in channel.sent)
    assert len(times) == 60
    burst = TokenBucket(10.0).burst
    for i, start in enumerate(times):
        in_a_second = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_a_second <= 10 + burst
    assert times[-1] >= (60 - burst) / 10 - 1e-9


async def test_telegram_pacing_for_40_chats_does_not_delay_an_sms(
    db: Database, twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    timer = FakeTimer()
    tg = Timed(telegram_channel(telegram), timer)
    sms = Timed(twilio_channel(twilio), timer)
    chats = [1000 + i for i in range(40)]
    for round_ in range(3):
        await enqueue(db, 40, channel="telegram", address=lambda i: str(chats[i]))
        del round_
    [sms_id] = await enqueue(db, 1)
    limits = {
        "telegram": ChannelLimits(30.0, per_address=1.0, concurrency=16),
        "sms": ChannelLimits(1.0, concurrency=8),
    }
    d = make(db, [tg, sms], FixedClock(NOW), timer=timer, limits=limits)
    try:
        while await d.run_once():
            pass
    finally:
        await tg.close()
        await sms.close()
    [(sms_at, sms_message)] = sms.sent
    assert sms_message.id == sms_id
    assert sms_at == 0.0, "the SMS went out before any Telegram pacing wait"
    by_chat: dict[str, list[tuple[float, int]]] = {}
    for at, message in tg.sent:
        by_chat.setdefault(message.address, []).append((at, message.id))
    assert len(by_chat) == 40
    for sends in by_chat.values():
        assert [mid for _, mid in sends] == sorted(mid for _, mid in sends), "in order per chat"
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(sends)]
        assert len(sends) == 3 and all(g >= 1.0 - 1e-9 for g in gaps), gaps
    # 120 messages at 30 a second: about 4 s, not 40 chats x 2 s one after another.
    assert max(at for at, _ in tg.sent) < 6.0
    assert len(telegram.calls_to("sendMessage")) == 120
    assert {m.status for m in await rows(db)} == {"sent"}


async def test_a_chat_with_a_deep_backlog_waits_in_the_table(db: Database) -> None:
    timer = FakeTimer()
    channel = RecordingChannel(name="telegram", timer=timer)
    await enqueue(db, 25, channel="telegram", address=lambda i: "42")
    limits = {"telegram": ChannelLimits(30.0, per_address=1.0)}
    d = make(db, [channel], FixedClock(NOW), timer=timer, limits=limits)
    await d.run_once()
    deferred = [m for m in await rows(db) if m.status == "queued"]
    assert len(channel.sent) == 20 and len(deferred) == 5
    assert all(m.not_before > NOW and m.attempts == 0 for m in deferred)


# -- concurrency and connections ---------------------------------------------------------------


async def test_sms_sends_overlap_up_to_the_cap_on_kept_alive_connections(
    db: Database, twilio: FakeTwilio
) -> None:
    channel = twilio_channel(twilio)
    await enqueue(db, 40)
    d = make(db, [channel], FixedClock(NOW), limits={"sms": ChannelLimits(1000.0, concurrency=4)})
    twilio.hold_answers()
    try:
        running = asyncio.create_task(d.run_once())
        await until(lambda: twilio.in_flight == 4)
        twilio.release_answers()
        assert await running == 40
    finally:
        await channel.close()
    assert twilio.max_in_flight == 4, "four sends in flight at once, never more"
    assert len(twilio.messages) == 40
    assert len(twilio.connections) <= 4, "40 sends reuse the pool's connections"


async def test_telegram_sends_overlap_up_to_the_cap_on_kept_alive_connections(
    db: Database, telegram: FakeTelegram
) -> None:
    channel = telegram_channel(telegram)
    await enqueue(db, 40, channel="telegram", address=lambda i: str(5000 + i))
    limits = {"telegram": ChannelLimits(1000.0, per_address=1.0, concurrency=6)}
    d = make(db, [channel], FixedClock(NOW), limits=limits)
    telegram.hold_answers()
    try:
        running = asyncio.create_task(d.run_once())
        await until(lambda: telegram.in_flight == 6)
        telegram.release_answers()
        assert await running == 40
    finally:
        await channel.close()
    assert telegram.max_in_flight == 6
    assert len(telegram.calls_to("sendMessage")) == 40
    assert len(telegram.connections) <= 6


async def test_outcomes_are_written_in_batches(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = RecordingChannel()
    await enqueue(db, 200)
    calls: list[int] = []
    original = outbox.record

    def counting(x: Any, worker: str, **outcomes: Any) -> None:
        if outcomes.get("sent"):
            calls.append(len(outcomes["sent"]))
        original(x, worker, **outcomes)

    monkeypatch.setattr(outbox, "record", counting)
    d = make(db, [channel], FixedClock(NOW), limits={"sms": ChannelLimits(1000.0, concurrency=50)})
    assert await d.run_once() == 200
    # A transaction or two per claim and round of 50 sends, not one per message.
    assert sum(calls) == 200 and len(calls) <= 2 * math.ceil(200 / min(CLAIM_BATCH, 50)), calls
    assert {m.status for m in await rows(db)} == {"sent"}


# -- retries -------------------------------------------------------------------------------------


async def drive(
    d: Dispatcher,
    clock: FixedClock,
    *,
    step: timedelta,
    until_done: Callable[[], Awaitable[bool]],
    during: Callable[[timedelta], None],
    most: timedelta,
) -> timedelta:
    """Run passes while moving the clock by `step`; `during(elapsed)` may change the provider.
    Returns the time it took until `until_done`."""
    elapsed = timedelta()
    while elapsed <= most:
        during(elapsed)
        while await d.run_once():
            pass
        if await until_done():
            return elapsed
        clock.advance(step)
        elapsed += step
    raise AssertionError(f"not done after {most}")


async def all_sent(db: Database) -> bool:
    return {m.status for m in await rows(db)} == {"sent"}


async def test_500s_for_90_seconds_lose_nothing(db: Database, twilio: FakeTwilio) -> None:
    clock = FixedClock(NOW)
    channel = twilio_channel(twilio)
    await enqueue(db, 140)
    d = make(db, [channel], clock)

    def outage(elapsed: timedelta) -> None:
        if elapsed < timedelta(seconds=90):
            twilio.start_outage(500)
        else:
            twilio.end_outage()

    try:
        took = await drive(
            d,
            clock,
            step=timedelta(seconds=5),
            until_done=lambda: all_sent(db),
            during=outage,
            most=timedelta(minutes=15),
        )
    finally:
        await channel.close()
    messages = await rows(db)
    assert len(messages) == 140 and all(m.status == "sent" and not m.error for m in messages)
    assert len(twilio.messages) == 140, "each message created once"
    assert len({m["to"] for m in twilio.messages.values()}) == 140
    assert max(m.attempts for m in messages) > 2
    assert took <= timedelta(seconds=110), f"the backlog went out soon after the outage ({took})"


@pytest.mark.parametrize("channel_name", ["sms", "telegram"])
async def test_429_with_retry_after_for_100_seconds_loses_nothing_and_uses_no_attempts(
    db: Database, twilio: FakeTwilio, telegram: FakeTelegram, channel_name: str
) -> None:
    clock = FixedClock(NOW)
    channel: Any
    if channel_name == "sms":
        channel = twilio_channel(twilio)
        await enqueue(db, 140)
    else:
        channel = telegram_channel(telegram)
        await enqueue(db, 140, channel="telegram", address=lambda i: str(7000 + i))

    def storm(elapsed: timedelta) -> None:
        raging = elapsed < timedelta(seconds=100)
        if channel_name == "sms":
            twilio.start_outage(429, retry_after="10") if raging else twilio.end_outage()
        else:
            telegram.outage = Failure.rate_limited(10) if raging else None

    limits = {channel_name: ChannelLimits(1000.0, per_address=1.0, concurrency=8)}
    d = make(db, [channel], clock, limits=limits)
    try:
        await drive(
            d,
            clock,
            step=timedelta(seconds=5),
            until_done=lambda: all_sent(db),
            during=storm,
            most=timedelta(minutes=10),
        )
    finally:
        await channel.close()
    messages = await rows(db)
    assert len(messages) == 140 and {m.status for m in messages} == {"sent"}
    assert {m.attempts for m in messages} == {1}, "Retry-After used up no attempt"
    if channel_name == "sms":
        assert len(twilio.messages) == 140
        assert len({m["to"] for m in twilio.messages.values()}) == 140
    else:
        assert len(telegram.delivered) == 140
        assert len({m["chat"]["id"] for m in telegram.delivered}) == 140


async def test_retry_after_is_obeyed_and_pauses_the_channel(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[SendError("429", retryable=True, retry_after=42)])
    await enqueue(db, 3, address=lambda i: "+46700000001")
    d = make(db, [channel], clock)
    await d.run_once()
    messages = await rows(db)
    assert [m.status for m in messages] == ["queued"] * 3
    assert all(m.not_before == NOW + timedelta(seconds=42) for m in messages)
    assert [m.attempts for m in messages] == [0, 0, 0]
    clock.advance(timedelta(seconds=41))
    assert await d.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await d.run_once() == 3
    assert [m.id for _, m in channel.sent] == [m.id for m in messages], "order kept"
    assert [m.attempts for m in await rows(db)] == [1, 1, 1]


async def test_transient_errors_back_off_and_send_once(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[SendError("HTTP 503", retryable=True)] * 2)
    [message_id] = await enqueue(db, 1)
    d = make(db, [channel], clock)
    await d.run_once()
    [row] = await rows(db)
    assert row.status == "queued" and row.attempts == 1 and row.error == "HTTP 503"
    assert NOW + timedelta(seconds=1) <= row.not_before <= NOW + timedelta(seconds=2)
    assert row.status_at == NOW, "the first failed attempt is remembered"
    for _ in range(3):
        clock.advance(timedelta(minutes=30))
        await d.run_once()
    [row] = await rows(db)
    assert row.status == "sent" and row.attempts == 3 and row.provider_id == f"p{message_id}"
    assert len(channel.sent) == 1


async def test_when_the_provider_answers_again_waiting_retries_go_at_once(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[SendError("HTTP 503", retryable=True)] * 3)
    failing = await enqueue(db, 3)
    [held] = await enqueue(db, 1, address=lambda i: "+46700009999", at=NOW + timedelta(days=30))
    d = make(db, [channel], clock, backoff_base=60.0)
    await d.run_once()
    waiting = {m.id: m for m in await rows(db)}
    assert all(waiting[i].not_before >= NOW + timedelta(seconds=30) for i in failing)
    [fresh] = await enqueue(db, 1, address=lambda i: "+46700008888")
    assert await d.run_once() == 1, "the provider answers again"
    assert await d.run_once() == 3, "the three waiting for their backoff go at once"
    after = {m.id: m for m in await rows(db)}
    assert all(after[i].status == "sent" for i in [*failing, fresh])
    assert after[held].status == "queued" and after[held].not_before == NOW + timedelta(days=30)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    waits = [backoff(n, base=2.0, cap=300.0, rng=rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        full = min(300.0, 2.0 * 2 ** (n - 1))
        assert full / 2 <= wait <= full
    assert len({round(w, 6) for w in waits}) == len(waits)


async def test_the_horizon_gives_up_with_a_warning(
    db: Database, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bot")
    clock = FixedClock(NOW)
    channel = twilio_channel(twilio)
    [message_id] = await enqueue(db, 1)
    d = make(db, [channel], clock, retry_horizon="2h")
    twilio.start_outage(503)
    try:
        took = await drive(
            d,
            clock,
            step=timedelta(minutes=1),
            until_done=lambda: _ended(db),
            during=lambda _: None,
            most=timedelta(hours=3),
        )
    finally:
        await channel.close()
    [row] = await rows(db)
    assert row.status == "failed" and row.error is not None
    assert row.error.startswith("gave up after retrying for 2h: ")
    assert timedelta(hours=2) <= took <= timedelta(hours=2, minutes=6)
    assert row.attempts > 10
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == "bot.outbox.dispatcher"
    text = warning.getMessage()
    assert f"message {message_id} on sms" in text and "gave up" in text
    logged = caplog.text
    assert sms_address(0) not in logged and "4670000" not in logged
    assert "message 0" not in logged, "no message text in the log"


async def _ended(db: Database) -> bool:
    return all(m.status in ("sent", "failed", "cancelled") for m in await rows(db))


async def test_permanent_errors_fail_at_once_without_the_number(
    db: Database, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bot")
    channel = twilio_channel(twilio)
    [message_id] = await enqueue(db, 1)
    twilio.fail_next(400, 21211)
    d = make(db, [channel], FixedClock(NOW))
    try:
        assert await d.run_once() == 1
    finally:
        await channel.close()
    [row] = await rows(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error is not None and "not a valid phone number" in row.error
    assert sms_address(0) not in row.error
    assert f"message {message_id} on sms failed for good" in caplog.text
    assert sms_address(0) not in caplog.text


async def test_provider_clients_log_no_requests(
    db: Database, twilio: FakeTwilio, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    sms, tg = twilio_channel(twilio), telegram_channel(telegram)
    caplog.set_level(logging.INFO)
    await enqueue(db, 5)
    await enqueue(db, 5, channel="telegram", address=lambda i: str(9100 + i))
    d = make(db, [sms, tg], FixedClock(NOW))
    try:
        assert await d.run_once() == 10
    finally:
        await sms.close()
        await tg.close()
    names = {r.name for r in caplog.records}
    assert not {n for n in names if n.split(".")[0] in ("twilio", "httpx", "httpcore", "telegram")}
    assert "+4670" not in caplog.text and "9100" not in caplog.text


# -- leases and crashes ----------------------------------------------------------------------


async def crash_while_sending(d: Dispatcher, channel: RecordingChannel, sends: int) -> None:
    """Run a pass until `sends` sends are in flight, then drop it as a `kill -9` would."""
    channel.gate = asyncio.Event()
    running = asyncio.create_task(d.run_once())
    await until(lambda: channel.started >= sends)
    running.cancel()
    for lane in d.lanes.values():
        for task in list(lane.tasks):
            task.cancel()
    await asyncio.gather(
        running, *(t for lane in d.lanes.values() for t in lane.tasks), return_exceptions=True
    )


async def test_a_crashed_senders_channel_and_rows_are_taken_over_within_15_seconds(
    db: Database,
) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 10)
    dead_channel, channel = RecordingChannel(), RecordingChannel()
    dead = make(db, [dead_channel], clock, limits={"sms": ChannelLimits(1000.0, concurrency=2)})
    await crash_while_sending(dead, dead_channel, 2)
    other = make(db, [channel], clock)
    taken_over = None
    for second in range(16):
        if await other.run_once():
            taken_over = second
            break
        clock.advance(timedelta(seconds=1))
    assert taken_over is not None and 10 <= taken_over <= 15, taken_over
    while await other.run_once():
        pass
    messages = await rows(db)
    assert {m.status for m in messages} == {"sent"}
    assert sorted(m.id for _, m in channel.sent) == [m.id for m in messages]
    # Whatever the dead sender had claimed counts an attempt: a channel that can list what it
    # accepted (SMS) is asked before any of it is sent again.
    assert {m.attempts for m in messages} == {2}


async def test_a_live_sender_keeps_its_channel_and_rows(db: Database) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 4)
    slow, channel = RecordingChannel(), RecordingChannel()
    alive = make(db, [slow], clock, limits={"sms": ChannelLimits(1000.0, concurrency=1)})
    slow.gate = asyncio.Event()
    running = asyncio.create_task(alive.run_once())
    await until(lambda: slow.started == 1)
    other = make(db, [channel], clock)
    for _ in range(6):  # 30 s: the heartbeat renews every few seconds
        clock.advance(timedelta(seconds=5))
        await alive.renew()
        assert await other.run_once() == 0
    slow.gate.set()
    assert await running == 4
    assert len(slow.sent) == 4 and not channel.sent


async def leases(db: Database) -> list[tuple[str, str]]:
    async with db.transaction(read_only=True) as s:
        return [(r.name, r.holder) for r in await s.scalars(select(Lease))]


async def test_an_idle_dispatcher_only_reads(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel()
    d = make(db, [channel], clock)
    await enqueue(db, 1, at=NOW + timedelta(minutes=5))  # queued, not yet due
    for _ in range(3):
        d.wake()
        assert await d.run_once() == 0
    assert await leases(db) == [], "no lease taken, no write transaction, while nothing is due"
    clock.advance(timedelta(minutes=5))
    assert await d.run_once() == 1
    assert await leases(db) == [("outbox:sms", d.worker)]


async def test_one_process_sends_per_channel_and_stop_hands_over_at_once(db: Database) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 5)
    first, second = RecordingChannel(), RecordingChannel()
    a, b = make(db, [first], clock), make(db, [second], clock)
    await a.run_once()
    await enqueue(db, 5)
    assert await b.run_once() == 0, "a holds the sms lease"
    await a.stop()  # releases its leases
    assert await b.run_once() == 5
    assert len(first.sent) == len(second.sent) == 5


async def test_stop_hands_back_claimed_messages_unsent(db: Database) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 6, address=lambda i: "+46700000009")  # one recipient: one at a time
    gate = asyncio.Event()
    slow = RecordingChannel(gate=gate)
    a = make(db, [slow], clock)
    await a.start()
    try:
        a.wake()
        await until(lambda: slow.started == 1)
    finally:
        gate.set()
        await a.stop()
    messages = await rows(db)
    sent = [m for m in messages if m.status == "sent"]
    back = [m for m in messages if m.status == "queued"]
    assert len(sent) >= 1 and len(sent) + len(back) == 6
    assert all(m.attempts == 0 and m.claimed_by is None for m in back), "no attempt used up"
    other = RecordingChannel()
    b = make(db, [other], clock)
    assert await b.run_once() == len(back), "taken over at once, not after the lease"


async def test_a_message_taken_by_the_provider_before_a_crash_is_not_sent_again(
    db: Database, twilio: FakeTwilio
) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 3)
    crashed = twilio_channel(twilio)
    dead = make(db, [crashed], clock)
    twilio.hold_answers()  # Twilio creates the messages; the answers never arrive
    running = asyncio.create_task(dead.run_once())
    await until(lambda: len(twilio.messages) == 3)
    running.cancel()
    for lane in dead.lanes.values():
        for task in list(lane.tasks):
            task.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await crashed.close()
    twilio.release_answers()
    clock.advance(timedelta(seconds=11))
    channel = twilio_channel(twilio)
    try:
        assert await make(db, [channel], clock).run_once() == 3
    finally:
        await channel.close()
    messages = await rows(db)
    assert {m.status for m in messages} == {"sent"}
    assert len(twilio.messages) == 3, "asked Twilio instead of sending again"
    assert {m.provider_id for m in messages} == set(twilio.messages)


async def test_background_lanes_send_what_is_queued(db: Database) -> None:
    sms, tg = RecordingChannel(), RecordingChannel(name="telegram")
    clock = FixedClock(NOW)
    d = Dispatcher(
        db,
        {"sms": sms, "telegram": tg},
        DispatcherSettings(),
        clock,
        limits={"sms": ChannelLimits(1000.0), "telegram": ChannelLimits(1000.0, per_address=100)},
    )
    await d.start()
    try:
        await enqueue(db, 30)
        await enqueue(db, 30, channel="telegram", address=lambda i: str(i % 5))
        d.wake()
        await until(lambda: len(sms.sent) == 30 and len(tg.sent) == 30)
    finally:
        await d.stop()
    counts = Counter(m.status for m in await rows(db))
    assert counts == {"sent": 60}


async def test_the_heartbeat_and_the_recorder_never_deadlock(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # A heartbeat every third of a second renews the rows the recorder is writing outcomes for.
    sms = RecordingChannel(jitter=random.Random(1))
    tg = RecordingChannel(name="telegram", jitter=random.Random(2))
    d = Dispatcher(
        db,
        {"sms": sms, "telegram": tg},
        DispatcherSettings(lease_seconds=1),
        FixedClock(NOW),
        limits={
            "sms": ChannelLimits(100_000.0, concurrency=32),
            "telegram": ChannelLimits(100_000.0, per_address=1000.0, concurrency=32),
        },
    )
    await enqueue(db, 1500)
    await enqueue(db, 1500, channel="telegram", address=lambda i: str(10_000 + i))
    await d.start()
    try:
        d.wake()
        await until(lambda: len(sms.sent) == 1500 and len(tg.sent) == 1500, within=120)
        await until(lambda: not d._outcomes, within=30)
    finally:
        await d.stop()
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
    assert Counter(m.status for m in await rows(db)) == {"sent": 3000}


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from bot.channels.twilio.channel import TwilioChannel, TwilioSettings
    from bot.clock import SystemClock
    from bot.config import DispatcherSettings
    from bot.channels.base import ChannelLimits
    from bot.outbox.dispatcher import Dispatcher
    from storage.db import Database
    from tests.conftest import TEST_SEALER

    async def main(url, base, sid, token):
        db = Database(url, sealer=TEST_SEALER)
        channel = TwilioChannel(TwilioSettings(sid, token, "+46700000000", None, base))
        d = Dispatcher(db, {"sms": channel}, DispatcherSettings(lease_seconds=5), SystemClock(),
                       limits={"sms": ChannelLimits(100.0)})
        idle = 0
        while idle < 15:
            idle = 0 if await d.run_once() else idle + 1
            await asyncio.sleep(0.1)
        await d.stop()
        await channel.close()
        await db.dispose()

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.postgres
async def test_two_processes_on_postgresql_never_send_twice(
    database_url: str, twilio: FakeTwilio
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several service processes share PostgreSQL; SQLite is single-process")
    db = Database(database_url, sealer=TEST_SEALER)
    try:
        await enqueue(db, 120, at=datetime.now(UTC) - timedelta(seconds=1))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                database_url,
                twilio.base_url,
                FAKE_ACCOUNT_SID,
                FAKE_AUTH_TOKEN,
                env=env,
                cwd=ROOT,
            )
            for _ in range(2)
        ]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 120)
        assert codes == [0, 0]
        bodies = [r.form["Body"] for r in twilio.sends]
        assert len(bodies) == 120 and len(set(bodies)) == 120
        assert {m.status for m in await rows(db)} == {"sent"}
    finally:
        await db.dispose()


# -- replies handed over by turns ------------------------------------------------------------------


def _reply_plan(n: int, *, at: datetime = NOW) -> TurnPlan:
    return TurnPlan(
        tuple(
            Enqueue(
                channel="sms",
                address=sms_address(1000 + i),
                address_key=f"k{i}",
                body=f"reply {i}",
                payload={},
                kind="reply",
                contact_id=None,
                conversation_id=None,
                campaign_id=None,
                not_before=at,
            )
            for i in range(n)
        ),
        outcome="answer",
    )


async def test_a_reply_due_now_goes_from_the_turn_to_the_sender_without_a_claim(
    db: Database,
) -> None:
    sms = RecordingChannel()
    d = make(db, [sms], FixedClock(NOW), limits={"sms": ChannelLimits(1000.0)})
    await enqueue(db, 1)
    assert d.handoffs() == {}, "not sending in the background: every reply waits in the table"
    await d.start()
    try:
        d.wake()
        await until(lambda: len(sms.sent) == 1)
        handoffs = d.handoffs()
        assert set(handoffs) == {"sms"} and handoffs["sms"].worker == d.worker
        later = _reply_plan(1, at=NOW + timedelta(minutes=5))
        plan = TurnPlan((*_reply_plan(2).steps, *later.steps))
        result = await db.turns.run(lambda x: executor.write(x, plan, now=NOW, handoff=handoffs))
        assert [item.body for item in result.handed] == ["reply 0", "reply 1"]
        stored = {m.id: m for m in await rows(db)}
        for item in result.handed:
            row = stored[item.id]
            assert (row.status, row.claimed_by, row.attempts) == ("sending", d.worker, 1)
        held = stored[result.reply_ids[2]]
        assert (held.status, held.claimed_by) == ("queued", None), "not due: left to a claim"
        d.hand_over(result.handed)
        await until(lambda: len(sms.sent) == 3)
        await until(lambda: not d._outcomes)
    finally:
        await d.stop()
    sent = [m for m in await rows(db) if m.id in {i.id for i in result.handed}]
    assert [(m.status, m.attempts) for m in sent] == [("sent", 1), ("sent", 1)]
    assert [message.text for _, message in sms.sent[1:]] == ["reply 0", "reply 1"]


async def test_a_reply_handed_over_after_the_channel_was_lost_goes_back_to_the_table(
    db: Database,
) -> None:
    sms = RecordingChannel()
    d = make(db, [sms], FixedClock(NOW), limits={"sms": ChannelLimits(1000.0)})
    await enqueue(db, 1)
    await d.start()
    try:
        d.wake()
        await until(lambda: len(sms.sent) == 1)
        handoffs = d.handoffs()
        result = await db.turns.run(
            lambda x: executor.write(x, _reply_plan(1), now=NOW, handoff=handoffs)
        )
        d.lanes["sms"].lease_valid_until = None  # another process took the channel meanwhile
        d.hand_over(result.handed)
        await until(lambda: not d._outcomes)
    finally:
        await d.stop()
    [row] = [m for m in await rows(db) if m.id == result.handed[0].id]
    assert (row.status, row.claimed_by, row.attempts) == ("queued", None, 0)
    assert len(sms.sent) == 1, "not sent by a process that no longer holds the channel"
