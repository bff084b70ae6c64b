"""The pure turn decisions (bot.inbound.decide): facts in, a plan out, no database."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.channels.base import InboundMessage
from bot.config import SHIPPED_SURVEYS
from bot.inbound.decide import (
    Address,
    Policy,
    decide_close,
    decide_expire,
    decide_followup,
    decide_inbound,
    decide_invite,
    decide_remind,
    expire_task_key,
)
from bot.survey_files import load_paths
from flows import engine
from flows.conversation import Input
from flows.model import Survey
from storage.plan import (
    NEW_CONTACT,
    CancelQueued,
    CancelTask,
    ContactFacts,
    ConversationFacts,
    Enqueue,
    FinishConversation,
    InboundFacts,
    LinkAddress,
    LinkInbound,
    NewContact,
    PressedButton,
    RecordAnswers,
    RecordParticipation,
    SaveState,
    ScheduleTask,
    SetOptedOut,
    StartConversation,
    StartFacts,
    TurnPlan,
    UpdateFollowup,
    UpdateInvitation,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
KEY = "k" * 64
PHONE = "+46701234567"


class Catalog:
    """The shipped surveys; uppföljning and the consultation public, the others not."""

    def __init__(self) -> None:
        loaded = {s.id: s for s in load_paths([SHIPPED_SURVEYS]).surveys}
        public = {"uppfoljning-insats", "brukardialog-konsultation"}
        self.by_id = {
            sid: dataclasses.replace(s, public=sid in public) for sid, s in loaded.items()
        }
        self.versions = {
            n: s for n, s in enumerate(sorted(self.by_id.values(), key=lambda s: s.id), 1)
        }
        self.version_of = {s.id: n for n, s in self.versions.items()}

    @property
    def surveys(self) -> list[Survey]:
        return sorted(self.by_id.values(), key=lambda s: s.id)

    def latest_survey(self, survey_id: str) -> tuple[Survey, int] | None:
        survey = self.by_id.get(survey_id)
        return (survey, self.version_of[survey_id]) if survey else None

    def keyword_survey(self, text: str) -> tuple[Survey, int] | None:
        for survey in self.by_id.values():
            if text.strip().upper() in (k.upper() for k in survey.keywords):
                return survey, self.version_of[survey.id]
        return None

    def cached_version(self, version_id: int) -> Survey:
        return self.versions[version_id]


CATALOG = Catalog()


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def sms(text: str = "", **fields: Any) -> InboundMessage:
    return InboundMessage("sms", "SM1", PHONE, text, NOW, **fields)


def press(payload: str, *, message_id: int = 77) -> InboundMessage:
    return InboundMessage(
        "telegram",
        "900",
        "4242",
        "",
        NOW,
        payload=payload,
        extras={"callback_query_id": "cq1", "message_id": message_id, "message_text": "Q?"},
    )


def contact(**fields: Any) -> ContactFacts:
    return ContactFacts(id=7, language=fields.pop("language", "sv"), opted_out_at=None, **fields)


def conversation(
    survey_id: str = "uppfoljning-insats", *, answers: int = 0, **fields: Any
) -> ConversationFacts:
    """An active conversation of the survey, `answers` questions in."""
    survey = CATALOG.by_id[survey_id]
    state = engine.start(survey, now=NOW - timedelta(minutes=5), lang="sv").state
    replies = ["1", "9", "4", "1", "x", "x", "x", "x", "x", "x"]
    for reply in replies[:answers]:
        state = engine.resume(survey, state, Input(text=reply), NOW - timedelta(minutes=4)).state
    defaults: dict[str, Any] = {
        "id": "conv-1",
        "contact_id": 7,
        "respondent_id": None if survey.anonymous else "resp-1",
        "survey_version_id": CATALOG.version_of[survey_id],
        "survey_id": survey_id,
        "campaign_id": None,
        "followup_id": None,
        "origin": "public",
        "channel": "sms",
        "status": "active",
        "state": state.to_json(),
        "attributes": {},
        "expires_at": state.expires_at,
    }
    return ConversationFacts(**(defaults | fields))


def decide(msg: InboundMessage, **facts: Any) -> TurnPlan:
    return decide_inbound(
        msg,
        InboundFacts(message_id=1, **{"sender": None, "conversation": None} | facts),
        CATALOG,
        address_key=KEY,
        now=NOW,
        ids=ids(),
        policy=Policy(),
    )


def kinds(plan: TurnPlan) -> list[str]:
    return [type(step).__name__ for step in plan.steps]


def sent(plan: TurnPlan) -> list[Enqueue]:
    return plan.of(Enqueue)


# -- inbound -------------------------------------------------------------------------------------


def test_a_message_to_ignore_is_recorded_and_nothing_else() -> None:
    plan = decide(sms("hej", ignore="not a phone number"))
    assert (plan.outcome, plan.steps) == ("ignored", ())


def test_a_public_keyword_from_a_newcomer_starts_the_survey_in_the_words_language() -> None:
    plan = decide(sms("FOLLOWUP"))
    assert plan.outcome == "start"
    [new] = plan.of(NewContact)
    assert (new.language, new.channel, new.address, new.address_key) == ("en", "sms", PHONE, KEY)
    [start] = plan.of(StartConversation)
    assert (start.contact_id, start.origin, start.survey_id) == (
        NEW_CONTACT,
        "public",
        "uppfoljning-insats",
    )
    assert start.respondent_id is None, "anonymous: no respondent until release"
    assert plan.of(ScheduleTask)[0].key == expire_task_key(start.id)
    messages = sent(plan)
    assert [m.payload["kind"] for m in messages] == ["info", "question"]
    assert all(m.contact_id == NEW_CONTACT and m.conversation_id == start.id for m in messages)
    [participation] = plan.of(RecordParticipation)
    assert (participation.period, participation.completed) == ("2026-q1", False)


def test_a_keyword_of_a_survey_that_is_not_public_gets_the_menu_and_no_contact() -> None:
    plan = decide(sms("ENKAT"))
    assert plan.outcome == "not_public"
    assert not plan.of(NewContact) and not plan.of(StartConversation)
    [menu] = sent(plan)
    assert "UPPFOLJNING" in menu.body and "ENKAT" not in menu.body


@pytest.mark.parametrize(
    ("facts", "outcome", "text"),
    [
        ({"open_invitations": {"ifo-brukarundersokning": 3}}, "start", None),
        (
            {"completed_campaign_surveys": frozenset({"ifo-brukarundersokning"})},
            "already_answered",
            "redan svarat",
        ),
        ({"closed_campaign_surveys": frozenset({"ifo-brukarundersokning"})}, "closed", "stängd"),
    ],
)
def test_an_invited_persons_keyword(facts: dict[str, Any], outcome: str, text: str | None) -> None:
    plan = decide(sms("ENKAT"), sender=contact(), **facts)
    assert plan.outcome == outcome
    if text is None:
        [start] = plan.of(StartConversation)
        assert (start.campaign_id, start.origin) == (3, "campaign")
        [invitation] = plan.of(UpdateInvitation)
        assert (invitation.campaign_id, invitation.status, invitation.conversation_id) == (
            3,
            "invited",
            start.id,
        )
    else:
        assert not plan.of(StartConversation)
        assert text in sent(plan)[0].body


def test_a_known_contact_may_start_a_survey_that_is_not_public_but_never_a_childrens() -> None:
    known = contact(external_ref="P-1")
    assert decide(sms("ENKAT"), sender=known).outcome == "start"
    assert decide(sms("ENKAT"), sender=contact()).outcome == "not_public"
    assert decide(sms("BARN"), sender=known).outcome == "not_public"


def test_free_text_after_a_campaign_closed_gets_the_closed_notice() -> None:
    plan = decide(sms("ja"), sender=contact(), closed_campaign_surveys=frozenset({"x"}))
    assert plan.outcome == "closed"


def test_one_person_counts_once_per_period_and_starts_are_limited() -> None:
    done = decide(
        sms("UPPFOLJNING"), sender=contact(), completed_public=frozenset({"uppfoljning-insats"})
    )
    assert done.outcome == "already_answered" and not done.of(StartConversation)
    limited = decide(sms("UPPFOLJNING"), sender=contact(), recent_starts=3)
    assert limited.outcome == "rate_limited" and not limited.of(StartConversation)
    allowed = decide(sms("UPPFOLJNING"), sender=contact(), recent_starts=2)
    assert allowed.outcome == "start" and not allowed.of(NewContact)


def test_an_answer_saves_state_and_asks_the_next_question_without_writing_answers() -> None:
    plan = decide(sms("1"), sender=contact(), conversation=conversation())
    assert plan.outcome == "answer"
    assert plan.of(LinkInbound) == [LinkInbound(7, "conv-1")]
    [save] = plan.of(SaveState)
    assert save.state["answers"] == {"helped": "yes"}
    assert not plan.of(RecordAnswers), "anonymous answers stay in the state"
    assert [m.payload["question_id"] for m in sent(plan)] == ["score"]


def test_a_survey_that_is_not_anonymous_records_answers_as_they_come() -> None:
    conv = conversation("brukardialog-konsultation")
    plan = decide(sms("1"), sender=contact(), conversation=conv)
    [answers] = plan.of(RecordAnswers)
    assert answers.respondent_id == "resp-1" and answers.answers[0][0] == "forbattra"


def test_the_last_answer_finishes_and_the_thanks_is_not_linked_to_the_conversation() -> None:
    plan = decide(sms("1"), sender=contact(), conversation=conversation(answers=3))
    [finish] = plan.of(FinishConversation)
    assert (finish.status, finish.anonymous, finish.discard) == ("completed", True, False)
    assert plan.of(CancelTask) == [CancelTask(expire_task_key("conv-1"))]
    [thanks] = sent(plan)
    assert thanks.payload["kind"] == "thanks" and thanks.conversation_id is None


def test_stop_in_a_conversation_opts_out_and_confirms() -> None:
    plan = decide(sms("STOPP"), sender=contact(), conversation=conversation(answers=1))
    assert kinds(plan)[:4] == ["LinkInbound", "SetOptedOut", "CancelQueued", "FinishConversation"]
    assert plan.of(FinishConversation)[0].status == "opted_out"
    assert [m.kind for m in sent(plan)] == ["opt_out"]


def test_stop_from_a_newcomer_creates_an_opted_out_contact() -> None:
    plan = decide(sms("SLUTA"))
    assert kinds(plan) == ["NewContact", "SetOptedOut", "CancelQueued", "LinkInbound", "Enqueue"]
    assert plan.of(SetOptedOut) == [SetOptedOut(NEW_CONTACT, NOW)]


def test_an_opted_out_person_gets_nothing_but_start_brings_them_back() -> None:
    out = contact()
    out = dataclasses.replace(out, opted_out_at=NOW - timedelta(days=1))
    assert decide(sms("hej"), sender=out).steps == ()
    back = decide(sms("START"), sender=out)
    assert back.of(SetOptedOut) == [SetOptedOut(7, None)] and len(sent(back)) == 1


def test_the_providers_opt_out_ends_the_running_conversation() -> None:
    plan = decide(sms("", opt_out=True), sender=contact(), conversation=conversation())
    assert plan.outcome == "provider_opt_out"
    assert plan.of(FinishConversation)[0].status == "opted_out"
    assert not sent(plan), "Twilio has answered them itself"


def test_a_button_under_the_current_question_answers_it_and_is_acknowledged() -> None:
    conv = conversation(channel="telegram")
    pressed = PressedButton(question_id="helped", conversation_id="conv-1", known=True)
    plan = decide(press("choice:partly"), sender=contact(), conversation=conv, pressed=pressed)
    ack, question = sent(plan)
    assert ack.kind == "ack" and ack.payload["extras"]["edit_text"] == "Q?\n✓ Delvis"
    assert plan.of(SaveState)[0].state["answers"] == {"helped": "partly"}
    assert question.payload["question_id"] == "improve"


@pytest.mark.parametrize(
    "pressed",
    [
        PressedButton(question_id="helped", conversation_id="conv-1", known=True),
        PressedButton(question_id=None, conversation_id="old", known=True),
        PressedButton(None, None, known=False),
    ],
)
def test_a_stale_button_is_acknowledged_and_the_current_question_asked_again(
    pressed: PressedButton,
) -> None:
    conv = conversation(answers=1, channel="telegram")  # now at "score", a numeric question
    plan = decide(press("choice:no"), sender=contact(), conversation=conv, pressed=pressed)
    assert plan.outcome == "stale_button"
    ack, again = sent(plan)
    assert ack.payload["extras"]["ack_text"] and "edit_text" not in ack.payload["extras"]
    assert again.payload["question_id"] == "score"
    state = plan.of(SaveState)[0].state
    assert state["answers"] == {"helped": "yes"} and state["retries"] == 0


def test_every_button_press_is_acknowledged_on_every_path() -> None:
    out = dataclasses.replace(contact(), opted_out_at=NOW)
    for plan in (
        decide(press("choice:yes"), sender=out),
        decide(press("choice:yes"), sender=contact()),
        decide(press("survey:uppfoljning-insats"), sender=contact()),
        decide(press("survey:nope")),
    ):
        assert [m.kind for m in sent(plan)][:1] == ["ack"], plan.outcome


def test_start_with_a_token_moves_the_conversation_to_the_chat() -> None:
    owner = contact()
    conv = conversation(channel="webchat")
    msg = InboundMessage("telegram", "901", "4242", "/start", NOW, start_token="tok")
    plan = decide(msg, token_owner=owner, token_conversation=conv)
    assert plan.of(LinkAddress) == [LinkAddress(7, "telegram", "4242", KEY)]
    assert plan.of(SaveState)[0].channel == "telegram"
    assert [m.channel for m in sent(plan)] == ["telegram"]
    unknown = decide(msg)
    assert unknown.outcome == "menu" and not unknown.of(LinkAddress)


# -- turns from outside ------------------------------------------------------------------------


TO = Address("sms", PHONE, KEY)


def invite(facts: StartFacts) -> TurnPlan:
    survey, version = CATALOG.latest_survey("ifo-brukarundersokning") or (None, 0)
    assert survey is not None
    return decide_invite(
        facts, survey, version, TO, lambda lang: f"invitation {lang}",
        campaign_id=3, not_before=NOW, now=NOW, ids=ids(),
    )  # fmt: skip


def test_an_invitation_waits_while_the_person_answers_another_survey() -> None:
    busy = invite(StartFacts(contact(), conversation()))
    assert busy.outcome == "waiting" and busy.of(UpdateInvitation)[0].status == "waiting"
    assert not sent(busy)
    plan = invite(StartFacts(contact(language="en"), None))
    assert [m.kind for m in sent(plan)][:2] == ["invitation", "invitation"]
    assert sent(plan)[0].body == "invitation en"
    assert plan.of(UpdateInvitation)[0].status == "invited"
    gone = invite(StartFacts(dataclasses.replace(contact(), opted_out_at=NOW), None))
    assert gone.of(UpdateInvitation)[0].status == "opted_out"


def test_a_followup_does_not_start_over_another_conversation() -> None:
    survey, version = CATALOG.latest_survey("uppfoljning-insats") or (None, 0)
    assert survey is not None
    busy = decide_followup(
        StartFacts(contact(), conversation()),
        survey,
        version,
        TO,
        followup_id=5,
        now=NOW,
        ids=ids(),
    )
    assert busy.outcome == "busy" and busy.steps == ()
    plan = decide_followup(
        StartFacts(contact(), None), survey, version, TO, followup_id=5, now=NOW, ids=ids()
    )
    assert plan.of(StartConversation)[0].origin == "followup"
    assert plan.of(UpdateFollowup)[0].status == "sent"


def test_expiry_waits_for_an_unsent_question_and_deletes_abandoned_public_conversations() -> None:
    survey = CATALOG.by_id["uppfoljning-insats"]
    late = NOW + timedelta(days=8)
    waiting = decide_expire(conversation(), survey, pending_out=1, now=late)
    assert waiting.outcome == "waiting_for_delivery"
    assert waiting.of(SaveState)[0].expires_at > late
    public = decide_expire(conversation(), survey, pending_out=0, now=late)
    assert public.of(FinishConversation)[0].discard
    campaign = decide_expire(
        conversation(origin="campaign", campaign_id=3), survey, pending_out=0, now=late
    )
    finish = campaign.of(FinishConversation)[0]
    assert (finish.status, finish.discard) == ("expired", False)
    early = decide_expire(conversation(), survey, pending_out=0, now=NOW)
    assert early.outcome == "moved" and not early.of(FinishConversation)


def test_a_reminder_repeats_the_question_and_counts_itself() -> None:
    survey = CATALOG.by_id["uppfoljning-insats"]
    conv = conversation(origin="campaign", campaign_id=3)
    plan = decide_remind(conv, survey, TO, campaign_id=3, not_before=NOW, now=NOW)
    assert [m.kind for m in sent(plan)] == ["reminder", "reminder"]
    assert plan.of(UpdateInvitation)[0].add_reminder
    done = decide_remind(
        dataclasses.replace(conv, status="completed"),
        survey,
        TO,
        campaign_id=3,
        not_before=NOW,
        now=NOW,
    )
    assert done.steps == ()


def test_closing_ends_without_a_message() -> None:
    survey = CATALOG.by_id["uppfoljning-insats"]
    plan = decide_close(conversation(campaign_id=3, origin="campaign"), survey, now=NOW)
    assert plan.of(FinishConversation)[0].status == "closed" and not sent(plan)
    assert plan.of(CancelQueued) == []
