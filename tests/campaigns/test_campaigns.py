from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot import campaigns, features
from bot.campaigns import (
    CampaignInvalid,
    CampaignRequest,
    EmptyAudience,
    audience_env,
    compile_audience,
)
from bot.channels.base import InboundMessage
from bot.cli import campaigns as cli_campaigns
from bot.clock import FixedClock
from bot.runtime import Runtime
from flows.engine import closed_notice
from flows.expr import ExprError, compile_expr
from storage import repo_campaigns, repo_tasks
from storage.models import Campaign, Contact, Conversation, DueTask, Invitation, Message
from storage.repo_campaigns import AudienceContact
from tests.campaigns.helpers import (
    START,
    campaign_runtime,
    contact_id,
    csv_text,
    import_csv,
    invitation_messages,
    invitations,
    messages,
    webchat_token,
)

MISSBRUK = "target_group == 'missbruk'"


def request(**overrides: Any) -> CampaignRequest:
    fields: dict[str, Any] = {
        "survey_id": "kort",
        "audience": MISSBRUK,
        "ends": "2026-03-20T12:00",
        "reminders": "2d,5d",
        "channels": "sms,webchat",
    }
    fields.update(overrides)
    return CampaignRequest(**fields)


async def create(runtime: Runtime, **overrides: Any) -> int:
    campaign = await campaigns.create_campaign(runtime, request(**overrides), actor="test")
    return campaign.id


async def say(runtime: Runtime, token: str, text: str, n: int) -> None:
    await runtime.service.handle_inbound(
        InboundMessage(
            channel="webchat",
            provider_id=f"{token}:{n}",
            address=token,
            text=text,
            received_at=runtime.clock.now(),
        )
    )


# -- audiences -----------------------------------------------------------------------------------

CONTACT = AudienceContact(
    id=1,
    language="sv",
    gender="kvinna",
    birth_year=1980,
    age_group=None,
    target_group="missbruk",
    unit="Norr",
    contact_since=date(2025, 1, 1),
    attributes={"kommun": "malmo", "unit": "shadowed"},
)

AUDIENCES = [
    ("target_group == 'missbruk'", True),
    ("target_group == 'barn'", False),
    ("age >= 46 and age < 47", True),
    ("age_group == '45-64'", True),
    ("contact_since >= '2025-01-01'", True),
    ("contact_since > '2025-01-01'", False),
    ("contact_length == '1-3y'", True),
    ("kommun == 'malmo' and unit == 'Norr'", True),
    ("gender in ['man', 'annat']", False),
    ("not language == 'en'", True),
]


@pytest.mark.parametrize(("source", "expected"), AUDIENCES)
def test_audience_expressions_over_contact_attributes(source: str, expected: bool) -> None:
    env = audience_env(CONTACT, date(2026, 3, 2))
    assert compile_expr(source).evaluate(env) is expected


async def test_unknown_names_and_bad_syntax_point_at_the_token(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        async with runtime.db.transaction(read_only=True) as s:
            assert (await compile_audience(s, "kommun == 'lund'")).names == {"kommun"}
            with pytest.raises(ExprError) as unknown:
                await compile_audience(s, "unit == 'Norr' and kommunen == 'x'")
            with pytest.raises(ExprError) as syntax:
                await compile_audience(s, "unit = 'Norr'")
    assert unknown.value.column == 20 and "kommunen" in str(unknown.value)
    assert syntax.value.column == 6


# -- creating ------------------------------------------------------------------------------------

INVALID = [
    ("unknown survey", {"survey_id": "nope"}, "survey: unknown survey 'nope'"),
    ("ends before starts", {"starts": "2026-03-10", "ends": "2026-03-05T10:00"}, "ends:"),
    ("ends in the past", {"ends": "2026-03-01T10:00"}, "is in the past"),
    ("bad ends", {"ends": "next week"}, "ends: 'next week' is not a date"),
    ("bad reminder", {"reminders": "2x"}, "reminders: '2x' is not a duration"),
    ("reminder after end", {"reminders": "30d"}, "is after the end"),
    ("unknown channel", {"channels": "sms,fax"}, "channels: unknown channel 'fax'"),
    ("unknown rung", {"participation": "toppen"}, "participation: unknown rung 'toppen'"),
    ("bad feedback delay", {"feedback_delay": "soon"}, "feedback_delay:"),
    ("bad feedback_to", {"feedback_to": "all"}, "feedback_to: 'all'"),
    ("bad audience", {"audience": "unit = 'Norr'"}, "audience: use '==' to compare at column 6"),
    ("unknown attribute", {"audience": "shoe_size > 40"}, "audience: unknown attribute"),
]


async def test_create_validation(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        for label, overrides, expected in INVALID:
            with pytest.raises(CampaignInvalid) as error:
                await create(runtime, **overrides)
            assert any(expected in p for p in error.value.problems), (label, error.value)
        with pytest.raises(EmptyAudience):
            await create(runtime, audience="target_group == 'ingen'")
        async with runtime.db.transaction(read_only=True) as s:
            assert await repo_campaigns.listing(s) == [], "nothing is half-created"
            assert await repo_tasks.pending(s) == []


async def test_create_records_rung_feedback_plan_and_tasks(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(
            runtime,
            starts="2026-03-03T09:00",
            participation="dialog",
            feedback_delay="1d",
            feedback_to="invited",
        )
        default = await create(runtime, feedback_to="none")
        async with runtime.db.transaction(read_only=True) as s:
            campaign = await repo_campaigns.get(s, cid)
            other = await repo_campaigns.get(s, default)
            keys = {t.key: t.due_at for t in await repo_tasks.pending(s)}
    assert campaign is not None and other is not None
    assert (campaign.participation, campaign.feedback_delay, campaign.feedback_to) == (
        "dialog",
        86400,
        "invited",
    )
    assert (other.participation, other.feedback_status) == ("konsultation", "none")
    starts = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Stockholm
    assert keys[f"campaign.start:{cid}"] == starts
    assert keys[f"campaign.remind:{cid}:1"] == starts + timedelta(days=2)
    assert keys[f"campaign.remind:{cid}:2"] == starts + timedelta(days=5)
    assert keys[f"campaign.close:{cid}"] == datetime(2026, 3, 20, 11, 0, tzinfo=UTC)
    assert keys[f"campaign.start:{default}"] == START, "no --starts: at once"


# -- running -------------------------------------------------------------------------------------


async def test_invites_every_matching_person_once_and_reminds_non_finishers(
    database_url: str,
) -> None:
    clock = FixedClock(START)
    async with campaign_runtime(database_url, clock=clock) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime)
        p1, p2, p4 = [await contact_id(runtime, ref) for ref in ("P1", "P2", "P4")]
        await runtime.tasks.run_due()  # start: invitation rows, first round scheduled now
        await runtime.tasks.run_due()  # first invite round
        clock.advance(timedelta(minutes=2))
        await runtime.tasks.run_due()  # a second round finds nothing pending
        await runtime.tasks.run_due()

        assert await invitation_messages(runtime, cid) == {p1: 1, p2: 1, p4: 1}
        statuses = await invitations(runtime, cid)
        assert statuses == {p1: "invited", p2: "invited", p4: "invited"}
        first = await messages(runtime, cid, "invitation")
        by_contact = [m for m in first if m.contact_id == p2]
        assert [m.conversation_id is None for m in by_contact] == [True, False, False]
        assert by_contact[0].body is not None and "Test municipality" in by_contact[0].body
        assert "STOP" in by_contact[0].body

        # P1 completes the survey; P2 answers one question; P4 stays silent.
        token1, token2 = await webchat_token(runtime, "P1"), await webchat_token(runtime, "P2")
        await say(runtime, token1, "1", 1)
        await say(runtime, token1, "1", 2)
        await say(runtime, token2, "2", 1)

        clock.advance(timedelta(days=2))
        await runtime.tasks.run_due()
        reminded = {m.contact_id for m in await messages(runtime, cid, "reminder")}
        assert reminded == {p2, p4}
        p4_reminders = [m for m in await messages(runtime, cid, "reminder") if m.contact_id == p4]
        assert p4_reminders[0].body is not None and "påminnelse" in p4_reminders[0].body
        assert "nöjd" in str(p4_reminders[1].body), "the current question is asked again"

        view = await campaigns.show_campaign(runtime, cid)
        assert (view.counts.audience, view.counts.invited, view.counts.completed) == (3, 3, 1)
        assert view.counts.started == 2
        assert view.counts.response_rate == pytest.approx(1 / 3)


async def test_holds_messages_in_quiet_hours(database_url: str) -> None:
    evening = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)  # 21:30 in Stockholm
    clock = FixedClock(evening)
    async with campaign_runtime(database_url, clock=clock, quiet="20:00-09:00") as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, reminders="1d")
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        assert await invitation_messages(runtime, cid) == {}, "nothing starts in quiet hours"
        async with runtime.db.transaction(read_only=True) as s:
            rounds = await repo_tasks.pending(s, kinds=["campaign.invite"])
        morning = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Stockholm
        assert [t.due_at for t in rounds] == [morning]

        clock.set(morning)
        await runtime.tasks.run_due()
        assert len(await invitation_messages(runtime, cid)) == 3

        # The reminder comes due at 21:30 local the next evening: held until 09:00.
        clock.set(evening + timedelta(days=1))
        await runtime.tasks.run_due()
        reminders = await messages(runtime, cid, "reminder")
        assert reminders and {m.not_before for m in reminders} == {morning + timedelta(days=1)}


async def test_pause_resume_and_close_on_time(database_url: str) -> None:
    clock = FixedClock(START)
    async with campaign_runtime(database_url, clock=clock) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, reminders="1d")
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        await campaigns.pause_campaign(runtime, cid, actor="test")
        queued = [m for m in await messages(runtime, cid, "invitation") if m.status == "queued"]
        assert queued and all(m.not_before == repo_campaigns.HELD_UNTIL for m in queued)
        assert await runtime.dispatcher.run_once() == 0, "held messages are not sent"

        clock.advance(timedelta(days=1))
        await runtime.tasks.run_due()  # the reminder while paused is queued but held
        assert all(
            m.not_before == repo_campaigns.HELD_UNTIL
            for m in await messages(runtime, cid, "reminder")
        )
        await campaigns.resume_campaign(runtime, cid, actor="test")
        assert all(m.not_before == clock.now() for m in await messages(runtime, cid, "invitation"))
        assert await runtime.dispatcher.run_once() > 0

        clock.set(datetime(2026, 3, 20, 11, 0, 1, tzinfo=UTC))
        await runtime.tasks.run_due()
        async with runtime.db.transaction(read_only=True) as s:
            campaign = await s.get(Campaign, cid)
            active = await s.scalars(
                select(Conversation).where(
                    Conversation.campaign_id == cid, Conversation.status == "active"
                )
            )
            feedback = await repo_tasks.get_by_key(s, f"campaign.feedback:{cid}")
        assert campaign is not None and campaign.status == "closed"
        assert campaign.closed_at == clock.now()
        assert list(active) == []
        assert set((await invitations(runtime, cid)).values()) == {"closed"}
        assert feedback is not None and feedback.payload == {"campaign_id": cid}
        assert feedback.due_at == clock.now() + timedelta(days=3)


async def test_opted_out_contacts_are_not_invited(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        p1 = await contact_id(runtime, "P1")
        async with runtime.db.transaction() as s:
            from storage import repo_contacts

            await repo_contacts.set_opted_out(s, p1, START)
        cid = await create(runtime)
        await runtime.tasks.run_due()
        assert p1 not in await invitations(runtime, cid)


async def test_a_finished_conversation_leaves_only_the_invitations_status(
    database_url: str,
) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, channels="webchat")
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        p1 = await contact_id(runtime, "P1")
        token = await webchat_token(runtime, "P1")
        await say(runtime, token, "1", 1)
        assert (await invitations(runtime, cid))[p1] == "started"
        await say(runtime, token, "1", 2)
        assert (await invitations(runtime, cid))[p1] == "completed"
        async with runtime.db.transaction(read_only=True) as s:
            invitation = await s.scalar(select(Invitation).where(Invitation.contact_id == p1))
            conv = await s.scalar(
                select(Conversation).where(
                    Conversation.campaign_id == cid, Conversation.status == "completed"
                )
            )
        assert invitation is not None and invitation.conversation_id is None
        assert conv is not None and conv.contact_id is None and conv.pending_release


async def test_due_tasks_use_unique_keys(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        await create(runtime)
        async with runtime.db.transaction(read_only=True) as s:
            keys = list(await s.scalars(select(DueTask.key)))
        assert len(keys) == len(set(keys))


async def test_a_late_answer_after_close_gets_the_closed_notice(database_url: str) -> None:
    clock = FixedClock(START)
    async with campaign_runtime(database_url, clock=clock) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, channels="webchat")
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        invited = await invitations(runtime, cid)
        person = next(c for c, status in invited.items() if status == "invited")
        async with runtime.db.transaction(read_only=True) as s:
            ref = (await s.get(Contact, person)).external_ref  # type: ignore[union-attr]
        token = await webchat_token(runtime, ref or "")
        await campaigns.close_campaign(runtime, cid, actor="test")
        clock.advance(timedelta(hours=1))
        await say(runtime, token, "1", 1)
        async with runtime.db.transaction(read_only=True) as s:
            last = (
                await s.scalars(
                    select(Message)
                    .where(
                        Message.direction == "out",
                        Message.address_key
                        == runtime.service.pseudonymizer.address_key("webchat", token),
                    )
                    .order_by(Message.id.desc())
                )
            ).first()
        assert last is not None and last.body == closed_notice("sv").text


# -- campaigns of one survey that share people -----------------------------------------------------


async def test_create_warns_when_an_open_campaign_of_the_survey_covers_part_of_the_audience(
    database_url: str,
) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        first = await campaigns.create_campaign_with_warnings(
            runtime, request(name="Våren"), actor="test"
        )
        assert first.warnings == ()
        # Not started yet: it covers whoever its audience matches (P1, P2, P4).
        norr = await campaigns.create_campaign_with_warnings(
            runtime, request(audience="unit == 'Norr'"), actor="test"
        )
        fid = first.campaign.id
        assert norr.warnings == (
            f"2 of the 3 people in this audience are already in campaign {fid} 'Våren' "
            "(scheduled) of the same survey: anyone still answering that one gets this "
            "campaign's invitation when done (shown as waiting)",
        )
        await runtime.tasks.run_due()  # both start: their audiences become invitation rows
        # A contact imported after the start is in neither started campaign.
        await import_csv(runtime, csv_text(["P6,0701234566,sv,kvinna,1985,missbruk,Norr,,"]))
        women = await campaigns.create_campaign_with_warnings(
            runtime, request(audience="gender == 'kvinna'"), actor="test"
        )
        assert [w.split(" of the same survey")[0] for w in women.warnings] == [
            f"1 of the 3 people in this audience are already in campaign {fid} 'Våren' (running)",
            f"2 of the 3 people in this audience are already in campaign {norr.campaign.id} "
            f"'{norr.campaign.name}' (running)",
        ]
        for cid in (fid, norr.campaign.id, women.campaign.id):
            await campaigns.close_campaign(runtime, cid, actor="test")
        again = await campaigns.create_campaign_with_warnings(runtime, request(), actor="test")
        assert again.warnings == (), "closed campaigns cover nobody"


async def test_show_counts_invitations_waiting_for_another_campaign(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime)
        await runtime.tasks.run_due()
        p2 = await contact_id(runtime, "P2")
        async with runtime.db.transaction() as s:
            await s.execute(
                update(Invitation)
                .where(Invitation.campaign_id == cid, Invitation.contact_id == p2)
                .values(status=repo_campaigns.WAITING)
            )
        view = await campaigns.show_campaign(runtime, cid)
    assert (view.counts.waiting, view.counts.pending) == (1, 2)
    counts = campaigns.campaign_json(view.campaign, view.counts)["counts"]
    assert counts["waiting"] == 1
    assert list(counts)[:3] == ["audience", "pending", "waiting"]


# -- quiet hours ---------------------------------------------------------------------------------

EVENING = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)  # 21:30 in Stockholm
MORNING = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Stockholm


async def test_show_says_until_when_quiet_hours_hold_invitations(database_url: str) -> None:
    clock = FixedClock(EVENING)
    async with campaign_runtime(database_url, clock=clock, quiet="20:00-09:00") as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, reminders="1d")
        await runtime.tasks.run_due()  # start: the first round waits for the morning
        await runtime.tasks.run_due()
        view = await campaigns.show_campaign(runtime, cid)
        assert view.held == campaigns.QuietHold(until=MORNING, messages=0, next_round=MORNING)
        shown = campaigns.campaign_json(view.campaign, view.counts, view.held)
        assert shown["held_by_quiet_hours"] == {
            "until": MORNING.isoformat(),
            "messages": 0,
            "next_round": MORNING.isoformat(),
        }
        assert cli_campaigns._held_line(view.held, runtime) == (
            "held until      2026-03-03 09:00 Europe/Stockholm by quiet hours 20:00-09:00: "
            "0 messages queued and invitations not yet sent"
        )

        clock.set(MORNING)
        await runtime.tasks.run_due()  # everyone invited
        assert (await campaigns.show_campaign(runtime, cid)).held is None
        clock.set(EVENING + timedelta(days=1))
        await runtime.tasks.run_due()  # the reminders come due at 21:30: held until 09:00
        view = await campaigns.show_campaign(runtime, cid)
        reminders = await messages(runtime, cid, "reminder")
    assert view.held == campaigns.QuietHold(
        until=MORNING + timedelta(days=1), messages=len(reminders), next_round=None
    )
    assert len(reminders) == 6, "a reminder and the question again, for three people"


async def test_a_new_quiet_hours_setting_applies_to_held_messages_at_startup(
    database_url: str,
) -> None:
    clock = FixedClock(EVENING)
    async with campaign_runtime(database_url, clock=clock, quiet="20:00-09:00") as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime, reminders="1d")
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()  # the round waits for 09:00
    # Restarted with quiet hours that end earlier and start later: it is not quiet at 21:30.
    async with campaign_runtime(database_url, clock=clock, quiet="22:00-07:00") as runtime:
        await features.start(runtime)
        assert (await campaigns.show_campaign(runtime, cid)).held is None
        await runtime.tasks.run_due()
        assert len(await invitation_messages(runtime, cid)) == 3, "invited at once"
        invited = await messages(runtime, cid, "invitation")
        assert {m.not_before for m in invited} == {EVENING}

    # Restarted with longer quiet hours: the invitations not yet sent wait for 09:30.
    later = EVENING + timedelta(minutes=5)
    clock.set(later)
    async with campaign_runtime(database_url, clock=clock, quiet="21:00-09:30") as runtime:
        await features.start(runtime)
        queued = [m for m in await messages(runtime, cid, "invitation") if m.status == "queued"]
        half_past = MORNING + timedelta(minutes=30)
        assert queued and {m.not_before for m in queued} == {half_past}
        assert await runtime.dispatcher.run_once() == 0, "nothing goes out in quiet hours"
        view = await campaigns.show_campaign(runtime, cid)
        assert view.held == campaigns.QuietHold(half_past, len(queued), None)


async def test_paused_campaigns_stay_held_when_quiet_hours_change(database_url: str) -> None:
    async with campaign_runtime(database_url, quiet="20:00-09:00") as runtime:
        await import_csv(runtime, csv_text())
        cid = await create(runtime)
        await runtime.tasks.run_due()
        await runtime.tasks.run_due()
        await campaigns.pause_campaign(runtime, cid, actor="test")
        assert await campaigns.apply_quiet_hours(runtime) == (0, 0)
        queued = await messages(runtime, cid, "invitation")
        assert queued and {m.not_before for m in queued} == {repo_campaigns.HELD_UNTIL}


@pytest.mark.parametrize(
    ("ends", "starts", "resolved"),
    [
        ("30d", None, "2026-04-01"),
        ("30d", "2026-03-10", "2026-04-09"),
        ("1d12h", None, "2026-03-03T22:00:00+00:00"),
        ("2h", None, "2026-03-02T12:00:00+00:00"),
        ("30d", "not a date", "2026-04-01"),
        ("2027-03-31", None, "2027-03-31"),
        ("next week", None, "next week"),
    ],
)
def test_ends_may_be_a_duration_after_the_start(
    ends: str, starts: str | None, resolved: str
) -> None:
    tz = ZoneInfo("Europe/Stockholm")
    assert campaigns.resolve_ends(ends, starts, tz, START) == resolved
