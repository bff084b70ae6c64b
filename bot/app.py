"""The web application: provider webhooks, the web chat, health, the public pages and the staff
API (mounted from `bot.features`)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bot import features
from bot.api import auth as api_auth
from bot.channels import PROVIDERS
from bot.channels.base import Channel, ReportsStatus, RequestRejected, Webhook, WebRequest
from bot.clock import Clock
from bot.config import Settings
from bot.ops import metrics as ops_metrics
from bot.runtime import RUNTIME
from bot.web import chat
from bot.web.inputs import parse_form, read_body
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
"""Providers never send more; anything larger is refused with 413 before it is read."""


API_MAX_BODY = 16 * 1024 * 1024
"""Bulk contact imports over the staff API may be large; webhooks stay at MAX_BODY."""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    background: bool = True,
    migrate: bool = False,
    startup: bool | None = None,
) -> web.Application:
    """The service as an aiohttp application.

    `background` starts the outbox dispatcher and the due-task poller; tests turn it off and
    drive them by hand. `migrate` upgrades the schema at startup (the embedded SQLite default).
    `startup` (default: as `background`) loads the follow-up rules and plans periodic feedback."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware])
    startup = background if startup is None else startup
    api = web.Application(
        client_max_size=API_MAX_BODY, middlewares=[error_middleware, api_auth.token_middleware]
    )

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        async with features.open_runtime(
            settings, clock=clock, channels=channels, migrate=migrate
        ) as runtime:
            app[RUNTIME] = runtime
            api[RUNTIME] = runtime
            if startup:
                await features.start(runtime)
            if background:
                await runtime.dispatcher.start()
                await runtime.tasks.start()
            metrics_listener = None
            try:
                metrics_listener = await ops_metrics.start_listener(
                    runtime.metrics, settings.metrics
                )
                yield
            finally:
                await runtime.tasks.stop()
                await runtime.dispatcher.stop()
                if metrics_listener is not None:
                    await metrics_listener.cleanup()

    app.cleanup_ctx.append(runtime_ctx)
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/healthz", healthz)
    ops_metrics.add_routes(app, settings.metrics, lambda r: r.app[RUNTIME].metrics)
    for provider in PROVIDERS:
        for hook in provider.webhooks:
            app.router.add_post(hook.path, webhook_handler(provider.name, hook))
    chat.add_routes(app, settings.web)
    features.add_public_routes(app)
    features.add_staff_app(app)
    features.add_api_routes(api)
    app.add_subapp("/api/v1", api)
    return app


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No traceback ever reaches a caller: a database outage is 503, anything else a plain 500."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except DatabaseUnavailable:
        log.error("database unavailable while handling %s %s", request.method, request.path)
        return web.json_response({"error": "service temporarily unavailable"}, status=503)
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
"""No inline script or style anywhere: the pages load chat.js and their CSS from /chat/static."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response (pages, JSON, static files, errors, the staff API): the security
    headers, and no caching of anything that holds a chat or staff data."""
    response.headers.update(SECURITY_HEADERS)
    path = request.path
    if path.startswith("/api/") or (
        path.startswith("/chat/") and not path.startswith("/chat/static/")
    ):
        response.headers["Cache-Control"] = "no-store"


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 if the database answers, 503 if it does not (load balancers poll it)."""
    ok = await request.app[RUNTIME].db.ping()
    return web.json_response({"database": "ok" if ok else "down"}, status=200 if ok else 503)


def provider_request(request: web.Request, body: bytes, content_type: str) -> WebRequest:
    """The request as a channel sees it, with the URL the provider signed. The form is decoded
    here, strictly as UTF-8 (what Twilio sends), so a body in another encoding is a 400 before
    the signature check rather than an error inside it."""
    runtime = request.app[RUNTIME]
    return WebRequest(
        url=f"{runtime.settings.server.public_url}{request.path_qs}",
        headers=request.headers,  # case-insensitive already; not copied
        body=body,
        content_type=request.content_type,
        form=parse_form(body) if content_type == FORM else {},
    )


def _channel(request: web.Request, name: str) -> Channel:
    channel = request.app[RUNTIME].channels.get(name)
    if channel is None:
        raise web.HTTPNotFound(text=f"the {name} channel is not configured")
    return channel


FORM = "application/x-www-form-urlencoded"
_PROVIDER_ID = re.compile(
    rb'(?:^|&)(?:MessageSid|SmsSid)=([A-Za-z0-9]{2,64})(?:&|$)|"update_id"\s*:\s*(-?[0-9]{1,20})\b'
)


def _provider_id(body: bytes | None) -> str:
    """The provider's id in a refused request, for the log: a Twilio sid or a Telegram
    update_id, and only when it looks like one (the request may come from anyone)."""
    match = _PROVIDER_ID.search(body[:8192]) if body else None
    return (match[1] or match[2]).decode() if match else "-"


def refused(request: web.Request, name: str, e: RequestRejected, body: bytes | None) -> None:
    """One log line per refused provider request, so an operator can see lost traffic: the
    status, the reason and the provider's id; never the sender or the text."""
    request.app[RUNTIME].metrics.rejected(name, e.status)
    log.warning(
        "refused %s webhook %s: HTTP %d, %s (provider id %s)",
        name,
        request.path,
        e.status,
        e.reason,
        _provider_id(body),
    )


async def verified_request(
    request: web.Request, channel: Channel, content_type: str, name: str
) -> WebRequest:
    """The provider's request once its signature or secret checks out; RequestRejected (logged)
    if not."""
    body: bytes | None = None
    try:
        if request.content_type != content_type:
            raise RequestRejected(415, f"expected {content_type}")
        body = await read_body(request, MAX_BODY)
        req = provider_request(request, body, content_type)
        if not channel.verify(req):
            raise RequestRejected(403, "invalid signature or secret")
    except RequestRejected as e:
        refused(request, name, e, body)
        raise
    return req


def webhook_handler(name: str, hook: Webhook) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route of one provider webhook: verify, parse, store every message (one turn each),
    and only then answer with the provider's reply."""
    label = hook.label or name
    body, content_type = hook.reply

    async def handle(request: web.Request) -> web.Response:
        channel = _channel(request, name)
        try:
            req = await verified_request(request, channel, hook.content_type, label)
        except RequestRejected as e:
            return web.Response(status=e.status, text=e.reason)
        runtime = request.app[RUNTIME]
        try:
            if hook.status:
                if not isinstance(channel, ReportsStatus):
                    raise web.HTTPNotFound(text=f"the {name} channel has no status webhook")
                update = channel.parse_status(req)
                if update is not None:
                    await runtime.service.handle_status(update)
            else:
                queued = False
                for message in channel.parse(req):
                    queued |= (await runtime.service.handle_inbound(message)).queued
                if queued:  # replies handed to this process's sender are on their way already
                    runtime.dispatcher.wake()
        except RequestRejected as e:
            refused(request, label, e, req.body)
            return web.Response(status=e.status, text=e.reason)
        return web.Response(text=body, content_type=content_type)

    return handle
