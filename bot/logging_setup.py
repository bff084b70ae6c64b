"""How the service logs: our own lines at INFO, provider libraries at WARNING, and a redaction
filter on the root handlers as a last guard against personal data in a log line.

Our own code never logs a phone number, chat id, token or message text; it logs ids (outbox
ids, provider message ids) instead. Libraries are another matter: the Twilio client logs each
request's query (`To=+46...`) at INFO, httpx logs every Telegram URL (with the bot token) at
INFO. Those loggers are held at WARNING, and whatever still gets through is redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

PROVIDER_LOGGERS: Final = (
    "twilio",  # twilio.http_client, twilio.async_http_client: request URLs and query params
    "httpx",  # every Telegram Bot API URL, which holds the bot token
    "httpcore",
    "telegram",  # python-telegram-bot: base URLs, request payloads at DEBUG
    "aiohttp.access",  # request paths, e.g. /chat/<token>
    "aiohttp.client",
    "apscheduler",
    "hpack",
    "aiosqlite",  # every statement with its parameters (numbers, texts) at DEBUG
    "sqlalchemy",  # the same when an engine echoes
    "asyncpg",
)
"""Loggers of the libraries that talk to providers, to the person's browser or to the
database: each may put an address or a text in a line."""

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Telegram bot token: <bot id>:<35 characters>.
    (re.compile(r"(?<![0-9])[0-9]{5,12}:[A-Za-z0-9_-]{30,}"), "<bot-token>"),
    # Bearer tokens (staff API), Basic credentials (Twilio), the Telegram webhook secret header.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 <token>"),
    (
        re.compile(r"(?i)(x-telegram-bot-api-secret-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
        r"\1<secret>",
    ),
    # Web chat links and start tokens: /chat/<token>, "/start <token>", ?start=<token>.
    (re.compile(r"(/chat/)[A-Za-z0-9_-]{16,64}"), r"\1<token>"),
    (re.compile(r"(?i)(/start[ =]|[?&]start=)[A-Za-z0-9_-]{8,64}"), r"\1<token>"),
    # Telegram chat ids in the fields that carry them.
    (
        re.compile(r"""(?i)(["']?chat_?id["']?\s*[:=]\s*["']?)-?[0-9]{3,20}"""),
        r"\1<chat-id>",
    ),
    (
        re.compile(r"""(?i)(["']chat["']\s*:\s*\{[^{}]{0,200}?["']id["']\s*:\s*)-?[0-9]{3,20}"""),
        r"\1<chat-id>",
    ),
    # Phone numbers: E.164 (also URL-encoded, %2B46...), 0046..., and Swedish national
    # mobile/landline forms such as 070-123 45 67, 0701234567, 08-123 456 78.
    (re.compile(r"(?:\+|%2[Bb]|\b00)[1-9][0-9][0-9 ()-]{5,16}[0-9]\b"), "<phone>"),
    (
        re.compile(r"(?<![\w.:/-])0[1-9][0-9]{0,2}[- ]?(?:[0-9][ -]?){5,7}[0-9]\b"),
        "<phone>",
    ),
    (re.compile(r"(?<![\w.:/-])46[1-9][0-9]{7,9}\b"), "<phone>"),
)


def redact(text: str) -> str:
    """`text` with phone numbers, Telegram chat ids, bot tokens and chat tokens replaced."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) through `redact`; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message, traceback and stack in place; always keeps the record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken log call must not break the code that made it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def quiet_provider_loggers() -> None:
    """Hold the provider libraries' loggers at WARNING."""
    for name in PROVIDER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def provider_loggers_quiet() -> Iterator[None]:
    """`quiet_provider_loggers` for a while (tests), then the levels as they were."""
    before = {name: logging.getLogger(name).level for name in PROVIDER_LOGGERS}
    quiet_provider_loggers()
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one RedactingFilter on each handler of `logger` (default: root); idempotent."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        existing = next((f for f in handler.filters if isinstance(f, RedactingFilter)), None)
        if existing is None:
            handler.addFilter(RedactingFilter())
    return next(
        (f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)),
        RedactingFilter(),
    )


def setup_logging(verbose: bool = False) -> None:
    """The service's logging: a stderr handler on root, provider libraries at WARNING, and the
    redaction filter on every root handler."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    quiet_provider_loggers()
    install_redaction()
