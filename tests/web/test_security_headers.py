"""Security headers on every response, no-store on chat and staff data, and pages that need no
inline script or style (so the CSP can forbid them)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.runtime import RUNTIME, Runtime
from tests.results_integration.conftest import AUTH, START, Person, make_campaign, settings_for

Client = TestClient[Any, Any]

EXPECTED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CSP_DIRECTIVES = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
    "form-action 'self'",
}
INLINE = [
    re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE),  # a script without src
    re.compile(r"<style[\s>]", re.IGNORECASE),
    re.compile(r"\sstyle\s*=", re.IGNORECASE),
    re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),  # onclick=, onload=, ...
    re.compile(r"javascript:", re.IGNORECASE),
]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    app = create_app(
        settings_for(database_url),
        clock=FixedClock(START),
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    test_client: Client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


def runtime_of(client: Client) -> Runtime:
    runtime: Runtime = client.app[RUNTIME]
    return runtime


async def every_kind_of_response(client: Client) -> list[tuple[str, str, Any]]:
    """(method, path, response) for pages, JSON, static files, errors and the staff API."""
    runtime = runtime_of(client)
    token = (await runtime.service.start_webchat("nojdhet", "sv")).token
    people = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(6)]
    campaign = await make_campaign(runtime, people)
    out: list[tuple[str, str, Any]] = []
    for path in (
        "/chat",
        "/chat?lang=ar",
        "/chat/static/chat.js",
        "/chat/static/chat.css",
        f"/chat/{token}",
        f"/chat/{token}/messages",
        "/chat/" + "x" * 24,
        f"/results/{campaign}",
        "/results/999",
        "/healthz",
        "/nowhere",
        "/api/v1/campaigns",
        "/flow-results/packages",
    ):
        out.append(("GET", path, await client.get(path)))
    out.append(
        ("GET", "/api/v1/campaigns (token)", await client.get("/api/v1/campaigns", headers=AUTH))
    )
    out.append(
        (
            "POST",
            f"/chat/{token}/messages",
            await client.post(f"/chat/{token}/messages", json={"id": "m1", "text": "hej"}),
        )
    )
    out.append(("POST", "/chat/start", await client.post("/chat/start", data={"survey": "x"})))
    out.append(("POST", "/webhooks/twilio", await client.post("/webhooks/twilio", data=b"x")))
    return out


async def test_every_response_carries_the_security_headers(client: Client) -> None:
    responses = await every_kind_of_response(client)
    assert {r.status for _, _, r in responses} >= {200, 202, 401, 403, 404}
    for method, path, response in responses:
        for name, value in EXPECTED.items():
            assert response.headers.get(name) == value, (method, path, name)
        csp = {d.strip() for d in response.headers["Content-Security-Policy"].split(";")}
        assert csp >= CSP_DIRECTIVES, (method, path, csp)
        assert not any("unsafe" in d for d in csp), (method, path, csp)


async def test_chat_and_staff_data_are_never_cached(client: Client) -> None:
    for method, path, response in await every_kind_of_response(client):
        private = path.startswith("/api/") or (
            path.startswith("/chat/") and not path.startswith("/chat/static/")
        )
        if private:
            assert response.headers.get("Cache-Control") == "no-store", (method, path)
        else:
            assert "no-store" not in response.headers.get("Cache-Control", ""), (method, path)


async def test_pages_need_no_inline_script_or_style(client: Client) -> None:
    pages = 0
    for method, path, response in await every_kind_of_response(client):
        if response.content_type != "text/html":
            continue
        pages += 1
        html = await response.text()
        for pattern in INLINE:
            assert not pattern.search(html), (method, path, pattern.pattern)
    assert pages >= 6


async def test_the_results_page_is_one_of_them(client: Client) -> None:
    runtime = runtime_of(client)
    people = [Person(answers={"hjalp": "ja", "bemotande": "bra"}) for _ in range(6)]
    campaign = await make_campaign(runtime, people)
    response = await client.get(f"/results/{campaign}")
    assert response.status == 200 and "<svg" in await response.text()
