"""The built-in web chat as a channel: the browser posts JSON and polls for replies.

The personal token in the URL is the secret; the service checks it names a known contact."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.channels.base import (
    InboundMessage,
    OutboundMessage,
    RequestRejected,
    SendResult,
    WebRequest,
    load_json,
)

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PAYLOAD_PATTERN = re.compile(r"^[A-Za-z0-9_:,.-]{1,200}$")
"""What the engine's button payloads look like: "choice:yes", "choices:a,b", "scale:3"."""
MAX_TEXT = 4000


class WebChatChannel:
    """The web chat channel: the browser posts JSON under its chat token and polls the outbox."""

    name = "webchat"

    def verify(self, request: WebRequest) -> bool:
        """True if the request carries a well-formed chat token (the page checks it is known)."""
        token = request.headers.get("X-Chat-Token", "")
        return bool(TOKEN_PATTERN.match(token))

    def parse(self, request: WebRequest) -> list[InboundMessage]:
        """The message in a JSON body; RequestRejected for a wrong content type or bad fields."""
        if request.content_type != "application/json":
            raise RequestRejected(415, "expected application/json")
        data = load_json(request.body)
        if not isinstance(data, dict):
            raise RequestRejected(400, "body must be a JSON object")
        client_id = data.get("id")
        text = data.get("text", "")
        payload = data.get("payload")
        if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.match(client_id):
            raise RequestRejected(400, "field 'id' must be a short client message id")
        if not isinstance(text, str) or (payload is not None and not isinstance(payload, str)):
            raise RequestRejected(400, "fields 'text' and 'payload' must be strings")
        if payload is not None and payload and not PAYLOAD_PATTERN.match(payload):
            raise RequestRejected(400, "field 'payload' is not a button payload")
        if len(text) > MAX_TEXT:
            raise RequestRejected(413, f"text longer than {MAX_TEXT} characters")
        token = request.headers["X-Chat-Token"]
        return [
            InboundMessage(
                channel=self.name,
                provider_id=f"{token}:{client_id}",
                address=token,
                text=text,
                payload=payload or None,
                received_at=datetime.now(UTC),
            )
        ]

    async def send(self, message: OutboundMessage) -> SendResult:
        """Mark the message delivered: the browser fetches it from the outbox itself."""
        # The browser fetches its messages from the outbox; "sending" only marks them ready.
        return SendResult(provider_id=f"webchat-{message.id}", status="delivered")

    async def close(self) -> None:
        """Nothing to release: web chat holds no connection."""
        return None
