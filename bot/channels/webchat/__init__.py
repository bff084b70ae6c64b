"""The built-in web chat: its channel (messages wait in the outbox until the page fetches them)
and how the service plugs it in. Its pages and routes are in `bot.web.chat`."""

from __future__ import annotations

from typing import Final

from bot.channels.base import Channel, ChannelLimits, Provider
from bot.channels.webchat.channel import WebChatChannel
from bot.config import Settings

__all__ = ["PROVIDER", "WebChatChannel"]

RATE: Final = 1000.0
"""Nothing leaves the machine: "sending" marks a message ready for the page."""


def build(settings: Settings) -> Channel | None:
    """The web chat is always on."""
    return WebChatChannel()


def limits(settings: Settings) -> ChannelLimits:
    """As fast as the database takes it."""
    return ChannelLimits(RATE, concurrency=64)


PROVIDER = Provider(name="webchat", webhooks=(), build=build, limits=limits, sends_over_http=False)
