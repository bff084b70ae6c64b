"""No input gives a 5xx: every route of the app (webhooks, web chat, the staff API with a valid
token, the public results page, the FLOIP routes, /healthz) is sent malformed bodies, other
encodings, large and deeply nested documents and numbers that fit no column.

First the inputs that once gave a 500 with a traceback, one by one; then hypothesis explores.
Provider webhooks are signed (Twilio) or carry the secret (Telegram), so the fuzzing reaches the
parsing behind the check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bot.harness import PUBLIC_URL, WEBHOOK_SECRET, Harness, running, settings_for
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FAKE_AUTH_TOKEN, FakeTwilio, signed_form_request

STAFF = {"Authorization": "Bearer staff-token-0123456789abcdef"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

HUGE = "1" * 30
DEEP = ("[" * 5000 + "]" * 5000).encode()
DEEP_OBJECT = ('{"a":' * 5000 + "1" + "}" * 5000).encode()
LATIN1_FORM = "Body=åäö&From=+46701234567&MessageSid=SM1".encode("latin-1")
NUL_JSON = json.dumps(
    {k: "a\u0000" for k in ("survey", "audience", "ends", "name", "event_id", "event", "text")}
    | {
        "contacts": [{"external_ref": "\u0000", "phone": "\u0000"}],
        "events": [{"event_id": "\u0000"}],
    }
).encode()
SURROGATE_JSON = NUL_JSON.replace(b"\\u0000", b"\\ud800")
ODD_SEGMENTS = [HUGE, "²", "-1", "0", "1e30", "٣", "9" * 400, "%00", "..", "a b", "ä", "NaN"]
ODD_NUMBERS: list[Any] = [
    10**30,
    -(10**30),
    10**19,
    2**63,
    1e30,
    -1e30,
    1e308,
    0.5,
    -1,
    0,
    True,
]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] | None = None


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    twilio, telegram = FakeTwilio(), FakeTelegram()
    await twilio.start()
    await telegram.start()
    try:
        settings = settings_for(database_url, twilio=twilio, telegram=telegram)
        async with running(settings) as h:
            yield h
    finally:
        await telegram.stop()
        await twilio.close()


async def send(h: Harness, call: Call) -> int:
    headers = dict(call.headers or {})
    if call.content_type is not None:
        headers["Content-Type"] = call.content_type
    if call.path.startswith(("/api/", "/flow-results/")):
        headers.update(STAFF)
    if call.path.startswith("/webhooks/telegram"):
        headers.setdefault("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
    response = await h.client.request(
        call.method, call.path, data=call.body or None, headers=headers, allow_redirects=False
    )
    await response.read()
    return response.status


def twilio_call(path: str, form: Mapping[str, str]) -> Call:
    """A Twilio post signed with our auth token, so it gets past the signature check."""
    headers, body = signed_form_request(f"{PUBLIC_URL}{path}", form, FAKE_AUTH_TOKEN)
    return Call("POST", path, body, headers.pop("Content-Type"), headers)


def telegram_message(**message: Any) -> bytes:
    base: dict[str, Any] = {
        "message_id": 1,
        "date": 1_770_000_000,
        "chat": {"id": 424242, "type": "private"},
        "from": {"id": 424242, "is_bot": False, "first_name": "A"},
        "text": "hej",
    }
    return json.dumps({"update_id": 5, "message": base | message}).encode()


def json_call(method: str, path: str, value: Any) -> Call:
    return Call(method, path, json.dumps(value).encode(), JSON)


async def chat_token(h: Harness) -> str:
    return (await h.runtime.service.start_webchat("uppfoljning-insats", "sv")).token


def once_a_500(token: str) -> list[Call]:
    """The inputs of issue 12 that answered 500 with a traceback."""
    campaign = {"survey": "ifo-brukarundersokning", "audience": "true", "ends": "2026-04-01"}
    return [
        # Non-UTF-8 forms, before the signature check.
        Call("POST", "/webhooks/twilio", LATIN1_FORM, FORM),
        Call("POST", "/webhooks/twilio/status", LATIN1_FORM, FORM),
        Call("POST", "/chat/start", LATIN1_FORM, FORM),
        Call("POST", "/webhooks/twilio", b"Body=%FF%FE&From=%2B46701234567", FORM),
        # JSON nested 5,000 deep.
        Call("POST", "/webhooks/telegram", DEEP, JSON),
        Call("POST", f"/chat/{token}/messages", DEEP, JSON),
        Call("POST", f"/chat/{token}/messages", DEEP_OBJECT, JSON),
        *(
            Call(method, path, deep, JSON)
            for method, path in (
                ("POST", "/api/v1/contacts"),
                ("POST", "/api/v1/campaigns"),
                ("POST", "/api/v1/events"),
                ("POST", "/api/v1/followup-rules"),
                ("PUT", "/api/v1/followup-rules/x"),
                ("PUT", "/api/v1/campaigns/1/feedback"),
            )
            for deep in (DEEP, DEEP_OBJECT)
        ),
        # 30-digit ids and superscript digits in paths and query strings.
        *(
            Call(method, path.format(x=quote(odd)))
            for odd in (HUGE, "²", "-1", "9" * 400)
            for method, path in (
                ("GET", "/api/v1/campaigns/{x}"),
                ("POST", "/api/v1/campaigns/{x}/pause"),
                ("POST", "/api/v1/campaigns/{x}/resume"),
                ("POST", "/api/v1/campaigns/{x}/close"),
                ("GET", "/api/v1/campaigns/{x}/results"),
                ("GET", "/api/v1/events/{x}"),
                ("GET", "/api/v1/followup-rules/{x}"),
                ("DELETE", "/api/v1/followup-rules/{x}"),
                ("GET", "/results/{x}"),
                ("GET", "/flow-results/packages/{x}"),
                ("GET", "/flow-results/packages/{x}/responses"),
                ("GET", f"/chat/{token}/messages?after={{x}}"),
                ("GET", "/flow-results/packages/x/responses?page[size]={x}"),
                ("GET", "/flow-results/packages?page[size]={x}"),
                ("GET", "/chat?lang={x}"),
                ("GET", "/results/1?lang={x}"),
            )
        ),
        Call("PUT", f"/api/v1/campaigns/{HUGE}/feedback", b'{"text": {"sv": "x"}}', JSON),
        # Numbers no column or timedelta holds.
        *(
            json_call("POST", "/api/v1/campaigns", campaign | {"feedback_delay": number})
            for number in (1e30, 10**30, -(10**30), 1e308)
        ),
        Call("POST", "/api/v1/campaigns", b'{"feedback_delay": NaN, "survey": "x"}', JSON),
        Call("POST", "/api/v1/campaigns", b'{"feedback_delay": Infinity}', JSON),
        Call("POST", "/api/v1/campaigns", ('{"n": ' + "9" * 5000 + "}").encode(), JSON),
        Call("POST", "/webhooks/telegram", telegram_message(date=10**19), JSON),
        Call(
            "POST",
            "/webhooks/telegram",
            telegram_message(chat={"id": 10**30, "type": "private"}),
            JSON,
        ),
        json_call("POST", "/webhooks/telegram", {"update_id": 10**30, "message": {}}),
        # Texts no PostgreSQL column takes: NUL, unpaired surrogates.
        *(
            Call(method, path, body, JSON)
            for method, path in (
                ("POST", "/api/v1/contacts"),
                ("POST", "/api/v1/campaigns"),
                ("POST", "/api/v1/events"),
                ("POST", "/api/v1/followup-rules"),
                ("PUT", "/api/v1/followup-rules/x"),
                ("PUT", "/api/v1/campaigns/1/feedback"),
            )
            for body in (NUL_JSON, SURROGATE_JSON)
        ),
        *(
            Call(method, path)
            for method, path in (
                ("GET", "/api/v1/events/%00"),
                ("GET", "/api/v1/followup-rules/%00"),
                ("DELETE", "/api/v1/followup-rules/%00"),
            )
        ),
        Call("PUT", "/api/v1/followup-rules/%00", b'{"name": "x"}', JSON),
        Call("POST", f"/chat/{token}/messages", b'{"id": "n1", "payload": "choice:\\u0000"}', JSON),
        Call("POST", f"/chat/{token}/messages", b'{"id": "n2", "text": "a\\u0000\\ud800"}', JSON),
        json_call(
            "POST",
            "/webhooks/telegram",
            {
                "update_id": 6,
                "callback_query": {
                    "id": "q\u0000",
                    "data": "choice:\u0000",
                    "from": {"id": 424242},
                    "message": {
                        "message_id": 1,
                        "chat": {"id": 424242, "type": "private"},
                        "text": "\u0000\ud800",
                    },
                },
            },
        ),
        twilio_call(
            "/webhooks/twilio/status",
            {
                "MessageSid": "SM1",
                "MessageStatus": "failed",
                "ErrorCode": "\x00",
                "ErrorMessage": "\x00",
            },
        ),
        twilio_call("/webhooks/twilio", {"MessageSid": "SM" + HUGE, "From": "+46701234567"}),
        twilio_call(
            "/webhooks/twilio", {"MessageSid": "SM1", "From": "+4670123", "NumMedia": HUGE}
        ),
    ]


async def test_the_inputs_that_once_gave_a_500(harness: Harness) -> None:
    token = await chat_token(harness)
    failures = []
    for call in once_a_500(token):
        status = await send(harness, call)
        if status >= 500:
            failures.append((status, call.method, call.path, call.body[:80]))
    assert not failures, failures


# --- exploration ------------------------------------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from(ODD_SEGMENTS),
    st.sampled_from(ODD_SEGMENTS),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.text(min_size=1, max_size=40).map(lambda t: quote(t, safe="")),
)
QUERY_KEYS = st.sampled_from(
    [
        "after",
        "lang",
        "format",
        "breakdown",
        "partial",
        "open",
        "page[size]",
        "page[afterCursor]",
        "page[beforeCursor]",
        "filter[start-timestamp]",
        "filter[end-timestamp]",
        "x",
    ]
)
QUERY_VALUES = st.one_of(
    st.sampled_from([*ODD_SEGMENTS, "2026-03-01T00:00:00+00:00", "99999-01-01T00:00:00+00:00"]),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.text(max_size=30),
)
FIELD_NAMES = [
    "survey", "audience", "ends", "starts", "name", "reminders", "channels", "participation",
    "feedback_delay", "feedback_to", "contacts", "skip_invalid", "external_ref", "phone",
    "telegram_chat_id", "language", "gender", "birth_year", "target_group", "unit",
    "contact_since", "events", "event_id", "event", "occurred_at", "cancelled", "attributes",
    "filter", "delay", "window", "fatigue_days", "expires_after", "text", "plan_ref", "hold",
    "sv", "en", "id", "payload", "update_id", "message", "callback_query", "my_chat_member",
    "chat", "date", "data", "from", "message_id", "type", "status",
]  # fmt: skip
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(ODD_NUMBERS),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["2026-03-01", "2026-02-30", "true", "sms", "ifo-brukarundersokning", "3d"]),
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=6),
    ),
    max_leaves=25,
)
TWILIO_FIELDS = [
    "MessageSid",
    "SmsSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "OptOutType",
    "MessageStatus",
    "SmsStatus",
    "ErrorCode",
    "ErrorMessage",
    "AccountSid",
]
TWILIO_VALUES = st.one_of(
    st.sampled_from(
        [
            "+46701234567",
            "whatsapp:+46701234567",
            "SM" + "a" * 32,
            "delivered",
            "failed",
            "partially_delivered",
            "STOP",
            "21610",
            HUGE,
            "",
            "²",
            "0",
        ]
    ),
    st.text(max_size=40),
)


def _bodies() -> st.SearchStrategy[tuple[bytes, str | None]]:
    content_types = st.sampled_from(
        [JSON, FORM, f"{FORM}; charset=latin-1", "text/plain", "multipart/form-data", None]
    )
    raw = st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.sampled_from([DEEP, DEEP_OBJECT, LATIN1_FORM, b"\xff\xfe\x00", b"{", b"[1,", b"%"]),
        st.binary(max_size=200),
        st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5).map(
            lambda d: urlencode(d).encode()
        ),
        st.integers(min_value=60_000, max_value=80_000).map(lambda n: b"a" * n),
    )
    return st.tuples(raw, content_types)


def _routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the service serves, staff API included."""
    from bot.app import create_app

    app = create_app(settings_for("sqlite+aiosqlite:///unused.db"), background=False)
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    )


ROUTES = _routes()


async def _route_call(h: Harness, method: str, template: str, data: st.DataObject) -> Call:
    token = await chat_token(h) if data.draw(st.booleans(), label="real chat token") else None
    path = template
    while "{" in path:
        name = path[path.index("{") + 1 : path.index("}")]
        value = token if name == "token" and token else data.draw(SEGMENTS, label=name)
        path = path.replace("{" + name + "}", value, 1)
    if path == "/chat/static":
        path += "/" + data.draw(st.sampled_from(["chat.js", "..%2Fapp.py", "x", HUGE]))
    query = data.draw(st.dictionaries(QUERY_KEYS, QUERY_VALUES, max_size=3), label="query")
    if query:
        path += "?" + urlencode(query)
    if method == "POST" and template.startswith("/webhooks/twilio") and data.draw(st.booleans()):
        form = data.draw(st.dictionaries(st.sampled_from(TWILIO_FIELDS), TWILIO_VALUES))
        return twilio_call(template, form)
    body, content_type = data.draw(_bodies(), label="body")
    return Call(method, path, body if method in ("POST", "PUT") else b"", content_type)


def test_every_route_is_explored() -> None:
    assert len(ROUTES) >= 30
    assert {path for _, path in ROUTES} >= {
        "/healthz",
        "/webhooks/twilio",
        "/webhooks/twilio/status",
        "/webhooks/telegram",
        "/chat",
        "/chat/start",
        "/chat/{token}/messages",
        "/results/{campaign_id}",
        "/flow-results/packages/{id}/responses",
        "/api/v1/campaigns/{id}/feedback",
        "/api/v1/contacts",
        "/api/v1/events",
    }


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
async def test_no_input_to_any_route_gives_a_5xx(
    harness: Harness, method: str, template: str, data: st.DataObject
) -> None:
    call = await _route_call(harness, method, template, data)
    status = await send(harness, call)
    assert status < 500, (status, call.method, call.path, call.content_type, call.body[:120])
