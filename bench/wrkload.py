"""What the outside-in benchmarks share: `wrk` (installed when missing), its Lua script that
posts pre-computed webhooks in order, the server processes, and the fake providers' process.

Every server under test runs in a process of its own and `wrk` loads it from another, so the
load client never shares an event loop (or a core's time slice) with the server it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
SURVEY = ROOT / "bench" / "survey.toml"
"""The three-question public survey both benchmarks answer (keyword TREFRAGOR)."""
KEYWORD = "TREFRAGOR"
ANSWERS = ("1", "7", "Det tog lång tid att få svar")
"""One person's messages after the keyword: a choice, a number 1-10, free text."""
CONNECTIONS = 16

LUA = r"""
-- Posts pre-computed webhooks in order. Run with as many threads as connections (-t N -c N):
-- each wrk thread then owns one connection and one file of requests, so a person's next
-- message leaves only after the previous one was answered. Argument: the folder of
-- conn-<i>.tsv files, one request a line: path, header name, header value, content type, body.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local file = assert(io.open(args[1] .. "/conn-" .. id .. ".tsv", "r"))
  for line in file:lines() do
    local path, name, value, ctype, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] =
      wrk.format("POST", path, {[name] = value, ["Content-Type"] = ctype}, body)
  end
  file:close()
  sent = 0
  exhausted = 0
end

function request()
  if sent < #requests then
    sent = sent + 1
    return requests[sent]
  end
  -- Out of pre-computed requests: stop this connection (the run is then reported as invalid).
  exhausted = 1
  wrk.thread:stop()
  return requests[#requests]
end

function done(summary, latency, rates)
  local sent_list, exhausted_total = {}, 0
  for _, thread in ipairs(threads) do
    sent_list[#sent_list + 1] = tostring(thread:get("sent"))
    exhausted_total = exhausted_total + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "exhausted": %d, "sent": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout, exhausted_total,
    table.concat(sent_list, ", ")))
end
"""


def ensure_wrk() -> str:
    """The path of `wrk`, installing the Debian package when missing and allowed to."""
    found = shutil.which("wrk")
    if found:
        return found
    how = "install it with `sudo apt-get install wrk` (Debian/Ubuntu) and run this again"
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk is missing: apt-get install -y wrk", flush=True)
        for command in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if command[1] == "update" and done.returncode == 0:
                subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True)
            if shutil.which("wrk"):
                break
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(f"wrk is missing: {how}")


@dataclass(frozen=True, slots=True)
class Request:
    """One webhook as wrk posts it."""

    path: str
    header: str
    value: str
    content_type: str
    body: str


def write_requests(folder: Path, per_connection: Sequence[Sequence[Request]]) -> Path:
    """The Lua script and one file of requests per connection; returns the script's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, requests in enumerate(per_connection):
        lines = []
        for r in requests:
            fields = (r.path, r.header, r.value, r.content_type, r.body)
            if any(ch in f for f in fields for ch in "\t\n\r"):
                raise ValueError("a request field holds a tab or a line break")
            lines.append("\t".join(fields))
        (folder / f"conn-{i}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = folder / "webhooks.lua"
    script.write_text(LUA, encoding="utf-8")
    return script


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    sent: list[int]
    """Requests each connection sent (its file's first `sent` lines)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def run_wrk(
    wrk: str, base_url: str, folder: Path, duration: float, connections: int = CONNECTIONS
) -> WrkResult:
    """Load `base_url` for `duration` seconds; one thread per connection (see LUA)."""
    proc = await asyncio.create_subprocess_exec(
        wrk,
        f"-t{connections}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(folder / "webhooks.lua"),
        base_url,
        "--",
        str(folder),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    output = out.decode(errors="replace")
    line = next((x for x in output.splitlines() if x.startswith("WRK-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed (exit {proc.returncode}):\n{output}")
    data: dict[str, Any] = json.loads(line.removeprefix("WRK-RESULT "))
    if data["exhausted"]:
        raise SystemExit(
            f"{data['exhausted']} connections ran out of pre-computed requests: "
            "pass a larger --people (or a shorter --duration)"
        )
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items() if v},
        sent=[int(x) for x in data["sent"]],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail_of(log: Path, lines: int = 30) -> str:
    """The last lines of a server's log, for an error message."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Server:
    """A server under test in its own process: started, awaited until it prints `ready`, and
    stopped with SIGINT (aiohttp's graceful exit). Its output goes to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, name: str) -> None:
        self.proc = proc
        self.log = log
        self.name = name

    @classmethod
    async def start(
        cls,
        name: str,
        argv: Sequence[str],
        log: Path,
        ready: str,
        env: dict[str, str] | None = None,
        start_within: float = 60.0,
    ) -> Server:
        handle = log.open("wb")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=handle,
            env={**os.environ, **(env or {})},
        )
        handle.close()
        server = cls(proc, log, name)
        assert proc.stdout is not None
        deadline = time.monotonic() + start_within
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(remaining, 0.01))
            except TimeoutError:
                await server.stop()
                raise SystemExit(
                    f"{name} did not start in {start_within:g} s:\n{server.tail()}"
                ) from None
            if not line:
                await proc.wait()
                raise SystemExit(f"{name} exited ({proc.returncode}) on start:\n{server.tail()}")
            if ready in line.decode(errors="replace"):
                return server

    def tail(self) -> str:
        return tail_of(self.log)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


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
        twilio.requests.clear()  # only the created messages are counted; keep memory flat
        print(json.dumps({"sms": len(twilio.messages), "telegram": len(telegram.delivered)}),
              flush=True)
    await twilio.close()
    await telegram.stop()

asyncio.run(main())
"""


class Fakes:
    """The fake Twilio and Telegram Bot API (tests/fakes, the real wire formats) in a process
    of their own; `counts()` asks how many messages each has taken."""

    def __init__(self, proc: asyncio.subprocess.Process, urls: dict[str, str]) -> None:
        self.proc = proc
        self.urls = urls

    @classmethod
    async def start(cls, script: str = FAKES) -> Fakes:
        """Start the fakes (`script` may count more than the created messages)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        urls = json.loads(await proc.stdout.readline())
        return cls(proc, urls)

    async def counts(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"count\n")
        await self.proc.stdin.drain()
        counts: dict[str, int] = json.loads(await self.proc.stdout.readline())
        return counts

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement against the service's database."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def outbox(url: str) -> tuple[int, int]:
    """(outbound messages, of which still waiting to be sent) in the service's outbox."""
    rows = await query(
        url,
        "SELECT count(*), coalesce(sum(CASE WHEN status IN ('sent', 'delivered') "
        "THEN 0 ELSE 1 END), 0) FROM messages WHERE direction = 'out'",
    )
    return int(rows[0][0]), int(rows[0][1])


@dataclass(frozen=True, slots=True)
class Drain:
    delivered: int
    expected: int
    seconds: float
    """From the end of the load until the last reply reached the fake (or the timeout)."""

    @property
    def complete(self) -> bool:
        return self.delivered >= self.expected


async def drain(fakes: Fakes, channel: str, url: str, before: int, give_up: float = 60.0) -> Drain:
    """Wait, from the end of the load, until every outbound message in the service's outbox has
    reached the fake provider; `before` is the fake's count when the round started."""
    started = time.perf_counter()
    expected = -1
    while True:
        delivered = (await fakes.counts())[channel] - before
        elapsed = time.perf_counter() - started
        if delivered >= expected:
            total, waiting = await outbox(url)
            if waiting == 0 and delivered >= total:
                return Drain(delivered, total, elapsed)
            expected = total
        if elapsed > give_up:
            return Drain(delivered, expected, elapsed)
        await asyncio.sleep(0.01)


async def reset_postgres(url: str) -> None:
    """An empty schema (every table dropped) in the benchmark's PostgreSQL database."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


def postgres_url() -> str | None:
    """BRUKARDIALOG_BENCH_DATABASE_URL, else the tests' PostgreSQL: its tables are dropped."""
    return os.environ.get("BRUKARDIALOG_BENCH_DATABASE_URL") or os.environ.get(
        "BRUKARDIALOG_TEST_DATABASE_URL"
    )


def brukardialog() -> list[str]:
    """The command that runs the service's CLI from this virtualenv."""
    script = Path(sys.executable).parent / "brukardialog"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """A service config file (TOML) from sections of keys."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def upgrade_with_cli(config: Path, log: Path) -> None:
    """`brukardialog db upgrade` (PostgreSQL: `serve` migrates only SQLite by itself)."""
    with log.open("ab") as handle:
        proc = await asyncio.create_subprocess_exec(
            *brukardialog(),
            "--config",
            str(config),
            "db",
            "upgrade",
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )
        if await proc.wait() != 0:
            raise SystemExit(f"db upgrade failed:\n{tail_of(log)}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """Cores and load, printed with the figures: a shared machine makes them noisy."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


PUBLIC_URL = "https://bench.example"
"""server.public_url: what Twilio signs, so the service checks signatures against it."""


async def start_service(
    folder: Path, database_url: str, channel: dict[str, dict[str, object]], port: int
) -> Server:
    """`brukardialog serve` in its own process: the bench survey, one channel pointed at the
    fakes, no rate limits the fakes do not have, and a privacy.min_group_size so large that no
    release of anonymous answers runs during the load."""
    config = write_config(
        folder / "brukardialog.toml",
        {
            "organisation": {"name": "Benchkommun", "results_url": "bench.example"},
            "server": {"host": "127.0.0.1", "port": port, "public_url": PUBLIC_URL},
            "database": {"url": database_url},
            "surveys": {"paths": [str(ROOT / "flows" / "surveys"), str(SURVEY)]},
            "privacy": {
                "pseudonym_key": "bench-pseudonym-key-0123456789abcdef",
                "address_key": "ab" * 32,
                "min_group_size": 1_000_000,
            },
            "schedule": {"quiet_hours": ""},
            **channel,
        },
    )
    log = folder / "service.log"
    if not database_url.startswith("sqlite"):
        await upgrade_with_cli(config, log)
    return await Server.start(
        "the service",
        [*brukardialog(), "--config", str(config), "serve"],
        log,
        ready="Brukardialog is running",
    )


async def conversations(url: str) -> dict[str, int]:
    """Conversations of the bench survey by status: proof the keyword started the survey."""
    rows = await query(
        url,
        "SELECT status, count(*) FROM conversations WHERE survey_id = 'bench-tre-fragor' "
        "GROUP BY status",
    )
    return {str(status): int(n) for status, n in rows}
