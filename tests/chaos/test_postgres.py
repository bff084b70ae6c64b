"""Two `brukardialog serve` processes on one PostgreSQL database share the webhooks and the
outbox; the one sending SMS is killed with `kill -9` half-way. The other takes the channel over,
and every person gets every reply exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from storage.db import make_engine, normalize_url
from storage.migrate import upgrade_async
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

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]
PG_ENV = "BRUKARDIALOG_TEST_DATABASE_URL"
HOLDS_SMS = "bot.outbox.dispatcher: outbox sms: sending from this process"


async def _autocommit(url: str, statement: str) -> None:
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database of its own, dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"two service processes need PostgreSQL: set {PG_ENV}")
    admin = normalize_url(base).render_as_string(hide_password=False)
    name = f"bd_chaos_{secrets.token_hex(5)}"
    await _autocommit(admin, f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_async(url)
        yield url
    finally:
        await _autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_two_processes_share_the_outbox_and_survive_the_senders_kill_9(
    tmp_path: Path, sqlite_template: Path, postgres_database: str
) -> None:
    expected = (await reference_replies(tmp_path, sqlite_template)).sms
    twilio = FakeTwilio()
    await twilio.start()
    a = Service(tmp_path / "a", postgres_database, twilio, name="a")
    b = Service(tmp_path / "b", postgres_database, twilio, name="b")
    rng = random.Random(4)
    alive = [a, b]
    crowd = people(40, first=500)
    try:
        await asyncio.gather(a.start(), b.start())
        async with aiohttp.ClientSession() as session:
            burst = [
                asyncio.create_task(p.answer(session, lambda: rng.choice(alive))) for p in crowd
            ]

            def acknowledged() -> int:
                return sum(len(p.acknowledged) for p in crowd)

            # An idle process takes no channel: the first one to find replies due sends SMS.
            await until(
                lambda: sum(HOLDS_SMS in s.log_text() for s in (a, b)) == 1, 60, "an SMS sender"
            )
            [sender] = [s for s in (a, b) if HOLDS_SMS in s.log_text()]
            [survivor] = [s for s in (a, b) if s is not sender]
            await until(lambda: acknowledged() >= 80, 120, "answers before the kill")
            await until(lambda: len(twilio.messages) >= 40, 120, "replies before the kill")
            alive.remove(sender)
            await sender.kill()
            killed_at = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*burst), 300)
            await until(lambda: HOLDS_SMS in survivor.log_text(), 60, "the survivor takes over")
            takeover = time.monotonic() - killed_at
            for person in crowd:
                for sid, body in person.acknowledged:
                    await person.deliver(session, lambda: survivor, sid, body)
        await until(
            lambda: all(len(sms_received(twilio).get(p.phone, [])) >= len(expected) for p in crowd),
            180,
            "every reply delivered",
        )
    finally:
        await a.stop()
        await b.stop()
        await twilio.close()
    counts = count(
        sms_received(twilio), expected, [p.phone for p in crowd], await given_up(postgres_database)
    )
    print(
        f"two processes on PostgreSQL, SMS sender killed (taken over in {takeover:.1f} s): {counts}"
    )
    assert counts == Counts(0, 0, 0), counts
    for service in (a, b):
        assert (
            numbers_in_log(service.log_text(), ("bot.outbox.dispatcher", "twilio", "httpx")) == []
        )
