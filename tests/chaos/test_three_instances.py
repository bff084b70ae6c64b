"""Three `brukardialog serve` processes on one PostgreSQL database, behind a round-robin of
webhooks: each webhook goes to the next process in turn, and every one is delivered again (as
providers do) to a different process. The process sending SMS is killed with `kill -9` half-way.

Every message is handled once (no duplicate and no lost reply, SMS and Telegram), every timer
(the expiry of the conversations left unfinished) runs once, in whichever process claims it, and
the outbox lease moves to a surviving process. (Telegram conversations run before the kill: the
Bot API cannot list what it accepted, so a Telegram send in flight at a `kill -9` of the Telegram
sender may go out twice; SMS is reconciled against Twilio and is tested through the kill.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.inbound.decide import EXPIRE_TASK
from storage.db import Database
from storage.models import Conversation, DueTask, Lease, Message
from tests.bot.harness import public_shipped_surveys
from tests.chaos.reference import TELEGRAM_SCRIPT, given_up, reference_replies
from tests.chaos.service import (
    SCRIPT,
    Counts,
    Person,
    Service,
    count,
    numbers_in_log,
    people,
    sms_received,
    until,
)
from tests.chaos.test_postgres import HOLDS_SMS, postgres_database  # noqa: F401  (fixture)
from tests.fakes.telegram_server import FakeTelegram, text_update
from tests.fakes.twilio_server import FakeTwilio

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]
EXPIRES = 40
"""Seconds a conversation nobody comes back to lasts, in this test's copy of the surveys."""
PARTIAL = 2
"""Messages the people who stop half-way send."""
_WORKER = re.compile(r"outbox sms: sending from this process \(([^)]+)\)")


def short_lived_surveys(folder: Path) -> Path:
    """The (public) shipped surveys, with the follow-up survey expiring after EXPIRES seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in public_shipped_surveys().glob("*.toml"):
        text = source.read_text(encoding="utf-8")
        if source.name == "uppfoljning-insats.toml":
            text, n = re.subn(r'(?m)^expires_after = ".*"$', f'expires_after = "{EXPIRES}s"', text)
            assert n == 1
        (folder / source.name).write_text(text, encoding="utf-8")
    return folder


class RoundRobin:
    """Webhooks go to the next living process in turn."""

    def __init__(self, services: list[Service]) -> None:
        self.alive = list(services)
        self._turn = itertools.count()

    def next(self) -> Service:
        return self.alive[next(self._turn) % len(self.alive)]

    def other_than(self, service: Service) -> Service:
        """A living process that is not `service` (for a redelivery)."""
        for _ in range(len(self.alive) + 1):
            candidate = self.next()
            if candidate is not service:
                return candidate
        raise AssertionError("no other process is alive")


async def telegram_recorded(url: str, within: float = 60) -> None:
    """Wait until no Telegram message is queued or being sent."""
    db = Database(url)
    try:
        deadline = time.monotonic() + within
        while True:
            async with db.transaction(read_only=True) as s:
                waiting = await s.scalar(
                    select(func.count())
                    .select_from(Message)
                    .where(
                        Message.channel == "telegram",
                        Message.direction == "out",
                        Message.status.in_(("queued", "sending")),
                    )
                )
            if not waiting:
                return
            assert time.monotonic() < deadline, "Telegram sends never recorded"
            await asyncio.sleep(0.1)
    finally:
        await db.dispose()


def always(service: Service) -> Callable[[], Service]:
    """A pick that always names `service`."""
    return lambda: service


async def post_telegram(
    session: aiohttp.ClientSession, pick: Callable[[], Service], update: dict[str, object]
) -> Service:
    """Post one Telegram update until a process answers 2xx; returns that process."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while True:
        service = pick()
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.post(
                f"{service.url}/webhooks/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "chaos-webhook-secret_0123456789"},
            ) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return service
                assert response.status >= 500, f"telegram webhook refused: {response.status}"
        assert loop.time() < deadline, "a Telegram update never got a 2xx"
        await asyncio.sleep(0.05)


async def test_three_processes_behind_a_round_robin(
    tmp_path: Path,
    sqlite_template: Path,
    postgres_database: str,  # noqa: F811
) -> None:
    for folder in ("ref", "ref2"):
        (tmp_path / folder).mkdir()
    reference = await reference_replies(tmp_path / "ref", sqlite_template)
    partial = (
        await reference_replies(tmp_path / "ref2", sqlite_template, script=SCRIPT[:PARTIAL])
    ).sms
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()
    surveys = short_lived_surveys(tmp_path / "surveys")
    extra = {
        "BRUKARDIALOG__SURVEYS__PATHS": str(surveys),
        "BRUKARDIALOG__SCHEDULE__POLL_INTERVAL": "0.5",
        "BRUKARDIALOG__DISPATCHER__TELEGRAM_PER_CHAT_RATE": "20",
    }
    services = [
        Service(tmp_path / n, postgres_database, twilio, telegram, extra=extra, name=n)
        for n in ("a", "b", "c")
    ]
    rr = RoundRobin(services)
    finishers = people(18, first=700)
    leavers = people(6, first=800, script=SCRIPT[:PARTIAL])
    chats = {9_100 + i: list(TELEGRAM_SCRIPT) for i in range(4)}
    accepted: dict[tuple[str, str], Service] = {}
    """(phone, sid) -> the process that first answered it 2xx."""
    telegram_accepted: list[tuple[dict[str, object], Service]] = []
    update_ids = itertools.count(50_000_000)

    async def answer(session: aiohttp.ClientSession, person: Person, upto: int | None) -> None:
        for sid, text in list(zip(person.sids, person.script, strict=True))[:upto]:
            if (sid, text) in person.acknowledged:
                continue
            chosen: list[Service] = []

            def pick(chosen: list[Service] = chosen) -> Service:
                chosen.append(rr.next())
                return chosen[-1]

            await person.deliver(session, pick, sid, text)
            person.acknowledged.append((sid, text))
            accepted[(person.phone, sid)] = chosen[-1]

    async def chat(session: aiohttp.ClientSession, chat_id: int, script: list[str]) -> None:
        for text in script:
            update = text_update(next(update_ids), chat_id, text)
            service = await post_telegram(session, rr.next, update)
            telegram_accepted.append((update, service))

    try:
        await asyncio.gather(*(s.start() for s in services))
        async with aiohttp.ClientSession() as session:
            # Telegram first, all sent and recorded before the kill: the Bot API cannot say what
            # it accepted, so a Telegram send in flight at a `kill -9` may go out twice (SMS is
            # reconciled with Twilio's list and is tested through the kill below).
            await asyncio.gather(*(chat(session, c, s) for c, s in chats.items()))
            await until(
                lambda: all(len(telegram.sent_to(c)) >= len(reference.telegram) for c in chats),
                120,
                "every Telegram reply before the SMS burst",
            )
            await telegram_recorded(postgres_database)
            burst = [
                *(asyncio.create_task(answer(session, p, None)) for p in finishers),
                *(asyncio.create_task(answer(session, p, None)) for p in leavers),
            ]
            await until(
                lambda: sum(HOLDS_SMS in s.log_text() for s in services) == 1, 60, "an SMS sender"
            )
            [sender] = [s for s in services if HOLDS_SMS in s.log_text()]
            dead_worker = _WORKER.findall(sender.log_text())[-1]
            await until(lambda: len(twilio.messages) >= 30, 120, "replies before the kill")
            rr.alive.remove(sender)
            await sender.kill()
            killed_at = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*burst), 300)
            survivors = [s for s in services if s is not sender]
            await until(
                lambda: any(HOLDS_SMS in s.log_text() for s in survivors), 60, "a new SMS sender"
            )
            takeover = time.monotonic() - killed_at
            # Every webhook again, to a different living process than the one that took it.
            for person in [*finishers, *leavers]:
                for sid, text in person.acknowledged:
                    other = rr.other_than(accepted[(person.phone, sid)])
                    await person.deliver(session, always(other), sid, text)
            for update, first in telegram_accepted:
                other = rr.other_than(first)
                await post_telegram(session, always(other), update)

        def all_sms_delivered() -> bool:
            got = sms_received(twilio)
            return all(len(got.get(p.phone, [])) >= len(reference.sms) for p in finishers) and all(
                len(got.get(p.phone, [])) >= len(partial) for p in leavers
            )

        await until(all_sms_delivered, 180, "every SMS reply delivered")
        await until(
            lambda: all(len(telegram.sent_to(c)) >= len(reference.telegram) for c in chats),
            180,
            "every Telegram reply delivered",
        )

        db = Database(postgres_database)
        try:

            async def expiries_done() -> int:
                async with db.transaction(read_only=True) as s:
                    return int(
                        await s.scalar(
                            select(func.count())
                            .select_from(DueTask)
                            .where(DueTask.kind == EXPIRE_TASK, DueTask.status == "done")
                        )
                        or 0
                    )

            deadline = time.monotonic() + EXPIRES + 120
            while await expiries_done() < len(leavers):
                assert time.monotonic() < deadline, "the leavers' conversations never expired"
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # a second run of any timer would show by now
            async with db.transaction(read_only=True) as s:
                timers = (
                    await s.execute(
                        select(
                            DueTask.key, DueTask.status, DueTask.attempts, DueTask.claimed_by
                        ).where(DueTask.kind == EXPIRE_TASK)
                    )
                ).all()
                lease = await s.get(Lease, "outbox:sms")
                inbound = int(
                    await s.scalar(
                        select(func.count()).select_from(Message).where(Message.direction == "in")
                    )
                    or 0
                )
            async with db.transaction(read_only=True) as s:
                active = int(
                    await s.scalar(
                        select(func.count())
                        .select_from(Conversation)
                        .where(Conversation.status == "active")
                    )
                    or 0
                )
        finally:
            await db.dispose()
    finally:
        for service in services:
            await service.stop()
        await twilio.close()
        await telegram.stop()

    sms = count(sms_received(twilio), reference.sms, [p.phone for p in finishers], 0)
    sms_partial = count(sms_received(twilio), partial, [p.phone for p in leavers], 0)
    chat_counts = count(
        {str(c): telegram.sent_to(c) for c in chats}, reference.telegram, map(str, chats), 0
    )
    failed = await given_up(postgres_database)
    total = Counts(
        sms.lost + sms_partial.lost + chat_counts.lost,
        sms.duplicates + sms_partial.duplicates + chat_counts.duplicates,
        failed,
    )
    ran_by = sorted({str(t.claimed_by).rsplit(":", 1)[-1] for t in timers if t.status == "done"})
    print(
        f"three processes on PostgreSQL, round-robin webhooks, SMS sender killed (taken over in "
        f"{takeover:.1f} s): {total}; {len(timers)} expiry timers run by {len(ran_by)} processes"
    )
    assert total == Counts(0, 0, 0), (sms, sms_partial, chat_counts)
    # Each message was stored once, however many processes it was posted to.
    sent_messages = sum(len(p.script) for p in [*finishers, *leavers]) + sum(
        len(s) for s in chats.values()
    )
    assert inbound == sent_messages
    # Every expiry timer ran exactly once: done on its first claim, none pending or failed.
    leftover = [t for t in timers if t.status not in ("done", "cancelled")]
    assert leftover == [], leftover
    assert all(t.attempts == 1 for t in timers if t.status == "done"), timers
    # One expiry per person who stopped half-way (the finishers' were cancelled), and no
    # conversation left running.
    assert sum(1 for t in timers if t.status == "done") == len(leavers)
    assert active == 0
    # The outbox lease moved: a survivor holds SMS now, not the process killed.
    assert lease is not None and lease.holder != dead_worker
    assert lease.holder in {w for s in survivors for w in _WORKER.findall(s.log_text())}
    for service in services:
        assert (
            numbers_in_log(service.log_text(), ("bot.outbox.dispatcher", "twilio", "httpx")) == []
        )
