"""Each contact's personal links, for staff to hand out: the web chat page `/chat/<token>` and,
when the bot is known, the Telegram deep link that opens the bot and links the chat
(`https://t.me/<bot>?start=<token>`).

A personal link lets whoever holds it answer as that person, so a list of them is written to the
audit log and the file is readable by its owner only."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.campaigns import AUDIENCE_PAGE, audience_env, compile_audience
from bot.channels.base import SendError
from bot.channels.telegram import TelegramChannel, TelegramSettings
from flows.expr import Expr
from storage import repo_audit, repo_campaigns, repo_contacts

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CSV_COLUMNS = ("external_ref", "language", "webchat_link", "telegram_link")


@dataclass(frozen=True, slots=True)
class ContactLink:
    """One person's links."""

    external_ref: str
    language: str | None
    webchat_link: str
    telegram_link: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON for the staff API."""
        return {
            "external_ref": self.external_ref,
            "language": self.language,
            "webchat_link": self.webchat_link,
            "telegram_link": self.telegram_link,
        }


@dataclass(frozen=True, slots=True)
class LinkList:
    """The links of an audience, and how many of its people have none (and why)."""

    links: tuple[ContactLink, ...]
    without_ref: int
    """People without an external_ref (who wrote in on their own): nothing to name them by."""
    without_token: int


def webchat_link(public_url: str, token: str) -> str:
    """The personal web chat page."""
    return f"{public_url}/chat/{token}"


def telegram_link(bot_username: str | None, token: str) -> str | None:
    """The deep link that opens the bot and sends `/start <token>`; None without a bot."""
    return f"https://t.me/{bot_username}?start={token}" if bot_username else None


async def bot_username(runtime: Runtime) -> str | None:
    """The Telegram bot's username: configured, else asked from Telegram; None when Telegram is
    off or cannot be asked (then links are made without it, and the log says why)."""
    settings = runtime.settings.telegram
    if settings.bot_username:
        return settings.bot_username
    if not settings.enabled:
        return None

    channel = runtime.channels.get("telegram")
    own = not isinstance(channel, TelegramChannel)
    if not isinstance(channel, TelegramChannel):
        channel = TelegramChannel(
            TelegramSettings(
                bot_token=settings.bot_token,
                webhook_secret=settings.webhook_secret,
                api_base_url=settings.api_base_url,
            )
        )
    try:
        me = await channel.get_me()
    except SendError as e:
        log.warning("no Telegram links: Telegram did not say the bot's username (%s)", e.reason)
        return None
    finally:
        if own:
            await channel.close()
    username = me.get("username")
    return str(username) if username else None


async def contact_link(runtime: Runtime, external_ref: str) -> ContactLink | None:
    """One contact's links by their reference; None if unknown or without a personal token."""
    async with runtime.db.transaction(read_only=True) as s:
        contact = await repo_contacts.get_by_external_ref(s, external_ref)
        if contact is None:
            return None
        token = (await repo_contacts.webchat_tokens(s, [contact.id])).get(contact.id)
    if token is None:
        return None
    public_url = runtime.settings.server.public_url
    return ContactLink(
        external_ref,
        contact.language,
        webchat_link(public_url, token),
        telegram_link(await bot_username(runtime), token),
    )


async def audience_links(runtime: Runtime, audience: str | None, *, actor: str) -> LinkList:
    """The links of everyone in an audience (everyone when None), opted-out people left out.

    Raises ExprError for an audience that does not compile."""
    expr: Expr | None = None
    if audience is not None:
        async with runtime.db.transaction(read_only=True) as s:
            expr = await compile_audience(s, audience)
    today = runtime.clock.now().astimezone(runtime.settings.schedule.tz).date()
    username = await bot_username(runtime)
    public_url = runtime.settings.server.public_url
    links: list[ContactLink] = []
    without_ref = without_token = 0
    after = 0
    while True:
        async with runtime.db.transaction(read_only=True) as s:
            page = await repo_campaigns.audience_chunk(s, after, AUDIENCE_PAGE)
            chosen = [
                c for c in page if expr is None or expr.evaluate(audience_env(c, today)) is True
            ]
            ids = [c.id for c in chosen]
            refs = await repo_contacts.external_refs(s, ids)
            tokens = await repo_contacts.webchat_tokens(s, ids)
        for contact in chosen:
            ref, token = refs.get(contact.id), tokens.get(contact.id)
            if ref is None:
                without_ref += 1
            elif token is None:
                without_token += 1
            else:
                links.append(
                    ContactLink(
                        ref,
                        contact.language,
                        webchat_link(public_url, token),
                        telegram_link(username, token),
                    )
                )
        if len(page) < AUDIENCE_PAGE:
            break
        after = page[-1].id
    async with runtime.db.transaction() as s:
        await repo_audit.log(
            s,
            actor,
            "contacts.links",
            "contacts",
            {"audience": audience, "links": len(links)},
            at=runtime.clock.now(),
        )
    return LinkList(tuple(links), without_ref, without_token)


def write_csv(links: Iterable[ContactLink], stream: TextIO) -> None:
    """The links as CSV (comma-separated, header row)."""
    writer = csv.writer(stream, dialect="excel")
    writer.writerow(CSV_COLUMNS)
    for link in links:
        writer.writerow(
            [link.external_ref, link.language or "", link.webchat_link, link.telegram_link or ""]
        )


def write_csv_file(links: Iterable[ContactLink], path: Path) -> None:
    """The links as a CSV file Excel opens (UTF-8 with a byte-order mark), readable by its owner
    only: each link lets its holder answer as that person."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before
    with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as stream:
        write_csv(links, stream)
