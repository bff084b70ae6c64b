"""A fake Twilio REST API on 127.0.0.1 that speaks Twilio's wire format, plus webhook signing."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from flows.segments import segment_info

FAKE_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
FAKE_AUTH_TOKEN = "f4ke-auth-token-" + "9" * 16
API_VERSION = "2010-04-01"

# Twilio's own error codes and messages for the cases the fake answers by itself.
_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}


def twilio_error(code: int, status: int | None = None, **fmt: str) -> dict[str, Any]:
    """Twilio's legacy error JSON: {code, message, more_info, status}."""
    default_status, message = _ERRORS.get(code, (status or 400, "Error"))
    return {
        "code": code,
        "message": message.format(**fmt) if fmt else message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or default_status,
    }


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def signed_form_request(
    url: str, form: Mapping[str, str], auth_token: str
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a webhook form post signed exactly as Twilio signs it."""
    signature = RequestValidator(auth_token).compute_signature(url, dict(form))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return headers, urlencode(dict(form)).encode()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    form: dict[str, str]
    authorized: bool
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """What the fake does with one upcoming send instead of creating a message."""

    status: int | None = None
    code: int | None = None
    retry_after: str | None = None
    hang: bool = False
    """Never answer (until the server closes): the client's timeout must fire."""
    create: bool = False
    """With `hang`: create the message first, as when Twilio accepted it but the answer was
    lost."""


@dataclass(slots=True)
class FakeTwilio:
    """The Messages endpoint of Twilio's REST API, with scriptable failures."""

    account_sid: str = FAKE_ACCOUNT_SID
    auth_token: str = FAKE_AUTH_TOKEN
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Created Message resources by sid, as answered."""
    callbacks: dict[str, str] = field(default_factory=dict)
    """StatusCallback URL by message sid."""
    in_flight: int = 0
    """Sends being answered right now."""
    max_in_flight: int = 0
    """The most sends that were being answered at once."""
    connections: set[tuple[str, int]] = field(default_factory=set)
    """Client (host, port) pairs seen: how many TCP connections the client opened."""
    answer_delay: float = 0.0
    """Seconds to wait, after creating a message, before answering (a slow provider)."""
    _outage: ScriptedReply | None = None
    _held: asyncio.Event | None = None
    _script: deque[ScriptedReply] = field(default_factory=deque)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _base_url: str = ""

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT — pass as TwilioSettings.api_base_url."""
        if not self._base_url:
            raise RuntimeError("FakeTwilio is not started")
        return self._base_url

    @property
    def sends(self) -> list[RecordedRequest]:
        """Requests to create a message, in order."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")
        ]

    def fail_next(
        self,
        status: int,
        code: int | None = None,
        *,
        times: int = 1,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next `times` sends with this HTTP status and Twilio error code."""
        default_code = {401: 20003, 404: 20404, 429: 20429}.get(status, 20500)
        reply = ScriptedReply(status=status, code=code or default_code, retry_after=retry_after)
        self._script.extend([reply] * times)

    def start_outage(self, status: int, *, retry_after: str | None = None) -> None:
        """Answer every send with this HTTP status (and Retry-After) until `end_outage`."""
        default_code = {429: 20429}.get(status, 20500)
        self._outage = ScriptedReply(status=status, code=default_code, retry_after=retry_after)

    def end_outage(self) -> None:
        """Create messages again."""
        self._outage = None

    def hold_answers(self) -> None:
        """Create messages as usual but answer none until `release_answers`."""
        if self._held is None:
            self._held = asyncio.Event()

    def release_answers(self) -> None:
        """Answer the held sends and stop holding."""
        if self._held is not None:
            self._held.set()
            self._held = None

    def hang_next(self, *, times: int = 1) -> None:
        """Leave the next `times` sends unanswered so the client times out."""
        self._script.extend([ScriptedReply(hang=True)] * times)

    def accept_and_hang_next(self) -> None:
        """Create the next message but never answer: the client times out although Twilio has
        the message (and will send it)."""
        self._script.append(ScriptedReply(hang=True, create=True))

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create_message
        )
        app.router.add_get(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._list_messages
        )
        # No access log: list queries carry phone numbers, and tests grep the logs for them.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Release hung requests and stop listening."""
        self._release.set()
        self.release_answers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def post_status_callback(
        self,
        sid: str,
        status: str,
        *,
        error_code: str | None = None,
        url: str | None = None,
    ) -> int:
        """POST a signed status callback for a sent message, as Twilio does; the HTTP status."""
        message = self.messages[sid]
        target = url or self.callbacks.get(sid)
        if target is None:
            raise LookupError(f"message {sid} was sent without a StatusCallback")
        form = {
            "SmsSid": sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": message["to"],
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": message["from"] or "",
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            form["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code:
            form["ErrorCode"] = error_code
        headers, body = signed_form_request(target, form, self.auth_token)
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=body, headers=headers) as response,
        ):
            return response.status

    async def _create_message(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.connections.add((str(peer[0]), int(peer[1])))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer_create(request)
            if response.status == 201:
                if self.answer_delay:
                    await asyncio.sleep(self.answer_delay)
                if self._held is not None:
                    await self._held.wait()
            return response
        finally:
            self.in_flight -= 1

    async def _answer_create(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        authorized = self._authorized(request)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                form=form,
                authorized=authorized,
                headers=dict(request.headers),
            )
        )
        if not authorized:
            return _error(twilio_error(20003))
        if self._script:
            reply = self._script.popleft()
            if reply.hang and reply.create:
                self._store(self._resource(request.match_info["account_sid"], form), form)
            if reply.hang:
                await self._release.wait()
                return _error(twilio_error(20500))
            assert reply.status is not None and reply.code is not None
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return _error(twilio_error(reply.code, reply.status, to=form.get("To", "")), headers)
        if (outage := self._outage) is not None:
            assert outage.status is not None and outage.code is not None
            headers = {"Retry-After": outage.retry_after} if outage.retry_after else {}
            return _error(twilio_error(outage.code, outage.status), headers)
        to = form.get("To", "")
        if not to:
            return _error(twilio_error(21604))
        if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
            return _error(twilio_error(21211, to=to))
        service_sid = form.get("MessagingServiceSid")
        sender = form.get("From")
        if not sender and not service_sid:
            return _error(twilio_error(21603))
        body = form.get("Body")
        if not body and not form.get("MediaUrl"):
            return _error(twilio_error(21602))
        if body and len(body) > 1600:
            return _error(twilio_error(21617))
        resource = self._resource(request.match_info["account_sid"], form)
        self._store(resource, form)
        return web.json_response(resource, status=201)

    def _store(self, resource: dict[str, Any], form: Mapping[str, str]) -> None:
        self.messages[resource["sid"]] = resource
        if form.get("StatusCallback"):
            self.callbacks[resource["sid"]] = form["StatusCallback"]

    async def _list_messages(self, request: web.Request) -> web.Response:
        """GET Messages.json: the account's messages, newest first, filtered by To and From, one
        page of PageSize (Twilio's list format)."""
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                form=dict(request.query),
                authorized=self._authorized(request),
                headers=dict(request.headers),
            )
        )
        if not self._authorized(request):
            return _error(twilio_error(20003))
        query = request.query
        found = [
            m
            for m in reversed(self.messages.values())
            if query.get("To") in (None, m["to"]) and query.get("From") in (None, m["from"])
        ]
        size = int(query.get("PageSize", "50"))
        uri = f"/{API_VERSION}/Accounts/{request.match_info['account_sid']}/Messages.json"
        return web.json_response(
            {
                "messages": found[:size],
                "end": min(size, len(found)) - 1,
                "first_page_uri": f"{uri}?PageSize={size}&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize={size}&Page=0",
            }
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        try:
            auth = aiohttp.BasicAuth.decode(header)
        except ValueError:
            return False
        return (
            auth.login == self.account_sid
            and secrets.compare_digest(auth.password, self.auth_token)
            and request.match_info["account_sid"] == self.account_sid
        )

    def _resource(self, account_sid: str, form: Mapping[str, str]) -> dict[str, Any]:
        sid = new_sid("SM")
        body = form.get("Body", "")
        now = format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=False)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
        # Through a messaging service without From, Twilio picks the sender later: "accepted".
        from_service_only = bool(form.get("MessagingServiceSid")) and not form.get("From")
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(segment_info(body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if from_service_only else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": form["To"],
            "uri": f"{uri}.json",
        }


def _error(payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=int(payload["status"]), headers=headers)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """A started FakeTwilio, stopped after the test (every test gets it from tests/conftest.py)."""
    fake = FakeTwilio()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
