"""The one Protocol every channel implements, and the neutral messages it translates to and from.

A channel module only translates: provider request -> neutral inbound messages or status updates,
neutral outbound message -> provider call. It never touches the database or the survey engine, and
never imports the web server: requests reach it as `WebRequest` values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from bot.config import Settings
from flows.conversation import Button

_CONTROL = {c: None for c in range(32) if chr(c) not in "\t\n\r"} | {0x7F: None}


def clean_text(text: str) -> str:
    """Text as a person meant it: control characters (NUL breaks PostgreSQL, ESC can drive a
    staff member's terminal) removed; tabs and newlines kept; lone surrogates replaced."""
    cleaned = text.translate(_CONTROL)
    return cleaned.encode("utf-8", "replace").decode("utf-8")


MAX_JSON_DEPTH = 32
"""Nothing we read nests deeper (a Telegram update: 5 levels); deeper is refused, not parsed."""


def load_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH, strict_text: bool = False) -> Any:
    """A JSON body as Python values; RequestRejected(400) for anything else: not UTF-8, not
    JSON, NaN or Infinity, a number of thousands of digits, or nesting deeper than
    `max_depth` (checked without recursion, so no depth can exhaust the stack). With
    `strict_text`, a text holding NUL or an unpaired surrogate (which no database column
    takes) is refused too."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
        raise RequestRejected(400, "body is not valid JSON") from None
    problem = _walk(value, max_depth, strict_text)
    if problem:
        raise RequestRejected(400, problem)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def _walk(value: Any, limit: int, strict_text: bool) -> str | None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return f"JSON nested deeper than {limit} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif strict_text and isinstance(item, str) and not _storable(item):
            return "a text holds a NUL character or an unpaired surrogate"
    return None


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class WebRequest:
    """A provider's HTTP request, as the web layer read it."""

    url: str
    """The public URL the provider called (server.public_url + path + query)."""
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    form: Mapping[str, str] = field(default_factory=dict)
    """Parsed form fields for application/x-www-form-urlencoded bodies."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a person sent, as a channel parsed it from a provider's request."""

    channel: str
    provider_id: str
    """Dedupe key: Twilio MessageSid, Telegram update_id, web chat client message id."""
    address: str
    """The sender as the channel addresses them: E.164 phone, Telegram chat id, web chat token."""
    text: str
    received_at: datetime
    payload: str | None = None
    """A pressed button's payload."""
    opt_out: bool | None = None
    """The provider's own opt-out signal: True = opted out (Twilio STOP), False = opted back in."""
    start_token: str | None = None
    """Telegram deep-link token from `/start TOKEN`."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Channel data the reply needs, e.g. Telegram callback_query_id and message_id."""
    ignore: str | None = None
    """Why this message is recorded and otherwise ignored (never answered), e.g. a sender that
    is not a phone number, or a WhatsApp sender while WhatsApp is not a channel. `address` is
    then empty: there is no one we may answer."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider's delivery report for a message we sent, in the neutral status words."""

    channel: str
    provider_id: str
    status: str
    """Neutral: sent, delivered, read, undelivered, failed."""
    error_code: str | None = None
    error: str | None = None
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """An outbox row ready to send: the text, its buttons or numbered choices, and where to."""

    id: int
    channel: str
    address: str
    text: str
    buttons: tuple[Button, ...] = ()
    numbered: tuple[str, ...] = ()
    multiple: bool = False
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a provider said when it took a message: its id, status and (SMS) cost in segments."""

    provider_id: str
    status: str = "sent"
    segments: int | None = None
    encoding: str | None = None


class SendError(Exception):
    """A send that failed. `retryable` says whether the outbox should try again."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        opted_out: bool = False,
        code: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.opted_out = opted_out
        self.code = code


class RequestRejected(Exception):
    """The request is not acceptable; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Channel(Protocol):
    """What every channel does: check and translate the provider's requests, send, close."""

    name: str

    def verify(self, request: WebRequest) -> bool:
        """True if the request really comes from the provider (signature / secret)."""
        ...

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        """Inbound messages in a verified request; raises RequestRejected on malformed input."""
        ...

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raises SendError."""
        ...

    async def close(self) -> None:
        """Release the channel's HTTP session; called once when the service stops."""
        ...


@runtime_checkable
class Reconciling(Protocol):
    """A channel whose provider can list what it accepted. A send that timed out may still have
    been accepted; before trying such a message again the outbox asks, so the person does not
    get it twice."""

    async def sent_since(self, message: OutboundMessage, since: datetime) -> list[SendResult]:
        """Messages the provider accepted for this recipient with exactly this text, created
        since `since`, newest first; raises SendError when the provider cannot be asked."""
        ...


@runtime_checkable
class ReportsStatus(Protocol):
    """A channel whose provider posts delivery receipts to a status webhook."""

    def parse_status(self, request: WebRequest) -> StatusUpdate | None:
        """The delivery status in a verified status request (None: acknowledged, not mapped);
        raises RequestRejected on malformed input."""
        ...


@dataclass(frozen=True, slots=True)
class Webhook:
    """One route a provider posts to: the app verifies the request with the channel, has it
    parsed and handled, and answers `reply` (body, content type) once that is stored."""

    path: str
    content_type: str
    reply: tuple[str, str]
    status: bool = False
    """Delivery receipts (`ReportsStatus.parse_status`) rather than inbound messages."""
    label: str = ""
    """How the log names it; the channel's name when empty."""


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How fast the outbox may send on a channel."""

    rate: float
    """Messages a second across the channel."""
    per_address: float | None = None
    """Messages a second to one recipient (Telegram: 1 per chat)."""
    concurrency: int = 8
    """Sends in flight at once."""


@dataclass(frozen=True, slots=True)
class Provider:
    """A channel as the service plugs it in: its name, its webhooks, how it is built from the
    settings (None: not configured) and how fast it may send. Registered once in
    `bot.channels.PROVIDERS`."""

    name: str
    webhooks: tuple[Webhook, ...]
    build: Callable[[Settings], Channel | None]
    limits: Callable[[Settings], ChannelLimits]
    sends_over_http: bool = True
    """Its sends are requests to the provider, which the send process can make
    (bot.outbox.sendproc); the web chat's are not."""
