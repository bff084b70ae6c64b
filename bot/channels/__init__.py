"""Channels, one folder per provider behind `base.Channel`, registered once here.

Adding a channel: a folder with its channel module and a `PROVIDER` (`base.Provider`: name,
webhooks, how it is built from the settings, how fast it sends), one line in `PROVIDERS`, and
its settings in `bot.config`."""

from __future__ import annotations

import logging
from typing import Final

from bot.channels import telegram, twilio, webchat
from bot.channels.base import Channel, ChannelLimits, Provider
from bot.config import Settings

__all__ = ["PROVIDERS", "build_channels", "limits_from"]

log = logging.getLogger(__name__)

PROVIDERS: Final[tuple[Provider, ...]] = (webchat.PROVIDER, twilio.PROVIDER, telegram.PROVIDER)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels whose credentials are configured; the web chat is always on."""
    channels: dict[str, Channel] = {}
    for provider in PROVIDERS:
        channel = provider.build(settings)
        if channel is None:
            log.info("the %s channel is off: its credentials are not set", provider.name)
        else:
            channels[provider.name] = channel
    return channels


def limits_from(settings: Settings) -> dict[str, ChannelLimits]:
    """Each channel's rate and concurrency from the settings."""
    return {provider.name: provider.limits(settings) for provider in PROVIDERS}
