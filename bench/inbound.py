"""Inbound SMS throughput measured from outside: `wrk` posts signed Twilio webhooks to the real
service (`brukardialog serve`) running in its own process, and then to the floor.

The service runs with SQLite in a fresh temporary folder each round, checks every
X-Twilio-Signature, and sends its replies to a fake Twilio REST API (tests/fakes, Twilio's wire
format) in a third process. People answer the bench survey (bench/survey.toml, started by its
keyword): distinct senders, each person's messages in order (keyword, then three answers), 16
connections. The floor (bench/floor.py) only checks the signature and commits one sqlite3 row
per request, loaded the same way. Service and floor take turns over the rounds, each on a fresh
database; the script prints req/s, p50 and p99 of both, the median ratio, and how long after
the load stopped every reply reached the fake Twilio. With BRUKARDIALOG_BENCH_DATABASE_URL (or
BRUKARDIALOG_TEST_DATABASE_URL) set it also runs the service on that PostgreSQL database,
whose tables it drops first.

    .venv/bin/python bench/inbound.py [--rounds 3] [--duration 10] [--people 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.wrkload import (
    ANSWERS,
    CONNECTIONS,
    KEYWORD,
    PUBLIC_URL,
    Drain,
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
from tests.fakes.twilio_server import FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN

FROM_NUMBER = "+46700000000"
PATH = "/webhooks/twilio"
FORM = "application/x-www-form-urlencoded"
HERE = Path(__file__).resolve().parent
GOAL_RATIO = 0.25
GOAL_P99_MS = 25.0
GOAL_DRAIN_S = 2.0


def signed_requests(people: int, connections: int) -> list[list[Request]]:
    """Per connection, whole people one after another: the keyword, then the answers, each a
    form Twilio would post, signed over URL + sorted params with the auth token."""
    validator = RequestValidator(FAKE_AUTH_TOKEN)
    per_connection: list[list[Request]] = [[] for _ in range(connections)]
    for p in range(people):
        for i, body in enumerate((KEYWORD, *ANSWERS)):
            form = {
                "MessageSid": f"SM{p:08d}{i:024d}",
                "SmsSid": f"SM{p:08d}{i:024d}",
                "AccountSid": FAKE_ACCOUNT_SID,
                "From": f"+4670{p:07d}",
                "To": FROM_NUMBER,
                "Body": body,
                "NumMedia": "0",
                "NumSegments": "1",
                "ApiVersion": "2010-04-01",
            }
            signature = validator.compute_signature(f"{PUBLIC_URL}{PATH}", form)
            per_connection[p % connections].append(
                Request(PATH, "X-Twilio-Signature", signature, FORM, urlencode(form))
            )
    return per_connection


def line(name: str, r: WrkResult, unit: str = "req/s") -> str:
    errors = f"  errors {r.errors}" if r.errors else ""
    return (
        f"  {name:<10} {r.requests:>7,} requests  {r.rate:8,.0f} {unit}  "
        f"p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms{errors}"
    )


async def service_round(
    wrk: str, requests: Path, duration: float, database_url: str | None, name: str
) -> tuple[WrkResult, Drain]:
    folder = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    url = database_url or f"sqlite+aiosqlite:///{folder / 'service.db'}"
    if database_url:
        await reset_postgres(database_url)
    fakes = await Fakes.start()
    try:
        twilio = {
            "twilio": {
                "account_sid": FAKE_ACCOUNT_SID,
                "auth_token": FAKE_AUTH_TOKEN,
                "from_number": FROM_NUMBER,
                "api_base_url": fakes.urls["twilio"],
                "mps": 100_000.0,
            }
        }
        port = free_port()
        server = await start_service(folder, url, twilio, port)
        try:
            result = await run_wrk(wrk, f"http://127.0.0.1:{port}", requests, duration)
            done = await drain(fakes, "sms", url, before=0)
            survey = await conversations(url)
        finally:
            await server.stop()
    finally:
        await fakes.stop()
    print(line(name, result), flush=True)
    started = sum(survey.values())
    if started == 0 or result.errors:
        raise SystemExit(f"the service did not run the survey:\n{server.tail()}")
    print(
        f"  {'':<10} replies: {done.delivered:,} of {done.expected:,} reached the fake Twilio "
        f"{done.seconds:.2f} s after the load stopped; {started:,} conversations started by "
        f"keyword, {survey.get('completed', 0):,} completed",
        flush=True,
    )
    return result, done


async def floor_round(wrk: str, requests: Path, duration: float) -> WrkResult:
    folder = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    port = free_port()
    server = await Server.start(
        "the floor",
        [
            sys.executable,
            str(HERE / "floor.py"),
            "--port",
            str(port),
            "--database",
            str(folder / "floor.db"),
            "--public-url",
            PUBLIC_URL,
            "--token",
            FAKE_AUTH_TOKEN,
        ],
        folder / "floor.log",
        ready="floor ready",
    )
    try:
        result = await run_wrk(wrk, f"http://127.0.0.1:{port}", requests, duration)
    finally:
        await server.stop()
    if result.errors:
        raise SystemExit(f"the floor answered with errors {result.errors}:\n{server.tail()}")
    print(line("floor", result), flush=True)
    return result


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


async def main(rounds: int, duration: float, people: int) -> None:
    wrk = ensure_wrk()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench-inbound-requests-"))
    write_requests(folder, signed_requests(people, CONNECTIONS))
    print(
        f"SMS inbound: wrk, {CONNECTIONS} connections, {duration:g} s per run, signed Twilio "
        f"webhooks (keyword + {len(ANSWERS)} answers per person, {people:,} people pre-signed "
        f"in {time.perf_counter() - started:.1f} s); {machine()}",
        flush=True,
    )
    services: list[WrkResult] = []
    drains: list[Drain] = []
    floors: list[WrkResult] = []
    ratios: list[float] = []
    # Service and floor take turns, each on a fresh database, so a slow moment of a shared
    # machine falls on one round of one side rather than on the whole comparison.
    for n in range(1, rounds + 1):
        print(f"round {n} (SQLite)", flush=True)
        ours, done = await service_round(wrk, folder, duration, None, "service")
        base = await floor_round(wrk, folder, duration)
        services.append(ours)
        drains.append(done)
        floors.append(base)
        ratios.append(ours.rate / base.rate)
        print(f"  {'ratio':<10} {ours.rate / base.rate:.3f}", flush=True)
    ratio = median(ratios)
    p99 = median([r.p99_ms for r in services])
    slowest = max(drains, key=lambda d: (not d.complete, d.seconds))
    print(f"median of {rounds} rounds (SQLite):")
    print(
        f"  service  {median([r.rate for r in services]):8,.0f} req/s  "
        f"p50 {median([r.p50_ms for r in services]):6.1f} ms  p99 {p99:6.1f} ms"
    )
    print(
        f"  floor    {median([r.rate for r in floors]):8,.0f} req/s  "
        f"p50 {median([r.p50_ms for r in floors]):6.1f} ms  "
        f"p99 {median([r.p99_ms for r in floors]):6.1f} ms"
    )
    print(f"  ratio    {ratio:.3f} of the floor")
    print(
        f"  replies  slowest round: {slowest.delivered:,} of {slowest.expected:,} delivered "
        f"{slowest.seconds:.2f} s after the load stopped"
    )
    print("goals (issue 11):")
    print(f"  at least {GOAL_RATIO} of the floor: {ratio:.3f}, {verdict(ratio >= GOAL_RATIO)}")
    print(f"  p99 under {GOAL_P99_MS:g} ms: {p99:.1f} ms, {verdict(p99 < GOAL_P99_MS)}")
    delivered_in_time = all(d.complete and d.seconds <= GOAL_DRAIN_S for d in drains)
    print(
        f"  every reply delivered within {GOAL_DRAIN_S:g} s after the load: "
        f"{verdict(delivered_in_time)}"
    )
    pg = postgres_url()
    if pg:
        print("PostgreSQL (one round; its tables are dropped first):", flush=True)
        ours, _ = await service_round(wrk, folder, duration, pg, "service")
        print(
            f"  {'ratio':<10} {ours.rate / median([r.rate for r in floors]):.3f} of the "
            "SQLite floor's median above"
        )
    else:
        print("PostgreSQL: skipped (set BRUKARDIALOG_BENCH_DATABASE_URL)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per run")
    parser.add_argument(
        "--people", type=int, default=40_000, help="people pre-signed (enough for the run)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.duration, args.people))
