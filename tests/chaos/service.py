"""The fault suite's tools: a real `brukardialog serve` in a subprocess, people answering a survey
over signed Twilio webhooks, and the counts every fault test reports.

A person is a phone number with a script of messages. Each message has its own MessageSid and is
sent again (same sid, as Twilio would) until the service answers it 2xx; an answer is only
counted as acknowledged then. What the person gets back is read from the fake Twilio, and compared
with what someone running the same script on an undisturbed service gets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.bot.harness import public_shipped_surveys
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import (
    FAKE_ACCOUNT_SID,
    FAKE_AUTH_TOKEN,
    FakeTwilio,
    new_sid,
    signed_form_request,
)

OUR_NUMBER = "+46700000000"
SCRIPT = ("UPPFOLJNING", "2", "Det tog för lång tid", "7", "4", "1")
"""The follow-up survey answered to the end: seven replies come back (intro, five questions,
thanks)."""
BRUKARDIALOG = Path(sys.executable).with_name("brukardialog")
ROOT = Path(__file__).resolve().parents[2]
_NUMBER_IN_LOG = re.compile(r"(?:\+|%2B|\b)467\d{8}\b")
"""A Swedish mobile number (the tests' people), bare, with + or URL-encoded; not digits inside a
provider's hex id."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait for a condition (checked every 50 ms), failing after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.05)


@dataclass
class Service:
    """One `brukardialog serve` process: its own folder, environment config and log file."""

    folder: Path
    database_url: str
    twilio: FakeTwilio
    telegram: FakeTelegram | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    name: str = "service"
    proc: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRUKARDIALOG")}
        env |= {
            "PYTHONPATH": str(ROOT),
            "BRUKARDIALOG__DATABASE__URL": self.database_url,
            "BRUKARDIALOG__SERVER__HOST": "127.0.0.1",
            "BRUKARDIALOG__SERVER__PORT": str(self.port),
            "BRUKARDIALOG__SERVER__PUBLIC_URL": self.url,
            "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "chaos-pseudonym-key-0123456789abcdef",
            "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "cd" * 32,
            # The people here start the follow-up survey by its keyword, as if it were public.
            "BRUKARDIALOG__SURVEYS__PATHS": str(public_shipped_surveys()),
            "BRUKARDIALOG__SCHEDULE__QUIET_HOURS": "",
            "BRUKARDIALOG__TWILIO__ACCOUNT_SID": FAKE_ACCOUNT_SID,
            "BRUKARDIALOG__TWILIO__AUTH_TOKEN": FAKE_AUTH_TOKEN,
            "BRUKARDIALOG__TWILIO__FROM_NUMBER": OUR_NUMBER,
            "BRUKARDIALOG__TWILIO__API_BASE_URL": self.twilio.base_url,
            "BRUKARDIALOG__TWILIO__MPS": "200",
            "BRUKARDIALOG__TWILIO__TIMEOUT": "5",
        }
        if self.telegram is not None:
            from tests.fakes.telegram_server import BOT_TOKEN

            env |= {
                "BRUKARDIALOG__TELEGRAM__BOT_TOKEN": BOT_TOKEN,
                "BRUKARDIALOG__TELEGRAM__WEBHOOK_SECRET": "chaos-webhook-secret_0123456789",
                "BRUKARDIALOG__TELEGRAM__API_BASE_URL": self.telegram.api_base_url,
            }
        return env | dict(self.extra)

    async def start(self) -> None:
        """Start serving and wait until /healthz answers."""
        assert self.proc is None or self.proc.returncode is not None, "already running"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            str(BRUKARDIALOG),
            "serve",
            cwd=self.folder,
            env=self.env(),
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"{self.name} exited at start:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                if loop.time() > deadline:
                    raise AssertionError(f"{self.name} did not come up:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """`kill -9`: no shutdown of any kind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self._close_log()

    async def stop(self) -> None:
        """A clean stop (SIGTERM), as a service manager does it."""
        if self.proc is None or self.proc.returncode is not None:
            self._close_log()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(
                f"{self.name} did not stop on SIGTERM:\n{self.log_tail()}"
            ) from None
        finally:
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass
class Person:
    """Someone answering the survey by SMS: every message has one MessageSid, resent until a 2xx."""

    phone: str
    script: Sequence[str] = SCRIPT
    sids: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)
    """(sid, text) of every message the service answered 2xx."""
    resent: int = 0

    def __post_init__(self) -> None:
        self.sids = [new_sid("SM") for _ in self.script]

    async def answer(
        self,
        session: aiohttp.ClientSession,
        pick: Callable[[], Service],
        *,
        upto: int | None = None,
        within: float = 120.0,
    ) -> None:
        """Send the script (or its first `upto` messages) one message at a time."""
        for sid, text in list(zip(self.sids, self.script, strict=True))[:upto]:
            if (sid, text) in self.acknowledged:
                continue
            await self.deliver(session, pick, sid, text, within=within)
            self.acknowledged.append((sid, text))

    async def deliver(
        self,
        session: aiohttp.ClientSession,
        pick: Callable[[], Service],
        sid: str,
        text: str,
        *,
        within: float = 120.0,
    ) -> None:
        """Post one message until a service answers it 2xx (a connection refused while it
        restarts, or a 5xx, means: again, as Twilio's retries would)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        first = True
        while True:
            service = pick()
            form = inbound_form(self.phone, text, sid)
            headers, body = signed_form_request(
                f"{service.url}/webhooks/twilio", form, FAKE_AUTH_TOKEN
            )
            if not first:
                self.resent += 1
            first = False
            try:
                async with session.post(
                    f"{service.url}/webhooks/twilio", data=body, headers=headers
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        return
                    if response.status < 500:
                        raise AssertionError(f"webhook refused: HTTP {response.status}")
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            if loop.time() > deadline:
                raise AssertionError(f"a message from {self.phone} never got a 2xx")
            await asyncio.sleep(0.05)


def inbound_form(sender: str, body: str, sid: str) -> dict[str, str]:
    """A Twilio inbound SMS webhook's form."""
    return {
        "ToCountry": "SE",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "SE",
        "To": OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": FAKE_ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def people(n: int, *, first: int = 0, script: Sequence[str] = SCRIPT) -> list[Person]:
    return [Person(f"+4670{1_000_000 + first + i:07d}", script) for i in range(n)]


def sms_received(twilio: FakeTwilio) -> dict[str, list[str]]:
    """The bodies each number got, in the order Twilio created them."""
    out: dict[str, list[str]] = {}
    for message in twilio.messages.values():
        out.setdefault(message["to"], []).append(message["body"])
    return out


@dataclass(frozen=True, slots=True)
class Counts:
    """What a fault test reports: it passes only with all three at 0."""

    lost: int
    """Replies someone should have got and did not: an acknowledged answer was lost, or a reply
    was never sent."""
    duplicates: int
    """Replies someone got more often than the undisturbed run sends them."""
    given_up: int
    """Outgoing messages that ended `failed`."""

    def __str__(self) -> str:
        return (
            f"{self.lost} acknowledged answers/replies lost, {self.duplicates} duplicate "
            f"messages, {self.given_up} messages given up"
        )


def count(
    received: Mapping[str, Sequence[str]],
    expected: Sequence[str],
    addresses: Iterable[str],
    given_up: int,
) -> Counts:
    """Compare what each address got with what one undisturbed run of the script gets."""
    want = Counter(expected)
    lost = duplicates = 0
    for address in addresses:
        got = Counter(received.get(address, []))
        lost += sum((want - got).values())
        duplicates += sum((got - want).values())
    return Counts(lost, duplicates, given_up)


def numbers_in_log(text: str, loggers: Sequence[str]) -> list[str]:
    """Log lines of these loggers that carry a phone number."""
    return [
        line
        for line in text.splitlines()
        if any(f" {name}" in line for name in loggers) and _NUMBER_IN_LOG.search(line)
    ]


def outbox_statuses(rows: Iterable[Any]) -> Counter[str]:
    return Counter(str(status) for status in rows)
