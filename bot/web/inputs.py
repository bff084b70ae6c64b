"""Reading what the public sends, safely: bounded bodies, strict UTF-8 forms, bounded JSON, and
numbers that fit. Every helper answers bad input with RequestRejected (a 4xx), never an error
that would become a 500."""

from __future__ import annotations

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
