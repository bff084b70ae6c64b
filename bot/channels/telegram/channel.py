"""Telegram: webhook updates in, Bot API calls out.

Why one module: a provider is one channel module behind `channels.base.Channel` (HACKING.md);
parsing, sending and the HTTP layer below are what Telegram means here.

Outgoing calls go through python-telegram-bot's bare `telegram.Bot`, used as an HTTP client inside
our own aiohttp app. We do not build an `Application`: our service stores each update before it
answers the webhook, so PTB's update queue, handlers and job queue would only sit unused. We never
call `Bot.initialize()` either: it costs a getMe round trip on the first send and, when Telegram
rejects the token, raises an error whose text contains the token.

PTB's HTTP layer is replaced by `AiohttpRequest`, an aiohttp session with a pool of kept-alive
connections, as the Twilio client has. PTB's own `HTTPXRequest` does reuse its connections, but
measured here it managed ~80 sends a second at any concurrency against ~800 for aiohttp on the same
fake server: on every request httpcore tries to import an optional module (`sniffio`) and, when it
is absent, searches the import path again. The request never retries (PTB's
request layer has no retry loop), so retrying is the outbox's decision alone.

Incoming updates are parsed from the JSON directly rather than through `Update.de_json`: we read
five fields, and a plain dict walk tolerates fields newer than the installed library.

Only private chats are served: a survey posted into a group would show one person's answers to
everyone in it, so group, supergroup and channel updates are ignored."""

from __future__ import annotations

import hmac
import logging
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, RequestData
from telegram.request._requestparameter import RequestParameter
from telegram.warnings import PTBDeprecationWarning

from bot.channels.base import (
    InboundMessage,
    OutboundMessage,
    RequestRejected,
    SendError,
    SendResult,
    WebRequest,
    load_json,
)
from flows.conversation import Button

_LOG = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
"""my_chat_member is what tells us a person blocked the bot; without it that goes unnoticed."""
CALLBACK_DATA_MAX_BYTES = 64
TEXT_MAX_UTF16 = 4096

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_START_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""The alphabet and length Telegram allows in `t.me/<bot>?start=<token>` deep links."""
_CHAT_ID_RE = re.compile(r"-?\d{1,20}")
_CALLBACK_RE = re.compile(r"[\x21-\x7e]{1,64}")
"""Callback data is what our buttons carry (1-64 bytes, printable ASCII), and query ids too."""
_MAX_UNIX_TIME = 253402300800
"""Year 10000: no later Unix time fits a datetime."""
CONNECTION_POOL_SIZE = 32
"""Kept-alive connections to the Bot API; the outbox keeps at most this many sends in flight."""
_REDACTED = "<telegram-bot-token>"
_LIBRARY_LOGGERS = (
    "httpx",  # logs every request URL at INFO, and the URL contains the token
    "telegram.Bot",  # logs the base URL at DEBUG
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)
PROVIDER_LOGGERS = ("httpx", "httpcore", "telegram")
"""httpx logs every request at INFO; PTB logs requests (chat ids, texts) at DEBUG."""


def quiet_provider_loggers() -> None:
    """No per-request lines from the HTTP client or PTB below WARNING."""
    for name in PROVIDER_LOGGERS:
        logger = logging.getLogger(name)
        # Children left unset follow their parent; one set lower is raised.
        if "." not in name or logging.NOTSET < logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """Bot token, webhook secret and API location; repr never shows the secrets."""

    bot_token: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    api_base_url: str = "https://api.telegram.org"
    timeout: float = 15.0

    def __post_init__(self) -> None:
        if not self.bot_token.strip():
            raise ValueError("telegram: bot_token is empty")
        if not _SECRET_RE.fullmatch(self.webhook_secret):
            raise ValueError(
                "telegram: webhook_secret must be 1-256 characters from A-Z, a-z, 0-9, _ and -"
            )
        if self.timeout <= 0:
            raise ValueError("telegram: timeout must be positive")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AiohttpRequest(BaseRequest):
    """PTB's request interface on one aiohttp session: a pool of `pool_size` kept-alive
    connections, created on first use inside the running loop and closed by `shutdown()`."""

    def __init__(self, pool_size: int, timeout: float) -> None:
        self._pool_size = pool_size
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used unless a call gives another."""
        return self._timeout

    async def initialize(self) -> None:
        """Open the session (done by the first request anyway)."""
        self._open()

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise NetworkError("aiohttp: the request pool is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=60)
            # The Bot API sets no cookies: no jar to read and update per call.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def _or_default(self, value: ODVInput[float]) -> float | None:
        return self._timeout if isinstance(value, DefaultValue) else value

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One Bot API call: (HTTP status, body). Parameters go form-encoded, as PTB's own
        request sends them; files are not supported (we send none)."""
        if request_data is not None and request_data.multipart_data:
            raise BadRequest("aiohttp: sending files is not supported")
        session = self._open()
        connect = self._or_default(connect_timeout)
        pool = self._or_default(pool_timeout)
        timeout = aiohttp.ClientTimeout(
            # aiohttp's `connect` covers waiting for a pooled connection and opening one.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=self._or_default(read_timeout),
        )
        data = request_data.json_parameters if request_data is not None else None
        try:
            async with session.request(
                method,
                url,
                data=data,
                headers={"User-Agent": self.USER_AGENT},
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            # Only the type: aiohttp's texts may carry the URL, and the URL carries the token.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc


class TelegramChannel:
    """The Telegram channel: secret check, update parsing and Bot API sends."""

    name = "telegram"

    def __init__(
        self, settings: TelegramSettings, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        quiet_provider_loggers()
        self._settings = settings
        self._clock = clock
        self._closed = False
        # Installed before the Bot exists: its constructor already logs the URL with the token.
        self._redactor = _RedactSecret(settings.bot_token)
        for logger_name in _LIBRARY_LOGGERS:
            logging.getLogger(logger_name).addFilter(self._redactor)
        self._request = AiohttpRequest(CONNECTION_POOL_SIZE, settings.timeout)
        base = settings.api_base_url.rstrip("/")
        self._api_url = f"{base}/bot{settings.bot_token}"
        self._bot = Bot(
            settings.bot_token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=self._request,
            # We use webhooks, never getUpdates; sharing the request avoids a second idle pool.
            get_updates_request=self._request,
        )

    def verify(self, request: WebRequest) -> bool:
        """True if the request carries the secret token we gave Telegram in setWebhook."""
        supplied = _header(request.headers, SECRET_HEADER)
        if supplied is None:
            return False
        return hmac.compare_digest(
            supplied.encode("utf-8", "replace"), self._settings.webhook_secret.encode()
        )

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        """Inbound messages in one webhook update; kinds we do not serve give []."""
        media_type = request.content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            raise RequestRejected(415, "telegram: expected application/json")
        data = load_json(request.body)
        if not isinstance(data, dict):
            raise RequestRejected(400, "telegram: body is not a JSON object")
        update_id = data.get("update_id")
        if not _is_id(update_id):
            raise RequestRejected(400, "telegram: update_id missing or out of range")
        provider_id = str(update_id)
        try:
            if isinstance(message := data.get("message"), dict):
                return self._from_message(provider_id, message)
            if isinstance(query := data.get("callback_query"), dict):
                return self._from_callback_query(provider_id, query)
            if isinstance(member := data.get("my_chat_member"), dict):
                return self._from_my_chat_member(provider_id, member)
        except _Malformed as exc:
            # A verified request comes from Telegram: rejecting it would make Telegram resend it
            # and hold back every later update, so an unexpected shape is logged and skipped.
            _LOG.warning("telegram: skipping update %s: %s", provider_id, exc)
        return []

    async def send(self, message: OutboundMessage) -> SendResult:
        """Acknowledge a pressed button (if any), then send the text with its buttons.

        Texts over Telegram's limit go out as several messages, the buttons under the last; a
        retry after a failure part-way repeats the parts already sent."""
        if self._closed:
            raise SendError("telegram: channel is closed", retryable=True, code="closed")
        chat_id = _chat_id(message.address)
        query_id = message.extras.get("callback_query_id")
        # Everything that can be wrong with the message is checked before the first API call.
        chunks = _split_text(_with_numbered(message)) if message.text.strip() else []
        markup = _markup(message.buttons)
        if not chunks and not query_id:
            raise SendError("telegram: nothing to send", retryable=False, code="empty")
        try:
            if query_id:
                await self._acknowledge(chat_id, message.extras)
            sent = None
            for i, chunk in enumerate(chunks):
                sent = await self._call(
                    "sendMessage",
                    chat_id=chat_id,
                    text=chunk,
                    reply_markup=markup if i == len(chunks) - 1 else None,
                )
        except TelegramError as exc:
            raise self._send_error(exc) from None
        if sent is not None:
            return SendResult(provider_id=_message_id(sent))
        # An acknowledgement sends no message of its own: the edited question already has its
        # provider id, so the callback query id (unique per press) names this one.
        return SendResult(provider_id=f"callback:{query_id}")

    async def _call(self, method: str, **params: Any) -> Any:
        """One Bot API call on the request pool, with PTB's parameter encoding and error mapping
        but the result left as JSON: building PTB's Message objects (`Bot.send_message`) cost a
        third of each send's time, for the two ids we keep."""
        data = RequestData(
            [RequestParameter.from_input(k, v) for k, v in params.items() if v is not None]
        )
        return await self._request.post(f"{self._api_url}/{method}", request_data=data)

    async def set_webhook(self, url: str) -> None:
        """Point Telegram at our webhook URL, with our secret token and the updates we parse."""
        try:
            await self._bot.set_webhook(
                url=url,
                secret_token=self._settings.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
        except TelegramError as exc:
            raise self._send_error(exc) from None

    async def get_me(self) -> dict[str, Any]:
        """The bot's own User object; a cheap check that the token works."""
        try:
            me = await self._bot.get_me()
        except TelegramError as exc:
            raise self._send_error(exc) from None
        return me.to_dict()

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._closed:
            return
        self._closed = True
        await self._request.shutdown()
        for logger_name in _LIBRARY_LOGGERS:
            logging.getLogger(logger_name).removeFilter(self._redactor)

    async def _acknowledge(self, chat_id: int | str, extras: Mapping[str, Any]) -> int | None:
        """Stop the button's spinner and show the chosen answer under the question.

        Both calls are cosmetic: a BadRequest (query too old, message not modified or too old to
        edit) is logged and ignored so the next question still goes out. Returns the edited
        message id, if edited."""
        try:
            # A press that no longer applies says so ("already answered") in a small toast.
            toast = extras.get("ack_text")
            await self._bot.answer_callback_query(
                str(extras["callback_query_id"]), text=str(toast)[:200] if toast else None
            )
        except BadRequest as exc:
            _LOG.info("telegram: callback query not answered: %s", self._redact(exc.message))
        edit_id = extras.get("edit_message_id")
        edit_text = extras.get("edit_text")
        if edit_id is None or not edit_text:
            return None
        try:
            # Without reply_markup the edit also removes the inline keyboard.
            await self._bot.edit_message_text(
                text=str(edit_text), chat_id=chat_id, message_id=int(edit_id)
            )
        except BadRequest as exc:
            _LOG.info("telegram: question not edited: %s", self._redact(exc.message))
        return int(edit_id)

    def _send_error(self, exc: TelegramError) -> SendError:
        reason = self._redact(f"telegram: {type(exc).__name__}: {exc.message}")
        if isinstance(exc, Forbidden):
            # Blocked by the user, account deleted, or never started: stop sending either way.
            return SendError(reason, retryable=False, opted_out=True, code="forbidden")
        if isinstance(exc, RetryAfter):
            return SendError(
                reason, retryable=True, retry_after=_retry_after(exc), code="rate_limited"
            )
        if isinstance(exc, InvalidToken):
            return SendError(reason, retryable=False, code="invalid_token")
        if isinstance(exc, BadRequest):  # a NetworkError subclass, so it must come first
            return SendError(reason, retryable=False, code="bad_request")
        if isinstance(exc, TimedOut):
            return SendError(reason, retryable=True, code="timeout")
        if isinstance(exc, NetworkError):
            return SendError(reason, retryable=True, code="network")
        if isinstance(exc, ChatMigrated):
            return SendError(reason, retryable=False, code="chat_migrated")
        return SendError(reason, retryable=True, code="telegram_error")

    def _redact(self, text: str) -> str:
        return text.replace(self._settings.bot_token, _REDACTED)

    def _from_message(self, provider_id: str, message: Mapping[str, Any]) -> list[InboundMessage]:
        chat_id = _private_chat_id(message)
        if chat_id is None:
            return []
        raw = message.get("text")
        if not isinstance(raw, str):
            caption = message.get("caption")  # photos and documents with a caption
            raw = caption if isinstance(caption, str) else ""  # stickers, voice, ...
        text = _clean(raw)
        start_token = None
        words = text.split(maxsplit=1)
        if words and words[0].split("@", 1)[0].lower() == "/start":
            argument = words[1].strip() if len(words) > 1 else ""
            start_token = argument if _START_TOKEN_RE.fullmatch(argument) else None
            text = "/start"
        return [
            InboundMessage(
                channel=self.name,
                provider_id=provider_id,
                address=str(chat_id),
                text=text,
                received_at=_date(message.get("date")) or self._clock(),
                start_token=start_token,
            )
        ]

    def _from_callback_query(
        self, provider_id: str, query: Mapping[str, Any]
    ) -> list[InboundMessage]:
        query_id = query.get("id")
        data = query.get("data")
        if not isinstance(query_id, str) or not isinstance(data, str):
            return []  # game callbacks carry no data
        if not _CALLBACK_RE.fullmatch(data) or not _CALLBACK_RE.fullmatch(query_id):
            raise _Malformed("callback data or id is not one of ours")
        message = query.get("message")
        if isinstance(message, dict):
            chat_id = _private_chat_id(message)
            if chat_id is None:
                return []
            message_id = message.get("message_id") if _is_id(message.get("message_id")) else None
            # An "inaccessible" (too old) message has date 0 and no text.
            text = message.get("text")
            message_text = _clean(text)[:TEXT_MAX_UTF16] if isinstance(text, str) else None
        else:
            # Only inline-mode messages lack `message`; a private chat id is the user id.
            sender = query.get("from")
            chat_id = sender.get("id") if isinstance(sender, dict) else None
            if not _is_id(chat_id):
                raise _Malformed("callback_query without message or from.id")
            message_id, message_text = None, None
        return [
            InboundMessage(
                channel=self.name,
                provider_id=provider_id,
                address=str(chat_id),
                text="",
                # The update carries no press time; message.date is when the question was sent.
                received_at=self._clock(),
                payload=data,
                extras={
                    "callback_query_id": query_id,
                    "message_id": message_id,
                    "message_text": message_text,
                },
            )
        ]

    def _from_my_chat_member(
        self, provider_id: str, member: Mapping[str, Any]
    ) -> list[InboundMessage]:
        """Blocking the bot is reported as the bot being "kicked" from the private chat.

        It becomes an opt-out like Twilio's STOP; unblocking ("kicked" -> "member") opts back in."""
        chat_id = _private_chat_id(member)
        if chat_id is None:
            return []
        old = _status(member.get("old_chat_member"))
        new = _status(member.get("new_chat_member"))
        if new == "kicked":
            opt_out = True
        elif old == "kicked" and new == "member":
            opt_out = False
        else:
            return []
        return [
            InboundMessage(
                channel=self.name,
                provider_id=provider_id,
                address=str(chat_id),
                text="",
                received_at=_date(member.get("date")) or self._clock(),
                opt_out=opt_out,
            )
        ]


def keyboard_rows(buttons: Sequence[Button]) -> list[list[Button]]:
    """Lay buttons out in rows: short labels side by side, long ones one per row.

    Consecutive symbol labels (smileys, scale steps) and consecutive word labels form separate
    runs, so a smiley scale stays on one row and a trailing "Hoppa över" gets its own. Within a
    run the longest label decides how many fit a row; rows are balanced (7: 4 + 3, not 5 + 2)."""
    runs: list[list[Button]] = []
    for button in buttons:
        if runs and _is_words(runs[-1][-1].label) == _is_words(button.label):
            runs[-1].append(button)
        else:
            runs.append([button])
    rows: list[list[Button]] = []
    for run in runs:
        longest = max(len(b.label.strip()) for b in run)
        rows.extend(_balanced(run, _per_row(longest)))
    return rows


def _is_words(label: str) -> bool:
    return any(c.isalpha() for c in label)


def _per_row(length: int) -> int:
    if length <= 4:
        return 5
    if length <= 10:
        return 3
    if length <= 16:
        return 2
    return 1


def _balanced(buttons: list[Button], per_row: int) -> list[list[Button]]:
    row_count = -(-len(buttons) // per_row)
    size, extra = divmod(len(buttons), row_count)
    rows: list[list[Button]] = []
    start = 0
    for i in range(row_count):
        end = start + size + (1 if i < extra else 0)
        rows.append(buttons[start:end])
        start = end
    return rows


def _markup(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    for button in buttons:
        size = len(button.payload.encode())
        if not 1 <= size <= CALLBACK_DATA_MAX_BYTES:
            # Truncating would make the pressed button mean something else, or nothing.
            raise SendError(
                f"telegram: button payload is {size} bytes, Telegram allows 1-"
                f"{CALLBACK_DATA_MAX_BYTES}: {button.payload[:80]!r}",
                retryable=False,
                code="payload_too_long",
            )
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(b.label.strip() or b.payload, callback_data=b.payload)
                for b in row
            ]
            for row in keyboard_rows(buttons)
        ]
    )


def _with_numbered(message: OutboundMessage) -> str:
    """Multiple choice: each button picks one choice; several are typed as numbers ("1 3").

    The engine's text asks for the numbers, so the numbered list must be visible; it is appended
    unless the text already has it."""
    text = message.text
    if not message.multiple or not message.numbered:
        return text
    if f"1. {message.numbered[0]}" in text:
        return text
    lines = "\n".join(f"{i}. {label}" for i, label in enumerate(message.numbered, start=1))
    return f"{text.rstrip()}\n\n{lines}"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _split_text(text: str, limit: int = TEXT_MAX_UTF16) -> list[str]:
    """Telegram's 4096-character limit counts UTF-16 code units; split long texts at newlines."""
    chunks: list[str] = []
    rest = text
    while _utf16_len(rest) > limit:
        cut = 0
        units = 0
        for char in rest:
            units += 2 if ord(char) > 0xFFFF else 1
            if units > limit:
                break
            cut += 1
        newline = rest.rfind("\n", 0, cut)
        if newline > 0:
            cut = newline
        chunks.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    if rest.strip():
        chunks.append(rest)
    return chunks


def _clean(text: str) -> str:
    """Newlines normalized, control characters (NUL breaks PostgreSQL text) removed, unpaired
    surrogates (which no database encodes) replaced."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    return text.encode("utf-8", "replace").decode("utf-8")


def _chat_id(address: str) -> int | str:
    if _CHAT_ID_RE.fullmatch(address):
        return int(address)
    # The address itself stays out of the reason: it is stored and logged.
    raise SendError("telegram: the address is not a chat id", retryable=False, code="bad_address")


def _private_chat_id(container: Mapping[str, Any]) -> int | None:
    chat = container.get("chat")
    if not isinstance(chat, dict) or not _is_id(chat.get("id")):
        raise _Malformed("chat.id missing or out of range")
    if chat.get("type") != "private":
        return None
    chat_id: int = chat["id"]
    return chat_id


def _is_id(value: Any) -> bool:
    """A Telegram id: an integer that fits 64 bits (Telegram's own ids fit 52)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _status(member: Any) -> str | None:
    if isinstance(member, dict) and isinstance(member.get("status"), str):
        status: str = member["status"]
        return status
    return None


def _date(value: Any) -> datetime | None:
    """A Unix time Telegram sent; None for one no datetime can hold (10**19, negative)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _MAX_UNIX_TIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def _message_id(sent: Any) -> str:
    """ "chat:message" from a Message the Bot API returned."""
    try:
        return f"{int(sent['chat']['id'])}:{int(sent['message_id'])}"
    except (TypeError, KeyError, ValueError):
        raise TelegramError("telegram: sendMessage returned no message") from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _retry_after(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # Reading it as int is deprecated in PTB 22.2+; we accept either representation.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _Malformed(Exception):
    pass


class _RedactSecret(logging.Filter):
    """Replaces the bot token in library log records (it is part of every Bot API URL)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call must not break the API call that made it
            return True
        if self._secret in message:
            record.msg = message.replace(self._secret, _REDACTED)
            record.args = None
        if record.exc_info and not record.exc_text:
            formatted = logging.Formatter().formatException(record.exc_info)
            if self._secret in formatted:
                record.exc_text = formatted.replace(self._secret, _REDACTED)
        return True
