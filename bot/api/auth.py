"""Bearer-token authentication for the staff API, and JSON error answers."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from bot.channels.base import RequestRejected, load_json


def staff_actor(request: web.Request, tokens: tuple[str, ...]) -> str:
    """The caller's audit name if their bearer token is one of `tokens`; 401 otherwise.

    Every configured token is compared in constant time, so timing does not tell which one
    nearly matched. The audit name is a short hash of the token, never the token itself."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given.encode(), token.encode())
    if scheme.lower() != "bearer" or not given or not matched:
        raise web.HTTPUnauthorized(
            text='{"error": "a valid bearer token is required"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="brukardialog"'},
        )
    return "api:" + hashlib.sha256(given.encode()).hexdigest()[:8]


def json_error(status: int, message: str, **details: Any) -> web.Response:
    """An error a staff member or integrator can act on; never a traceback."""
    return web.json_response({"error": message, **details}, status=status)


async def json_body(request: web.Request, *, max_bytes: int = 64 * 1024) -> Any:
    """The request's JSON body, or a 400/413/415 answer raised as an HTTP exception."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error": "expected Content-Type: application/json"}',
            content_type="application/json",
        )
    raw = await request.read()
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(raw))
    try:
        return load_json(raw, strict_text=True)
    except RequestRejected as e:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": e.reason}), content_type="application/json"
        ) from None
