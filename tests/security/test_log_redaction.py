"""The redaction filter, the last guard on the root handlers: what it removes and what it keeps."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from bot.logging_setup import PROVIDER_LOGGERS, RedactingFilter, install_redaction, redact

PHONE = "+46701234567"
BOT_TOKEN = "123456789:AAHfakeTokenForTests_only-0123456789abc"
CHAT_TOKEN = "k3Jx9_Qw-8ZtP0aLmN4rVb"

REDACTED: list[tuple[str, str]] = [
    (f"POST Request: https://api.twilio.com/Messages.json?To={PHONE}", PHONE),
    ("To=%2B46701234567&Body=hej", "46701234567"),
    ("sending to +46 70 123 45 67 now", "70 123 45 67"),
    ("number 0046701234567", "46701234567"),
    ("ring 070-123 45 67", "123 45 67"),
    ("ring 0701234567", "0701234567"),
    ("Stockholm 08-123 456 78", "123 456 78"),
    ("sms from 46701234567", "46701234567"),
    (f"GET https://api.telegram.org/bot{BOT_TOKEN}/sendMessage", BOT_TOKEN),
    ("{'chat_id': 424242, 'text': 'hi'}", "424242"),
    ('{"chat": {"id": 424242, "type": "private"}}', "424242"),
    ("chat_id=-1001234567890", "1001234567890"),
    (f"GET /chat/{CHAT_TOKEN}/messages", CHAT_TOKEN),
    (f"/start {CHAT_TOKEN}", CHAT_TOKEN),
    ("Authorization: Bearer staff-token-0123456789abcdef", "staff-token-0123456789abcdef"),
    ("Authorization: Basic QUMxMjM6c2VjcmV0c2VjcmV0", "QUMxMjM6c2VjcmV0c2VjcmV0"),
    ("X-Telegram-Bot-Api-Secret-Token: s3cr3t-webhook_value", "s3cr3t-webhook_value"),
]

KEPT = [
    "outbox message 4711 sent on sms",
    "refused sms webhook: HTTP 403 (provider id SM0123456789abcdef0123456789abcdef)",
    "2026-03-02 10:00:00,123 INFO bot.outbox.dispatcher: 12 sent",
    "campaign 3 closed at 2026-03-02T10:00:00+00:00",
    "twilio send failed: HTTP 500, Twilio code 20500",
]


@pytest.mark.parametrize(("line", "secret"), REDACTED)
def test_personal_data_is_redacted(line: str, secret: str) -> None:
    assert secret not in redact(line)


@pytest.mark.parametrize("line", KEPT)
def test_operational_lines_are_kept(line: str) -> None:
    assert redact(line) == line


def test_the_filter_rewrites_messages_arguments_and_tracebacks() -> None:
    logger = logging.getLogger("tests.redaction")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_redaction(logger)
        install_redaction(logger)
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("reply to %s failed", PHONE)
        try:
            raise ValueError(f"bad number {PHONE}")
        except ValueError:
            logger.exception("while sending")
    finally:
        logger.removeHandler(handler)
    assert PHONE not in records[0].getMessage()
    assert records[1].exc_text and PHONE not in records[1].exc_text


def test_the_service_logging_setup_quiets_providers_and_redacts() -> None:
    script = textwrap.dedent(
        f"""
        import logging
        from bot.logging_setup import setup_logging
        setup_logging()
        logging.getLogger("twilio.async_http_client").info("Query Params: To={PHONE}")
        logging.getLogger("httpx").info("HTTP Request: POST /bot{BOT_TOKEN}/sendMessage")
        logging.getLogger("aiosqlite").debug("executing ('{PHONE}',)")
        logging.getLogger("bot.x").warning("fell through to {PHONE} in chat_id=424242")
        logging.getLogger("bot.x").info("an ordinary line")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "an ordinary line" in done.stderr
    assert "fell through to <phone>" in done.stderr and "424242" not in done.stderr
    assert PHONE not in done.stderr and BOT_TOKEN not in done.stderr
    assert "Query Params" not in done.stderr and "HTTP Request" not in done.stderr


def test_every_provider_logger_is_named() -> None:
    assert {"twilio", "httpx", "telegram", "aiosqlite"} <= set(PROVIDER_LOGGERS)


def test_the_e2e_log_check_finds_what_leaks() -> None:
    from tests.security.logcheck import leaks

    assert leaks("INFO bot.x: 12 sent", {"424242", "Väntetiden var lång"}) == []
    assert leaks("DEBUG aiosqlite: ('+46701234567',)", set()) == ["+46701234567"]
    assert leaks("INFO x: to 0701234567", set()) == ["0701234567"]
    assert leaks("INFO x: chat 424242 said Väntetiden var lång", {"424242", "Väntetiden var lång"})
    assert leaks("GET /bot123456789:AAHfakeTokenForTests_only-0123456789abc/x", set())
