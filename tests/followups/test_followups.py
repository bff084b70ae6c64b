"""Case events to follow-ups to sent surveys, on SQLite and PostgreSQL, with a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import followups
from bot.clock import FixedClock
from bot.runtime import Runtime
from storage import repo_contacts, repo_events, repo_tasks
from storage.models import Conversation, DueTask, Followup, Message
from storage.repo_events import RuleValues
from tests.followups.conftest import PERSON, event, follow_up_runtime, settings_for, start_survey


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def report(rt: Runtime, *bodies: dict[str, Any]) -> list[followups.EventOutcome]:
    tz = rt.settings.schedule.tz
    today = rt.clock.now().astimezone(tz).date()
    parsed = [followups.parse_event(b, tz=tz, today=today) for b in bodies]
    events = [p for p in parsed if isinstance(p, followups.EventInput)]
    assert len(events) == len(bodies), parsed
    return await followups.ingest_events(rt, events, actor="test")


async def only_followup(rt: Runtime, event_id: str = "ev-1") -> followups.FollowupInfo:
    shown = await followups.event_report(rt, event_id)
    assert shown is not None and len(shown.followups) == 1, shown
    return shown.followups[0]


async def run_at(rt: Runtime, clock: FixedClock, when: datetime) -> None:
    clock.set(when)
    await rt.tasks.run_due()


async def count(rt: Runtime, model: type[Any], *where: Any) -> int:
    async with rt.db.transaction(read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def task_for(rt: Runtime, followup_id: int) -> DueTask:
    async with rt.db.transaction(read_only=True) as s:
        task = await repo_tasks.get_by_key(s, followups.task_key(followup_id))
    assert task is not None
    return task


async def followup_messages(rt: Runtime) -> Sequence[Message]:
    async with rt.db.transaction(read_only=True) as s:
        stmt = select(Message).where(Message.kind == "followup").order_by(Message.id)
        return list(await s.scalars(stmt))


EVENING = "2026-03-02T17:55:00+01:00"
DUE = at("2026-03-16T17:55:00+01:00")


async def test_an_ended_insats_is_followed_up_after_its_delay(
    runtime: Runtime, clock: FixedClock
) -> None:
    [outcome] = await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    assert (outcome.result, outcome.contact_created) == ("created", True)
    f = await only_followup(runtime)
    assert (f.rule, f.survey, f.status, f.due_at) == (
        "uppfoljning-efter-insats",
        "uppfoljning-insats",
        "pending",
        DUE,
    )
    task = await task_for(runtime, f.id)
    assert (task.kind, task.due_at, task.payload) == ("followup.send", DUE, {"followup_id": f.id})

    await run_at(runtime, clock, DUE - timedelta(seconds=1))
    assert (await only_followup(runtime)).status == "pending"
    assert await count(runtime, Conversation) == 0

    await run_at(runtime, clock, DUE)
    f = await only_followup(runtime)
    assert (f.status, f.sent_at, f.reason) == ("sent", DUE, None)
    async with runtime.db.transaction(read_only=True) as s:
        conv = (await s.scalars(select(Conversation))).one()
        contact = await repo_contacts.get_by_external_ref(s, "P-1")
        webchat = await repo_contacts.address_on(s, conv.contact_id or 0, "webchat")
    assert contact is not None and conv.contact_id == contact.id
    assert (conv.survey_id, conv.channel, conv.started_at) == ("uppfoljning-insats", "webchat", DUE)
    messages = await followup_messages(runtime)
    assert messages and all(m.not_before == DUE for m in messages)
    assert webchat is not None and {m.address for m in messages} == {webchat.address}
    assert (messages[0].body or "").startswith("Hej! Lunds kommun vill veta"), "[organisation]"
    assert "Resultaten visas på lund.se/enkat." in (messages[0].body or "")


async def test_the_same_event_again_changes_nothing(runtime: Runtime) -> None:
    body = event(occurred_at=EVENING, contact=PERSON, attributes={"insats": "boende"})
    await report(runtime, body)
    [again] = await report(runtime, body)
    assert (again.result, again.contact_created) == ("unchanged", False)
    assert await count(runtime, Followup) == 1
    assert await count(runtime, DueTask, DueTask.kind == "followup.send") == 1


async def test_a_changed_occurred_at_reschedules(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    [outcome] = await report(runtime, event(occurred_at="2026-03-04T11:00:00+01:00"))
    assert outcome.result == "updated"
    moved = at("2026-03-18T11:00:00+01:00")
    f = await only_followup(runtime)
    assert f.due_at == moved and (await task_for(runtime, f.id)).due_at == moved

    await run_at(runtime, clock, DUE)
    assert (await only_followup(runtime)).status == "pending"
    await run_at(runtime, clock, moved)
    assert (await only_followup(runtime)).status == "sent"


async def test_cancelled_cancels_the_pending_follow_up(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    [outcome] = await report(runtime, event(occurred_at=EVENING, cancelled=True))
    assert outcome.result == "cancelled"
    f = await only_followup(runtime)
    assert (f.status, f.reason) == ("cancelled", "the event was cancelled")
    assert (await task_for(runtime, f.id)).status == "cancelled"
    await run_at(runtime, clock, DUE + timedelta(hours=1))
    assert await count(runtime, Conversation) == 0

    [again] = await report(runtime, event(occurred_at=EVENING, cancelled=True))
    assert again.result == "unchanged"
    with pytest.raises(followups.EventsRefused) as refused:
        await report(runtime, event(occurred_at=EVENING))
    assert refused.value.problems[0].conflict
    assert "was cancelled; report a new event_id" in refused.value.problems[0].message


async def test_an_event_reported_cancelled_plans_nothing(runtime: Runtime) -> None:
    [outcome] = await report(runtime, event(contact=PERSON, cancelled=True))
    assert (outcome.result, outcome.followups) == ("created", ())


async def test_an_unknown_person_without_details_is_refused_and_nothing_stored(
    runtime: Runtime,
) -> None:
    with pytest.raises(followups.EventsRefused) as refused:
        await report(runtime, event("ev-1", contact=PERSON), event("ev-2", external_ref="P-9"))
    assert [(p.index, p.message, p.conflict) for p in refused.value.problems] == [
        (1, "no contact with external_ref 'P-9'; include contact details to create one", False)
    ]
    assert await count(runtime, Followup) == 0
    assert await followups.event_report(runtime, "ev-1") is None


async def test_an_event_id_reused_for_another_person_is_a_conflict(runtime: Runtime) -> None:
    await report(runtime, event(contact=PERSON))
    with pytest.raises(followups.EventsRefused) as refused:
        await report(runtime, event(external_ref="P-2", contact={"phone": "0701234568"}))
    assert refused.value.problems[0].conflict


async def test_fatigue_guard_skips_a_second_survey_within_30_days(
    runtime: Runtime, clock: FixedClock
) -> None:
    await report(
        runtime,
        event("ev-1", occurred_at=EVENING, contact=PERSON),
        event("ev-2", occurred_at="2026-03-05T12:00:00+01:00"),
    )
    await run_at(runtime, clock, DUE)
    await run_at(runtime, clock, at("2026-03-19T12:00:00+01:00"))
    assert (await only_followup(runtime, "ev-1")).status == "sent"
    second = await only_followup(runtime, "ev-2")
    assert (second.status, second.reason) == (
        "skipped",
        "fatigue guard: already surveyed within the last 30 days",
    )
    assert await count(runtime, Conversation) == 1


async def test_a_follow_up_not_sent_within_expires_after_is_dropped(
    runtime: Runtime, clock: FixedClock
) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    await run_at(runtime, clock, DUE + timedelta(days=7, minutes=1))
    f = await only_followup(runtime)
    assert (f.status, f.reason) == ("expired", "not sent within 7d of coming due")
    assert await count(runtime, Conversation) == 0


async def test_late_but_within_expiry_is_still_sent(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    back = at("2026-03-18T12:00:00+01:00")  # the service was down from before DUE until now
    await run_at(runtime, clock, back)
    f = await only_followup(runtime)
    assert (f.status, f.sent_at) == ("sent", back)


async def test_back_at_night_waits_for_the_window_instead_of_sending(
    runtime: Runtime, clock: FixedClock
) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    await run_at(runtime, clock, at("2026-03-17T22:30:00+01:00"))
    f = await only_followup(runtime)
    assert f.status == "pending"
    task = await task_for(runtime, f.id)
    morning = at("2026-03-18T10:00:00+01:00")
    assert (task.status, task.due_at) == ("pending", morning)
    assert await followup_messages(runtime) == []

    await run_at(runtime, clock, morning)
    assert (await only_followup(runtime)).status == "sent"
    assert {m.not_before for m in await followup_messages(runtime)} == {morning}


async def test_the_next_window_after_expiry_drops_it(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    async with runtime.db.transaction() as s:  # staff narrow the window after planning
        rule = await repo_events.get_rule(s, "uppfoljning-efter-insats")
        assert rule is not None
        narrowed = RuleValues(
            rule.name,
            rule.event_type,
            rule.survey_id,
            rule.delay,
            window="12:00-13:00",
            fatigue_days=rule.fatigue_days,
            expires_after=rule.expires_after,
        )
        await repo_events.save_rule(s, narrowed, source="file", now=clock.now())
    await run_at(runtime, clock, at("2026-03-23T14:00:00+01:00"))
    f = await only_followup(runtime)
    assert f.status == "expired"
    assert f.reason == "outside the delivery window, and 7d after due has passed"


async def test_an_opted_out_person_is_skipped(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(occurred_at=EVENING, contact=PERSON))
    async with runtime.db.transaction() as s:
        contact = await repo_contacts.get_by_external_ref(s, "P-1")
        assert contact is not None
        await repo_contacts.set_opted_out(s, contact.id, clock.now())
    await run_at(runtime, clock, DUE)
    f = await only_followup(runtime)
    assert (f.status, f.reason) == ("skipped", "the person has opted out")
    assert await count(runtime, Conversation) == 0


@pytest.mark.parametrize(
    ("contact", "attributes", "planned"),
    [
        ({"phone": "0701234567", "birth_year": 2015}, {}, True),
        ({"phone": "0701234567", "birth_year": 1990}, {}, False),
        ({"phone": "0701234567"}, {}, False),
        ({"phone": "0701234567"}, {"age": 12}, True),
        ({"phone": "0701234567", "birth_year": 2015}, {"age": 19}, False),
    ],
)
async def test_the_barnenkat_rule_asks_children_6_to_17(
    runtime: Runtime, contact: dict[str, Any], attributes: dict[str, Any], planned: bool
) -> None:
    body = event(type="utredning_closed", contact=contact, attributes=attributes)
    [outcome] = await report(runtime, body)
    [f] = outcome.followups
    assert f.survey == "barnenkat"
    assert f.status == ("pending" if planned else "not_planned")
    if not planned:
        assert f.reason == (
            "not planned: rule 'barnenkat-efter-utredning' has a filter the event did not "
            "match (age >= 6 and age <= 17)"
        )


async def test_children_get_no_insats_follow_up(runtime: Runtime) -> None:
    child = {"phone": "0701234567", "target_group": "Barn"}
    [outcome] = await report(runtime, event(contact=child))
    assert [(f.rule, f.status) for f in outcome.followups] == [
        ("uppfoljning-efter-insats", "not_planned")
    ]
    assert await count(runtime, DueTask, DueTask.kind == "followup.send") == 0


async def test_unreachable_on_the_rules_channels_is_skipped(
    runtime: Runtime, clock: FixedClock
) -> None:
    async with runtime.db.transaction() as s:
        await repo_events.save_rule(
            s,
            RuleValues("bara-sms", "prova", "barnenkat", delay=30, channels=("sms",)),
            source="api",
            now=clock.now(),
        )
    await report(runtime, event(type="prova", contact=PERSON))
    await run_at(runtime, clock, clock.now() + timedelta(seconds=30))
    f = await only_followup(runtime)
    assert (f.status, f.reason) == (
        "skipped",
        "unreachable: no address on the rule's channels (sms) that is on",
    )


async def test_someone_answering_another_survey_is_asked_when_it_is_over(
    runtime: Runtime, clock: FixedClock
) -> None:
    async with runtime.db.transaction() as s:
        await repo_events.save_rule(
            s,
            RuleValues("prova", "prova", "uppfoljning-insats", delay=30, channels=("webchat",)),
            source="api",
            now=clock.now(),
        )
    await report(runtime, event(type="prova", contact=PERSON))
    async with runtime.db.transaction() as s:
        contact = await repo_contacts.get_by_external_ref(s, "P-1")
        assert contact is not None
    await start_survey(runtime, contact.id, "barnenkat")
    await runtime.dispatcher.run_once()  # its questions went out (an unsent one holds off expiry)
    await run_at(runtime, clock, clock.now() + timedelta(seconds=30))
    f = await only_followup(runtime)
    assert f.status == "pending"
    task = await task_for(runtime, f.id)
    assert task.due_at == clock.now() + followups.BUSY_RETRY
    # The barnenkät expires after 3 days without an answer; the follow-up goes out after that.
    await run_at(runtime, clock, clock.now() + timedelta(days=3, hours=1))
    await run_at(runtime, clock, clock.now() + followups.BUSY_MIN_RETRY)
    assert (await only_followup(runtime)).status == "sent"


async def test_two_runtimes_never_send_a_follow_up_twice(
    database_url: str, clock: FixedClock
) -> None:
    settings = settings_for(database_url)
    async with (
        follow_up_runtime(settings, clock) as one,
        follow_up_runtime(settings, clock) as two,
    ):
        bodies = [
            event(
                f"ev-{n}",
                external_ref=f"P-{n}",
                occurred_at=EVENING,
                contact={"phone": f"07012345{n:02d}"},
            )
            for n in range(20)
        ]
        await report(one, *bodies)
        clock.set(DUE)
        await asyncio.gather(one.tasks.run_due(limit=3), two.tasks.run_due(limit=3))
        assert await count(one, Followup, Followup.status == "sent") == 20
        assert await count(one, Conversation) == 20
        async with one.db.transaction(read_only=True) as s:
            per_conversation = dict(
                (
                    await s.execute(
                        select(Message.conversation_id, func.count())
                        .where(Message.kind == "followup")
                        .group_by(Message.conversation_id)
                    )
                ).all()
            )
        assert len(per_conversation) == 20 and len(set(per_conversation.values())) == 1

        # Both run the same follow-up's handler at the same moment: one conversation, not two.
        await report(
            one,
            event(
                "ev-x",
                external_ref="P-x",
                occurred_at="2026-03-20T12:00+01:00",
                contact={"phone": "0701234599"},
            ),
        )
        f = await only_followup(one, "ev-x")
        clock.set(f.due_at)
        results = await asyncio.gather(
            followups.send_followup(one, f.id), followups.send_followup(two, f.id)
        )
        assert list(results) == ["sent", "sent"]
        async with one.db.transaction(read_only=True) as s:
            contact = await repo_contacts.get_by_external_ref(s, "P-x")
            assert contact is not None
            started = await s.scalar(
                select(func.count()).where(Conversation.contact_id == contact.id)
            )
        assert started == 1


# -- why an event planned no follow-up -----------------------------------------------------------


async def test_a_changed_event_that_now_matches_is_planned_after_all(runtime: Runtime) -> None:
    body = event(type="utredning_closed", contact={"phone": "0701234567"}, attributes={"age": 19})
    [first] = await report(runtime, body)
    assert [f.status for f in first.followups] == ["not_planned"]
    [changed] = await report(runtime, body | {"attributes": {"age": 12}})
    [f] = changed.followups
    assert (changed.result, f.status, f.reason) == ("updated", "pending", None)
    assert (await task_for(runtime, f.id)).due_at == f.due_at
    [back] = await report(runtime, body | {"attributes": {"age": 19}})
    assert [f.status for f in back.followups] == ["pending"], "left for the send-time check"


@pytest.mark.parametrize(
    ("rules", "note"),
    [
        ((), "no follow-up rule for event type 'prova'"),
        (
            (RuleValues("av", "prova", "barnenkat", delay=30, enabled=False),),
            "the rules for event type 'prova' are disabled (av)",
        ),
    ],
)
async def test_an_event_without_follow_ups_says_why(
    runtime: Runtime, clock: FixedClock, rules: tuple[RuleValues, ...], note: str
) -> None:
    async with runtime.db.transaction() as s:
        for rule in rules:
            await repo_events.save_rule(s, rule, source="api", now=clock.now())
    await report(runtime, event(type="prova", contact=PERSON))
    shown = await followups.event_report(runtime, "ev-1")
    assert shown is not None and shown.followups == ()
    assert shown.note == note
    assert shown.to_json()["note"] == note


async def test_a_rule_added_after_the_event_is_named(runtime: Runtime, clock: FixedClock) -> None:
    await report(runtime, event(type="prova", contact=PERSON))
    async with runtime.db.transaction() as s:
        await repo_events.save_rule(
            s, RuleValues("ny", "prova", "barnenkat", delay=30), source="api", now=clock.now()
        )
    shown = await followups.event_report(runtime, "ev-1")
    assert shown is not None
    assert (
        shown.note
        == "no rule for event type 'prova' was enabled when it was reported (ny came later)"
    )
