"""Two service processes on one PostgreSQL database share a campaign's tasks without doubling."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import campaigns
from bot.campaigns import CampaignRequest
from bot.clock import FixedClock, SystemClock
from storage.models import DueTask, Invitation
from tests.campaigns.helpers import (
    ROWS,
    START,
    campaign_runtime,
    csv_text,
    import_csv,
    invitation_messages,
)

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


async def test_two_runtimes_invite_each_person_once(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent processes need PostgreSQL")
    many = [*ROWS] + [
        f"Q{i},07012{i:05d},sv,kvinna,1980,missbruk,Norr,2020-01-01," for i in range(200)
    ]
    clock_a, clock_b = FixedClock(START), FixedClock(START)
    async with (
        campaign_runtime(database_url, clock=clock_a) as a,
        campaign_runtime(database_url, clock=clock_b) as b,
    ):
        assert a.tasks.worker != b.tasks.worker
        await import_csv(a, csv_text(many))
        campaign = await campaigns.create_campaign(
            a,
            CampaignRequest(
                survey_id="kort",
                audience="target_group == 'missbruk'",
                ends="2026-03-20",
                reminders="1d",
                channels="webchat",
            ),
            actor="test",
        )
        ran: list[int] = []
        for _ in range(12):
            results = await asyncio.gather(a.tasks.run_due(), b.tasks.run_due())
            ran.extend(results)
            for clock in (clock_a, clock_b):
                clock.advance(timedelta(minutes=1))
        for clock in (clock_a, clock_b):
            clock.advance(timedelta(days=1))
        await asyncio.gather(a.tasks.run_due(), b.tasks.run_due())

        sent = await invitation_messages(a, campaign.id)
        async with a.db.transaction(read_only=True) as s:
            rows = await s.scalar(
                select(func.count())
                .select_from(Invitation)
                .where(Invitation.campaign_id == campaign.id)
            )
            reminders = list(
                await s.scalars(
                    select(Invitation.reminders_sent).where(Invitation.campaign_id == campaign.id)
                )
            )
            done = list(
                await s.execute(
                    select(DueTask.key, DueTask.attempts).where(DueTask.status == "done")
                )
            )
    assert rows == 203
    assert len(sent) == 203 and set(sent.values()) == {1}, "nobody invited twice"
    assert set(reminders) == {1}, "each person reminded once"
    assert all(attempts == 1 for _, attempts in done), "no task ran twice"
    assert sum(1 for key, _ in done if key.startswith("campaign.start:")) == 1


SERVICE = """
import asyncio, sys, time
from sqlalchemy import select
from tests.campaigns.helpers import settings_for
from bot.channels.webchat import WebChatChannel
from bot.clock import SystemClock
from bot.features import open_runtime
from storage.models import DueTask

async def main(url):
    async with open_runtime(settings_for(url), clock=SystemClock(),
                            channels={"webchat": WebChatChannel()}) as runtime:
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            await runtime.tasks.run_due()
            async with runtime.db.transaction(read_only=True) as s:
                reminded = await s.scalar(
                    select(DueTask.id).where(DueTask.kind == "campaign.remind",
                                             DueTask.status == "done"))
            if reminded is not None:
                break
            await asyncio.sleep(0.05)

asyncio.run(main(sys.argv[1]))
"""


async def test_two_service_processes_invite_and_remind_each_person_once(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent processes need PostgreSQL")
    many = [*ROWS] + [
        f"Q{i},07013{i:05d},sv,man,1985,missbruk,Norr,2021-01-01," for i in range(150)
    ]
    async with campaign_runtime(database_url, clock=SystemClock()) as runtime:
        await import_csv(runtime, csv_text(many))
        campaign = await campaigns.create_campaign(
            runtime,
            CampaignRequest(
                survey_id="kort",
                audience="target_group == 'missbruk'",
                ends=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
                # Late enough that every invitation is out first, even on a busy machine.
                reminders="20s",
                channels="webchat",
            ),
            actor="test",
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", SERVICE, database_url, env=env, cwd=ROOT
            )
            for _ in range(2)
        ]
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), 120)
        assert codes == [0, 0]
        sent = await invitation_messages(runtime, campaign.id)
        async with runtime.db.transaction(read_only=True) as s:
            reminders = list(
                await s.scalars(
                    select(Invitation.reminders_sent).where(Invitation.campaign_id == campaign.id)
                )
            )
            attempts = list(
                await s.scalars(select(DueTask.attempts).where(DueTask.status == "done"))
            )
    assert len(sent) == 153 and set(sent.values()) == {1}, "nobody invited twice"
    # Whoever was invited by the time the reminder ran is reminded, and nobody twice (on a busy
    # machine the last invitations may go out after it).
    assert set(reminders) <= {0, 1} and reminders.count(1) >= 100, sorted(reminders)
    assert attempts and set(attempts) == {1}, "every task ran once"
