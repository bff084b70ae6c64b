"""A fake Telegram Bot API on 127.0.0.1 speaking the real wire format, and real update JSON.

`FakeTelegram` serves `GET/POST /bot{token}/{method}` with the envelopes, Message objects and
error descriptions the real Bot API uses, records every call, and fails on demand (blocked user,
flood control, server error, unknown chat, slow answer). The builders at the bottom produce the
update JSON Telegram posts to a webhook."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

BOT_ID = 7_100_000_001
BOT_TOKEN = f"{BOT_ID}:AAHfakeTokenForTests_only-0123456789abc"
BOT_USERNAME = "brukardialog_test_bot"
DEFAULT_DATE = 1_717_236_000
"""2024-06-01T10:00:00Z, the `date` of built updates unless a test gives another."""

BOT_USER: Mapping[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Brukardialog",
    "username": BOT_USERNAME,
}

_INT_PARAMS = frozenset({"chat_id", "message_id", "cache_time", "max_connections", "offset"})
_BOOL_PARAMS = frozenset({"show_alert", "drop_pending_updates", "disable_notification"})
_JSON_PARAMS = frozenset({"reply_markup", "allowed_updates", "entities", "link_preview_options"})

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One request the fake received, with parameters decoded as the real API types them."""

    method: str
    params: Mapping[str, Any]
    http_method: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A scripted answer: wait `delay` seconds, then fail with `status` (None: answer normally)."""

    status: int | None
    description: str = ""
    retry_after: int | None = None
    delay: float = 0.0
    html: str | None = None
    """Answer with this HTML page instead of the API's JSON (a proxy in front of the API)."""

    @classmethod
    def blocked(cls) -> Failure:
        """The user blocked the bot."""
        return cls(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def rate_limited(cls, retry_after: int) -> Failure:
        """Flood control, as Telegram answers it."""
        return cls(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)

    @classmethod
    def server_error(cls) -> Failure:
        """A Bot API server fault."""
        return cls(500, "Internal Server Error")

    @classmethod
    def chat_not_found(cls) -> Failure:
        """An unknown chat id."""
        return cls(400, "Bad Request: chat not found")

    @classmethod
    def proxy_page(cls, status: int, html: str) -> Failure:
        """An HTML error page from a proxy between us and the API."""
        return cls(status, html=html)

    @classmethod
    def slow(cls, seconds: float) -> Failure:
        """Answer normally, but only after `seconds`."""
        return cls(None, delay=seconds)


@dataclass(slots=True)
class _Scripted:
    method: str
    chat_id: int | str | None
    failure: Failure


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(slots=True)
class FakeTelegram:
    """A Bot API server on 127.0.0.1; `api_base_url` goes into the channel's settings."""

    token: str = BOT_TOKEN
    calls: list[ApiCall] = field(default_factory=list)
    blocked_chats: set[int] = field(default_factory=set)
    """Chats whose user blocked the bot: every send to them answers 403."""
    webhook: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    """Calls being answered right now."""
    max_in_flight: int = 0
    """The most calls that were being answered at once."""
    connections: set[tuple[str, int]] = field(default_factory=set)
    """Client (host, port) pairs seen: how many TCP connections the client opened."""
    outage: Failure | None = None
    """While set, every sendMessage is answered with this failure."""
    delivered: list[dict[str, Any]] = field(default_factory=list)
    """Every message sendMessage created, in order."""
    _held: asyncio.Event | None = None
    _messages: dict[tuple[int | str, int], dict[str, Any]] = field(default_factory=dict)
    _answered_queries: set[str] = field(default_factory=set)
    _script: list[_Scripted] = field(default_factory=list)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _runner: web.AppRunner | None = None
    _port: int = 0

    @property
    def api_base_url(self) -> str:
        """Like "https://api.telegram.org": the Bot API root without `/bot<token>`."""
        if not self._port:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Listen on a free port on 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", _not_found)
        # No access log: request paths contain the token, and tests assert it never reaches logs.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host_port = self._runner.addresses[0]
        self._port = int(host_port[1])

    async def stop(self) -> None:
        """Stop listening."""
        self.release_answers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def hold_answers(self) -> None:
        """Send messages as usual but answer no call until `release_answers`."""
        if self._held is None:
            self._held = asyncio.Event()

    def release_answers(self) -> None:
        """Answer the held calls and stop holding."""
        if self._held is not None:
            self._held.set()
            self._held = None

    def sent_to(self, chat_id: int) -> list[str]:
        """Texts of the messages sent to one chat, in order."""
        return [
            str(c.params.get("text"))
            for c in self.calls_to("sendMessage")
            if c.params.get("chat_id") == chat_id and c.http_method == "POST"
        ]

    def fail_next(self, method: str, failure: Failure, *, chat_id: int | str | None = None) -> None:
        """Answer the next call of `method` (to `chat_id`, if given) with `failure`."""
        self._script.append(_Scripted(method, chat_id, failure))

    def pending_failures(self) -> list[tuple[str, int | str | None, Failure]]:
        """Scripted failures no call has consumed yet."""
        return [(s.method, s.chat_id, s.failure) for s in self._script]

    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method, oldest first."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def add_message(
        self, chat_id: int, text: str, reply_markup: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A message the bot sent earlier (e.g. a question whose button is now pressed)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": dict(BOT_USER),
            "chat": private_chat(chat_id),
            "date": DEFAULT_DATE,
            "text": text,
        }
        if reply_markup:
            message["reply_markup"] = dict(reply_markup)
        self._messages[(chat_id, message["message_id"])] = message
        return dict(message)

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The current state of a message the bot sent (after any edits)."""
        return self._messages.get((chat_id, message_id))

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.connections.add((str(peer[0]), int(peer[1])))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer(request)
            if self._held is not None:
                await self._held.wait()
            return response
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"], self.token):
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        self.calls.append(ApiCall(method, params, request.method, request.content_type))

        failure = self._take_scripted(method, params.get("chat_id"))
        if failure is None and self.outage is not None and method.lower() == "sendmessage":
            failure = self.outage
        if failure is not None:
            if failure.delay:
                await asyncio.sleep(failure.delay)
            if failure.status is not None and failure.html is not None:
                return web.Response(
                    status=failure.status, text=failure.html, content_type="text/html"
                )
            if failure.status is not None:
                return _error(failure.status, failure.description, failure.retry_after)

        handler = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }.get(method.lower())  # the real API treats method names case-insensitively
        if handler is None:
            return _error(404, "Not Found")
        try:
            result, description = handler(params)
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        body: dict[str, Any] = {"ok": True, "result": result}
        if description:
            body["description"] = description
        return web.json_response(body)

    def _take_scripted(self, method: str, chat_id: Any) -> Failure | None:
        for i, scripted in enumerate(self._script):
            if scripted.method.lower() != method.lower():
                continue
            if scripted.chat_id is not None and scripted.chat_id != chat_id:
                continue
            del self._script[i]
            return scripted.failure
        return None

    def _get_me(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        return {
            **BOT_USER,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }, None

    def _send_message(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        chat_id = _required(params, "chat_id", "Bad Request: chat_id is empty")
        text = params.get("text")
        if not text or not str(text).strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(str(text)) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        if chat_id in self.blocked_chats:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        markup = params.get("reply_markup")
        _check_markup(markup)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": dict(BOT_USER),
            "chat": private_chat(chat_id),
            "date": int(time.time()),
            "text": str(text),
        }
        if markup and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        self.delivered.append(message)
        return message, None

    def _answer_callback_query(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        query_id = str(params.get("callback_query_id") or "")
        if not query_id or query_id in self._answered_queries:
            raise _ApiError(400, QUERY_TOO_OLD)
        self._answered_queries.add(query_id)
        return True, None

    def _edited(self, params: Mapping[str, Any]) -> dict[str, Any]:
        chat_id = _required(params, "chat_id", "Bad Request: chat_id is empty")
        message_id = _required(
            params, "message_id", "Bad Request: message identifier is not specified"
        )
        if chat_id in self.blocked_chats:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _edit_message_text(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        message = self._edited(params)
        text = params.get("text")
        if not text or not str(text).strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        markup = params.get("reply_markup")
        _check_markup(markup)
        # Telegram drops the inline keyboard when an edit does not repeat it.
        new_markup = markup if markup and markup.get("inline_keyboard") else None
        if message["text"] == text and message.get("reply_markup") == new_markup:
            raise _ApiError(400, NOT_MODIFIED)
        message["text"] = str(text)
        message["edit_date"] = int(time.time())
        _set_markup(message, new_markup)
        return dict(message), None

    def _edit_message_reply_markup(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        message = self._edited(params)
        markup = params.get("reply_markup")
        _check_markup(markup)
        new_markup = markup if markup and markup.get("inline_keyboard") else None
        if message.get("reply_markup") == new_markup:
            raise _ApiError(400, NOT_MODIFIED)
        message["edit_date"] = int(time.time())
        _set_markup(message, new_markup)
        return dict(message), None

    def _set_webhook(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not url.startswith("https://"):
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = params.get("secret_token")
        if secret is not None and not _valid_secret(str(secret)):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": secret}
        if "allowed_updates" in params:
            self.webhook["allowed_updates"] = list(params["allowed_updates"])
        return True, "Webhook was set"

    def _delete_webhook(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        if not self.webhook:
            return True, "Webhook is already deleted"
        self.webhook = {}
        return True, "Webhook was deleted"

    def _get_webhook_info(self, params: Mapping[str, Any]) -> tuple[Any, str | None]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if "allowed_updates" in self.webhook:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info, None


async def _not_found(request: web.Request) -> web.Response:
    return _error(404, "Not Found")


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus body, as the real API accepts them: JSON, urlencoded or multipart."""
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query.items()}
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise _ApiError(400, "Bad Request: can't parse JSON object") from exc
        if not isinstance(body, dict):
            raise _ApiError(400, "Bad Request: can't parse JSON object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({k: _decode(k, v) for k, v in form.items() if isinstance(v, str)})
    return params


def _decode(name: str, value: str) -> Any:
    """Type one string parameter the way the Bot API does (PTB sends non-strings JSON-encoded)."""
    if name in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value  # "@channelusername"
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _ApiError(400, f"Bad Request: can't parse {name} JSON object") from exc
    return value


def _required(params: Mapping[str, Any], name: str, description: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise _ApiError(400, description)
    return value


def _check_markup(markup: Any) -> None:
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not str(button.get("text", "")).strip():
                raise _ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _set_markup(message: dict[str, Any], markup: Any) -> None:
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup


def _valid_secret(secret: str) -> bool:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return 1 <= len(secret) <= 256 and set(secret) <= allowed


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """A started fake Bot API; fails the test if a scripted failure was never used."""
    fake = FakeTelegram()
    await fake.start()
    try:
        yield fake
        assert not fake.pending_failures(), f"unused scripted failures: {fake.pending_failures()}"
    finally:
        await fake.stop()


# Builders for the update JSON Telegram posts to the webhook.


def private_chat(chat_id: int, first_name: str = "Test") -> dict[str, Any]:
    """A private Chat object; in private chats the chat id is the user id."""
    return {"id": chat_id, "first_name": first_name, "type": "private"}


def user(user_id: int, first_name: str = "Test", language_code: str = "sv") -> dict[str, Any]:
    """A (human) User object."""
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": first_name,
        "language_code": language_code,
    }


def _command_entities(text: str) -> list[dict[str, Any]]:
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"offset": 0, "length": len(command.encode("utf-16-le")) // 2, "type": "bot_command"}]


def text_update(
    update_id: int,
    chat_id: int,
    text: str,
    *,
    message_id: int = 1,
    date: int = DEFAULT_DATE,
    chat_type: str = "private",
) -> dict[str, Any]:
    """A person sending text (commands carry a bot_command entity, as Telegram adds it)."""
    chat = private_chat(chat_id) if chat_type == "private" else _group_chat(chat_id, chat_type)
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": user(chat_id if chat_type == "private" else 1_000_001),
        "chat": chat,
        "date": date,
        "text": text,
    }
    if entities := _command_entities(text):
        message["entities"] = entities
    return {"update_id": update_id, "message": message}


def _group_chat(chat_id: int, chat_type: str) -> dict[str, Any]:
    return {"id": chat_id, "title": "Test group", "type": chat_type}


def edited_text_update(
    update_id: int, chat_id: int, text: str, *, message_id: int = 1, date: int = DEFAULT_DATE
) -> dict[str, Any]:
    """A person editing a message they sent earlier."""
    message = text_update(update_id, chat_id, text, message_id=message_id, date=date)["message"]
    message["edit_date"] = date + 60
    return {"update_id": update_id, "edited_message": message}


def sticker_update(
    update_id: int, chat_id: int, *, message_id: int = 1, date: int = DEFAULT_DATE
) -> dict[str, Any]:
    """A person sending a sticker: a message without text."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": user(chat_id),
            "chat": private_chat(chat_id),
            "date": date,
            "sticker": {
                "file_id": "CAACAgIAAxkBAAEBfake",
                "file_unique_id": "AgADfake",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
                "set_name": "HotCherry",
                "file_size": 22_000,
            },
        },
    }


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    message_id: int,
    message_text: str,
    *,
    callback_query_id: str = "4382bfdwdsb323b2d9",
    date: int = DEFAULT_DATE,
) -> dict[str, Any]:
    """A person pressing an inline button under a message the bot sent."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": callback_query_id,
            "from": user(chat_id),
            "message": {
                "message_id": message_id,
                "from": dict(BOT_USER),
                "chat": private_chat(chat_id),
                "date": date,
                "text": message_text,
                "reply_markup": {
                    "inline_keyboard": [[{"text": "Ja", "callback_data": data}]],
                },
            },
            "chat_instance": "-6930425382930281234",
            "data": data,
        },
    }


def _my_chat_member(update_id: int, chat_id: int, old: str, new: str, date: int) -> dict[str, Any]:
    new_member: dict[str, Any] = {"user": dict(BOT_USER), "status": new}
    if new == "kicked":
        new_member["until_date"] = 0
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": private_chat(chat_id),
            "from": user(chat_id),
            "date": date,
            "old_chat_member": {"user": dict(BOT_USER), "status": old},
            "new_chat_member": new_member,
        },
    }


def my_chat_member_blocked(
    update_id: int, chat_id: int, *, date: int = DEFAULT_DATE
) -> dict[str, Any]:
    """The person blocked the bot (Telegram reports the bot as "kicked" from the private chat)."""
    return _my_chat_member(update_id, chat_id, "member", "kicked", date)


def my_chat_member_unblocked(
    update_id: int, chat_id: int, *, date: int = DEFAULT_DATE
) -> dict[str, Any]:
    """The person unblocked the bot (restarted it)."""
    return _my_chat_member(update_id, chat_id, "kicked", "member", date)
