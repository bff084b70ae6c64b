"""Follow-up test fixtures: a runtime on a migrated database with a fixed clock and web chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import followups
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import Settings, load_settings
from bot.features import open_runtime
from bot.inbound.decide import Address, decide_followup
from bot.inbound.service import new_id
from bot.runtime import Runtime
from storage import executor
from storage.sqlexec import Exec

TOKEN = "staff-token-0123456789abcdef"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Monday 2 March 2026, 10:00 in Stockholm (UTC+1 until 29 March)."""


def settings_for(database_url: str, extra: Mapping[str, str] | None = None) -> Settings:
    """Settings on `database_url`: Stockholm time, quiet hours 20:00-09:00, one staff token."""
    env = {
        "BRUKARDIALOG__DATABASE__URL": database_url,
        "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
        "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
        "BRUKARDIALOG__SCHEDULE__TIMEZONE": "Europe/Stockholm",
        "BRUKARDIALOG__SCHEDULE__QUIET_HOURS": "20:00-09:00",
        "BRUKARDIALOG__ADMIN__API_TOKENS": TOKEN,
        "BRUKARDIALOG__ORGANISATION__NAME": "Lunds kommun",
        "BRUKARDIALOG__ORGANISATION__RESULTS_URL": "lund.se/enkat",
    }
    return load_settings(None, env | dict(extra or {}))


@asynccontextmanager
async def follow_up_runtime(settings: Settings, clock: FixedClock) -> AsyncIterator[Runtime]:
    """A runtime with the follow-up handler registered and the shipped rules loaded."""
    async with open_runtime(settings, clock=clock, channels={"webchat": WebChatChannel()}) as rt:
        followups.register(rt)
        result = await followups.load_rules(rt)
        assert not result.problems, result.problems
        yield rt


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def runtime(database_url: str, clock: FixedClock) -> AsyncIterator[Runtime]:
    async with follow_up_runtime(settings_for(database_url), clock) as rt:
        yield rt


def event(
    event_id: str = "ev-1",
    *,
    type: str = "insats_ended",
    external_ref: str = "P-1",
    occurred_at: Any = "2026-03-02T10:00:00+01:00",
    contact: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """An event body as a case system posts it; a new person unless contact=None is passed."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": type,
        "external_ref": external_ref,
        "occurred_at": occurred_at,
        **extra,
    }
    if contact is not None:
        body["contact"] = dict(contact) if isinstance(contact, Mapping) else contact
    return body


PERSON = {"phone": "070-123 45 67", "language": "sv", "birth_year": 1980}


async def start_survey(runtime: Runtime, contact_id: int, survey_id: str) -> None:
    """Start a survey for a contact in the web chat, as a follow-up without a follow-up row
    would (so the person is busy with it)."""
    entry = runtime.catalog.latest(survey_id)
    assert entry is not None
    now = runtime.clock.now()
    to = Address("webchat", "tok", runtime.service.pseudonymizer.address_key("webchat", "tok"))

    def turn(x: Exec) -> object:
        facts = executor.load_start(x, contact_id)
        plan = decide_followup(
            facts, entry.survey, entry.version_id, to, followup_id=0, now=now, ids=new_id
        )
        return executor.write(x, plan, now=now)

    await runtime.db.turns.run(turn)
