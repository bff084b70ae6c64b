"""A runtime for campaign tests: a small survey, web chat only, a fixed clock."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bot import campaigns
from bot.channels.webchat import WebChatChannel
from bot.clock import Clock, FixedClock
from bot.config import Settings, SurveySettings, load_settings
from bot.contacts.importer import import_validated, validate_csv
from bot.features import open_runtime
from bot.runtime import Runtime
from storage import repo_contacts
from storage.models import Contact, Invitation, Message

SURVEYS = Path(__file__).parent / "surveys"
TOKEN = "staff-token-0123456789abcdef"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""A Monday, 11:00 in Stockholm."""

HEADER = "external_ref,phone,language,gender,birth_year,target_group,unit,contact_since,attr_kommun"
ROWS = [
    "P1,0701234561,sv,kvinna,1980,missbruk,Norr,2020-01-01,malmo",
    "P2,0701234562,en,man,1990,missbruk,Söder,2025-06-01,lund",
    "P3,0701234563,sv,kvinna,2000,ekonomiskt bistånd,Norr,2024-01-01,malmo",
    "P4,0701234564,sv,annat,1960,missbruk,Norr,2019-05-05,",
    "P5,0701234565,sv,man,1975,barn och unga,Öster,2023-02-02,malmo",
]


def settings_for(database_url: str, *, quiet: str = "") -> Settings:
    settings = load_settings(
        None,
        {
            "BRUKARDIALOG__DATABASE__URL": database_url,
            "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
            "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
            "BRUKARDIALOG__SCHEDULE__QUIET_HOURS": quiet,
            "BRUKARDIALOG__ADMIN__API_TOKENS": TOKEN,
        },
    )
    return dataclasses.replace(settings, surveys=SurveySettings(paths=(SURVEYS,)))


@asynccontextmanager
async def campaign_runtime(
    database_url: str, *, clock: Clock | None = None, quiet: str = ""
) -> AsyncIterator[Runtime]:
    async with open_runtime(
        settings_for(database_url, quiet=quiet),
        clock=clock or FixedClock(START),
        channels={"webchat": WebChatChannel()},
    ) as runtime:
        campaigns.register(runtime)
        yield runtime


def csv_text(rows: Iterable[str] = ROWS) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


async def import_csv(runtime: Runtime, text: str, *, skip_invalid: bool = False) -> None:
    validated = validate_csv(io.StringIO(text, newline=""), today=START.date())
    await import_validated(
        runtime.db,
        runtime.service.pseudonymizer,
        validated,
        skip_invalid=skip_invalid,
        actor="test",
        source="test.csv",
    )


async def contact_id(runtime: Runtime, ref: str) -> int:
    async with runtime.db.transaction(read_only=True) as s:
        found = await s.scalar(select(Contact.id).where(Contact.external_ref == ref))
    assert found is not None, ref
    return int(found)


async def webchat_token(runtime: Runtime, ref: str) -> str:
    cid = await contact_id(runtime, ref)
    async with runtime.db.transaction(read_only=True) as s:
        token = (await repo_contacts.webchat_tokens(s, [cid])).get(cid)
    assert token is not None
    return token


async def invitation_messages(runtime: Runtime, campaign_id: int) -> dict[int, int]:
    """contact id -> number of invitation texts queued (kind invitation, no conversation)."""
    async with runtime.db.transaction(read_only=True) as s:
        rows = await s.execute(
            select(Message.contact_id, func.count())
            .where(
                Message.campaign_id == campaign_id,
                Message.kind == "invitation",
                Message.conversation_id.is_(None),
            )
            .group_by(Message.contact_id)
        )
        return {int(cid or 0): int(n) for cid, n in rows.all()}


async def invitations(runtime: Runtime, campaign_id: int) -> dict[int, str]:
    """contact id -> invitation status."""
    async with runtime.db.transaction(read_only=True) as s:
        rows = await s.execute(
            select(Invitation.contact_id, Invitation.status).where(
                Invitation.campaign_id == campaign_id
            )
        )
        return {int(cid): str(status) for cid, status in rows.all()}


async def messages(runtime: Runtime, campaign_id: int, kind: str) -> list[Message]:
    async with runtime.db.transaction(read_only=True) as s:
        return list(
            await s.scalars(
                select(Message)
                .where(Message.campaign_id == campaign_id, Message.kind == kind)
                .order_by(Message.id)
            )
        )
