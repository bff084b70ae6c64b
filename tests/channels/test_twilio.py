"""TwilioChannel against real Twilio webhook posts and the fake Twilio REST API."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from twilio.base.exceptions import TwilioServiceException
from twilio.base.version import Version
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator

from bot.channels.base import OutboundMessage, RequestRejected, SendError, StatusUpdate, WebRequest
from bot.channels.twilio.channel import (
    STATUS_MAP,
    TwilioChannel,
    TwilioSettings,
    _quoted,
    api_error,
)
from bot.clock import FixedClock
from flows.conversation import Button
from tests.channels.twilio_cases import (
    CASES,
    NEUTRAL_STATUS,
    NOW,
    RESPONDENT,
    SERVICE_SID,
    Case,
)
from tests.fakes.twilio_server import (
    FAKE_ACCOUNT_SID,
    FAKE_AUTH_TOKEN,
    FakeTwilio,
    signed_form_request,
)

OUR_NUMBER = "+46766861004"
CALLBACK_URL = "https://brukardialog.example.se/twilio/status"
WRONG_TOKEN = "0" * 32


def make_settings(base_url: str = "https://api.twilio.com", **changes: object) -> TwilioSettings:
    settings = TwilioSettings(
        account_sid=FAKE_ACCOUNT_SID,
        auth_token=FAKE_AUTH_TOKEN,
        from_number=OUR_NUMBER,
        messaging_service_sid=SERVICE_SID,
        api_base_url=base_url,
        status_callback_url=CALLBACK_URL,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def webhook_channel() -> TwilioChannel:
    return TwilioChannel(make_settings(), clock=FixedClock(NOW))


# --- incoming: one runner, every case also run unsigned, mis-signed, tampered and re-addressed ---

VARIANTS = ("signed", "wrong token", "no signature", "tampered field", "other url")


def build_request(case: Case, variant: str) -> WebRequest:
    token = WRONG_TOKEN if variant == "wrong token" else FAKE_AUTH_TOKEN
    headers, body = signed_form_request(case.url, case.form, token)
    headers["Content-Type"] = case.content_type
    form = dict(case.form)
    url = case.url
    if variant == "no signature":
        del headers["X-Twilio-Signature"]
    elif variant == "tampered field":
        name, value = case.tamper
        assert form.get(name) != value, f"{case.label}: tampering must change the form"
        form[name] = value
    elif variant == "other url":
        url = case.url.replace("brukardialog.example.se", "evil.example.se")
    return WebRequest(
        url=url, headers=headers, body=body, content_type=case.content_type, form=form
    )


@pytest.mark.parametrize(
    ("case", "variant"),
    [
        pytest.param(case, variant, id=f"{case.label} / {variant}")
        for case in CASES
        for variant in VARIANTS
    ],
)
def test_webhook(case: Case, variant: str) -> None:
    channel = webhook_channel()
    request = build_request(case, variant)
    if variant != "signed":
        assert channel.verify(request) is False
        return
    assert channel.verify(request) is True
    parse: Callable[[WebRequest], object] = (
        channel.parse if case.kind == "message" else channel.parse_status
    )
    if isinstance(case.expect, int):
        with pytest.raises(RequestRejected) as rejected:
            parse(request)
        assert rejected.value.status == case.expect
    else:
        assert parse(request) == case.expect


def test_every_twilio_status_has_a_case() -> None:
    assert set(STATUS_MAP) == set(NEUTRAL_STATUS)


def test_signature_header_is_case_insensitive() -> None:
    case = CASES[0]
    headers, body = signed_form_request(case.url, case.form, FAKE_AUTH_TOKEN)
    lowered = {k.lower(): v for k, v in headers.items()}
    request = WebRequest(case.url, lowered, body, "application/x-www-form-urlencoded", case.form)
    assert webhook_channel().verify(request) is True


def test_signature_accepts_url_with_default_port() -> None:
    # Twilio is inconsistent about signing with or without :443; the validator tries both.
    case = CASES[0]
    headers, body = signed_form_request(case.url, case.form, FAKE_AUTH_TOKEN)
    url = case.url.replace(".se/", ".se:443/")
    request = WebRequest(url, headers, body, "application/x-www-form-urlencoded", case.form)
    assert webhook_channel().verify(request) is True


@pytest.mark.parametrize("signed_with_port", [False, True])
@pytest.mark.parametrize("port", ["", ":443", ":8443"])
@pytest.mark.parametrize("token", [FAKE_AUTH_TOKEN, "not-the-token"])
def test_verify_accepts_exactly_what_the_library_accepts(
    signed_with_port: bool, port: str, token: str
) -> None:
    """The one-HMAC fast path in `verify` never changes the library's verdict."""
    case = CASES[0]
    signed_url = case.url.replace(".se/", ".se:443/") if signed_with_port else case.url
    headers, body = signed_form_request(signed_url, case.form, token)
    url = case.url.replace(".se/", f".se{port}/")
    request = WebRequest(url, headers, body, "application/x-www-form-urlencoded", case.form)
    library = RequestValidator(FAKE_AUTH_TOKEN).validate(
        url, dict(case.form), headers["X-Twilio-Signature"]
    )
    assert webhook_channel().verify(request) is bool(library)
    if token != FAKE_AUTH_TOKEN:
        assert not library


@given(st.dictionaries(st.sampled_from(["To", "From", "Body", "StatusCallback"]), st.text()))
def test_a_send_form_is_encoded_as_urlencode_encodes_it(form: dict[str, str]) -> None:
    """The send's cached quoting (`_quoted`) writes the bytes `urlencode` does."""
    assert urlencode(form, quote_via=_quoted) == urlencode(form)
    assert urlencode(form, quote_via=_quoted) == urlencode(form), "and again, from the cache"


# --- outgoing: against the fake Twilio REST API ---


@pytest.fixture
async def channel_for(
    twilio: FakeTwilio,
) -> AsyncIterator[Callable[..., TwilioChannel]]:
    """Channels pointed at the fake, closed after the test."""
    made: list[TwilioChannel] = []

    def make(**changes: object) -> TwilioChannel:
        channel = TwilioChannel(make_settings(twilio.base_url, **changes))
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


def outbound(
    text: str, numbered: tuple[str, ...] = (), address: str = RESPONDENT
) -> OutboundMessage:
    return OutboundMessage(id=41, channel="sms", address=address, text=text, numbered=numbered)


@dataclass(frozen=True, slots=True)
class SendCase:
    label: str
    message: OutboundMessage
    settings: dict[str, object]
    posted: dict[str, str]
    """The exact form Twilio must receive."""
    segments: int
    encoding: str


QUESTION = "Hur nöjd är du med bemötandet?"
NUMBERED_TEXT = f"{QUESTION}\n1. Mycket nöjd\n2. Ganska nöjd\n3. Inte nöjd"
EMOJI_TEXT = "Tack för ditt svar 🙏"
LONG_TEXT = "Välkommen till enkäten om socialtjänsten i Malmö. " * 8

SEND_CASES = [
    SendCase(
        "messaging service wins over from number",
        outbound(QUESTION),
        {},
        {
            "To": RESPONDENT,
            "Body": QUESTION,
            "MessagingServiceSid": SERVICE_SID,
            "StatusCallback": CALLBACK_URL,
        },
        1,
        "GSM-7",
    ),
    SendCase(
        "from number without a service",
        outbound(QUESTION),
        {"messaging_service_sid": None},
        {"To": RESPONDENT, "Body": QUESTION, "From": OUR_NUMBER, "StatusCallback": CALLBACK_URL},
        1,
        "GSM-7",
    ),
    SendCase(
        "no status callback configured",
        outbound(QUESTION),
        {"status_callback_url": None},
        {"To": RESPONDENT, "Body": QUESTION, "MessagingServiceSid": SERVICE_SID},
        1,
        "GSM-7",
    ),
    SendCase(
        "numbered choices rendered as lines",
        outbound(QUESTION, ("Mycket nöjd", "Ganska nöjd", "Inte nöjd")),
        {"status_callback_url": None},
        {"To": RESPONDENT, "Body": NUMBERED_TEXT, "MessagingServiceSid": SERVICE_SID},
        1,
        "GSM-7",
    ),
    SendCase(
        "emoji costs UCS-2",
        outbound(EMOJI_TEXT),
        {"status_callback_url": None},
        {"To": RESPONDENT, "Body": EMOJI_TEXT, "MessagingServiceSid": SERVICE_SID},
        1,
        "UCS-2",
    ),
    SendCase(
        "long text spans segments",
        outbound(LONG_TEXT),
        {"status_callback_url": None},
        {"To": RESPONDENT, "Body": LONG_TEXT, "MessagingServiceSid": SERVICE_SID},
        3,
        "GSM-7",
    ),
    SendCase(
        "a 0-10 scale shows its range, never positions",
        OutboundMessage(
            id=42,
            channel="sms",
            address=RESPONDENT,
            text=QUESTION,
            buttons=tuple(Button(f"scale:{n}", str(n)) for n in range(11)),
            numbered=tuple(str(n) for n in range(11)),
        ),
        {"status_callback_url": None},
        {"To": RESPONDENT, "Body": f"{QUESTION}\n0-10", "MessagingServiceSid": SERVICE_SID},
        1,
        "GSM-7",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.label) for c in SEND_CASES])
async def test_send(
    case: SendCase,
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    result = await channel_for(**case.settings).send(case.message)

    [request] = twilio.sends
    assert request.authorized
    assert request.path == f"/2010-04-01/Accounts/{FAKE_ACCOUNT_SID}/Messages.json"
    assert request.form == case.posted
    assert result.provider_id in twilio.messages
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    assert (result.status, result.segments, result.encoding) == (
        "sent",
        case.segments,
        case.encoding,
    )


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class FailCase:
    label: str
    script: Callable[[FakeTwilio], None]
    retryable: bool
    code: str | None
    retry_after: float | None = None
    opted_out: bool = False
    address: str = RESPONDENT
    settings: tuple[tuple[str, object], ...] = ()
    reason_has: str = ""


def _nothing(fake: FakeTwilio) -> None:
    return None


FAIL_CASES = [
    FailCase("500", lambda f: f.fail_next(500), True, "20500", reason_has="Internal Server Error"),
    FailCase("503", lambda f: f.fail_next(503), True, "20500"),
    FailCase(
        "429 with Retry-After", lambda f: f.fail_next(429, retry_after="7"), True, "20429", 7.0
    ),
    FailCase("429 without Retry-After", lambda f: f.fail_next(429), True, "20429", None),
    FailCase(
        "21610 unsubscribed recipient",
        lambda f: f.fail_next(400, 21610),
        False,
        "21610",
        opted_out=True,
        reason_has="unsubscribed",
    ),
    FailCase(
        "invalid number 21211 from Twilio's own check",
        _nothing,
        False,
        "21211",
        address="+4612",
        reason_has="not a valid phone number",
    ),
    FailCase("not a mobile number 21614", lambda f: f.fail_next(400, 21614), False, "21614"),
    FailCase(
        "other 4xx carries Twilio's message",
        lambda f: f.fail_next(400, 21617),
        False,
        "21617",
        reason_has="1600 character limit",
    ),
    FailCase(
        "wrong auth token",
        _nothing,
        False,
        "20003",
        settings=(("auth_token", WRONG_TOKEN),),
        reason_has="Authenticate",
    ),
    FailCase(
        "timeout",
        lambda f: f.hang_next(),
        True,
        None,
        settings=(("timeout", 0.2),),
        reason_has="did not answer",
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.label) for c in FAIL_CASES])
async def test_send_failure(
    case: FailCase,
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    case.script(twilio)
    channel = channel_for(**dict(case.settings))

    with pytest.raises(SendError) as failed:
        await channel.send(outbound(QUESTION, address=case.address))

    error = failed.value
    assert (error.retryable, error.code, error.retry_after, error.opted_out) == (
        case.retryable,
        case.code,
        case.retry_after,
        case.opted_out,
    )
    assert case.reason_has in error.reason
    assert not error.reason.startswith("Unable to create record")
    assert len(twilio.sends) == 1, "the Twilio client must not retry by itself"


async def test_a_500_is_one_http_request_and_the_next_send_works(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    twilio.fail_next(500)
    channel = channel_for()

    with pytest.raises(SendError):
        await channel.send(outbound(QUESTION))
    assert len(twilio.sends) == 1

    result = await channel.send(outbound(QUESTION))
    assert len(twilio.sends) == 2
    assert result.provider_id in twilio.messages


async def test_retry_after_as_http_date(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    twilio.fail_next(429, retry_after="Thu, 31 Dec 2099 23:59:59 GMT")
    with pytest.raises(SendError) as failed:
        await channel_for().send(outbound(QUESTION))
    assert failed.value.retry_after is not None and failed.value.retry_after > 86400


async def test_connection_refused_is_retryable() -> None:
    channel = TwilioChannel(make_settings(f"http://127.0.0.1:{refused_port()}"))
    try:
        with pytest.raises(SendError) as failed:
            await channel.send(outbound(QUESTION))
    finally:
        await channel.close()
    assert failed.value.retryable and failed.value.code is None


async def test_close_then_send_again(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    channel = channel_for()
    await channel.send(outbound(QUESTION))
    await channel.close()
    await channel.close()
    await channel.send(outbound(QUESTION))
    assert len(twilio.sends) == 2


async def test_auth_token_never_reaches_logs_or_errors(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
    caplog: pytest.LogCaptureFixture,
) -> None:
    channels = (channel_for(), channel_for(), channel_for(auth_token=WRONG_TOKEN))
    caplog.set_level(logging.DEBUG)
    # The service keeps Twilio's loggers at WARNING; here they talk, to prove what they say.
    caplog.set_level(logging.DEBUG, logger="twilio")
    errors: list[BaseException] = []
    twilio.fail_next(500)
    twilio.fail_next(429, retry_after="3")
    for channel in channels:
        with pytest.raises(SendError) as failed:
            await channel.send(outbound(QUESTION))
        errors.append(failed.value)
    # Asking what Twilio accepted goes through the twilio library, with its own request logs.
    await channels[0].sent_since(outbound(QUESTION), datetime.now(UTC) - timedelta(minutes=5))
    with pytest.raises(SendError) as failed:
        await channels[2].sent_since(outbound(QUESTION), datetime.now(UTC) - timedelta(minutes=5))
    errors.append(failed.value)

    secrets = {
        FAKE_AUTH_TOKEN,
        WRONG_TOKEN,
        base64.b64encode(f"{FAKE_ACCOUNT_SID}:{FAKE_AUTH_TOKEN}".encode()).decode(),
        base64.b64encode(f"{FAKE_ACCOUNT_SID}:{WRONG_TOKEN}".encode()).decode(),
    }
    written = caplog.text + "".join(
        "".join(traceback.format_exception(error)) + repr(error) for error in errors
    )
    assert any(r.name.startswith("twilio") for r in caplog.records), "the test must see logs"
    assert any(r.name.startswith("bot.channels.twilio") for r in caplog.records)
    for secret in secrets:
        assert secret not in written
    assert FAKE_AUTH_TOKEN not in repr(make_settings())


# --- status callbacks over a real HTTP hop, signed by the fake ---


async def test_fake_status_callback_verifies_and_parses(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    received: asyncio.Queue[StatusUpdate | None] = asyncio.Queue()
    channel_ref: list[TwilioChannel] = []

    async def status_hook(request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        web_request = WebRequest(
            url=str(request.url),
            headers=dict(request.headers),
            body=await request.read(),
            content_type=request.content_type,
            form=form,
        )
        if not channel_ref[0].verify(web_request):
            return web.Response(status=403)
        received.put_nowait(channel_ref[0].parse_status(web_request))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/twilio/status", status_hook)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        channel = channel_for(status_callback_url=f"http://{host}:{port}/twilio/status")
        channel_ref.append(channel)
        result = await channel.send(outbound(QUESTION))

        assert await twilio.post_status_callback(result.provider_id, "delivered") == 204
        update = await asyncio.wait_for(received.get(), timeout=5)
        assert update == StatusUpdate("sms", result.provider_id, "delivered")

        assert (
            await twilio.post_status_callback(result.provider_id, "undelivered", error_code="21610")
            == 204
        )
        update = await asyncio.wait_for(received.get(), timeout=5)
        assert update is not None and update.opted_out and update.status == "undelivered"

        channel_ref[0] = TwilioChannel(make_settings(auth_token=WRONG_TOKEN))
        assert await twilio.post_status_callback(result.provider_id, "read") == 403
    finally:
        await runner.cleanup()


# --- settings ---


@pytest.mark.parametrize(
    "changes",
    [
        {"from_number": None, "messaging_service_sid": None},
        {"auth_token": ""},
        {"account_sid": ""},
        {"timeout": 0.0},
    ],
)
def test_settings_refuse_unusable_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_settings(**changes)


async def test_a_send_that_timed_out_can_be_found_accepted(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    """Twilio took the message but its answer was lost: `sent_since` finds it by recipient and
    exact text, and nothing else."""
    channel = channel_for(timeout=0.2)
    before = datetime.now(UTC) - timedelta(seconds=1)
    message = outbound("Hur nöjd är du?")
    twilio.accept_and_hang_next()
    with pytest.raises(SendError) as raised:
        await channel.send(message)
    assert raised.value.retryable
    other = await channel.send(outbound("Något annat"))
    elsewhere = await channel.send(replace(message, address="+46709999999"))
    found = await channel.sent_since(message, before)
    [accepted] = [
        sid
        for sid, m in twilio.messages.items()
        if m["body"] == message.text and m["to"] == message.address
    ]
    assert [r.provider_id for r in found] == [accepted]
    assert {other.provider_id, elsewhere.provider_id}.isdisjoint(r.provider_id for r in found)
    assert found[0].segments == 1 and found[0].encoding == "GSM-7"
    assert await channel.sent_since(message, datetime.now(UTC) + timedelta(minutes=1)) == []
    [listing, *_] = [r for r in twilio.requests if r.method == "GET"]
    assert listing.authorized and listing.form["To"] == message.address


async def test_asking_twilio_what_it_accepted_can_fail_retryably(
    twilio: FakeTwilio,
    channel_for: Callable[..., TwilioChannel],
) -> None:
    channel = channel_for(auth_token=WRONG_TOKEN)
    with pytest.raises(SendError) as raised:
        await channel.sent_since(outbound("Hej"), datetime.now(UTC))
    assert not raised.value.retryable and raised.value.code == "20003"


API_ERRORS = [
    (400, '{"code": 21211, "message": "The \'To\' number 123 is not valid.", "status": 400}'),
    (400, '{"code": 21610, "message": "Attempt to send to unsubscribed recipient"}'),
    (429, '{"code": 20429, "message": "Too Many Requests", "more_info": "x"}'),
    (500, '{"message": "Internal error"}'),
    (503, "<html>Service Unavailable</html>"),
    (502, ""),
    (400, '["not", "an", "object"]'),
    (401, '{"status": 401}'),
    (
        400,
        '{"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid To",'
        ' "status": 400, "code": 21211, "detail": "not a number"}',
    ),
    (400, '{"type": "t", "title": "Bad request", "status": 400, "code": 20001}'),
]


@pytest.mark.parametrize(("status", "body"), API_ERRORS)
def test_send_errors_are_read_as_the_twilio_library_reads_them(status: int, body: str) -> None:
    """`send` posts without the library's layers; its error payloads still mean what the
    library's `Version.exception` makes of them."""
    exc = Version.exception(
        "POST", "/Messages.json", TwilioResponse(status, body), "Unable to create record"
    )
    if isinstance(exc, TwilioServiceException):
        expected = (exc.code, f"{exc.title}: {exc.detail}" if exc.detail else exc.title)
    else:
        expected = (exc.code, exc.msg.removeprefix("Unable to create record: "))
    assert api_error(status, body) == expected
