"""Real Twilio webhook form posts and what TwilioChannel must make of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from bot.channels.base import InboundMessage, StatusUpdate
from bot.channels.twilio.channel import IGNORED_NOT_A_NUMBER, IGNORED_WHATSAPP

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
SERVICE_SID = "MG" + "fedcba9876543210" * 2
OUR_NUMBER = "+46766861004"
RESPONDENT = "+46701740605"
INBOUND_URL = "https://brukardialog.example.se/twilio/sms"
STATUS_URL = "https://brukardialog.example.se/twilio/status?tenant=malmo"
NOW = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


def sid(n: int, prefix: str = "SM") -> str:
    """A stable Twilio-shaped sid for case n."""
    return prefix + f"{n:032x}"


def inbound_form(
    n: int, body: str | None, *, drop: tuple[str, ...] = (), **extra: str
) -> dict[str, str]:
    """Every field Twilio posts for an inbound SMS to a Swedish number through a service."""
    form = {
        "ToCountry": "SE",
        "ToState": "",
        "SmsMessageSid": sid(n),
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid(n),
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body if body is not None else "",
        "FromCountry": "SE",
        "To": OUR_NUMBER,
        "MessagingServiceSid": SERVICE_SID,
        "ToZip": "",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid(n),
        "AccountSid": ACCOUNT_SID,
        "From": RESPONDENT,
        "ApiVersion": "2010-04-01",
    }
    if body is None:
        del form["Body"]
    form.update(extra)
    for name in drop:
        form.pop(name, None)
    return form


def status_form(n: int, status: str, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """Every field Twilio posts to a StatusCallback for an outbound SMS."""
    form = {
        "SmsSid": sid(n),
        "SmsStatus": status,
        "MessageStatus": status,
        "To": RESPONDENT,
        "MessagingServiceSid": SERVICE_SID,
        "MessageSid": sid(n),
        "AccountSid": ACCOUNT_SID,
        "From": OUR_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    if status in {"sent", "delivered", "undelivered", "read"}:
        form["RawDlrDoneDate"] = "2503040930"
    form.update(extra)
    for name in drop:
        form.pop(name, None)
    return form


def message(
    n: int,
    text: str,
    *,
    opt_out: bool | None = None,
    address: str = RESPONDENT,
    extras: dict[str, object] | None = None,
) -> InboundMessage:
    """The InboundMessage case n must parse to."""
    return InboundMessage(
        channel="sms",
        provider_id=sid(n),
        address=address,
        text=text,
        received_at=NOW,
        opt_out=opt_out,
        extras=extras if extras is not None else {"to": OUR_NUMBER},
    )


def ignored(
    n: int, text: str, reason: str, *, extras: dict[str, object] | None = None
) -> InboundMessage:
    """The InboundMessage of case n from a sender we never answer: no address, a reason."""
    return InboundMessage(
        channel="sms",
        provider_id=sid(n),
        address="",
        text=text,
        received_at=NOW,
        extras=extras if extras is not None else {"to": OUR_NUMBER},
        ignore=reason,
    )


@dataclass(frozen=True, slots=True)
class Case:
    """One webhook request and the expected outcome of parse (or parse_status)."""

    label: str
    form: dict[str, str]
    expect: list[InboundMessage] | StatusUpdate | int | None
    """Messages, a status update (None: acknowledged, not applied), or the RequestRejected
    HTTP status."""
    kind: Literal["message", "status"] = "message"
    content_type: str = FORM
    url: str = INBOUND_URL
    tamper: tuple[str, str] = field(default=("Body", "Tampered"))
    """A field an attacker rewrites after signing; the signature must then fail."""


LONG_BODY = ("Jag tycker att bemötandet var bra men väntetiden var för lång. " * 26)[:1600]
EMOJI = "Mycket bra 👍🏽 tack! 🇸🇪"
ARABIC = "الخدمة كانت جيدة جداً، شكراً لكم"
CONTROL = "rad ett\r\nrad två\ttabb\x00nul\x1bescape\u200f"

MESSAGE_CASES: list[Case] = [
    Case("plain text", inbound_form(1, "3"), [message(1, "3")]),
    Case(
        "swedish letters",
        inbound_form(2, "Åsa, Örjan och Ärla"),
        [message(2, "Åsa, Örjan och Ärla")],
    ),
    Case("emoji", inbound_form(3, EMOJI, NumSegments="1"), [message(3, EMOJI)]),
    Case("arabic rtl", inbound_form(4, ARABIC), [message(4, ARABIC)]),
    Case(
        "1,600 characters",
        inbound_form(5, LONG_BODY, NumSegments="11"),
        [message(5, LONG_BODY)],
    ),
    Case("control characters", inbound_form(6, CONTROL), [message(6, CONTROL)]),
    Case(
        "empty body with media",
        inbound_form(
            7,
            "",
            SmsMessageSid=sid(7, "MM"),
            SmsSid=sid(7, "MM"),
            MessageSid=sid(7, "MM"),
            NumMedia="1",
            MediaContentType0="image/jpeg",
            MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/"
            f"{sid(7, 'MM')}/Media/{sid(7, 'ME')}",
        ),
        [
            InboundMessage(
                channel="sms",
                provider_id=sid(7, "MM"),
                address=RESPONDENT,
                text="",
                received_at=NOW,
                extras={"to": OUR_NUMBER, "num_media": 1},
            )
        ],
        tamper=("MediaUrl0", "https://evil.example/x.jpg"),
    ),
    Case(
        "OptOutType STOP",
        inbound_form(8, "STOP", OptOutType="STOP"),
        [message(8, "STOP", opt_out=True)],
    ),
    Case(
        "OptOutType START",
        inbound_form(9, "START", OptOutType="START"),
        [message(9, "START", opt_out=False)],
    ),
    Case(
        "OptOutType HELP is no opt-out signal",
        inbound_form(10, "HELP", OptOutType="HELP"),
        [message(10, "HELP")],
    ),
    Case(
        "national From normalised to E.164",
        inbound_form(11, "ja", From="070-174 06 05"),
        [message(11, "ja")],
    ),
    Case(
        "legacy post with SmsSid only",
        inbound_form(12, "nej", drop=("MessageSid", "SmsMessageSid")),
        [message(12, "nej")],
    ),
    Case(
        "missing MessageSid",
        inbound_form(13, "hej", drop=("MessageSid", "SmsSid", "SmsMessageSid")),
        400,
    ),
    Case(
        "missing From", inbound_form(14, "hej", drop=("From",)), 400, tamper=("To", "+46700000000")
    ),
    Case("missing Body is an empty message", inbound_form(15, None), [message(15, "")]),
    Case(
        "picture without text: no Body, media counted",
        inbound_form(
            19,
            None,
            SmsMessageSid=sid(19, "MM"),
            SmsSid=sid(19, "MM"),
            MessageSid=sid(19, "MM"),
            NumMedia="1",
            MediaContentType0="image/jpeg",
            MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/"
            f"{sid(19, 'MM')}/Media/{sid(19, 'ME')}",
        ),
        [
            InboundMessage(
                channel="sms",
                provider_id=sid(19, "MM"),
                address=RESPONDENT,
                text="",
                received_at=NOW,
                extras={"to": OUR_NUMBER, "num_media": 1},
            )
        ],
        tamper=("NumMedia", "2"),
    ),
    Case(
        "From is not a phone number: recorded and ignored",
        inbound_form(16, "hej", From="not-a-number"),
        [ignored(16, "hej", IGNORED_NOT_A_NUMBER)],
    ),
    Case(
        "made-up sender is never turned into a number",
        inbound_form(20, "MENY", From="whatsapp:US.1234"),
        [ignored(20, "MENY", IGNORED_WHATSAPP)],
    ),
    Case(
        "WhatsApp sender is not merged into SMS",
        inbound_form(21, "ja", From=f"whatsapp:{RESPONDENT}", To="whatsapp:+14155238886"),
        [ignored(21, "ja", IGNORED_WHATSAPP, extras={})],
    ),
    Case(
        "short code sender",
        inbound_form(22, "hej", From="72345"),
        [ignored(22, "hej", IGNORED_NOT_A_NUMBER)],
    ),
    Case(
        "too short to be a number",
        inbound_form(23, "hej", From="+4612"),
        [ignored(23, "hej", IGNORED_NOT_A_NUMBER)],
    ),
    Case(
        "STOP from an ignored sender is no opt-out",
        inbound_form(24, "STOP", From="whatsapp:+46701740605", OptOutType="STOP"),
        [ignored(24, "STOP", IGNORED_WHATSAPP)],
    ),
    Case(
        "unreadable NumMedia costs nothing",
        inbound_form(25, "ja", NumMedia="lots"),
        [message(25, "ja")],
        tamper=("NumMedia", "1"),
    ),
    Case("wrong content type", inbound_form(17, "hej"), 415, content_type="application/json"),
    Case(
        "content type with charset",
        inbound_form(18, "hej"),
        [message(18, "hej")],
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    ),
]


NEUTRAL_STATUS = {
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
"""Written out, not derived from STATUS_MAP, so a changed mapping fails a case."""


def _status_case(n: int, twilio_status: str) -> Case:
    return Case(
        f"status {twilio_status}",
        status_form(n, twilio_status),
        StatusUpdate(channel="sms", provider_id=sid(n), status=NEUTRAL_STATUS[twilio_status]),
        kind="status",
        url=STATUS_URL,
        tamper=("MessageStatus", "delivered" if twilio_status != "delivered" else "failed"),
    )


STATUS_CASES: list[Case] = [
    *(_status_case(100 + i, s) for i, s in enumerate(NEUTRAL_STATUS)),
    Case(
        "undelivered 21610 means opted out",
        status_form(200, "undelivered", ErrorCode="21610"),
        StatusUpdate(
            channel="sms",
            provider_id=sid(200),
            status="undelivered",
            error_code="21610",
            error="21610: the recipient replied STOP (unsubscribed)",
            opted_out=True,
        ),
        kind="status",
        url=STATUS_URL,
        tamper=("ErrorCode", "30003"),
    ),
    Case(
        "undelivered 30003 is not an opt-out",
        status_form(201, "undelivered", ErrorCode="30003"),
        StatusUpdate(
            channel="sms",
            provider_id=sid(201),
            status="undelivered",
            error_code="30003",
            error="30003: unreachable handset",
        ),
        kind="status",
        url=STATUS_URL,
        tamper=("ErrorCode", "21610"),
    ),
    Case(
        "failed with error message",
        status_form(202, "failed", ErrorCode="30008", ErrorMessage="Unknown error"),
        StatusUpdate(
            channel="sms",
            provider_id=sid(202),
            status="failed",
            error_code="30008",
            error="30008: Unknown error",
        ),
        kind="status",
        url=STATUS_URL,
        tamper=("ErrorMessage", "ok"),
    ),
    Case(
        "a status we do not know is acknowledged",
        status_form(203, "teleported"),
        None,
        kind="status",
        url=STATUS_URL,
        tamper=("To", "+46700000000"),
    ),
    Case(
        "documented partially_delivered is acknowledged",
        status_form(207, "partially_delivered"),
        None,
        kind="status",
        url=STATUS_URL,
        tamper=("To", "+46700000000"),
    ),
    Case(
        "missing MessageStatus",
        status_form(204, "sent", drop=("MessageStatus", "SmsStatus")),
        400,
        kind="status",
        url=STATUS_URL,
        tamper=("To", "+46700000000"),
    ),
    Case(
        "status missing MessageSid",
        status_form(205, "sent", drop=("MessageSid", "SmsSid")),
        400,
        kind="status",
        url=STATUS_URL,
        tamper=("To", "+46700000000"),
    ),
    Case(
        "status wrong content type",
        status_form(206, "sent"),
        415,
        kind="status",
        url=STATUS_URL,
        content_type="text/plain",
        tamper=("To", "+46700000000"),
    ),
]

CASES: list[Case] = MESSAGE_CASES + STATUS_CASES
