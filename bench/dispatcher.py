"""Benchmark: the outbox dispatcher draining a queue to the fake Twilio and Telegram servers.

N queued web chat messages (default 10,000: no HTTP, so this is the dispatcher and the database
alone), then N SMS, then N Telegram messages, then both at once, each on a fresh database: the real
channels (twilio's aiohttp client, PTB's HTTPXRequest) send to the fakes, which
run in a process of their own so they do not share this event loop. Rates are set far above what
the fakes can take, so the figure is what the dispatcher itself can drain. Prints messages a
second per run and checks that every message reached the fake exactly once.

    .venv/bin/python -m bench.dispatcher [--messages 10000] [--database-url URL] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wrkload import Fakes
from bot.channels.base import Channel, ChannelLimits
from bot.channels.telegram.channel import TelegramChannel, TelegramSettings
from bot.channels.twilio.channel import TwilioChannel, TwilioSettings
from bot.channels.webchat import WebChatChannel
from bot.clock import SystemClock
from bot.config import DispatcherSettings
from bot.outbox.dispatcher import Dispatcher
from storage import repo_messages
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Message
from storage.sealing import Sealer

ROOT = Path(__file__).resolve().parents[1]
FAKES = """
import asyncio, json, sys
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FakeTwilio

async def main():
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()
    print(json.dumps({"twilio": twilio.base_url, "telegram": telegram.api_base_url}), flush=True)
    loop = asyncio.get_running_loop()
    while (line := await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
        print(json.dumps({
            "sms": len(twilio.messages),
            "sms_to": len({m["to"] for m in twilio.messages.values()}),
            "sms_connections": len(twilio.connections),
            "telegram": len(telegram.delivered),
            "telegram_to": len({m["chat"]["id"] for m in telegram.delivered}),
            "telegram_connections": len(telegram.connections),
        }), flush=True)
    await twilio.close()
    await telegram.stop()

asyncio.run(main())
"""


SEALER = Sealer(bytes(range(32)))
"""Addresses are sealed at rest; the bench seals its own with a throwaway key."""


async def fresh_database(url: str | None, folder: Path, name: str) -> Database:
    if url is None:
        url = f"sqlite+aiosqlite:///{folder / name}.db"
        await upgrade_async(url)
        return Database(url, sealer=SEALER)
    db = Database(url, sealer=SEALER)
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM messages"))
        await s.execute(text("DELETE FROM leases"))
    return db


async def enqueue(db: Database, channel: str, n: int, offset: int) -> None:
    due = datetime.now(UTC) - timedelta(seconds=1)
    for start in range(0, n, 2000):
        async with db.transaction() as s:
            for i in range(start, min(n, start + 2000)):
                k = offset + i
                await repo_messages.enqueue(
                    s,
                    channel=channel,
                    address={"sms": f"+4671{k:07d}", "telegram": str(100_000 + k)}.get(
                        channel, f"t{k:020d}"
                    ),
                    body=f"Fråga {k % 7 + 1}: Hur nöjd är du med stödet? Svara 1-5.",
                    payload={},
                    kind="reply",
                    contact_id=None,
                    conversation_id=None,
                    campaign_id=None,
                    not_before=due,
                )


async def sent_count(db: Database) -> int:
    async with db.transaction(read_only=True) as s:
        stmt = (
            select(func.count())
            .select_from(Message)
            .where(Message.status.in_(("sent", "delivered")))  # web chat: delivered
        )
        return int(await s.scalar(stmt) or 0)


async def run(
    fakes: Fakes, url: str | None, folder: Path, channels: Sequence[str], n: int, concurrency: int
) -> dict[str, Any]:
    db = await fresh_database(url, folder, "-".join(channels))
    before = await fakes.counts()
    for i, name in enumerate(channels):
        await enqueue(db, name, n, offset=i * n + before["sms"] + before["telegram"])
    built: dict[str, Channel] = {}
    if "sms" in channels:
        built["sms"] = TwilioChannel(
            TwilioSettings(
                "AC" + "0123456789abcdef" * 2,
                "f4ke-auth-token-" + "9" * 16,
                "+46700000000",
                None,
                fakes.urls["twilio"],
            )
        )
    if "webchat" in channels:
        built["webchat"] = WebChatChannel()
    if "telegram" in channels:
        from tests.fakes.telegram_server import BOT_TOKEN

        built["telegram"] = TelegramChannel(
            TelegramSettings(
                BOT_TOKEN, "bench-secret_0123456789", api_base_url=fakes.urls["telegram"]
            )
        )
    limits = {
        "sms": ChannelLimits(100_000.0, concurrency=concurrency),
        "telegram": ChannelLimits(100_000.0, per_address=1.0, concurrency=min(32, concurrency)),
        "webchat": ChannelLimits(100_000.0, concurrency=concurrency),
    }
    dispatcher = Dispatcher(db, built, DispatcherSettings(), SystemClock(), limits=limits)
    total = n * len(channels)
    started = time.perf_counter()
    await dispatcher.start()
    dispatcher.wake()
    while (done := await sent_count(db)) < total:
        if time.perf_counter() - started > 300:
            raise SystemExit(f"only {done} of {total} sent after 300 s")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await dispatcher.stop()
    for channel in built.values():
        await channel.close()
    await db.dispose()
    after = await fakes.counts()
    delivered = {k: after[k] - before[k] for k in ("sms", "telegram")}
    for name in channels:
        if name in delivered:
            assert delivered[name] == n, f"{name}: {delivered[name]} delivered of {n}"
    assert all(delivered[name] == 0 for name in ("sms", "telegram") if name not in channels)
    return {
        "channels": "+".join(channels),
        "messages": total,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "connections": {
            k: after[f"{k}_connections"] - before[f"{k}_connections"]
            for k in channels
            if k in delivered
        },
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL to use (emptied!)")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    fakes = await Fakes.start(FAKES)
    try:
        with tempfile.TemporaryDirectory() as folder:
            where = "PostgreSQL" if args.database_url else "SQLite"
            print(
                f"dispatcher draining {args.messages:,} messages per channel ({where}), "
                f"{args.concurrency} in flight, fakes in their own process"
            )
            for channels in (("webchat",), ("sms",), ("telegram",), ("sms", "telegram")):
                result = await run(
                    fakes,
                    args.database_url,
                    Path(folder),
                    channels,
                    args.messages,
                    args.concurrency,
                )
                print(
                    f"  {result['channels']:<13} {result['messages']:>6,} messages in "
                    f"{result['seconds']:6.2f} s: {result['per_second']:7,.0f}/s "
                    + (
                        f"(connections opened: {opened})"
                        if (opened := result["connections"])
                        else ""
                    ),
                    flush=True,
                )
    finally:
        await fakes.stop()


if __name__ == "__main__":
    asyncio.run(main())
