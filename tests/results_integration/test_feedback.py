"""The feedback loop: after a campaign closes, the people who answered get the results, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.results import feedback, feedback_sending
from bot.results.service import ResultsError
from bot.runtime import Runtime
from flows.segments import segment_info
from storage import repo_tasks
from storage.models import Campaign, Invitation
from tests.results_integration.conftest import (
    START,
    Person,
    contact_languages,
    feedback_messages,
    make_campaign,
    people,
    results_runtime,
)

TEN_ANSWERED = [
    *people(7, language="sv"),
    *people(2, language="en"),
    Person(language="ar"),
]
"""Ten completed: all said "ja" (10 of 10); 5 "bra" and 5 "daligt" (5 of 10)."""


def ten_with_mixed_treatment() -> list[Person]:
    out = []
    for i, person in enumerate(TEN_ANSWERED):
        treated = "bra" if i % 2 == 0 else "daligt"
        out.append(Person(language=person.language, answers={"hjalp": "ja", "bemotande": treated}))
    return out


async def run_feedback(runtime: Runtime, clock: FixedClock, delay: timedelta) -> None:
    clock.advance(delay)
    await runtime.tasks.run_due()


async def campaign_row(runtime: Runtime, campaign_id: int) -> Campaign:
    async with runtime.db.transaction(read_only=True) as s:
        campaign = await s.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


async def test_respondents_get_results_once_in_their_language(
    runtime: Runtime, clock: FixedClock
) -> None:
    persons = [
        *ten_with_mixed_treatment(),
        Person(status="opted_out", opted_out=True),
        Person(status="closed"),
        Person(status="completed", opted_out=True, language="sv"),
    ]
    campaign_id = await make_campaign(runtime, persons)
    await feedback.set_feedback(
        runtime,
        campaign_id,
        text={
            "sv": "Vi ska svara snabbare i telefon.",
            "en": "We will answer the phone faster.",
            "ar": "سنرد على الهاتف بسرعة أكبر.",
        },
        plan_ref="Mål 3.2",
        actor="test",
    )

    await run_feedback(runtime, clock, timedelta(minutes=59))
    assert await feedback_messages(runtime, campaign_id) == []

    await run_feedback(runtime, clock, timedelta(minutes=1))
    sent = await feedback_messages(runtime, campaign_id)
    languages = await contact_languages(runtime)
    # Ten completed and reachable; the one who completed but then opted out gets nothing.
    assert len(sent) == 10
    assert len({m.contact_id for m in sent}) == 10
    by_lang: dict[str | None, list[str]] = {}
    for message in sent:
        assert message.channel == "webchat"
        assert message.conversation_id is None
        assert message.not_before == START + timedelta(hours=1)
        by_lang.setdefault(languages[message.contact_id or 0], []).append(message.body or "")
    assert {k: len(v) for k, v in by_lang.items()} == {"sv": 7, "en": 2, "ar": 1}
    sv = by_lang["sv"][0]
    assert sv.startswith("Hej från Testkommunen!")
    assert "11 personer svarade" in sv  # the one who opted out afterwards answered too
    assert '10 av 10 svarade "Ja" på "Har du fått hjälp?"' in sv
    assert '5 av 10 svarade "Bra" på "Hur var bemötandet?"' in sv
    assert "Det här gör vi: Vi ska svara snabbare i telefon. (Mål 3.2)" in sv
    assert sv.endswith(f"https://enkat.example.se/results/{campaign_id}")
    assert "socialtjänst" not in sv.lower()
    assert "11 people answered" in by_lang["en"][0]
    assert "We will answer the phone faster." in by_lang["en"][0]
    assert "البلدية" in by_lang["ar"][0]
    assert "ما سنفعله: سنرد على الهاتف بسرعة أكبر. (Mål 3.2)" in by_lang["ar"][0]
    for bodies in by_lang.values():
        assert segment_info(bodies[0]).segments <= 3

    campaign = await campaign_row(runtime, campaign_id)
    assert campaign.feedback_status == "sent"
    async with runtime.db.transaction(read_only=True) as s:
        flags = (
            await s.execute(
                select(Invitation.status, Invitation.feedback_sent).where(
                    Invitation.campaign_id == campaign_id
                )
            )
        ).all()
    assert sorted(flags) == sorted(
        [("completed", True)] * 10 + [("opted_out", False), ("closed", False), ("completed", False)]
    )

    # Re-running (a retry, a second process, a manual release) sends nothing new.
    async with runtime.db.transaction() as s:
        await repo_tasks.schedule(
            s,
            feedback.FEEDBACK_TASK,
            f"campaign.feedback:{campaign_id}:again",
            clock.now(),
            {"campaign_id": campaign_id},
        )
    await runtime.tasks.run_due()
    assert await feedback.run_campaign_feedback(runtime, campaign_id) == 0
    async with runtime.db.transaction() as s:
        (await s.get(Campaign, campaign_id)).feedback_status = "pending"  # type: ignore[union-attr]
    assert await feedback.run_campaign_feedback(runtime, campaign_id) == 0
    assert len(await feedback_messages(runtime, campaign_id)) == 10


async def test_quiet_hours_hold_the_messages_until_morning(
    runtime: Runtime, clock: FixedClock
) -> None:
    evening = START.replace(hour=18, minute=30)  # 19:30 in Stockholm; due 20:30, in quiet hours
    clock.advance(evening - START)
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment(), closed_at=evening)
    await run_feedback(runtime, clock, timedelta(hours=1))
    sent = await feedback_messages(runtime, campaign_id)
    assert len(sent) == 10
    morning = START.replace(day=3, hour=8)  # 09:00 in Stockholm the next day
    assert {m.not_before for m in sent} == {morning}


async def test_too_few_answers_show_no_figures(runtime: Runtime, clock: FixedClock) -> None:
    campaign_id = await make_campaign(runtime, people(3))
    await run_feedback(runtime, clock, timedelta(hours=1))
    sent = await feedback_messages(runtime, campaign_id)
    assert len(sent) == 3
    body = sent[0].body or ""
    assert "För få svarade för att vi ska kunna visa resultat." in body
    assert "av 10" not in body and "3" not in body.split("https://")[0]


@pytest.mark.parametrize(("suppression", "hjalp_shown"), [("groups", True), ("cells", False)])
async def test_headlines_follow_the_suppression_rule(
    database_url: str, clock: FixedClock, suppression: str, hjalp_shown: bool
) -> None:
    # 8 answered: "hjalp" 7 ja / 1 nej is a group of 8 (shown under "groups"), but its 1 is a
    # cell below k (hidden, with its share, under "cells"); "bemotande" all "bra" shows 10 of 10.
    persons = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(7)]
    persons.append(Person(answers={"hjalp": "nej", "bemotande": "bra"}))
    async with results_runtime(database_url, clock, suppression=suppression) as runtime:
        campaign_id = await make_campaign(runtime, persons)
        await run_feedback(runtime, clock, timedelta(hours=1))
        body = (await feedback_messages(runtime, campaign_id))[0].body or ""
    assert "8 personer svarade" in body
    assert ('9 av 10 svarade "Ja" på "Har du fått hjälp?"' in body) is hjalp_shown
    assert ("Har du fått hjälp" in body) is hjalp_shown
    assert '10 av 10 svarade "Bra"' in body


async def test_everything_withheld_says_so(database_url: str, clock: FixedClock) -> None:
    persons = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(6)]
    persons.append(Person(answers={"hjalp": "nej", "bemotande": "daligt"}))
    async with results_runtime(database_url, clock, suppression="cells") as runtime:
        campaign_id = await make_campaign(runtime, persons)
        await run_feedback(runtime, clock, timedelta(hours=1))
        body = (await feedback_messages(runtime, campaign_id))[0].body or ""
    assert "7 personer svarade" in body
    assert "Resultaten bygger på för få svar för att visas." in body
    assert "av 10" not in body


async def test_hold_then_release(runtime: Runtime, clock: FixedClock) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment())
    held = await feedback.hold(runtime, campaign_id, actor="test")
    assert held.feedback_status == "held"
    await run_feedback(runtime, clock, timedelta(hours=2))
    assert await feedback_messages(runtime, campaign_id) == []
    async with runtime.db.transaction(read_only=True) as s:
        waiting = await repo_tasks.pending(s, kinds=[feedback.FEEDBACK_TASK])
    assert [t.due_at for t in waiting] == [clock.now() + timedelta(days=1)]

    released = await feedback.release(runtime, campaign_id, actor="test")
    assert released.feedback_status == "pending"
    await runtime.tasks.run_due()
    assert len(await feedback_messages(runtime, campaign_id)) == 10
    assert (await campaign_row(runtime, campaign_id)).feedback_status == "sent"
    # The daily re-check of the hold finds nothing left to do.
    await run_feedback(runtime, clock, timedelta(days=1))
    assert len(await feedback_messages(runtime, campaign_id)) == 10
    with pytest.raises(ResultsError, match="already sent"):
        await feedback.hold(runtime, campaign_id, actor="test")


@pytest.mark.parametrize(
    ("feedback_to", "expected"),
    [("respondents", 10), ("invited", 11), ("none", 0)],
)
async def test_feedback_to(
    runtime: Runtime, clock: FixedClock, feedback_to: str, expected: int
) -> None:
    persons = [
        *ten_with_mixed_treatment(),
        Person(status="closed"),
        Person(status="opted_out", opted_out=True),
        Person(status="pending"),
        Person(status="unreachable"),
    ]
    campaign_id = await make_campaign(runtime, persons, feedback_to=feedback_to)
    await run_feedback(runtime, clock, timedelta(hours=1))
    assert len(await feedback_messages(runtime, campaign_id)) == expected


async def test_large_campaign_goes_in_batches(
    runtime: Runtime, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_sending, "BATCH", 4)
    monkeypatch.setattr(feedback_sending, "PER_RUN", 8)
    campaign_id = await make_campaign(runtime, [*ten_with_mixed_treatment(), *people(9)])
    clock.advance(timedelta(hours=1))
    assert await feedback.run_campaign_feedback(runtime, campaign_id) == 8
    assert (await campaign_row(runtime, campaign_id)).feedback_status == "sending"
    await runtime.tasks.run_due()
    assert len(await feedback_messages(runtime, campaign_id)) == 19
    assert (await campaign_row(runtime, campaign_id)).feedback_status == "sent"


async def test_preview_shows_each_language_with_segments(runtime: Runtime) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment())
    await feedback.set_feedback(
        runtime,
        campaign_id,
        text={"sv": "Vi ändrar öppettiderna."},
        without_text=["en", "ar"],
        actor="test",
    )
    campaign, previews = await feedback.preview(runtime, campaign_id)
    assert campaign.feedback_text == {"sv": "Vi ändrar öppettiderna."}
    assert campaign.feedback_without_text == ["en", "ar"]
    assert [(p.lang, p.recipients) for p in previews] == [("sv", 7), ("en", 2), ("ar", 1)]
    assert [p.without_text for p in previews] == [False, True, True]
    sv = previews[0]
    assert "Det här gör vi: Vi ändrar öppettiderna." in sv.text
    assert sv.segments.encoding == "GSM-7" and sv.segments.segments <= 3
    assert previews[2].segments.encoding == "UCS-2" and previews[2].segments.segments <= 3
    assert await feedback_messages(runtime, campaign_id) == []


ARABIC_TEXT = "سنفتح مكاتبنا في المساء يومين في الأسبوع ابتداءً من شهر مارس."
"""About 60 characters: with the Arabic headlines the message would be four segments."""


async def test_the_arabic_feedback_keeps_the_staff_text(
    runtime: Runtime, clock: FixedClock
) -> None:
    """Issue 10 item 11: the Arabic text was cut to "ما سنفعله: ..." to fit three segments."""
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment())
    await feedback.set_feedback(
        runtime,
        campaign_id,
        text={"sv": "Vi öppnar på kvällar.", "en": "We open in the evenings.", "ar": ARABIC_TEXT},
        plan_ref={"sv": "Mål 3.2", "en": "Goal 3.2", "ar": "الهدف 3.2"},
        actor="test",
    )
    _, previews = await feedback.preview(runtime, campaign_id)
    ar = previews[2]
    assert f"ما سنفعله: {ARABIC_TEXT} (الهدف 3.2)" in ar.text
    assert ar.segments.segments <= 3 and ar.left_out >= 1  # a headline made room, not the text
    await run_feedback(runtime, clock, timedelta(hours=1))
    languages = await contact_languages(runtime)
    bodies = {
        languages[m.contact_id or 0]: m.body or ""
        for m in await feedback_messages(runtime, campaign_id)
    }
    assert ARABIC_TEXT in bodies["ar"] and segment_info(bodies["ar"]).segments <= 3
    assert "Det här gör vi: Vi öppnar på kvällar. (Mål 3.2)" in bodies["sv"]
    assert "What we will do: We open in the evenings. (Goal 3.2)" in bodies["en"]


async def test_a_message_over_three_segments_is_refused_with_counts(runtime: Runtime) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment())
    long_ar = " ".join([ARABIC_TEXT] * 3)
    with pytest.raises(ResultsError) as refused:
        await feedback.set_feedback(
            runtime,
            campaign_id,
            text={"sv": "Vi öppnar på kvällar.", "en": "We open later.", "ar": long_ar},
            actor="test",
        )
    message = str(refused.value)
    assert "more than 3 SMS segments" in message
    assert "sv 1 segment(s), GSM-7" in message and "(over 3)" in message
    assert "ar 5 segment(s), UCS-2" in message and "Shorten the text in ar" in message
    assert (await campaign_row(runtime, campaign_id)).feedback_text == {}  # nothing stored


async def test_an_en_dash_is_named_when_it_makes_the_swedish_text_too_long(
    runtime: Runtime,
) -> None:
    """Issue 10 item 11: a Swedish text with an en dash was silently cut."""
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment())
    sv = (
        "Vi förlänger öppettiderna på måndagar och torsdagar – till klockan 19 – och ringer "
        "upp alla som lämnat meddelande samma dag. Från april finns också en tolk på plats "
        "varje onsdag."
    )
    with pytest.raises(ResultsError, match=r"sv: '–' \(write '-'\) is not in the SMS alphabet"):
        await feedback.set_feedback(
            runtime, campaign_id, text={"sv": sv}, without_text=["en", "ar"], actor="test"
        )
    # With hyphens it is GSM-7 and fits: stored whole, and sent whole.
    plain = sv.replace("–", "-")
    campaign = await feedback.set_feedback(
        runtime, campaign_id, text={"sv": plain}, without_text=["en", "ar"], actor="test"
    )
    assert campaign.feedback_text == {"sv": plain}
    _, previews = await feedback.preview(runtime, campaign_id)
    assert plain in previews[0].text and previews[0].segments.segments <= 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": {"fi": "Teemme"}}, "no language 'fi'"),
        ({"text": {"sv": "x" * 1001}}, "longer than 1000 characters"),
        ({"text": {"sv": "Vi gör om."}}, "no feedback text in en, ar"),
        ({"text": {"sv": "a", "en": "b"}}, "no feedback text in ar: give one per language"),
        ({"without_text": ["ar"]}, "no feedback text in sv, en"),
        (
            {"text": {"sv": "a", "en": "b", "ar": "c"}, "without_text": ["ar"]},
            "ar: given a text and told to go without one",
        ),
        ({"plan_ref": {"sv": "Mål 1"}}, "no plan reference in en, ar"),
        ({"plan_ref": {"de": "Ziel"}}, "no language 'de'"),
        ({"delay": -1}, "between 0 and 365 days"),
        ({"delay": 10**30}, "between 0 and 365 days"),
    ],
)
async def test_set_feedback_refuses(
    runtime: Runtime, kwargs: dict[str, object], message: str
) -> None:
    campaign_id = await make_campaign(runtime, people(1))
    with pytest.raises(ResultsError, match=message):
        await feedback.set_feedback(runtime, campaign_id, actor="test", **kwargs)  # type: ignore[arg-type]
    campaign = await campaign_row(runtime, campaign_id)
    assert (campaign.feedback_text, campaign.plan_refs, campaign.feedback_delay) == ({}, {}, 3600)


def test_compose_leaves_out_headlines_never_the_staff_text() -> None:
    from bot.results.aggregate import Participation, ResponseRecord, compute
    from bot.survey_files import load_paths
    from tests.results_integration.conftest import SURVEY_ID, SURVEYS

    survey = next(s for s in load_paths([SURVEYS]).surveys if s.id == SURVEY_ID)
    records = [
        ResponseRecord(f"r{i}", True, START.date(), {}, {"hjalp": "ja", "bemotande": "bra"})
        for i in range(12)
    ]
    results = compute(survey, records, Participation(20, 12, 12, 0), k=5)
    for lang, text in (("sv", "Vi förbättrar bemötandet. " * 8), ("ar", ARABIC_TEXT)):
        message = feedback.compose(
            survey, results, lang, text=text, plan_ref="Mål 3.2", link="https://x.se/results/1"
        )
        assert " ".join(text.split()) in message, (lang, message)
        assert segment_info(message).segments <= 3, (lang, message)
        assert message.endswith("https://x.se/results/1")
    # Room for everything: both headlines stay.
    short = feedback.compose(survey, results, "sv", text="Vi ringer.")
    assert short.count("av 10 svarade") == 2


# -- issue 10 item 12: when it goes out, send it now, move it -----------------------------------


async def test_preview_says_when_and_send_now_sends_at_once(
    runtime: Runtime, clock: FixedClock
) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment(), feedback_delay=3 * 86400)
    campaign = await campaign_row(runtime, campaign_id)
    timing = await feedback.feedback_timing(runtime, campaign)
    assert timing.due == START + timedelta(days=3) and timing.sends_from == timing.due
    tz = runtime.settings.schedule.tz
    assert timing.describe(tz) == "pending: goes out 2026-03-05 11:00 Europe/Stockholm"

    clock.advance(timedelta(hours=2))
    timing = await feedback.send_now(runtime, campaign_id, actor="test")
    assert timing.due == clock.now()
    await runtime.tasks.run_due()
    assert len(await feedback_messages(runtime, campaign_id)) == 10
    campaign = await campaign_row(runtime, campaign_id)
    assert (await feedback.feedback_timing(runtime, campaign)).describe(tz) == "sent"
    with pytest.raises(ResultsError, match="already sent"):
        await feedback.send_now(runtime, campaign_id, actor="test")


async def test_send_now_at_night_waits_for_the_morning(runtime: Runtime, clock: FixedClock) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment(), feedback_delay=86400)
    clock.advance(START.replace(hour=21) - START)  # 22:00 in Stockholm
    timing = await feedback.send_now(runtime, campaign_id, actor="test")
    tz = runtime.settings.schedule.tz
    assert timing.due == clock.now() and timing.quiet_hours
    assert timing.describe(tz) == (
        "pending: goes out 2026-03-03 09:00 Europe/Stockholm (after quiet hours)"
    )


@pytest.mark.parametrize(
    ("status", "feedback_status", "message"),
    [
        ("running", "pending", "feedback can go out once it has closed"),
        ("closed", "held", "is held: release it first"),
        ("closed", "none", "sends no feedback"),
    ],
)
async def test_send_now_refuses(
    runtime: Runtime, status: str, feedback_status: str, message: str
) -> None:
    campaign_id = await make_campaign(runtime, people(6), status=status)
    async with runtime.db.transaction() as s:
        campaign = await s.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.feedback_status = feedback_status
    with pytest.raises(ResultsError, match=message):
        await feedback.send_now(runtime, campaign_id, actor="test")


async def test_the_delay_can_be_changed_after_closing(runtime: Runtime, clock: FixedClock) -> None:
    campaign_id = await make_campaign(runtime, ten_with_mixed_treatment(), feedback_delay=3600)
    campaign = await feedback.set_feedback(runtime, campaign_id, delay=2 * 86400, actor="test")
    assert campaign.feedback_delay == 2 * 86400
    timing = await feedback.feedback_timing(runtime, campaign)
    assert timing.due == START + timedelta(days=2)
    await run_feedback(runtime, clock, timedelta(hours=2))
    assert await feedback_messages(runtime, campaign_id) == []  # no longer due after an hour
    await run_feedback(runtime, clock, timedelta(days=2))
    assert len(await feedback_messages(runtime, campaign_id)) == 10
    with pytest.raises(ResultsError, match="already sent"):
        await feedback.set_feedback(runtime, campaign_id, delay=60, actor="test")


async def test_an_open_campaign_says_after_closing(runtime: Runtime) -> None:
    campaign_id = await make_campaign(runtime, people(3), status="running", feedback_delay=86400)
    campaign = await campaign_row(runtime, campaign_id)
    text = (await feedback.feedback_timing(runtime, campaign)).describe(
        runtime.settings.schedule.tz
    )
    assert text.startswith("pending: goes out 1d after the campaign closes (as planned: 2026-")
