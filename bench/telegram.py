"""Telegram end to end, measured from outside: `wrk` posts Telegram webhook updates (with the
secret token header) to the real service (`brukardialog serve`, own process, SQLite in a fresh
folder each round) and to the peer, bench/peer_ptb.py: the same three-question survey written
with python-telegram-bot's ConversationHandler, state in memory only. Both reply to the same
fake Bot API (tests/fakes, in a process of its own), which counts the replies delivered.

Distinct chats, each person's messages in order (keyword, then three answers), 16 connections.
Service and peer take turns over the rounds. Printed per side: updates/s, p50/p99 of the
webhook, and replies delivered per second end to end: replies that reached the fake Bot API,
divided by the time from the start of the load until the last of them arrived (the peer sends
before it answers the webhook; the service answers once the turn is durable, and its
dispatcher sends from the outbox). With BRUKARDIALOG_BENCH_DATABASE_URL (or
BRUKARDIALOG_TEST_DATABASE_URL) set, one more service round on that PostgreSQL database, whose
tables it drops first.

    .venv/bin/python bench/telegram.py [--rounds 3] [--duration 10] [--people 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/telegram.py`, this folder would come first on sys.path and this file would
# shadow the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wrkload import (
    ANSWERS,
    CONNECTIONS,
    KEYWORD,
    Fakes,
    Request,
    Server,
    WrkResult,
    conversations,
    drain,
    ensure_wrk,
    free_port,
    machine,
    median,
    postgres_url,
    reset_postgres,
    run_wrk,
    start_service,
    write_requests,
)
from tests.fakes.telegram_server import BOT_TOKEN, text_update

HERE = Path(__file__).resolve().parent
PATH = "/webhooks/telegram"
SECRET = "bench-webhook-secret_0123456789"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
DATE = 1_772_445_600  # 2026-03-02 10:00 UTC
GOAL_TIMES_PEER = 2.0
GOAL_P99_MS = 50.0


def updates(people: int, connections: int) -> list[list[Request]]:
    """Per connection, whole people one after another: the keyword, then the answers, each the
    update Telegram would post (distinct chats, increasing update ids)."""
    per_connection: list[list[Request]] = [[] for _ in range(connections)]
    update_id = 500_000_000
    for p in range(people):
        chat = 7_000_000_000 + p
        for i, text in enumerate((KEYWORD, *ANSWERS)):
            update_id += 1
            body = json.dumps(text_update(update_id, chat, text, message_id=i + 1, date=DATE + i))
            per_connection[p % connections].append(
                Request(PATH, HEADER, SECRET, "application/json", body)
            )
    return per_connection


@dataclass(frozen=True, slots=True)
class Side:
    load: WrkResult
    replies: int
    seconds: float
    """From the start of the load until the last reply reached the fake Bot API."""
    after_load: float
    """Of which after the load stopped."""

    @property
    def replies_per_second(self) -> float:
        return self.replies / self.seconds


def line(name: str, side: Side) -> str:
    r = side.load
    errors = f"  errors {r.errors}" if r.errors else ""
    return (
        f"  {name:<8} {r.requests:>7,} updates {r.rate:7,.0f}/s  p50 {r.p50_ms:6.1f} ms  "
        f"p99 {r.p99_ms:6.1f} ms | {side.replies:>7,} replies delivered "
        f"{side.replies_per_second:7,.0f}/s (last {side.after_load:.2f} s after the load)"
        f"{errors}"
    )


async def service_round(
    wrk: str, requests: Path, duration: float, database_url: str | None
) -> Side:
    folder = Path(tempfile.mkdtemp(prefix="bench-telegram-"))
    url = database_url or f"sqlite+aiosqlite:///{folder / 'service.db'}"
    if database_url:
        await reset_postgres(database_url)
    fakes = await Fakes.start()
    try:
        channel: dict[str, dict[str, object]] = {
            "telegram": {
                "bot_token": BOT_TOKEN,
                "webhook_secret": SECRET,
                "api_base_url": fakes.urls["telegram"],
                "bot_username": "bench_bot",
            },
            # The fake Bot API has no rate limits, and the peer keeps none: lift ours too
            # (Telegram itself allows about 30/s in all and 1/s per chat).
            "dispatcher": {"telegram_rate": 100_000.0, "telegram_per_chat_rate": 1_000.0},
        }
        port = free_port()
        server = await start_service(folder, url, channel, port)
        try:
            result = await run_wrk(wrk, f"http://127.0.0.1:{port}", requests, duration)
            done = await drain(fakes, "telegram", url, before=0)
            survey = await conversations(url)
        finally:
            await server.stop()
    finally:
        await fakes.stop()
    if not survey or result.errors or not done.complete:
        raise SystemExit(
            f"the service did not run the survey (conversations {survey}, errors "
            f"{result.errors}, {done.delivered} of {done.expected} replies):\n{server.tail()}"
        )
    side = Side(result, done.delivered, result.seconds + done.seconds, done.seconds)
    print(line("service", side), flush=True)
    print(
        f"  {'':<8} {sum(survey.values()):,} conversations started by keyword, "
        f"{survey.get('completed', 0):,} completed",
        flush=True,
    )
    return side


async def peer_round(wrk: str, requests: Path, duration: float) -> Side:
    folder = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    fakes = await Fakes.start()
    try:
        port = free_port()
        server = await Server.start(
            "the PTB peer",
            [
                sys.executable,
                str(HERE / "peer_ptb.py"),
                "--port",
                str(port),
                "--api-base-url",
                fakes.urls["telegram"],
                "--token",
                BOT_TOKEN,
                "--secret",
                SECRET,
            ],
            folder / "peer.log",
            ready="peer ready",
        )
        try:
            result = await run_wrk(wrk, f"http://127.0.0.1:{port}", requests, duration)
            # The peer sends before it answers: what it delivered is in by now, bar the
            # updates cut off when wrk stopped. Wait until the count settles.
            stopped = time.perf_counter()
            replies, last_change = (await fakes.counts())["telegram"], stopped
            while time.perf_counter() - last_change < 0.3:
                await asyncio.sleep(0.02)
                now = (await fakes.counts())["telegram"]
                if now != replies:
                    replies, last_change = now, time.perf_counter()
        finally:
            await server.stop()
    finally:
        await fakes.stop()
    if result.errors or replies == 0:
        raise SystemExit(f"the peer failed (errors {result.errors}):\n{server.tail()}")
    after = last_change - stopped
    side = Side(result, replies, result.seconds + after, after)
    print(line("PTB peer", side), flush=True)
    return side


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


async def main(rounds: int, duration: float, people: int) -> None:
    wrk = ensure_wrk()
    folder = Path(tempfile.mkdtemp(prefix="bench-telegram-requests-"))
    write_requests(folder, updates(people, CONNECTIONS))
    print(
        f"Telegram end to end: wrk, {CONNECTIONS} connections, {duration:g} s per run, webhook "
        f"updates (keyword + {len(ANSWERS)} answers per person); {machine()}",
        flush=True,
    )
    ours: list[Side] = []
    peers: list[Side] = []
    ratios: list[float] = []
    for n in range(1, rounds + 1):
        print(f"round {n} (SQLite)", flush=True)
        service = await service_round(wrk, folder, duration, None)
        peer = await peer_round(wrk, folder, duration)
        ours.append(service)
        peers.append(peer)
        ratios.append(service.replies_per_second / peer.replies_per_second)
        print(f"  {'ratio':<8} {ratios[-1]:.2f} (replies delivered per second)", flush=True)
    ratio = median(ratios)
    p99 = median([s.load.p99_ms for s in ours])
    print(f"median of {rounds} rounds (SQLite):")
    for name, sides in (("service", ours), ("PTB peer", peers)):
        print(
            f"  {name:<8} {median([s.replies_per_second for s in sides]):7,.0f} replies/s  "
            f"{median([s.load.rate for s in sides]):7,.0f} updates/s  "
            f"p50 {median([s.load.p50_ms for s in sides]):6.1f} ms  "
            f"p99 {median([s.load.p99_ms for s in sides]):6.1f} ms"
        )
    print(f"  ratio    {ratio:.2f}x the peer's replies per second")
    print("goals (issue 11):")
    print(
        f"  at least {GOAL_TIMES_PEER:g}x the peer's replies/s: {ratio:.2f}x, "
        f"{verdict(ratio >= GOAL_TIMES_PEER)}"
    )
    print(f"  p99 under {GOAL_P99_MS:g} ms: {p99:.1f} ms, {verdict(p99 < GOAL_P99_MS)}")
    pg = postgres_url()
    if pg:
        print("PostgreSQL (one round; its tables are dropped first):", flush=True)
        service = await service_round(wrk, folder, duration, pg)
        peer_median = median([p.replies_per_second for p in peers])
        ratio = service.replies_per_second / peer_median
        print(f"  {'ratio':<8} {ratio:.2f}x the peer's median above")
    else:
        print("PostgreSQL: skipped (set BRUKARDIALOG_BENCH_DATABASE_URL)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument(
        "--people", type=int, default=40_000, help="people pre-computed (enough for the run)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.duration, args.people))
