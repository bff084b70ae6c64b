"""The outbox dispatcher: rates, retries, leases, and several processes never sending twice."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.channels.base import InboundMessage, OutboundMessage, SendError, SendResult, WebRequest
from bot.clock import FixedClock
from bot.config import DispatcherSettings
from bot.dispatcher import ChannelLimits, Dispatcher, TokenBucket
from storage import repo_messages
from storage.db import Database
from storage.models import Message
from tests.conftest import TEST_SEALER
from tests.fakes.twilio_server import FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, FakeTwilio

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RecordingChannel:
    """A channel that records send times and fails as scripted."""

    name: str = "sms"
    sent: list[tuple[float, OutboundMessage]] = field(default_factory=list)
    failures: list[SendError] = field(default_factory=list)

    def verify(self, request: WebRequest) -> bool:
        return True

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        return []

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((time.monotonic(), message))
        return SendResult(provider_id=f"p{message.id}", segments=1, encoding="GSM-7")

    async def close(self) -> None:
        return None


async def enqueue(
    db: Database, n: int, *, channel: str = "sms", to: str = "+46700000001", at: datetime = NOW
) -> list[int]:
    async with db.transaction() as s:
        return [
            await repo_messages.enqueue(
                s,
                channel=channel,
                address=to if channel != "telegram" else f"{i % 3}",
                body=f"message {i}",
                payload={},
                kind="reply",
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


def dispatcher(
    db: Database,
    channel: RecordingChannel,
    clock: FixedClock,
    *,
    rate: float = 1000.0,
    per_address: float | None = None,
    max_attempts: int = 3,
) -> Dispatcher:
    settings = DispatcherSettings(max_attempts=max_attempts)
    return Dispatcher(
        db,
        {channel.name: channel},
        settings,
        clock,
        limits={channel.name: ChannelLimits(rate, per_address)},
    )


async def test_the_channel_rate_is_kept(db: Database) -> None:
    channel = RecordingChannel()
    await enqueue(db, 30)
    d = dispatcher(db, channel, FixedClock(NOW), rate=40.0)
    started = time.monotonic()
    while await d.run_once():
        pass
    elapsed = time.monotonic() - started
    assert len(channel.sent) == 30
    # A burst of `rate` tokens, then one every 1/rate seconds.
    assert elapsed >= (30 - 40) / 40.0
    times = [t for t, _ in channel.sent]
    burst = TokenBucket(40.0).burst
    for i in range(int(burst), len(times)):
        assert times[i] - times[0] >= (i - burst) / 40.0 - 0.01


async def test_one_message_a_second_per_telegram_chat(db: Database) -> None:
    channel = RecordingChannel(name="telegram")
    await enqueue(db, 6, channel="telegram")  # chats "0", "1", "2", two messages each
    d = dispatcher(db, channel, FixedClock(NOW), rate=30.0, per_address=4.0)
    while await d.run_once():
        pass
    by_chat: dict[str, list[float]] = {}
    for t, message in channel.sent:
        by_chat.setdefault(message.address, []).append(t)
    assert all(len(ts) == 2 and ts[1] - ts[0] >= 0.25 - 0.01 for ts in by_chat.values())


async def test_retryable_errors_back_off_and_send_once(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[SendError("HTTP 503", retryable=True)] * 2)
    [message_id] = await enqueue(db, 1)
    d = dispatcher(db, channel, clock)
    await d.run_once()
    [row] = await rows(db)
    assert row.status == "queued" and row.attempts == 1 and row.error == "HTTP 503"
    assert row.not_before >= NOW
    for _ in range(3):
        clock.advance(timedelta(minutes=30))
        await d.run_once()
    [row] = await rows(db)
    assert row.status == "sent" and row.attempts == 3 and row.provider_id == f"p{message_id}"
    assert len(channel.sent) == 1


async def test_retry_after_is_obeyed(db: Database) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[SendError("429", retryable=True, retry_after=42)])
    await enqueue(db, 1)
    d = dispatcher(db, channel, clock)
    await d.run_once()
    [row] = await rows(db)
    assert row.not_before == NOW + timedelta(seconds=42)
    clock.advance(timedelta(seconds=41))
    assert await d.run_once() == 0
    clock.advance(timedelta(seconds=1))
    assert await d.run_once() == 1
    assert len(channel.sent) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SendError("invalid number", retryable=False), "invalid number"),
        (SendError("HTTP 500", retryable=True), "HTTP 500"),
    ],
)
async def test_failed_after_the_last_attempt_with_the_reason(
    db: Database, error: SendError, expected: str
) -> None:
    clock = FixedClock(NOW)
    channel = RecordingChannel(failures=[error] * 10)
    await enqueue(db, 1)
    d = dispatcher(db, channel, clock, max_attempts=3)
    for _ in range(5):
        await d.run_once()
        clock.advance(timedelta(hours=1))
    [row] = await rows(db)
    assert row.status == "failed" and row.error == expected
    assert row.attempts == (1 if not error.retryable else 3)


async def test_a_crashed_sender_is_reclaimed_after_its_lease(db: Database) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 1)
    async with db.transaction() as s:
        [claimed] = await repo_messages.claim(
            s, channel="sms", worker="dead", now=NOW, lease_seconds=60, limit=10
        )
    channel = RecordingChannel()
    d = dispatcher(db, channel, clock)
    assert await d.run_once() == 0, "still leased to the dead worker"
    clock.advance(timedelta(seconds=61))
    assert await d.run_once() == 1
    assert [m.id for _, m in channel.sent] == [claimed.id]


async def test_one_process_sends_per_channel(db: Database) -> None:
    clock = FixedClock(NOW)
    await enqueue(db, 5)
    first, second = RecordingChannel(), RecordingChannel()
    a, b = dispatcher(db, first, clock), dispatcher(db, second, clock)
    await a.run_once()
    await enqueue(db, 5)
    assert await b.run_once() == 0, "a holds the sms lease"
    await a.stop()  # releases its leases
    assert await b.run_once() == 5
    assert len(first.sent) == len(second.sent) == 5


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from bot.channels.twilio import TwilioChannel, TwilioSettings
    from bot.clock import SystemClock
    from bot.config import DispatcherSettings
    from bot.dispatcher import ChannelLimits, Dispatcher
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
async def test_two_processes_on_postgresql_never_send_twice(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several service processes share PostgreSQL; SQLite is single-process")
    twilio = FakeTwilio()
    await twilio.start()
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
        await twilio.close()
