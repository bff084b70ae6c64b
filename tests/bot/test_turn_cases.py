"""Turns that once went wrong (issue 10): stale buttons, buttons never acknowledged, a second
campaign taking over the first one's conversation, a keyword after a campaign closed."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import campaigns
from bot.campaigns import CampaignRequest
from flows.engine import closed_notice
from storage.models import Conversation, Invitation, Message
from tests.bot.harness import Harness, running, settings_for
from tests.bot.test_telegram_e2e import CHAT, _message_id, button_data, last_question, sent
from tests.campaigns.helpers import HEADER, import_csv
from tests.fakes.telegram_server import FakeTelegram, callback_update, text_update

PEOPLE = [
    "P1,0701234561,sv,kvinna,1980,missbruk,Norr,2020-01-01,",
    "P2,0701234562,sv,man,1990,missbruk,Norr,2021-01-01,",
]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def harness(database_url: str, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    async with running(settings_for(database_url, telegram=telegram)) as h:
        yield h


@pytest.fixture
def ids() -> Iterator[int]:
    return itertools.count(5000)


def answered(telegram: FakeTelegram) -> list[dict[str, object]]:
    return [dict(c.params) for c in telegram.calls_to("answerCallbackQuery")]


async def press_under(
    h: Harness, telegram: FakeTelegram, update_id: int, question: dict[str, object], data: str
) -> None:
    """Press a button under a given (perhaps older) question."""
    if "id" not in question:  # remembered: the text changes once the question is answered
        question["id"] = _message_id(telegram, question)
    message_id = int(str(question["id"]))
    update = callback_update(
        update_id, CHAT, data, message_id, str(question["text"]), callback_query_id=f"q{update_id}"
    )
    assert await h.telegram(update) == 200
    await h.deliver()


async def test_a_stale_button_is_answered_and_the_current_question_asked_again(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    await harness.telegram(text_update(next(ids), CHAT, "UPPFOLJNING"))
    await harness.deliver()
    first = last_question(telegram)
    first["id"] = _message_id(telegram, first)
    assert button_data(first) == ["choice:yes", "choice:partly", "choice:no"]
    await press_under(harness, telegram, next(ids), first, "choice:yes")  # now at "score"
    asked = len(sent(telegram))
    edits = len(telegram.calls_to("editMessageText"))
    for _ in range(3):  # three stale presses once skipped a question
        await press_under(harness, telegram, next(ids), first, "choice:no")
    stale = answered(telegram)[-3:]
    assert all(a.get("text") == "Den frågan är redan besvarad." for a in stale)
    assert len(telegram.calls_to("editMessageText")) == edits, "nothing edited"
    again = sent(telegram)[asked:]
    assert len(again) == 3 and all("1 (inte alls nöjd)" in str(m["text"]) for m in again)
    state_answers = await harness.running_answers()
    assert state_answers == {"helped": "yes"}
    async with harness.runtime.db.transaction(read_only=True) as s:
        conv = (await s.scalars(select(Conversation))).one()
    assert conv.state["current"] == "score" and conv.state["retries"] == 0


async def test_every_button_press_is_acknowledged(
    harness: Harness, telegram: FakeTelegram, ids: Iterator[int]
) -> None:
    await harness.telegram(text_update(next(ids), CHAT, "/start"))
    await harness.deliver()
    menu = sent(telegram)[-1]
    menu["id"] = _message_id(telegram, menu)
    survey = button_data(menu)[0]
    await press_under(harness, telegram, next(ids), menu, survey)
    await press_under(harness, telegram, next(ids), menu, survey)  # an old menu, pressed again
    await harness.telegram(text_update(next(ids), CHAT, "STOPP"))
    await harness.deliver()
    await press_under(harness, telegram, next(ids), menu, survey)  # opted out: still answered
    assert [a["callback_query_id"] for a in answered(telegram)] == [
        f"q{n}" for n in (5001, 5002, 5004)
    ]


async def campaign(h: Harness, survey_id: str) -> int:
    created = await campaigns.create_campaign(
        h.runtime,
        CampaignRequest(
            survey_id=survey_id,
            audience="unit == 'Norr'",
            ends=(h.clock.now() + timedelta(days=20)).date().isoformat(),
            channels="sms",
        ),
        actor="test",
    )
    await h.runtime.tasks.run_due()
    await h.runtime.tasks.run_due()
    await h.deliver()
    return created.id


async def statuses(h: Harness, campaign_id: int) -> list[str]:
    async with h.runtime.db.transaction(read_only=True) as s:
        rows = await s.scalars(
            select(Invitation.status)
            .where(Invitation.campaign_id == campaign_id)
            .order_by(Invitation.contact_id)
        )
        return list(rows)


@pytest.fixture
async def sms(database_url: str) -> AsyncIterator[Harness]:
    from tests.fakes.twilio_server import FakeTwilio

    twilio = FakeTwilio()
    await twilio.start()
    try:
        async with running(settings_for(database_url, twilio=twilio, public_surveys=False)) as h:
            await import_csv(h.runtime, "\n".join([HEADER, *PEOPLE]) + "\n")
            yield h
    finally:
        await twilio.close()


async def test_a_second_campaign_waits_until_the_first_conversation_is_over(sms: Harness) -> None:
    h = sms
    first = await campaign(h, "ifo-brukarundersokning")
    assert await h.sms("+46701234561", "1") == 200  # P1 answers the first question
    second = await campaign(h, "uppfoljning-insats")
    assert await statuses(h, second) == ["waiting", "waiting"]
    view = await campaigns.show_campaign(h.runtime, second)
    assert view.counts.waiting == 2
    async with h.runtime.db.transaction(read_only=True) as s:
        running_for_p1 = list(
            await s.scalars(select(Conversation.survey_id).where(Conversation.status == "active"))
        )
    assert sorted(running_for_p1) == ["ifo-brukarundersokning"] * 2, "nothing taken over"
    # The first campaign closes: its conversations end, and the next round invites them.
    await campaigns.close_campaign(h.runtime, first, actor="test")
    h.clock.advance(timedelta(minutes=2))
    await h.runtime.tasks.run_due()
    assert await statuses(h, second) == ["invited", "invited"]


async def test_a_keyword_after_the_campaign_closed_gets_the_closed_notice(sms: Harness) -> None:
    h = sms
    first = await campaign(h, "ifo-brukarundersokning")
    await campaigns.close_campaign(h.runtime, first, actor="test")
    h.clock.advance(timedelta(days=2))
    assert await h.sms("+46701234561", "ENKAT") == 200
    await h.deliver()
    async with h.runtime.db.transaction(read_only=True) as s:
        last = (
            await s.scalars(
                select(Message).where(Message.direction == "out").order_by(Message.id.desc())
            )
        ).first()
        active = list(await s.scalars(select(Conversation).where(Conversation.status == "active")))
    assert last is not None and last.body == closed_notice("sv").text
    assert active == [], "no campaign-less conversation was started"
