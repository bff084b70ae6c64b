"""Reading what the public sends, safely: bounded bodies, strict UTF-8 forms, bounded JSON, and
numbers that fit. Every helper answers bad input with RequestRejected (a 4xx), never an error
that would become a 500."""

from __future__ import annotations

import unicodedata
from urllib.parse import parse_qsl

from aiohttp import web

from bot.channels.base import RequestRejected


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or RequestRejected(413) when it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestRejected(413, f"body larger than {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestRejected(413, f"body larger than {limit} bytes") from None
    if len(body) > limit:
        raise RequestRejected(413, f"body larger than {limit} bytes")
    return body


MAX_FORM_FIELDS = 200
"""Twilio posts about 25 fields; more is not a provider."""


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; RequestRejected(400) unless it is UTF-8."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError too
        raise RequestRejected(400, "form body is not UTF-8 url-encoded") from None
    return dict(pairs)


MAX_DB_ID = 2**63 - 1
"""The largest id a BIGINT column holds (SQLite's INTEGER too)."""


def db_id(text: str) -> int | None:
    """A row id from a path or query string: ASCII digits that fit a BIGINT, else None.
    ("²".isdigit() is true and "1" * 30 is a valid int; neither is an id.)"""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_DB_ID else None


def path_text(value: str, limit: int = 200) -> str | None:
    """A name or id from a URL path that a text column can hold: at most `limit` characters,
    no control characters (PostgreSQL refuses NUL) and no unpaired surrogates; else None."""
    if len(value) > limit or any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        return None
    return value
