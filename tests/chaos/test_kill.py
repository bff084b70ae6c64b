"""`kill -9` of a real `brukardialog serve` (SQLite) during a burst of answers and during sends.

Each test counts what the people got from the fake Twilio against an undisturbed run of the same
script: 0 acknowledged answers lost, 0 duplicate messages, 0 messages given up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.reference import given_up, reference_replies
from tests.chaos.service import (
    Counts,
    Service,
    count,
    numbers_in_log,
    people,
    sms_received,
    until,
)
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.chaos
QUIET_LOGGERS = ("bot.outbox.dispatcher", "twilio", "httpx", "telegram", "aiohttp.client")


def sqlite_service(folder: Path, twilio: FakeTwilio) -> Service:
    return Service(folder, f"sqlite+aiosqlite:///{folder / 'brukardialog.db'}", twilio)


async def test_kill_9_during_a_burst_of_answers_loses_and_doubles_nothing(
    tmp_path: Path, sqlite_template: Path, twilio: FakeTwilio
) -> None:
    expected = (await reference_replies(tmp_path, sqlite_template)).sms
    service = sqlite_service(tmp_path / "service", twilio)
    await service.start()
    crowd = people(40)
    try:
        async with aiohttp.ClientSession() as session:
            burst = [asyncio.create_task(p.answer(session, lambda: service)) for p in crowd]

            def acknowledged() -> int:
                return sum(len(p.acknowledged) for p in crowd)

            await until(lambda: acknowledged() >= 80, 120, "answers before the kill")
            await service.kill()
            at_kill = acknowledged()
            await service.start()
            await asyncio.wait_for(asyncio.gather(*burst), 300)
            assert acknowledged() == 40 * 6 and at_kill < 40 * 6
            assert sum(p.resent for p in crowd) > 0, "some answers were in flight at the kill"
            # Twilio sends a webhook again when it is unsure of the answer: each must be a no-op.
            for person in crowd:
                for sid, text in person.acknowledged:
                    await person.deliver(session, lambda: service, sid, text)

        def received() -> dict[str, list[str]]:
            return sms_received(twilio)

        await until(
            lambda: all(len(received().get(p.phone, [])) >= len(expected) for p in crowd),
            180,
            "every reply delivered",
        )
    finally:
        await service.stop()
    counts = count(received(), expected, [p.phone for p in crowd], await given_up(service))
    print(f"kill -9 during answers ({at_kill} of 240 acknowledged at the kill): {counts}")
    assert counts == Counts(0, 0, 0), counts
    assert numbers_in_log(service.log_text(), QUIET_LOGGERS) == []


async def test_kill_9_during_sends_sends_each_queued_reply_exactly_once(
    tmp_path: Path, sqlite_template: Path, twilio: FakeTwilio
) -> None:
    expected = (await reference_replies(tmp_path, sqlite_template, script=("UPPFOLJNING",))).sms
    service = sqlite_service(tmp_path / "service", twilio)
    await service.start()
    crowd = people(60, script=("UPPFOLJNING",))
    # Twilio takes each message at once but answers slowly: a kill leaves sends that Twilio has
    # and the service never heard back about.
    twilio.answer_delay = 0.25
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(p.answer(session, lambda: service) for p in crowd))
        total = len(crowd) * len(expected)
        await until(lambda: len(twilio.messages) >= total // 3, 120, "sending under way")
        await service.kill()
        at_kill = len(twilio.messages)
        killed_at = time.monotonic()
        twilio.answer_delay = 0.0
        assert at_kill < total, "the kill came before everything was sent"
        await service.start()
        await until(lambda: len(twilio.messages) >= total, 120, "every queued reply sent")
        recovered = time.monotonic() - killed_at
    finally:
        await service.stop()
    counts = count(
        sms_received(twilio), expected, [p.phone for p in crowd], await given_up(service)
    )
    print(
        f"kill -9 during sends ({at_kill} of {total} sent at the kill, all sent "
        f"{recovered:.1f} s after it): {counts}"
    )
    assert counts == Counts(0, 0, 0), counts
    log = service.log_text()
    assert "had been accepted" in log, "a send Twilio took before the kill was recorded, not redone"
    assert numbers_in_log(log, QUIET_LOGGERS) == []
