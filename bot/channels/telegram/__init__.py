"""Telegram: the channel (secret check, updates, sending with buttons) and how the service plugs
it in (webhook, settings, rates)."""

from __future__ import annotations

from bot.channels.base import Channel, ChannelLimits, Provider, Webhook
from bot.channels.telegram.channel import TelegramChannel, TelegramSettings
from bot.config import Settings

__all__ = ["PROVIDER", "TelegramChannel", "TelegramSettings"]


def build(settings: Settings) -> Channel | None:
    """The Telegram channel when `telegram.bot_token` is set."""
    if not settings.telegram.enabled:
        return None
    return TelegramChannel(
        TelegramSettings(
            bot_token=settings.telegram.bot_token,
            webhook_secret=settings.telegram.webhook_secret,
            api_base_url=settings.telegram.api_base_url,
        )
    )


def limits(settings: Settings) -> ChannelLimits:
    """Bot API limits: about 30 messages a second in all, one a second per chat."""
    d = settings.dispatcher
    return ChannelLimits(
        d.telegram_rate, per_address=d.telegram_per_chat_rate, concurrency=d.telegram_concurrency
    )


PROVIDER = Provider(
    name="telegram",
    webhooks=(Webhook("/webhooks/telegram", "application/json", ("ok", "text/plain")),),
    build=build,
    limits=limits,
)
