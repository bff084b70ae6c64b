"""SMS end to end: signed Twilio webhooks in, the outbox out to a fake Twilio on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot.config import SHIPPED_SURVEYS
from flows.model import SMILEYS, Question, QuestionType, Survey
from storage import repo_contacts
from storage.models import Answer, Contact, ContactAddress, Message, Respondent
from tests.bot.harness import OUR_NUMBER, PUBLIC_URL, Harness, running, settings_for
from tests.fakes.twilio_server import FAKE_AUTH_TOKEN, FakeTwilio, new_sid, signed_form_request
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)

PHONE = "+46701234567"


@pytest.fixture
async def harness(database_url: str, twilio: FakeTwilio) -> AsyncIterator[Harness]:
    async with running(settings_for(database_url, twilio=twilio)) as h:
        yield h


def sent_bodies(twilio: FakeTwilio) -> list[str]:
    return [r.form["Body"] for r in twilio.sends]


async def test_a_survey_is_completed_over_sms(harness: Harness, twilio: FakeTwilio) -> None:
    assert await harness.sms(PHONE, "uppfoljning") == 200
    await harness.deliver()
    question = sent_bodies(twilio)[-1]
    assert "1. Ja\n2. Delvis\n3. Nej" in question
    send = twilio.sends[-1].form
    assert send["To"] == PHONE and send["From"] == OUR_NUMBER
    assert send["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/status"

    for answer in ("2", "Väntetiden var lång", "8", "4", "ja"):
        assert await harness.sms(PHONE, answer) == 200
        await harness.deliver()
    assert await harness.answers() == {
        "helped": "partly",
        "improve": "Väntetiden var lång",
        "score": 8,
        "mood": 4,
        "again": "yes",
    }
    async with harness.runtime.db.transaction(read_only=True) as s:
        out = list(await s.scalars(select(Message).where(Message.direction == "out")))
    assert all(m.status == "sent" and m.segments and m.encoding for m in out)
    # Inbound rows carry at most the keyed HMAC of the number (nothing once the finished
    # conversation was released), never the number itself; the provider id stays for dedupe.
    async with harness.runtime.db.transaction(read_only=True) as s:
        inbound = list(await s.scalars(select(Message).where(Message.direction == "in")))
    assert len(inbound) == 6 and all(m.provider_id for m in inbound)
    assert all(m.address is None and PHONE not in (m.address_key or "") for m in inbound)


async def test_a_redelivered_webhook_changes_nothing(harness: Harness, twilio: FakeTwilio) -> None:
    sid = new_sid("SM")
    assert await harness.sms(PHONE, "UPPFOLJNING", sid=sid) == 200
    await harness.deliver()
    before = (await harness.count(Message), len(twilio.sends))
    assert await harness.sms(PHONE, "UPPFOLJNING", sid=sid) == 200
    await harness.deliver()
    assert (await harness.count(Message), len(twilio.sends)) == before


@pytest.mark.parametrize(
    "tamper",
    ["wrong token", "no signature", "changed body", "other url"],
)
async def test_forged_webhooks_are_refused_and_nothing_is_stored(
    harness: Harness, tamper: str
) -> None:
    form = {"MessageSid": new_sid("SM"), "From": PHONE, "To": OUR_NUMBER, "Body": "UPPFOLJNING"}
    url = f"{PUBLIC_URL}/webhooks/twilio"
    token = "not-the-token" if tamper == "wrong token" else FAKE_AUTH_TOKEN
    if tamper == "other url":
        url = "https://evil.example/webhooks/twilio"
    headers, body = signed_form_request(url, form, token)
    if tamper == "no signature":
        del headers["X-Twilio-Signature"]
    if tamper == "changed body":
        body = urlencode(form | {"Body": "STOP"}).encode()
    response = await harness.client.post("/webhooks/twilio", data=body, headers=headers)
    assert response.status == 403
    assert await harness.count(Message) == 0
    assert await harness.count(Contact) == 0


@pytest.mark.parametrize(
    ("form", "content_type", "status"),
    [
        ({"From": PHONE, "Body": "hej"}, "application/x-www-form-urlencoded", 400),
        ({"MessageSid": "SMx", "Body": "hej"}, "application/x-www-form-urlencoded", 400),
        ({"MessageSid": "SMx", "From": PHONE, "Body": "hej"}, "application/json", 415),
    ],
)
async def test_malformed_webhooks_get_a_clear_status(
    harness: Harness, form: dict[str, str], content_type: str, status: int
) -> None:
    headers, body = signed_form_request(f"{PUBLIC_URL}/webhooks/twilio", form, FAKE_AUTH_TOKEN)
    headers["Content-Type"] = content_type
    response = await harness.client.post("/webhooks/twilio", data=body, headers=headers)
    assert response.status == status
    assert await harness.count(Message) == 0


async def test_a_body_over_64_kb_is_refused(harness: Harness) -> None:
    form = {"MessageSid": new_sid("SM"), "From": PHONE, "Body": "x" * 70_000}
    headers, body = signed_form_request(f"{PUBLIC_URL}/webhooks/twilio", form, FAKE_AUTH_TOKEN)
    response = await harness.client.post("/webhooks/twilio", data=body, headers=headers)
    assert response.status == 413
    assert await harness.count(Message) == 0


@pytest.mark.parametrize(
    "text",
    ["😀😀😀", "مرحبا كيف حالك", "a" * 1600, "\x00\x07\x1b[31mhej", "", "   ", "‮reversed"],
)
async def test_any_text_is_handled_as_text(harness: Harness, twilio: FakeTwilio, text: str) -> None:
    assert await harness.sms(PHONE, "UPPFOLJNING") == 200
    assert await harness.sms(PHONE, text) == 200
    await harness.deliver()
    assert sent_bodies(twilio)  # a re-prompt or the next question went out


async def test_stop_opts_out_and_start_opts_back_in(harness: Harness, twilio: FakeTwilio) -> None:
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    await harness.sms(PHONE, "STOPP")
    await harness.deliver()
    confirmation = sent_bodies(twilio)[-1]
    sent = len(twilio.sends)
    await harness.sms(PHONE, "hallå?")
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    assert len(twilio.sends) == sent, "nothing is sent to an opted-out contact"
    await harness.sms(PHONE, "START")
    await harness.deliver()
    assert len(twilio.sends) == sent + 1
    assert sent_bodies(twilio)[-1] != confirmation


async def test_stop_from_an_unknown_number_is_remembered(
    harness: Harness, twilio: FakeTwilio
) -> None:
    await harness.sms(PHONE, "SLUTA")
    await harness.deliver()
    assert len(twilio.sends) == 1
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    assert len(twilio.sends) == 1


async def test_twilio_opt_out_type_marks_the_contact_without_a_reply(
    harness: Harness, twilio: FakeTwilio
) -> None:
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    sent = len(twilio.sends)
    await harness.sms(PHONE, "STOP", extra={"OptOutType": "STOP"})
    await harness.deliver()
    assert len(twilio.sends) == sent
    async with harness.runtime.db.transaction(read_only=True) as s:
        contact = (await s.scalars(select(Contact))).one()
    assert contact.opted_out_at is not None


async def test_an_unknown_word_gets_the_survey_menu(harness: Harness, twilio: FakeTwilio) -> None:
    await harness.sms(PHONE, "hej vad är detta")
    await harness.deliver()
    assert "UPPFOLJNING" in sent_bodies(twilio)[-1]


async def test_status_callbacks_only_move_forward(harness: Harness, twilio: FakeTwilio) -> None:
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    sid = next(iter(twilio.messages))

    async def callback(status: str, error_code: str | None = None) -> int:
        form = {
            "MessageSid": sid,
            "MessageStatus": status,
            "To": PHONE,
            "From": OUR_NUMBER,
            "AccountSid": twilio.account_sid,
        }
        if error_code:
            form["ErrorCode"] = error_code
        headers, body = signed_form_request(
            f"{PUBLIC_URL}/webhooks/twilio/status", form, FAKE_AUTH_TOKEN
        )
        response = await harness.client.post("/webhooks/twilio/status", data=body, headers=headers)
        return response.status

    async def status() -> str:
        async with harness.runtime.db.transaction(read_only=True) as s:
            row = (await s.scalars(select(Message).where(Message.provider_id == sid))).one()
        return row.status

    assert await callback("delivered") == 200
    assert await status() == "delivered"
    assert await callback("sent") == 200
    assert await status() == "delivered"
    headers, body = signed_form_request(
        f"{PUBLIC_URL}/webhooks/twilio/status",
        {"MessageSid": sid, "MessageStatus": "failed"},
        "wrong-token",
    )
    forged = await harness.client.post("/webhooks/twilio/status", data=body, headers=headers)
    assert forged.status == 403
    assert await status() == "delivered"


async def test_a_provider_error_is_retried_and_sent_once(
    harness: Harness, twilio: FakeTwilio
) -> None:
    twilio.fail_next(500, times=2)
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    assert await harness.count(Message, Message.status == "queued") >= 1
    for _ in range(4):
        harness.clock.advance(timedelta(minutes=10))
        await harness.deliver()
    assert await harness.count(Message, Message.direction == "out", Message.status != "sent") == 0
    created = [r for r in twilio.sends if r.authorized]
    assert len(twilio.messages) == len({m.id for m in await harness.outbox()})
    assert len(created) == len(twilio.messages) + 2


async def test_unsubscribed_recipient_opts_the_contact_out(
    harness: Harness, twilio: FakeTwilio
) -> None:
    twilio.fail_next(400, 21610)
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    async with harness.runtime.db.transaction(read_only=True) as s:
        contact = (await s.scalars(select(Contact))).one()
        addresses = list(await s.scalars(select(ContactAddress)))
    out = await harness.outbox()
    assert contact.opted_out_at is not None
    assert [a.address for a in addresses] == [PHONE]
    assert out[0].status == "failed" and out[0].error
    assert all(m.status in ("failed", "cancelled") for m in out)
    assert len(twilio.sends) == 1, "after the first 21610 nothing more is tried"


@pytest.mark.parametrize(
    ("keyword", "question"),
    [
        ("UPPFOLJNING", "Har insatsen hjälpt dig?"),
        ("followup", "Has the support helped you?"),
        ("متابعة", "هل ساعدك الدعم الذي تلقيته؟"),
        ("Uppföljning", "Har insatsen hjälpt dig?"),
    ],
)
async def test_a_newcomer_is_answered_in_the_language_of_the_keyword(
    harness: Harness, twilio: FakeTwilio, keyword: str, question: str
) -> None:
    await harness.sms(PHONE, keyword)
    await harness.deliver()
    assert sent_bodies(twilio)[-1].startswith(question)


async def test_a_send_that_timed_out_after_twilio_took_it_is_not_sent_twice(
    database_url: str, twilio: FakeTwilio
) -> None:
    settings = settings_for(
        database_url, twilio=twilio, extra={"BRUKARDIALOG__TWILIO__TIMEOUT": "0.3"}
    )
    async with running(settings) as harness:
        twilio.accept_and_hang_next()
        await harness.sms(PHONE, "UPPFOLJNING")
        await harness.deliver()  # Twilio took the first message but its answer never came
        first, *rest = await harness.outbox()
        assert first.status == "queued" and first.attempts == 1 and rest
        assert all(m.status == "sent" for m in rest)
        harness.clock.advance(timedelta(minutes=10))
        await harness.deliver()
        [first, *_] = await harness.outbox()
        [accepted] = [sid for sid, m in twilio.messages.items() if m["body"] == first.body]
        assert (first.status, first.provider_id) == ("sent", accepted)
        creates = len(twilio.sends)
        assert creates == len(twilio.messages), "the retry asked Twilio instead of sending again"
        # A message that really failed is still sent again.
        twilio.fail_next(500)
        await harness.sms(PHONE, "1")
        await harness.deliver()
        harness.clock.advance(timedelta(minutes=10))
        await harness.deliver()
        assert (
            await harness.count(Message, Message.direction == "out", Message.status != "sent") == 0
        )
        assert len(twilio.sends) == creates + 2 and len(twilio.messages) == creates + 1


# --- what the SMS shows is what the reply means (issue 10.1) ---

SKALA = Path(__file__).parent / "surveys" / "skala.toml"
SURVEY_KEYWORDS = {
    "ifo-brukarundersokning": "ENKAT",
    "barnenkat": "BARN",
    "uppfoljning-insats": "UPPFOLJNING",
    "brukardialog-konsultation": "DIALOG",
    "skala": "SKALA",
}
_NUMBERED = re.compile(r"^([0-9]+)\. (.+)$", re.MULTILINE)
_RANGE = re.compile(r"^(-?[0-9]+)-(-?[0-9]+)$", re.MULTILINE)
_VALUE_LABELS = re.compile(r"(-?[0-9]+) (\S+)")


def reply_for(question: Question, sms: str) -> tuple[str, Any]:
    """What a person who reads `sms` replies, and the value they mean by it."""
    numbered = _NUMBERED.findall(sms)
    by_label = {c.text["sv"]: c.id for c in question.choices}
    if question.type is QuestionType.SELECT_ONE:
        number, label = numbered[0]
        return number, by_label[label]
    if question.type is QuestionType.SELECT_MANY:
        (first, label1), (last, label2) = numbered[0], numbered[-1]
        return f"{first} {last}", [by_label[label1], by_label[label2]]
    if question.type is QuestionType.SCALE:
        low = question.scale_range[0]
        if numbered:  # positions: the person replies the position of what they mean
            number, label = numbered[0]
            return number, int(label) if label.isdigit() else low + SMILEYS.index(label)
        if shown := _RANGE.search(sms):
            return shown[1], int(shown[1])
        value, _face = _VALUE_LABELS.findall(sms.splitlines()[-1])[0]
        return value, int(value)
    if question.type is QuestionType.NUMERIC:
        low, high = question.scale_range
        value = (low + high) // 2 if question.max is not None else low + 7
        return str(value), value
    if question.type is QuestionType.DATE:
        return "5 mars 2026", "2026-03-05"
    assert question.type is QuestionType.OPEN, question.type
    return "Det var bra", "Det var bra"


async def answer_over_sms(
    h: Harness, twilio: FakeTwilio, survey: Survey, phone: str
) -> dict[str, Any]:
    """Take the whole survey over SMS, replying to what each SMS shows; the values meant."""
    asked = [q for q in survey.questions if q.type is not QuestionType.MESSAGE]
    meant: dict[str, Any] = {}
    seen = 0
    if survey.minors:
        async with h.runtime.db.transaction(read_only=True) as s:
            contact = await repo_contacts.get_by_external_ref(s, f"P-{survey.id}")
        assert contact is not None
        await h.start_survey(contact.id, survey.id, "sms", phone)
    else:
        assert await h.sms(phone, SURVEY_KEYWORDS[survey.id]) == 200
    await h.deliver()
    for _ in range(3 * len(survey.questions)):
        bodies = [r.form["Body"] for r in twilio.sends if r.form["To"] == phone][seen:]
        seen += len(bodies)
        if bodies and bodies[-1].startswith(survey.thanks["sv"]):
            return meant
        question, sms = next(
            (q, body) for body in reversed(bodies) for q in asked if body.startswith(q.text["sv"])
        )
        assert question.id not in meant, f"{question.id} asked again:\n{bodies}"
        reply, meant[question.id] = reply_for(question, sms)
        assert await h.sms(phone, reply) == 200
        await h.deliver()
    raise AssertionError(f"{survey.id} did not finish")


async def test_every_question_type_over_sms_stores_what_the_person_meant(
    database_url: str, twilio: FakeTwilio
) -> None:
    paths = f"{SHIPPED_SURVEYS},{SKALA}"
    settings = settings_for(
        database_url, twilio=twilio, extra={"BRUKARDIALOG__SURVEYS__PATHS": paths}
    )
    async with running(settings) as h:
        surveys = {s.id: s for s in h.runtime.catalog.surveys}
        assert set(surveys) == set(SURVEY_KEYWORDS)
        phones = {survey_id: f"+4670123{n:04d}" for n, survey_id in enumerate(SURVEY_KEYWORDS)}
        # Known contacts, as people a campaign invited are: they start with the keyword.
        contacts = [
            {"external_ref": f"P-{survey_id}", "phone": phone, "language": "sv"}
            for survey_id, phone in phones.items()
        ]
        imported = await h.client.post(
            "/api/v1/contacts",
            json={"contacts": contacts},
            headers={"Authorization": "Bearer staff-token-0123456789abcdef"},
        )
        assert imported.status == 200, await imported.text()
        types: set[QuestionType] = set()
        for survey_id in sorted(SURVEY_KEYWORDS):
            survey = surveys[survey_id]
            meant = await answer_over_sms(h, twilio, survey, phones[survey_id])
            await h.release()
            async with h.runtime.db.transaction(read_only=True) as s:
                rows = await s.execute(
                    select(Answer.question_id, Answer.value)
                    .join(Respondent, Respondent.id == Answer.respondent_id)
                    .where(Respondent.survey_id == survey_id, Answer.value.is_not(None))
                )
                stored = {question_id: value for question_id, value in rows}
            assert stored == meant, survey_id
            types |= {q.type for q in survey.questions if q.id in meant}
        assert types == set(QuestionType) - {QuestionType.MESSAGE}
        zero_to_ten = [r.form["Body"] for r in twilio.sends if r.form["Body"].startswith("Hur tro")]
        assert zero_to_ten[0].endswith("\n0-10")


# --- what the providers really send (issue 10.21-24, 27) ---


async def post_signed(h: Harness, path: str, form: dict[str, str]) -> int:
    headers, body = signed_form_request(f"{PUBLIC_URL}{path}", form, FAKE_AUTH_TOKEN)
    response = await h.client.post(path, data=body, headers=headers)
    return response.status


async def test_a_picture_without_text_is_an_empty_message_and_media_is_recorded(
    harness: Harness, twilio: FakeTwilio
) -> None:
    assert await harness.sms(PHONE, "UPPFOLJNING") == 200
    await harness.deliver()
    sent = len(twilio.sends)
    sid = new_sid("MM")
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": twilio.account_sid,
        "From": PHONE,
        "To": OUR_NUMBER,
        "NumMedia": "1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl0": f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{sid}/Media/ME1",
    }
    assert await post_signed(harness, "/webhooks/twilio", form) == 200
    await harness.deliver()
    async with harness.runtime.db.transaction(read_only=True) as s:
        row = (await s.scalars(select(Message).where(Message.provider_id == sid))).one()
    assert row.direction == "in" and row.payload.get("num_media") == 1
    assert len(twilio.sends) == sent + 1, "the question is asked again"
    assert await harness.answers() == {}


@pytest.mark.parametrize(
    "sender",
    ["whatsapp:US.1234", f"whatsapp:{PHONE}", "72345", "+4612", "Malmo Stad", "not-a-number"],
)
async def test_a_sender_that_is_not_a_phone_number_is_recorded_and_never_answered(
    harness: Harness, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture, sender: str
) -> None:
    caplog.set_level(logging.INFO)
    assert await harness.sms(PHONE, "UPPFOLJNING") == 200
    await harness.deliver()
    sent = len(twilio.sends)
    sid = new_sid("SM")
    for _ in range(2):  # a redelivery stays one row
        assert await harness.sms(sender, "1", sid=sid) == 200
    await harness.deliver()
    assert len(twilio.sends) == sent, "nothing is sent, by SMS or otherwise"
    assert await harness.answers() == {}, "not merged into the SMS contact's conversation"
    async with harness.runtime.db.transaction(read_only=True) as s:
        [row] = list(await s.scalars(select(Message).where(Message.provider_id == sid)))
        contacts = list(await s.scalars(select(Contact)))
    assert row.payload["ignored"] and not row.address and not row.body
    assert len(contacts) == 1
    lines = [r.getMessage() for r in caplog.records if sid in r.getMessage()]
    assert lines and all("ignored" in line for line in lines)
    assert not any(PHONE in line or sender in line for line in lines)


async def test_an_unknown_status_is_accepted_and_a_failure_keeps_its_error_code(
    harness: Harness, twilio: FakeTwilio
) -> None:
    await harness.sms(PHONE, "UPPFOLJNING")
    await harness.deliver()
    sid = next(iter(twilio.messages))
    base = {"MessageSid": sid, "AccountSid": twilio.account_sid, "To": PHONE, "From": OUR_NUMBER}
    for status in ("partially_delivered", "teleported"):
        assert (
            await post_signed(harness, "/webhooks/twilio/status", base | {"MessageStatus": status})
            == 200
        )
    form = base | {"MessageStatus": "undelivered", "ErrorCode": "21610"}
    assert await post_signed(harness, "/webhooks/twilio/status", form) == 200
    async with harness.runtime.db.transaction(read_only=True) as s:
        row = (await s.scalars(select(Message).where(Message.provider_id == sid))).one()
    assert row.status == "undelivered"
    assert row.error is not None and row.error.startswith("21610: ")


async def test_every_refused_webhook_leaves_a_log_line_without_personal_data(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secret_text = "mitt personnummer"
    sid = new_sid("SM")
    form = {"MessageSid": sid, "From": PHONE, "To": OUR_NUMBER, "Body": secret_text}
    url = f"{PUBLIC_URL}/webhooks/twilio"
    cases: list[tuple[int, dict[str, str], bytes]] = []
    headers, body = signed_form_request(url, form, "wrong-token")
    cases.append((403, headers, body))
    headers, body = signed_form_request(
        url, {k: v for k, v in form.items() if k != "From"}, FAKE_AUTH_TOKEN
    )
    cases.append((400, headers, body))
    headers, body = signed_form_request(url, form, FAKE_AUTH_TOKEN)
    cases.append((415, headers | {"Content-Type": "text/plain"}, body))
    cases.append((400, headers, b"MessageSid=" + sid.encode() + b"&Body=%FF%FE"))
    cases.append((413, headers, urlencode(form | {"Body": "x" * 70_000}).encode()))
    for status, case_headers, case_body in cases:
        caplog.clear()
        response = await harness.client.post(
            "/webhooks/twilio", data=case_body, headers=case_headers
        )
        assert response.status == status
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 1, (status, [r.getMessage() for r in caplog.records])
        assert f"HTTP {status}" in lines[0] and "sms" in lines[0]
        assert PHONE not in lines[0] and secret_text not in lines[0]
        if status in (400, 403):
            assert sid in lines[0]
    assert await harness.count(Message) == 0


async def test_a_webhook_wakes_the_sender_only_for_replies_left_in_the_table(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """A reply handed from the turn to this process's sender needs no wake-up (one claim query
    per idle channel saved per message); one left in the outbox does."""
    dispatcher = harness.runtime.dispatcher
    woken: list[int] = []
    wake = dispatcher.wake

    def counted_wake() -> None:
        woken.append(1)
        wake()

    dispatcher.wake = counted_wake  # type: ignore[method-assign]
    assert await harness.sms(PHONE, "uppfoljning") == 200
    assert woken == [1], "no sender in the background: the reply waits for a claim"
    await harness.deliver()
    await dispatcher.start()
    try:
        for _ in range(100):  # the background sender takes the SMS channel's lease
            if dispatcher.handoffs():
                break
            await asyncio.sleep(0.02)
        assert set(dispatcher.handoffs()) >= {"sms"}
        before = len(twilio.sends)
        assert await harness.sms(PHONE, "2") == 200
        assert woken == [1], "the reply went to the sender from the turn"
        for _ in range(200):
            if len(twilio.sends) > before:
                break
            await asyncio.sleep(0.02)
        assert len(twilio.sends) == before + 1
    finally:
        await dispatcher.stop()
