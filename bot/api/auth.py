"""Bearer-token authentication for the staff API, and JSON error answers.

Two kinds of token are taken: those in the configuration (`admin.api_tokens`), compared in
constant time, and those an admin made in the staff web app, found by their SHA-256 (the
database keeps nothing else of them) by `token_middleware` before the handler runs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.channels.base import RequestRejected, load_json
from bot.runtime import RUNTIME
from storage import repo_staff

ACTOR: web.RequestKey[str] = web.RequestKey("api_actor", str)
"""Set by `token_middleware` for a token made in the staff web app: `api:<its name>`."""


def _bearer(request: web.Request) -> str | None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    given = given.strip()
    return given if scheme.lower() == "bearer" and given else None


@web.middleware
async def token_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Find a bearer token made in the staff web app (by its hash, unrevoked); the handler's
    `staff_actor` then takes it. Configured tokens are checked by `staff_actor` itself."""
    given = _bearer(request)
    if given is not None and len(given) <= 200:
        runtime = request.config_dict[RUNTIME]
        if not any(
            hmac.compare_digest(given.encode(), t.encode())
            for t in runtime.settings.admin.api_tokens
        ):
            async with runtime.db.transaction(read_only=True) as s:
                name = await repo_staff.active_token_name(s, repo_staff.token_hash(given))
            if name is not None:
                request[ACTOR] = f"api:{name}"
    return await handler(request)


def staff_actor(request: web.Request, tokens: tuple[str, ...]) -> str:
    """The caller's audit name if their bearer token is one of `tokens`; 401 otherwise.

    Every configured token is compared in constant time, so timing does not tell which one
    nearly matched. The audit name is a short hash of the token, never the token itself; for a
    token made in the staff web app (found by `token_middleware`), `api:` and its name."""
    if ACTOR in request:
        return request[ACTOR]
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
