"""The inbound turn's two ways store the same rows.

Common turns run on statements written once in SQL (storage.turns, `_LeanTurn`); the rest, and
every turn when that way is switched off, run on the ORM repositories (`_Turn`). The same script
of messages (newcomers over SMS and Telegram, a campaign answered in the web chat, wrong answers,
going back, changing language, skipping, STOP and START, a redelivery, a second survey, a menu)
is played both ways on fresh databases, with the same ids, and every table the turn writes must
come out the same."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import campaigns, service
from bot.channels.base import InboundMessage
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import SHIPPED_SURVEYS, SurveySettings
from bot.runtime import Runtime, open_runtime
from storage.models import Answer, Base
from tests.campaigns.helpers import (
    START,
    SURVEYS,
    csv_text,
    import_csv,
    settings_for,
    webchat_token,
)
from tests.campaigns.test_campaigns import create
from tests.conftest import _truncate_all

TABLES = (
    "contacts",
    "contact_addresses",
    "conversations",
    "respondents",
    "answers",
    "messages",
    "due_tasks",
    "invitations",
)
VARYING = {"created_at", "updated_at", "status_at", "claimed_by"}
"""Columns filled from the wall clock (the turn itself uses the injected one) or naming the
process that ran a task."""

Send = tuple[str, str, str, dict[str, Any]]
"""(channel, address, text, InboundMessage extras such as payload)"""


def script(tokens: dict[str, str]) -> Iterator[Send]:
    sms = "+46701110001"
    yield ("sms", sms, "SURVEY", {})  # a newcomer, in the keyword's language (en)
    for text in ("1", "banana", "2", "back", "3", "skip", "language", "1", "2", "1", "1"):
        yield ("sms", sms, text, {})
    for _ in range(12):
        yield ("sms", sms, "1", {})  # to the end of the anonymous survey
    yield ("sms", sms, "DIALOG", {})  # a second survey for a known contact
    yield ("sms", sms, "1,2", {})
    child = "+46701110002"
    yield ("sms", child, "BARN", {})
    yield ("sms", child, "12", {})
    yield ("sms", child, "STOP", {})  # inside a conversation: opts out
    yield ("sms", child, "hej", {})  # opted out: nothing happens
    yield ("sms", child, "START", {})
    yield ("sms", child, "BARN", {})
    yield ("sms", "+46701110003", "hej", {})  # an unknown word: the menu
    yield ("telegram", "555", "", {"payload": "survey:uppfoljning-insats"})
    yield (
        "telegram",
        "555",
        "",
        {
            "payload": "choice:partly",
            "extras": {"callback_query_id": "cq-1", "message_id": 7, "message_text": "Q?"},
        },
    )
    yield ("telegram", "555", "Väntetiden", {})
    for ref, answers in (("P1", ("ja", "bra")), ("P2", ("nej", "x", "daligt")), ("P4", ("stop",))):
        for text in answers:
            yield ("webchat", tokens[ref], text, {})


async def play(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: f"token-{next(counter):020d}")
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    await import_csv(runtime, csv_text())
    await create(runtime, channels="webchat")
    await runtime.tasks.run_due()
    await runtime.tasks.run_due()
    tokens = {ref: await webchat_token(runtime, ref) for ref in ("P1", "P2", "P4")}
    for n, (channel, address, text, extra) in enumerate(script(tokens)):
        clock.advance(timedelta(minutes=1))
        message = InboundMessage(
            channel=channel,
            provider_id=f"{channel}-{n}",
            address=address,
            text=text,
            received_at=clock.now(),
            **extra,
        )
        first = await runtime.service.handle_inbound(message)
        assert not first.duplicate
        assert (await runtime.service.handle_inbound(message)).duplicate
    clock.advance(timedelta(days=30))
    await runtime.tasks.run_due()
    return await dump(runtime)


async def dump(runtime: Runtime) -> dict[str, list[Any]]:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    out: dict[str, list[Any]] = {}
    async with runtime.db.transaction(read_only=True) as s:
        for name in TABLES:
            table = tables[name]
            rows = (await s.execute(select(table).order_by(*table.primary_key))).mappings()
            out[name] = [{k: v for k, v in row.items() if k not in VARYING} for row in rows]
    return out


def runtime_for(url: str) -> Any:
    settings = dataclasses.replace(
        settings_for(url), surveys=SurveySettings(paths=(SHIPPED_SURVEYS, SURVEYS))
    )
    return open_runtime(settings, clock=FixedClock(START), channels={"webchat": WebChatChannel()})


async def test_both_ways_store_the_same_rows(
    database_url: str, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean_turns = 0
    lean_run = service._LeanTurn.run

    async def counted(self: service._LeanTurn) -> bool:
        nonlocal lean_turns
        handled = await lean_run(self)
        lean_turns += handled
        return handled

    monkeypatch.setattr(service._LeanTurn, "run", counted)
    async with runtime_for(database_url) as runtime:
        campaigns.register(runtime)
        lean = await play(runtime, monkeypatch)
    assert lean_turns >= 25, "most of the script should take the lean way"

    async def never(self: service._LeanTurn) -> bool:
        return False

    monkeypatch.setattr(service._LeanTurn, "run", never)
    if database_url.startswith("sqlite"):
        shutil.copyfile(sqlite_template, tmp_path / "full.db")
        full_url = f"sqlite+aiosqlite:///{tmp_path / 'full.db'}"
    else:
        await _truncate_all(database_url)
        full_url = database_url
    async with runtime_for(full_url) as runtime:
        campaigns.register(runtime)
        full = await play(runtime, monkeypatch)

    for name in TABLES:
        assert len(lean[name]) == len(full[name]), name
        for ours, theirs in zip(lean[name], full[name], strict=True):
            assert ours == theirs, (name, {k for k in ours if ours[k] != theirs[k]})
    # The script reached what it is meant to: finished anonymous and named conversations, a
    # completed campaign invitation, answers taken back, an opt-out.
    statuses = {row["status"] for row in lean["conversations"]}
    assert {"completed", "opted_out", "expired"} <= statuses
    assert {row["status"] for row in lean["invitations"]} >= {"completed", "opted_out"}
    assert any(row["kind"] == "ack" for row in lean["messages"])
    assert any(row["opted_out_at"] is not None for row in lean["contacts"])


async def test_concurrent_messages_from_one_person_are_applied_one_at_a_time(
    database_url: str,
) -> None:
    """Two service instances (two connection pools, as two processes would have) take four
    answers from one person at once. Each must see the state the one before left: PostgreSQL
    locks the contact and the conversation, SQLite's writers are serial."""
    async with runtime_for(database_url) as one, runtime_for(database_url) as two:

        async def sms(runtime: Runtime, n: int, text: str) -> None:
            await runtime.service.handle_inbound(
                InboundMessage(
                    channel="sms",
                    provider_id=f"SM-{n}",
                    address="+46701110009",
                    text=text,
                    received_at=START,
                )
            )

        await sms(one, 0, "UPPFOLJNING")
        await asyncio.gather(*(sms((one, two)[n % 2], n, "1") for n in range(1, 5)))
        async with one.db.transaction(read_only=True) as s:
            answers = {a.question_id: a.value for a in (await s.scalars(select(Answer))).all()}
    # Identical messages, so any order gives the same: one step each, nothing lost.
    assert answers == {"helped": "yes", "score": 1, "mood": 1, "again": "yes"}
