"""How to reach a contact: the first wanted channel that runs and that they have an address on."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo_contacts

DEFAULT_ORDER = ("sms", "telegram", "webchat")


@dataclass(frozen=True, slots=True)
class Route:
    """A channel and the address a person is reached at on it."""

    channel: str
    address: str


async def route_to(
    s: AsyncSession,
    contact_id: int,
    wanted: Sequence[str],
    available: Collection[str],
) -> Route | None:
    """The first channel in `wanted` (default order if empty) that is configured (`available`)
    and on which the contact has an address; None if they cannot be reached."""
    addresses = await repo_contacts.addresses(s, contact_id)
    newest: dict[str, str] = {}
    for address in addresses:  # oldest first: the newest address per channel wins
        newest[address.channel] = address.address
    for channel in wanted or DEFAULT_ORDER:
        if channel in available and channel in newest:
            return Route(channel, newest[channel])
    return None
