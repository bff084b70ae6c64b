"""Anonymous answers cannot be linked back to the person from a copy of the database.

The attacker here is strong: they hold the whole database and know exactly in which order the
people finished (the outbox shows when each one got the thanks). They try every ordering the
database offers — SQLite rowids, ids, the tables' physical order, PostgreSQL transaction ids
(`xmin`) and row positions (`ctid`), dates — and pair the n-th person to finish with the n-th
respondent in that order. Answers are released in shuffled batches of at least k people, so the
best any ordering can do is chance: about one right guess per batch. Before this design, insertion
order linked every one of them."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot import campaigns
from bot.campaigns import CampaignRequest
from bot.channels.base import InboundMessage
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import SurveySettings
from bot.features import open_runtime
from bot.runtime import Runtime
from storage.models import Contact, Conversation, Message, Respondent
from tests.campaigns.helpers import START, import_csv, settings_for, webchat_token

PEOPLE = 30
K = 5
CHANCE_CEILING = 15
"""Correct links an ordering may give: chance is about one per batch (6 here); before batching,
insertion order linked all 30."""
HEADER = "external_ref,phone,language,gender,birth_year,target_group,unit,contact_since"


@pytest.fixture
async def runtime(database_url: str) -> AsyncIterator[Runtime]:
    settings = settings_for(database_url)
    settings = dataclasses.replace(
        settings, surveys=SurveySettings(paths=(Path(__file__).parent / "surveys",))
    )
    async with open_runtime(
        settings, clock=FixedClock(START), channels={"webchat": WebChatChannel()}
    ) as rt:
        campaigns.register(rt)
        yield rt


async def answer(runtime: Runtime, token: str, number: int) -> None:
    msg = InboundMessage("webchat", f"{token}:{number}", token, str(number), runtime.clock.now())
    result = await runtime.service.handle_inbound(msg)
    assert result.outcome == "answer"


async def run_campaign(runtime: Runtime) -> tuple[list[int], dict[int, int]]:
    """Everyone answers, one after another; returns who finished in which order and the
    number each one gave (the ground truth the attacker is after)."""
    # Everyone looks the same: only ordering attacks are left to try.
    rows = [f"P{i},07012{i:05d},sv,kvinna,1980,missbruk,Norr,2020-01-01" for i in range(PEOPLE)]
    await import_csv(runtime, "\n".join([HEADER, *rows]) + "\n")
    campaign = await campaigns.create_campaign(
        runtime,
        CampaignRequest(survey_id="puls", audience="unit == 'Norr'", ends="2026-03-20",
                        channels="webchat"),
        actor="test",
    )  # fmt: skip
    await runtime.tasks.run_due()
    await runtime.tasks.run_due()
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    said = random.Random(7).sample(range(1, 1001), PEOPLE)
    truth: dict[int, int] = {}
    order: list[int] = []
    refs = [f"P{i}" for i in range(PEOPLE)]
    random.Random(11).shuffle(refs)
    for ref, number in zip(refs, said, strict=True):
        token = await webchat_token(runtime, ref)
        clock.advance(timedelta(minutes=3))
        await answer(runtime, token, number)
        async with runtime.db.transaction(read_only=True) as s:
            contact = await s.scalar(select(Contact.id).where(Contact.external_ref == ref))
        assert contact is not None
        truth[contact] = number
        order.append(contact)
        # What the service's poller does every few seconds.
        await runtime.service.release_answers()
    await campaigns.close_campaign(runtime, campaign.id, actor="test")
    return order, truth


async def finish_order_from_the_outbox(runtime: Runtime) -> list[int]:
    """The attacker's view of who finished when: the thanks messages, in id order."""
    async with runtime.db.transaction(read_only=True) as s:
        rows = await s.execute(
            select(Message.contact_id, Message.payload)
            .where(Message.direction == "out")
            .order_by(Message.id)
        )
        return [c for c, payload in rows if payload and payload.get("kind") == "thanks"]


async def numbers_in(runtime: Runtime, order_sql: str) -> list[int]:
    """Each respondent's number, respondents in the order `order_sql` gives."""
    async with runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT r.id, a.value FROM respondents r JOIN answers a "
                f"ON a.respondent_id = r.id {order_sql}"
            )
        )
        return [int(value if isinstance(value, int) else str(value)) for _, value in rows]


def linked(finish_order: list[int], truth: dict[int, int], numbers: list[int]) -> int:
    """How many people pairing the n-th finisher with the n-th respondent gets right."""
    return sum(
        1
        for contact, number in zip(finish_order, numbers, strict=False)
        if truth[contact] == number
    )


async def test_no_ordering_in_the_database_links_a_person_to_their_answers(
    runtime: Runtime,
) -> None:
    order, truth = await run_campaign(runtime)
    assert await finish_order_from_the_outbox(runtime) == order, "the attacker's knowledge"
    dialect = runtime.db.dialect
    orderings = {
        "ids": "ORDER BY r.id",
        "scan order": "",
        "answer keys": "ORDER BY a.respondent_id, a.question_id",
        "dates": "ORDER BY r.started_on, a.answered_on",
    }
    if dialect == "postgresql":
        orderings["ctid"] = "ORDER BY r.ctid"
        orderings["answer ctid"] = "ORDER BY a.ctid"
        orderings["xmin"] = "ORDER BY r.xmin::text::bigint, r.ctid"
    results = {
        name: linked(order, truth, await numbers_in(runtime, sql))
        for name, sql in orderings.items()
    }
    assert sorted(await numbers_in(runtime, "ORDER BY a.value")) == sorted(truth.values())
    assert all(n <= CHANCE_CEILING for n in results.values()), results


async def test_released_rows_leave_nothing_to_line_up(runtime: Runtime) -> None:
    await run_campaign(runtime)
    async with runtime.db.engine.connect() as conn:
        if runtime.db.dialect == "sqlite":
            # No rowid to sort by: the tables are WITHOUT ROWID.
            for table in ("respondents", "answers"):
                with pytest.raises(Exception, match="rowid"):
                    await conn.execute(text(f"SELECT rowid FROM {table}"))
                await conn.rollback()
        else:
            batches = await conn.execute(
                text("SELECT xmin::text, count(*) FROM respondents GROUP BY xmin::text")
            )
            sizes = sorted(n for _, n in batches)
            assert sum(sizes) == PEOPLE and min(sizes) >= K, sizes
    async with runtime.db.transaction(read_only=True) as s:
        respondents = list(await s.scalars(select(Respondent)))
        conversations = list(await s.scalars(select(Conversation)))
        linked_messages = list(
            await s.scalars(select(Message).where(Message.conversation_id.is_not(None)))
        )
        inbound = list(await s.scalars(select(Message).where(Message.direction == "in")))
    assert len(respondents) == PEOPLE and all(r.contact_id is None for r in respondents)
    assert {r.started_on for r in respondents} <= {START.date()}, "dated to the day only"
    # Message counts per conversation once told which branch a person took: nothing is left.
    assert conversations == [] and linked_messages == []
    # What people sent stays only as its provider id (so a redelivery is still a duplicate).
    assert inbound and all(
        (m.body, m.payload, m.contact_id, m.conversation_id, m.address_key)
        == (None, {}, None, None, None)
        for m in inbound
    )
    assert all(isinstance(column.type.python_type, type) for column in Respondent.__table__.c)
    assert not any("time" in str(column.type).lower() for column in Respondent.__table__.c), (
        "no timestamps on respondents"
    )


async def test_answers_wait_until_k_people_have_finished(runtime: Runtime) -> None:
    rows = [f"Q{i},07013{i:05d},sv,man,1990,missbruk,Norr,2020-01-01" for i in range(K)]
    await import_csv(runtime, "\n".join([HEADER, *rows]) + "\n")
    await campaigns.create_campaign(
        runtime,
        CampaignRequest(survey_id="puls", audience="unit == 'Norr'", ends="2026-03-20",
                        channels="webchat"),
        actor="test",
    )  # fmt: skip
    await runtime.tasks.run_due()
    await runtime.tasks.run_due()
    for n in range(K):
        await answer(runtime, await webchat_token(runtime, f"Q{n}"), 100 + n)
        released = await runtime.service.release_answers()
        assert released == (K if n == K - 1 else 0)
