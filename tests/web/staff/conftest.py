"""Fixtures of the staff web app's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import ServerSettings
from tests.results_integration.conftest import START, settings_for
from tests.web.staff.helpers import Client


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def public_url() -> str:
    """server.public_url (http here, so the test client sends the session cookie back)."""
    return "http://127.0.0.1:8080"


@pytest.fixture
async def client(database_url: str, clock: FixedClock, public_url: str) -> AsyncIterator[Client]:
    """The whole service on the aiohttp test client, background work off, a fixed clock."""
    settings = replace(settings_for(database_url), server=ServerSettings(public_url=public_url))
    app = create_app(
        settings,
        clock=clock,
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    test_client: Client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()
