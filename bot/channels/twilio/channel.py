"""SMS over Twilio: signed webhook form posts in, Programmable Messaging REST API out."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus, urlencode, urlparse

import aiohttp
import phonenumbers
from multidict import MultiDict
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator, compare, remove_port
from twilio.rest import Client
from yarl import URL

from bot.channels.base import (
    InboundMessage,
    OutboundMessage,
    RequestRejected,
    SendError,
    SendResult,
    StatusUpdate,
    WebRequest,
)
from bot.clock import Clock, SystemClock
from flows.render import render_text
from flows.segments import segment_info

log = logging.getLogger(__name__)

RECONCILE_LOOKBACK = 20
"""How many of the newest messages to a number are searched for one that timed out."""

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "X-Twilio-Signature"
DEFAULT_REGION = "SE"

STATUS_MAP: dict[str, str] = {
    "queued": "sending",
    "accepted": "sending",
    "scheduled": "sending",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
"""Twilio MessageStatus -> neutral status; "sending" is interim: the SMS is still with Twilio."""

OPTED_OUT_CODE = "21610"
"""Twilio: the recipient replied STOP; nothing more may be sent until they reply START."""
INVALID_NUMBER_CODES = frozenset({"21211", "21614"})
"""Twilio: not a valid phone number / not a mobile number."""

_OPT_OUT_TYPES: dict[str, bool | None] = {"STOP": True, "START": False, "HELP": None}

IGNORED_NOT_A_NUMBER = "sender is not a phone number"
IGNORED_WHATSAPP = "WhatsApp sender; WhatsApp is not a channel here"

ERROR_MEANINGS: dict[str, str] = {
    "21610": "the recipient replied STOP (unsubscribed)",
    "21211": "not a valid phone number",
    "21614": "not a mobile number",
    "30003": "unreachable handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "30008": "unknown error",
}
"""What a delivery failure's ErrorCode means, stored with the message when Twilio sends no
ErrorMessage (it usually does not)."""

_ERROR_CODE = re.compile(r"[0-9A-Za-z]{1,20}")
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
"""Twilio sids are two letters and 32 hex digits; anything of that alphabet and size is kept."""
_PHONE_TEXT = re.compile(r"\+?[0-9][0-9 ()./-]{1,24}")
"""What a phone number can look like before phonenumbers reads it; bounds the work per webhook."""

PROVIDER_LOGGERS = ("twilio", "twilio.http_client", "twilio.async_http_client")
"""The Twilio library logs every request at INFO, phone numbers and texts included."""
_NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def quiet_provider_loggers() -> None:
    """Keep the Twilio library's request logging (numbers, texts) out of the log."""
    for name in PROVIDER_LOGGERS:
        logger = logging.getLogger(name)
        # Children left unset follow their parent; one set lower is raised.
        if "." not in name or logging.NOTSET < logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """Credentials and sender for one Twilio account."""

    account_sid: str
    auth_token: str
    from_number: str | None
    messaging_service_sid: str | None
    api_base_url: str = "https://api.twilio.com"
    status_callback_url: str | None = None
    timeout: float = 15.0

    def __post_init__(self) -> None:
        if not self.account_sid or not self.auth_token:
            raise ValueError("Twilio needs account_sid and auth_token")
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("Twilio needs from_number or messaging_service_sid")
        if self.timeout <= 0:
            raise ValueError("Twilio timeout must be positive")

    def __repr__(self) -> str:
        # The auth token must never reach a log line or a traceback.
        return (
            f"TwilioSettings(account_sid={self.account_sid!r}, auth_token='***', "
            f"from_number={self.from_number!r}, "
            f"messaging_service_sid={self.messaging_service_sid!r}, "
            f"api_base_url={self.api_base_url!r})"
        )


class _SingleAttemptHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """Twilio's async HTTP client with exactly one attempt per request and a real timeout.

    The stock request() hands aiohttp the deprecated `auth=` argument and a bare float timeout
    that defaults to none at all. Retries stay off (no `max_retries`, so no aiohttp-retry
    RetryClient): the library cannot tell whether a failed POST already queued the SMS, so
    retrying belongs to our outbox, which knows."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout, max_retries=None)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - Twilio's HttpClient signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """One HTTP request to the Twilio API."""
        send_headers = dict(headers or {})
        if auth is not None:
            send_headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        self.log_request(
            {"method": method.upper(), "url": url, "params": params, "headers": send_headers}
        )
        async with self.session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=send_headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text()
        self.log_response(response.status, response)
        return TwilioResponse(response.status, text, response.headers)


class TwilioChannel:
    """The SMS channel: Twilio webhooks in, Twilio Messages API out."""

    name: str = "sms"

    def __init__(self, settings: TwilioSettings, *, clock: Clock | None = None) -> None:
        quiet_provider_loggers()
        self._settings = settings
        self._validator = RequestValidator(settings.auth_token)
        self._clock: Clock = clock or SystemClock()
        self._client: Any = None
        self._http: _SingleAttemptHttpClient | None = None
        self._send_session: aiohttp.ClientSession | None = None
        base = settings.api_base_url.rstrip("/")
        # Parsed once: aiohttp would parse the text on every send.
        self._create_url = URL(f"{base}/2010-04-01/Accounts/{settings.account_sid}/Messages.json")
        self._headers = {
            "Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token),
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout)

    def verify(self, request: WebRequest) -> bool:
        """True if X-Twilio-Signature matches the URL and form signed with our auth token."""
        signature = _header(request.headers, SIGNATURE_HEADER)
        if not signature:
            return False
        # A MultiDict: the library reads each value with `getall`, and a plain dict would cost
        # it two caught exceptions per field (it tries getall and getlist first).
        form = MultiDict(request.form)
        # Twilio signs the URL as it was configured, usually without a port; the library checks
        # it with and without one, two HMACs every time. The usual form is tried first, and only
        # a request that fails it (or carries a bodySHA256) gets the library's whole check.
        if "bodySHA256" not in request.url:
            expected = self._validator.compute_signature(remove_port(urlparse(request.url)), form)
            if compare(expected, signature):
                return True
        return bool(self._validator.validate(request.url, form, signature))

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        """The one inbound SMS in a Twilio messaging webhook.

        Twilio leaves `Body` out of a media-only message: that is an empty message (its
        `num_media` kept so staff can see media arrived). A sender that is not a valid phone
        number (a WhatsApp or other channel address, a short code, garbage) is never an address:
        the message is recorded and ignored, with a log line."""
        form = _require_form(request)
        sid = _message_sid(form)
        sender = _require(form, "From")
        extras: dict[str, Any] = {}
        if to := phone_number(form.get("To", "")):
            extras["to"] = to
        if num_media := _count(form.get("NumMedia")):
            # Media URLs are deliberately dropped: surveys take text, and pictures may be personal.
            extras["num_media"] = num_media
        address = phone_number(sender)
        ignore = None
        if address is None:
            ignore = IGNORED_WHATSAPP if _is_whatsapp(sender) else IGNORED_NOT_A_NUMBER
            log.warning("twilio: message %s recorded and ignored: %s", sid, ignore)
        opt_out_type = form.get("OptOutType", "").strip().upper()
        return [
            InboundMessage(
                channel=self.name,
                provider_id=sid,
                address=address or "",
                text=form.get("Body", ""),
                received_at=self._clock.now(),
                opt_out=None if ignore else _OPT_OUT_TYPES.get(opt_out_type),
                extras=extras,
                ignore=ignore,
            )
        ]

    def parse_status(self, request: WebRequest) -> StatusUpdate | None:
        """The delivery status in a Twilio status callback; None for a status we do not map
        (logged, and acknowledged so Twilio does not retry it)."""
        form = _require_form(request)
        sid = _message_sid(form)
        twilio_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip()
        if not twilio_status:
            raise RequestRejected(400, "missing field MessageStatus")
        status = STATUS_MAP.get(twilio_status.lower())
        if status is None:
            log.info(
                "twilio: status %r of message %s is not one we track; acknowledged",
                twilio_status[:40],
                sid,
            )
            return None
        code = form.get("ErrorCode", "").strip()
        error_code = code if _ERROR_CODE.fullmatch(code) else None
        return StatusUpdate(
            channel=self.name,
            provider_id=sid,
            status=status,
            error_code=error_code,
            error=_error_text(error_code, form.get("ErrorMessage")),
            opted_out=error_code == OPTED_OUT_CODE,
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create one Twilio message; raises SendError with retryable set for the outbox.

        The POST the twilio library would make (its form, its error payloads read the way it
        reads them), made here on one kept-alive session: through the library's layers a send
        cost about a third more CPU, on the path every reply takes (bench/inbound.py)."""
        text = render_text(message)
        settings = self._settings
        form = {"To": message.address, "Body": text}
        if settings.messaging_service_sid:
            form["MessagingServiceSid"] = settings.messaging_service_sid
        else:
            form["From"] = settings.from_number or ""
        if settings.status_callback_url:
            form["StatusCallback"] = settings.status_callback_url
        retry_after: float | None = None
        try:
            # The form encoded as aiohttp's FormData would (urlencode, UTF-8), without building one.
            async with self._session().post(
                self._create_url,
                data=urlencode(form, quote_via=_quoted).encode(),
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                body = (await response.read()).decode("utf-8", "replace")
                if status == 429:
                    retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            log.debug("twilio send of outbox message %s timed out", message.id)
            raise SendError(
                f"Twilio did not answer within {settings.timeout:g}s", retryable=True
            ) from None
        except aiohttp.ClientError as exc:
            log.debug("twilio send of outbox message %s failed: %s", message.id, type(exc).__name__)
            raise SendError(f"Twilio unreachable: {type(exc).__name__}", retryable=True) from None
        if not 200 <= status < 300:
            code, reason = api_error(status, body)
            raise _send_error(status, code, reason, retry_after)
        sid = _created_sid(body)
        if sid is None:
            # Created, as the status says, but unreadable: the outbox asks Twilio's list before
            # sending again (sent_since), so a retry never sends it twice.
            raise SendError("Twilio's answer named no message sid", retryable=True)
        info = segment_info(text)
        return SendResult(
            provider_id=sid,
            status="sent",
            segments=info.segments,
            encoding=info.encoding,
        )

    async def sent_since(self, message: OutboundMessage, since: datetime) -> list[SendResult]:
        """Messages Twilio accepted for this number with exactly this text since `since`
        (Twilio's list of the newest messages to the number), newest first."""
        text = render_text(message)
        try:
            records = await self._messages().list_async(
                to=message.address, limit=RECONCILE_LOOKBACK, page_size=RECONCILE_LOOKBACK
            )
        except TwilioRestException as exc:
            raise _send_error(exc.status, exc.code, exc.msg, None) from None
        except TwilioServiceException as exc:
            raise _send_error(exc.status, exc.code, exc.title, None) from None
        except TwilioException as exc:
            # A list page that failed: ("Unable to fetch page", Response).
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(response, "status_code", 500)
            try:
                error = json.loads(getattr(response, "text", "") or "{}")
            except ValueError:
                error = {}
            code = error.get("code") if isinstance(error, dict) else None
            reason = error.get("message") if isinstance(error, dict) else None
            raise _send_error(status, code, str(reason or exc.args[0]), None) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(
                f"cannot ask Twilio what it accepted: {type(exc).__name__}", retryable=True
            ) from None
        info = segment_info(text)
        return [
            SendResult(
                provider_id=str(r.sid),
                status="sent",
                segments=info.segments,
                encoding=info.encoding,
            )
            for r in records
            if str(r.direction or "").startswith("outbound")
            and r.body == text
            and r.date_created is not None
            and r.date_created >= since.replace(microsecond=0)
        ]

    async def close(self) -> None:
        """Close the HTTP sessions."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()
        session, self._send_session = self._send_session, None
        if session is not None:
            await session.close()

    def _session(self) -> aiohttp.ClientSession:
        # Made on first send: aiohttp sessions must be created inside the running loop.
        if self._send_session is None or self._send_session.closed:
            # Twilio's API sets no cookies worth keeping: no jar to read and update per send.
            self._send_session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._send_session

    def _messages(self) -> Any:
        # Built on first send: aiohttp sessions must be created inside the running loop.
        if self._client is None:
            settings = self._settings
            self._http = _SingleAttemptHttpClient(timeout=settings.timeout)
            client = Client(
                username=settings.account_sid,
                password=settings.auth_token,
                account_sid=settings.account_sid,
                http_client=self._http,
            )
            # Our settings decide the host, not TWILIO_EDGE / TWILIO_REGION in the environment.
            client.edge = None
            client.region = None
            client.api.base_url = settings.api_base_url.rstrip("/")
            self._client = client
        return self._client.messages


def _send_error(
    status: int, code: int | str | None, reason: str, retry_after: float | None
) -> SendError:
    code_text = str(code) if code is not None else None
    # Twilio's messages may name the number ("The 'To' number +4670... is not valid"): the
    # reason is stored and logged, so numbers in it are masked.
    reason = _NUMBER.sub("<number>", reason.removeprefix("Unable to create record: "))
    log.debug("twilio send failed: HTTP %s, Twilio code %s", status, code_text)
    if code_text == OPTED_OUT_CODE:
        return SendError(reason, retryable=False, opted_out=True, code=code_text)
    if code_text in INVALID_NUMBER_CODES:
        return SendError(reason, retryable=False, code=code_text)
    if status == 429:
        return SendError(reason, retryable=True, retry_after=retry_after, code=code_text)
    return SendError(reason, retryable=status >= 500, code=code_text)


def api_error(status: int, body: str) -> tuple[int | str, str]:
    """The error code and reason of a failed API call, read as the twilio library reads them
    (`Version.exception`): an RFC 9457 problem (title, detail), the legacy payload (code,
    message), or nothing readable (the HTTP status)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return status, "Unable to create record"
    if all(key in payload for key in ("type", "title", "status", "code")):
        title, detail = str(payload["title"]), payload.get("detail")
        return payload["code"], f"{title}: {detail}" if detail else title
    code = payload.get("code", status)
    return code, str(payload["message"]) if "message" in payload else "Unable to create record"


def _created_sid(body: str) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    sid = payload.get("sid") if isinstance(payload, dict) else None
    return str(sid) if sid else None


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _require_form(request: WebRequest) -> Mapping[str, str]:
    mimetype = request.content_type.split(";", 1)[0].strip().lower()
    if mimetype != FORM_CONTENT_TYPE:
        raise RequestRejected(415, f"expected {FORM_CONTENT_TYPE}, got {mimetype or 'nothing'}")
    return request.form


def _require(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise RequestRejected(400, f"missing field {name}")
    return value


def _message_sid(form: Mapping[str, str]) -> str:
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    if not sid:
        raise RequestRejected(400, "missing field MessageSid")
    if not _SID.fullmatch(sid):
        raise RequestRejected(400, "field MessageSid is not a Twilio message sid")
    return sid


def _count(raw: str | None) -> int:
    """A small count Twilio sends (NumMedia); anything unreadable counts as 0, so a field we only
    show never costs the message."""
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else 0


def _error_text(code: str | None, message: str | None) -> str | None:
    """What is stored with a failed message: Twilio's error code and what it means."""
    message = "".join(c for c in (message or "") if c.isprintable()).strip()[:300] or None
    if code is None:
        return message
    return f"{code}: {message or ERROR_MEANINGS.get(code, 'see twilio.com/docs/errors/' + code)}"


def _is_whatsapp(sender: str) -> bool:
    return sender.strip().lower().startswith("whatsapp:")


@functools.lru_cache(maxsize=4096)
def _quoted(
    value: str, safe: str = "", encoding: str | None = None, errors: str | None = None
) -> str:
    """`quote_plus`, kept for recent values: a survey sends the same questions to everyone, and
    Swedish letters take quoting's slow path."""
    return quote_plus(value, safe, encoding, errors)


def phone_number(text: str) -> str | None:
    """E.164 for a valid, possible phone number as Twilio writes one ("+46701740605", or a
    national "070-174 06 05"); None for anything else: a "whatsapp:" or other channel prefix
    (phonenumbers would read straight through it), a short code, an alphanumeric sender, junk."""
    text = text.strip()
    if not _PHONE_TEXT.fullmatch(text):
        return None
    return _parsed_e164(text)


@functools.lru_cache(maxsize=4096)
def _parsed_e164(number: str) -> str | None:
    """Parsing costs more than the rest of reading a webhook, and the same few numbers (ours,
    and whoever is answering a survey right now) come again and again."""
    try:
        parsed = phonenumbers.parse(number, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed)):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
