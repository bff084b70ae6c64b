"""Inbound throughput: signed Twilio webhooks answering a live survey at full speed.

Prints messages per second and p50/p99 latency for the real service (signature check, dedupe,
engine step, answers, state and outbox committed in one SQLite transaction), and in the same run
the floor: an aiohttp handler that only checks the signature and commits one SQLite row.

    .venv/bin/python bench/inbound.py [--people 200] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import ClientSession, web
from sqlalchemy import text
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import create_app
from bot.config import load_settings
from storage.db import Database
from storage.migrate import upgrade

SID = "AC" + "0" * 32
TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC = "https://bench.example"
ANSWERS = ["UPPFOLJNING", "2", "Det tog lång tid", "7", "4", "1"]


def signed(form: dict[str, str]) -> tuple[dict[str, str], bytes]:
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/webhooks/twilio", form)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return headers, urlencode(form).encode()


def requests_for(people: int) -> list[list[tuple[dict[str, str], bytes]]]:
    """Per person, the signed webhooks of a whole survey, in order."""
    script = []
    for p in range(people):
        phone = f"+4670{p:07d}"
        script.append(
            [
                signed(
                    {
                        "MessageSid": f"SM{p:08d}{i:024d}",
                        "From": phone,
                        "To": "+46700000000",
                        "Body": body,
                        "AccountSid": SID,
                    }
                )
                for i, body in enumerate(ANSWERS)
            ]
        )
    return script


async def drive(
    url: str, script: list[list[tuple[dict[str, str], bytes]]], concurrency: int
) -> tuple[float, list[float]]:
    """Each person answers in order; `concurrency` people at once. Returns (seconds, latencies)."""
    latencies: list[float] = []
    queue: asyncio.Queue[list[tuple[dict[str, str], bytes]]] = asyncio.Queue()
    for person in script:
        queue.put_nowait(person)

    async def worker(session: ClientSession) -> None:
        while not queue.empty():
            person = queue.get_nowait()
            for headers, body in person:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"HTTP {response.status}: {await response.text()}")
                latencies.append(time.perf_counter() - started)

    async with ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/webhooks/twilio"


def floor_app(db: Database) -> web.Application:
    """Only what any webhook must do: check the signature, commit one row."""
    validator = RequestValidator(TOKEN)

    async def handle(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(f"{PUBLIC}/webhooks/twilio", form, signature):
            return web.Response(status=403)
        async with db.transaction() as s:
            await s.execute(
                text("INSERT INTO floor (sid, body) VALUES (:sid, :body)"),
                {"sid": form["MessageSid"], "body": form["Body"]},
            )
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/webhooks/twilio", handle)
    return app


def report(name: str, seconds: float, latencies: list[float]) -> float:
    rate = len(latencies) / seconds
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(
        f"{name:<8} {len(latencies):>6} msgs  {rate:8.1f} msg/s  p50 {p50:6.1f} ms  "
        f"p99 {p99:6.1f} ms"
    )
    return rate


async def service_run(
    folder: Path, script: list[list[tuple[dict[str, str], bytes]]], concurrency: int
) -> tuple[float, list[float]]:
    service_url = f"sqlite+aiosqlite:///{folder}/service.db"
    await asyncio.to_thread(upgrade, service_url)
    settings = load_settings(
        None,
        {
            "BRUKARDIALOG__DATABASE__URL": service_url,
            "BRUKARDIALOG__SERVER__PUBLIC_URL": PUBLIC,
            "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "bench-pseudonym-key-0123456789",
            "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
            "BRUKARDIALOG__TWILIO__ACCOUNT_SID": SID,
            "BRUKARDIALOG__TWILIO__AUTH_TOKEN": TOKEN,
            "BRUKARDIALOG__TWILIO__FROM_NUMBER": "+46700000000",
        },
    )
    # Sending is not measured: the dispatcher is off and replies stay in the outbox.
    runner, url = await serve(create_app(settings, background=False))
    try:
        return await drive(url, script, concurrency)
    finally:
        await runner.cleanup()


async def floor_run(
    folder: Path, script: list[list[tuple[dict[str, str], bytes]]], concurrency: int
) -> tuple[float, list[float]]:
    floor_db = Database(f"sqlite+aiosqlite:///{folder}/floor.db")
    async with floor_db.transaction() as s:
        await s.execute(
            text("CREATE TABLE floor (id INTEGER PRIMARY KEY, sid TEXT UNIQUE, body TEXT)")
        )
    runner, url = await serve(floor_app(floor_db))
    try:
        return await drive(url, script, concurrency)
    finally:
        await runner.cleanup()
        await floor_db.dispose()


async def main(people: int, concurrency: int, rounds: int) -> None:
    script = requests_for(people)
    print(f"{people} people x {len(ANSWERS)} messages, concurrency {concurrency}, SQLite")
    ratios = []
    # Service and floor take turns, each on a fresh database, so a slow moment of a shared
    # machine falls on one round of one side rather than on the whole comparison.
    for n in range(1, rounds + 1):
        folder = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
        print(f"round {n}")
        ours = report("service", *await service_run(folder, script, concurrency))
        base = report("floor", *await floor_run(folder, script, concurrency))
        ratios.append(ours / base)
        print(f"ratio    {ours / base:.2f}")
    print(
        f"ratio    {statistics.median(ratios):.2f} of the floor, median of {rounds} rounds "
        f"(goal: at least 0.50)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.people, args.concurrency, args.rounds))
