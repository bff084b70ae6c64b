"""SMS over Twilio: the channel (signature check, parsing, sending, status callbacks) and how
the service plugs it in (webhooks, settings, rate)."""

from __future__ import annotations

from bot.channels.base import Channel, ChannelLimits, Provider, Webhook
from bot.channels.twilio.channel import TwilioChannel, TwilioSettings
from bot.config import Settings

__all__ = ["PROVIDER", "TWIML_EMPTY", "TwilioChannel", "TwilioSettings"]

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
"""What Twilio gets back: nothing to send in the reply (replies go through the outbox)."""
_FORM = "application/x-www-form-urlencoded"
_TWIML = (TWIML_EMPTY, "text/xml")


def build(settings: Settings) -> Channel | None:
    """The SMS channel when `twilio.account_sid` is set."""
    if not settings.twilio.enabled:
        return None
    twilio = settings.twilio
    return TwilioChannel(
        TwilioSettings(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            from_number=twilio.from_number or None,
            messaging_service_sid=twilio.messaging_service_sid or None,
            api_base_url=twilio.api_base_url,
            status_callback_url=f"{settings.server.public_url}/webhooks/twilio/status",
            timeout=twilio.timeout,
        )
    )


def limits(settings: Settings) -> ChannelLimits:
    """Twilio's messages a second for the sender (`twilio.mps`)."""
    return ChannelLimits(settings.twilio.mps, concurrency=settings.dispatcher.sms_concurrency)


PROVIDER = Provider(
    name="sms",
    webhooks=(
        Webhook("/webhooks/twilio", _FORM, _TWIML),
        Webhook("/webhooks/twilio/status", _FORM, _TWIML, status=True, label="sms status"),
    ),
    build=build,
    limits=limits,
)
