"""Two service processes on one PostgreSQL database share a campaign's tasks without doubling."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import campaigns
from bot.campaigns import CampaignRequest
from bot.clock import FixedClock
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
