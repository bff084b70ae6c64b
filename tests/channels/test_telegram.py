from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.channels.base import (
    InboundMessage,
    OutboundMessage,
    RequestRejected,
    SendError,
    WebRequest,
)
from bot.channels.telegram.channel import (
    ALLOWED_UPDATES,
    SECRET_HEADER,
    TelegramChannel,
    TelegramSettings,
    keyboard_rows,
)
from flows.conversation import Button
from tests.fakes.telegram_server import (
    BOT_TOKEN,
    BOT_USERNAME,
    DEFAULT_DATE,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    Failure,
    FakeTelegram,
    callback_update,
    edited_text_update,
    fake_telegram,  # noqa: F401  (pytest fixture)
    my_chat_member_blocked,
    my_chat_member_unblocked,
    sticker_update,
    text_update,
)

SECRET = "w3bhook_Secret-0123456789"
CHAT = 5_550_001
NOW = datetime(2024, 6, 1, 10, 5, tzinfo=UTC)
SENT_AT = datetime.fromtimestamp(DEFAULT_DATE, UTC)
WEBHOOK_URL = "https://brukardialog.example.se/webhooks/telegram"


def _settings(api_base_url: str = "http://127.0.0.1:9", **changes: Any) -> TelegramSettings:
    return replace(
        TelegramSettings(bot_token=BOT_TOKEN, webhook_secret=SECRET, api_base_url=api_base_url),
        **changes,
    )


@pytest.fixture
async def channel() -> AsyncIterator[TelegramChannel]:
    """A channel for parsing only: its API URL points at a closed port."""
    ch = TelegramChannel(_settings(), clock=lambda: NOW)
    yield ch
    await ch.close()


@pytest.fixture
async def live(fake_telegram: FakeTelegram) -> AsyncIterator[TelegramChannel]:  # noqa: F811
    """A channel talking to the fake Bot API."""
    ch = TelegramChannel(_settings(fake_telegram.api_base_url), clock=lambda: NOW)
    yield ch
    await ch.close()


# Incoming: one table, one runner that adds the bad- and missing-secret variants itself.


def _inbound(provider_id: int, text: str = "", **changes: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "channel": "telegram",
        "provider_id": str(provider_id),
        "address": str(CHAT),
        "text": text,
        "received_at": SENT_AT,
        **changes,
    }
    return InboundMessage(**values)


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


LONG_TEXT = "Det här är en lång berättelse om hur det gick. " * 85
ARABIC = "نعم، لقد ساعدني ذلك كثيراً"


@dataclass(frozen=True)
class Incoming:
    label: str
    body: bytes
    expected: list[InboundMessage] | int
    """The inbound messages parse returns, or the status of the RequestRejected it raises."""
    content_type: str = "application/json"


INCOMING: list[Incoming] = [
    Incoming("text", _json(text_update(1, CHAT, "Ja")), [_inbound(1, "Ja")]),
    Incoming("emoji", _json(text_update(2, CHAT, "😊👍🏽")), [_inbound(2, "😊👍🏽")]),
    Incoming("arabic", _json(text_update(3, CHAT, ARABIC)), [_inbound(3, ARABIC)]),
    Incoming(
        "4000 characters",
        _json(text_update(4, CHAT, LONG_TEXT[:4000])),
        [_inbound(4, LONG_TEXT[:4000])],
    ),
    Incoming(
        "control characters removed, newlines kept",
        _json(text_update(5, CHAT, "Ja\x00 tack\x07\r\nrad två\ttabb\u200d")),
        [_inbound(5, "Ja tack\nrad två\ttabb\u200d")],
    ),
    Incoming(
        "charset in content type",
        _json(text_update(6, CHAT, "Nej")),
        [_inbound(6, "Nej")],
        content_type="application/json; charset=utf-8",
    ),
    Incoming(
        "/start with deep-link token",
        _json(text_update(7, CHAT, "/start inv_Ab12-cd34")),
        [_inbound(7, "/start", start_token="inv_Ab12-cd34")],
    ),
    Incoming("/start alone", _json(text_update(8, CHAT, "/start")), [_inbound(8, "/start")]),
    Incoming(
        "/start@bot with token",
        _json(text_update(9, CHAT, f"/start@{BOT_USERNAME} tok123")),
        [_inbound(9, "/start", start_token="tok123")],
    ),
    Incoming(
        "/start with text that is no deep-link token",
        _json(text_update(10, CHAT, "/start hej då")),
        [_inbound(10, "/start")],
    ),
    Incoming("other command", _json(text_update(11, CHAT, "/stopp")), [_inbound(11, "/stopp")]),
    Incoming(
        "callback query",
        _json(callback_update(12, CHAT, "choice:partly", 345, "Har insatsen hjälpt dig?")),
        [
            _inbound(
                12,
                "",
                payload="choice:partly",
                received_at=NOW,
                extras={
                    "callback_query_id": "4382bfdwdsb323b2d9",
                    "message_id": 345,
                    "message_text": "Har insatsen hjälpt dig?",
                },
            )
        ],
    ),
    Incoming("sticker", _json(sticker_update(13, CHAT)), [_inbound(13, "")]),
    Incoming(
        "photo with caption",
        _json(
            {
                "update_id": 14,
                "message": {
                    **text_update(14, CHAT, "")["message"],
                    "text": None,
                    "photo": [{"file_id": "x", "file_unique_id": "y", "width": 90, "height": 90}],
                    "caption": "Så här ser det ut",
                },
            }
        ),
        [_inbound(14, "Så här ser det ut")],
    ),
    Incoming("edited message ignored", _json(edited_text_update(15, CHAT, "Nej")), []),
    Incoming(
        "blocked the bot: opt-out",
        _json(my_chat_member_blocked(16, CHAT)),
        [_inbound(16, "", opt_out=True)],
    ),
    Incoming(
        "unblocked the bot: opt back in",
        _json(my_chat_member_unblocked(17, CHAT)),
        [_inbound(17, "", opt_out=False)],
    ),
    Incoming(
        "group message ignored",
        _json(text_update(18, -100_123, "Ja", chat_type="supergroup")),
        [],
    ),
    Incoming(
        "channel post ignored",
        _json({"update_id": 19, "channel_post": text_update(19, -100_5, "x")["message"]}),
        [],
    ),
    Incoming("message without chat skipped", _json({"update_id": 20, "message": {}}), []),
    Incoming("invalid JSON", b'{"update_id": 21, "message": ', 400),
    Incoming("invalid UTF-8", b'{"update_id": 22, "x": "\xff"}', 400),
    Incoming("JSON array", b"[1, 2]", 400),
    Incoming("missing update_id", _json({"message": text_update(1, CHAT, "Ja")["message"]}), 400),
    Incoming(
        "update_id not a number", _json({**text_update(1, CHAT, "Ja"), "update_id": "1"}), 400
    ),
    Incoming(
        "wrong content type",
        b"update_id=23",
        415,
        content_type="application/x-www-form-urlencoded",
    ),
]


def _webhook_request(case: Incoming, headers: Mapping[str, str]) -> WebRequest:
    return WebRequest(
        url=WEBHOOK_URL,
        headers={"Content-Type": case.content_type, **headers},
        body=case.body,
        content_type=case.content_type,
    )


@pytest.mark.parametrize("case", INCOMING, ids=lambda c: c.label)
async def test_incoming(case: Incoming, channel: TelegramChannel) -> None:
    request = _webhook_request(case, {SECRET_HEADER: SECRET})
    assert channel.verify(request)
    assert channel.verify(_webhook_request(case, {SECRET_HEADER.lower(): SECRET}))
    for variant, headers in [
        ("bad secret", {SECRET_HEADER: SECRET[:-1] + "x"}),
        ("secret prefix", {SECRET_HEADER: SECRET[:-1]}),
        ("empty secret", {SECRET_HEADER: ""}),
        ("missing secret", {}),
    ]:
        assert not channel.verify(_webhook_request(case, headers)), variant

    if isinstance(case.expected, int):
        with pytest.raises(RequestRejected) as rejected:
            channel.parse(request)
        assert rejected.value.status == case.expected
    else:
        assert channel.parse(request) == case.expected


# Outgoing: one table run against the fake Bot API.

QUESTION = "Har insatsen hjälpt dig?"
SMILEYS = tuple(Button(f"choice:{i}", s) for i, s in enumerate("😞🙁😐🙂😀", start=1))
YES_PARTLY_NO = (
    Button("choice:yes", "Ja"),
    Button("choice:partly", "Delvis"),
    Button("choice:no", "Nej"),
)
LONG_LABELS = (
    Button("choice:agree", "Jag håller helt med om det"),
    Button("choice:disagree", "Jag håller inte alls med om det"),
)
ACK = {"callback_query_id": "cbq-1"}
CHUNKED = ("rad med text\n" * 400).strip()  # 5199 characters
CUT = CHUNKED.rfind("\n", 0, 4096)


def _keyboard(*rows: tuple[Button, ...]) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": b.payload} for b in row] for row in rows
        ]
    }


def _out(text: str, **changes: Any) -> OutboundMessage:
    return OutboundMessage(id=1, channel="telegram", address=str(CHAT), text=text, **changes)


@dataclass(frozen=True)
class Outgoing:
    label: str
    message: OutboundMessage
    calls: list[tuple[str, dict[str, Any]]]
    """(method, parameters) in order; only the parameters named are compared."""
    provider_id: str | None = None
    error: dict[str, Any] | None = None
    """Attributes of the SendError raised instead of a result."""
    script: tuple[tuple[str, Failure], ...] = ()
    seed: tuple[tuple[str, dict[str, Any] | None], ...] = ()
    """Messages the bot sent before (ids from 100), e.g. the question whose button was pressed."""


SEEDED_QUESTION = ((QUESTION, _keyboard(YES_PARTLY_NO)),)
EDIT = {**ACK, "edit_message_id": 100, "edit_text": f"{QUESTION}\n✓ Delvis"}

OUTGOING: list[Outgoing] = [
    Outgoing(
        "plain text",
        _out("Tack för dina svar!"),
        [("sendMessage", {"chat_id": CHAT, "text": "Tack för dina svar!", "reply_markup": None})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "smileys in one row",
        _out("Hur nöjd är du?", buttons=SMILEYS),
        [("sendMessage", {"text": "Hur nöjd är du?", "reply_markup": _keyboard(SMILEYS)})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "short labels side by side",
        _out(QUESTION, buttons=YES_PARTLY_NO),
        [("sendMessage", {"reply_markup": _keyboard(YES_PARTLY_NO)})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "long labels one per row",
        _out("Vad tycker du?", buttons=LONG_LABELS),
        [("sendMessage", {"reply_markup": _keyboard(LONG_LABELS[:1], LONG_LABELS[1:])})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "multiple choice: numbered list appended for typed answers",
        _out(
            "Vad var viktigast? Svara med siffrorna, t.ex. 1 3",
            buttons=(Button("choice:time", "Tid"), Button("choice:staff", "Personal")),
            numbered=("Tid", "Personal"),
            multiple=True,
        ),
        [
            (
                "sendMessage",
                {
                    "text": (
                        "Vad var viktigast? Svara med siffrorna, t.ex. 1 3\n\n1. Tid\n2. Personal"
                    ),
                    "reply_markup": _keyboard(
                        (Button("choice:time", "Tid"), Button("choice:staff", "Personal"))
                    ),
                },
            )
        ],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "multiple choice: numbered list already in text",
        _out("Välj:\n1. Tid\n2. Personal", numbered=("Tid", "Personal"), multiple=True),
        [("sendMessage", {"text": "Välj:\n1. Tid\n2. Personal"})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "text over 4096 characters split at a newline, buttons on the last part",
        _out(CHUNKED, buttons=YES_PARTLY_NO),
        [
            ("sendMessage", {"text": CHUNKED[:CUT], "reply_markup": None}),
            ("sendMessage", {"text": CHUNKED[CUT + 1 :], "reply_markup": _keyboard(YES_PARTLY_NO)}),
        ],
        provider_id=f"{CHAT}:101",
    ),
    Outgoing(
        "ack only",
        _out("", extras=ACK),
        [("answerCallbackQuery", {"callback_query_id": "cbq-1"})],
        provider_id="callback:cbq-1",
    ),
    Outgoing(
        "ack, edit the question, send the next one",
        _out("Vad var bäst?", extras=EDIT),
        [
            ("answerCallbackQuery", {"callback_query_id": "cbq-1"}),
            (
                "editMessageText",
                {
                    "chat_id": CHAT,
                    "message_id": 100,
                    "text": f"{QUESTION}\n✓ Delvis",
                    "reply_markup": None,
                },
            ),
            ("sendMessage", {"text": "Vad var bäst?"}),
        ],
        provider_id=f"{CHAT}:101",
        seed=SEEDED_QUESTION,
    ),
    Outgoing(
        "ack and edit without text",
        _out("", extras=EDIT),
        [("answerCallbackQuery", {}), ("editMessageText", {"message_id": 100})],
        # The edited question keeps its own provider id; the ack is named by its query.
        provider_id="callback:cbq-1",
        seed=SEEDED_QUESTION,
    ),
    Outgoing(
        "query too old and message not modified are fine",
        _out("Nästa fråga", extras=EDIT),
        [("answerCallbackQuery", {}), ("editMessageText", {}), ("sendMessage", {})],
        provider_id=f"{CHAT}:101",
        script=(("answerCallbackQuery", Failure(400, QUERY_TOO_OLD)),),
        seed=((f"{QUESTION}\n✓ Delvis", None),),
    ),
    Outgoing(
        "edit of a vanished message is fine",
        _out("Nästa fråga", extras=EDIT),
        [("answerCallbackQuery", {}), ("editMessageText", {}), ("sendMessage", {})],
        provider_id=f"{CHAT}:100",
    ),
    Outgoing(
        "blocked by the user",
        _out("Hej"),
        [("sendMessage", {})],
        error={"opted_out": True, "retryable": False, "code": "forbidden"},
        script=(("sendMessage", Failure.blocked()),),
    ),
    Outgoing(
        "flood control",
        _out("Hej"),
        [("sendMessage", {})],
        error={"retryable": True, "retry_after": 7.0, "opted_out": False, "code": "rate_limited"},
        script=(("sendMessage", Failure.rate_limited(7)),),
    ),
    Outgoing(
        "server error",
        _out("Hej"),
        [("sendMessage", {})],
        error={"retryable": True, "opted_out": False, "code": "network"},
        script=(("sendMessage", Failure.server_error()),),
    ),
    Outgoing(
        "chat not found",
        _out("Hej"),
        [("sendMessage", {})],
        error={"retryable": False, "opted_out": False, "code": "bad_request"},
        script=(("sendMessage", Failure.chat_not_found()),),
    ),
    Outgoing(
        "flood control on the ack fails the send before the question goes out",
        _out("Nästa fråga", extras=ACK),
        [("answerCallbackQuery", {})],
        error={"retryable": True, "retry_after": 3.0, "code": "rate_limited"},
        script=(("answerCallbackQuery", Failure.rate_limited(3)),),
    ),
    Outgoing(
        "button payload over 64 bytes: no call at all",
        _out("Fråga", buttons=(Button("choice:" + "å" * 30, "Lång"),)),
        [],
        error={"retryable": False, "code": "payload_too_long"},
    ),
    Outgoing(
        "nothing to send",
        _out("  "),
        [],
        error={"retryable": False, "code": "empty"},
    ),
    Outgoing(
        "address is not a chat id",
        replace(_out("Hej"), address="+46701234567"),
        [],
        error={"retryable": False, "code": "bad_address"},
    ),
]


@pytest.mark.parametrize("case", OUTGOING, ids=lambda c: c.label)
async def test_outgoing(
    case: Outgoing,
    fake_telegram: FakeTelegram,  # noqa: F811
    live: TelegramChannel,
) -> None:
    for text, markup in case.seed:
        fake_telegram.add_message(CHAT, text, markup)
    for method, failure in case.script:
        fake_telegram.fail_next(method, failure)

    if case.error is None:
        result = await live.send(case.message)
        assert result.provider_id == case.provider_id
    else:
        with pytest.raises(SendError) as raised:
            await live.send(case.message)
        assert {k: getattr(raised.value, k) for k in case.error} == case.error

    calls = [
        (c.method, {k: c.params.get(k) for k in expected})
        for c, (_, expected) in zip(fake_telegram.calls, case.calls, strict=False)
    ]
    assert len(fake_telegram.calls) == len(case.calls)
    assert calls == case.calls


async def test_pressed_button_round_trip(
    fake_telegram: FakeTelegram,  # noqa: F811
    live: TelegramChannel,
    channel: TelegramChannel,
) -> None:
    """Question out, button pressed, ack + edit: the question then shows the chosen answer."""
    sent = await live.send(_out(QUESTION, buttons=YES_PARTLY_NO))
    message_id = int(sent.provider_id.split(":")[1])
    update = callback_update(77, CHAT, "choice:partly", message_id, QUESTION)
    request = WebRequest(WEBHOOK_URL, {SECRET_HEADER: SECRET}, _json(update), "application/json")
    [inbound] = channel.parse(request)
    assert inbound.payload == "choice:partly"

    extras = {
        "callback_query_id": inbound.extras["callback_query_id"],
        "edit_message_id": inbound.extras["message_id"],
        "edit_text": f"{inbound.extras['message_text']}\n✓ Delvis",
    }
    await live.send(_out("Tack!", extras=extras))

    edited = fake_telegram.message(CHAT, message_id)
    assert edited is not None
    assert edited["text"] == f"{QUESTION}\n✓ Delvis"
    assert "reply_markup" not in edited

    # The outbox retrying the same ack after a crash is harmless.
    await live.send(_out("", extras=extras))
    assert [c.method for c in fake_telegram.calls[-2:]] == [
        "answerCallbackQuery",
        "editMessageText",
    ]


async def test_set_webhook(fake_telegram: FakeTelegram, live: TelegramChannel) -> None:  # noqa: F811
    await live.set_webhook(WEBHOOK_URL)
    [call] = fake_telegram.calls_to("setWebhook")
    assert call.params == {
        "url": WEBHOOK_URL,
        "secret_token": SECRET,
        "allowed_updates": list(ALLOWED_UPDATES),
    }
    assert fake_telegram.webhook["url"] == WEBHOOK_URL


async def test_set_webhook_rejected(fake_telegram: FakeTelegram, live: TelegramChannel) -> None:  # noqa: F811
    with pytest.raises(SendError) as raised:
        await live.set_webhook("http://not-https.example.se/hook")
    assert raised.value.code == "bad_request"
    assert "https url must be provided" in raised.value.reason.lower()


async def test_get_me(live: TelegramChannel) -> None:
    me = await live.get_me()
    assert me["username"] == BOT_USERNAME
    assert me["is_bot"] is True


async def test_timeout_is_retryable(fake_telegram: FakeTelegram) -> None:  # noqa: F811
    fake_telegram.fail_next("sendMessage", Failure.slow(2.0))
    ch = TelegramChannel(_settings(fake_telegram.api_base_url, timeout=0.2))
    try:
        with pytest.raises(SendError) as raised:
            await ch.send(_out("Hej"))
    finally:
        await ch.close()
    assert (raised.value.retryable, raised.value.code) == (True, "timeout")


async def test_closed_channel_does_not_send(live: TelegramChannel) -> None:
    await live.close()
    with pytest.raises(SendError) as raised:
        await live.send(_out("Hej"))
    assert raised.value.code == "closed"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_token_never_in_logs_or_errors(
    fake_telegram: FakeTelegram,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[SendError] = []
    fake_telegram.fail_next("answerCallbackQuery", Failure(400, QUERY_TOO_OLD))
    fake_telegram.fail_next("editMessageText", Failure(400, NOT_MODIFIED))

    good = TelegramChannel(_settings(fake_telegram.api_base_url))
    wrong_token = TelegramChannel(
        _settings(fake_telegram.api_base_url, bot_token=BOT_TOKEN[:-3] + "xyz")
    )
    unreachable = TelegramChannel(_settings(f"http://127.0.0.1:{_closed_port()}"))
    try:
        await good.get_me()
        await good.set_webhook(WEBHOOK_URL)
        await good.send(_out("Hej", buttons=YES_PARTLY_NO))
        await good.send(_out("", extras=EDIT))
        # Proxies in front of the API sometimes echo the request path, token included.
        path = f"/bot{BOT_TOKEN}/sendMessage"
        fake_telegram.fail_next("sendMessage", Failure(502, f"Bad Gateway: {path}"))
        fake_telegram.fail_next("sendMessage", Failure.proxy_page(503, f"<h1>503</h1>{path}"))
        fake_telegram.fail_next("sendMessage", Failure.blocked())
        for ch in (good, good, good, wrong_token, unreachable):
            try:
                await ch.send(_out("Hej"))
            except SendError as exc:
                errors.append(exc)
                logging.getLogger("test").exception("send failed")
    finally:
        for ch in (good, wrong_token, unreachable):
            await ch.close()

    assert [(e.code, e.retryable) for e in errors] == [
        ("network", True),
        ("network", True),
        ("forbidden", False),
        ("invalid_token", False),
        ("network", True),
    ]
    secret_part = BOT_TOKEN.split(":", 1)[1][:-3]
    assert "aiohttp.ClientConnectorError" in caplog.text
    assert "/bot<telegram-bot-token>/sendMessage" in caplog.text
    assert "<telegram-bot-token>" in errors[0].reason and "<h1>503</h1>" in errors[1].reason
    assert secret_part not in caplog.text
    for error in errors:
        assert secret_part not in str(error) and secret_part not in repr(error)
        assert error.__cause__ is None and error.__suppress_context__
    assert BOT_TOKEN not in repr(_settings()) and SECRET not in repr(_settings())


@pytest.mark.parametrize(
    ("labels", "row_sizes"),
    [
        ([], []),
        (["😞", "🙁", "😐", "🙂", "😀"], [5]),
        (["1", "2", "3", "4", "5", "6", "7"], [4, 3]),
        ([str(i) for i in range(11)], [4, 4, 3]),
        (["Ja", "Delvis", "Nej"], [3]),
        (["Mycket bra", "Bra", "Varken eller", "Dålig", "Mycket dålig"], [2, 2, 1]),
        (["Bra", "Dålig"], [2]),
        (["1 😞", "5 😀", "Vet inte"], [2, 1]),
        (["😞", "🙁", "😐", "🙂", "😀", "Hoppa över"], [5, 1]),
        (["Jag håller helt med om det", "Jag håller inte med"], [1, 1]),
        (["Stämmer helt", "Stämmer delvis", "Stämmer inte"], [2, 1]),
    ],
)
def test_keyboard_rows(labels: list[str], row_sizes: list[int]) -> None:
    buttons = [Button(f"p{i}", label) for i, label in enumerate(labels)]
    rows = keyboard_rows(buttons)
    assert [len(row) for row in rows] == row_sizes
    assert [b for row in rows for b in row] == buttons


@dataclass(frozen=True)
class BadSettings:
    label: str
    changes: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize(
    "case",
    [
        BadSettings("empty token", {"bot_token": " "}),
        BadSettings("empty secret", {"webhook_secret": ""}),
        BadSettings("secret with a space", {"webhook_secret": "two words"}),
        BadSettings("secret too long", {"webhook_secret": "a" * 257}),
        BadSettings("zero timeout", {"timeout": 0.0}),
    ],
    ids=lambda c: c.label,
)
def test_settings_rejected(case: BadSettings) -> None:
    with pytest.raises(ValueError):
        _settings(**case.changes)
