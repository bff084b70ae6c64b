"""Results integration fixtures: a runtime on a migrated database (SQLite and PostgreSQL), a small
survey, and campaigns built directly from rows (contacts, invitations, respondents, answers)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import Settings, SurveySettings, load_settings
from bot.features import open_runtime
from bot.results import feedback
from bot.runtime import Runtime
from storage import repo_tasks
from storage.models import (
    Answer,
    Campaign,
    Contact,
    ContactAddress,
    Invitation,
    Message,
    Respondent,
)

SURVEYS = Path(__file__).parent / "surveys"
TOKEN = "staff-token-results-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""Monday 2 March 2026, 11:00 in Stockholm."""
SURVEY_ID = "nojdhet"
K = 5


def settings_for(
    database_url: str, *, quiet: str = "20:00-09:00", k: int = K, suppression: str = "groups"
) -> Settings:
    settings = load_settings(
        None,
        {
            "BRUKARDIALOG__DATABASE__URL": database_url,
            "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
            "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
            "BRUKARDIALOG__PRIVACY__MIN_GROUP_SIZE": str(k),
            "BRUKARDIALOG__PRIVACY__SUPPRESSION": suppression,
            "BRUKARDIALOG__SCHEDULE__TIMEZONE": "Europe/Stockholm",
            "BRUKARDIALOG__SCHEDULE__QUIET_HOURS": quiet,
            "BRUKARDIALOG__ADMIN__API_TOKENS": TOKEN,
            "BRUKARDIALOG__SERVER__PUBLIC_URL": "https://enkat.example.se",
        },
    )
    return dataclasses.replace(settings, surveys=SurveySettings(paths=(SURVEYS,)))


@asynccontextmanager
async def results_runtime(
    database_url: str, clock: FixedClock, **settings: Any
) -> AsyncIterator[Runtime]:
    async with open_runtime(
        settings_for(database_url, **settings),
        clock=clock,
        channels={"webchat": WebChatChannel()},
    ) as runtime:
        feedback.register(runtime)
        yield runtime


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def runtime(database_url: str, clock: FixedClock) -> AsyncIterator[Runtime]:
    async with results_runtime(database_url, clock) as rt:
        yield rt


@dataclass(frozen=True, slots=True)
class Person:
    """One invited contact and what became of the invitation."""

    status: str = "completed"
    """completed, closed (invited, did not finish), opted_out, pending, unreachable."""
    language: str | None = "sv"
    answers: Mapping[str, Any] = field(default_factory=lambda: {"hjalp": "ja", "bemotande": "bra"})
    unit: str | None = "norr"
    gender: str | None = None
    target_group: str | None = None
    opted_out: bool = False
    """The contact opted out of all messages (after answering, for instance)."""


def people(n: int, **kwargs: Any) -> list[Person]:
    return [Person(**kwargs) for _ in range(n)]


async def make_campaign(
    runtime: Runtime,
    persons: Sequence[Person],
    *,
    status: str = "closed",
    closed_at: datetime | None = START,
    feedback_delay: int = 3600,
    feedback_to: str = "respondents",
    name: str = "Våren 2026",
    created_at: datetime = START - timedelta(days=14),
    survey_id: str = SURVEY_ID,
) -> int:
    """A campaign with its invitations, respondents and answers, and (when closed) the feedback
    task the campaign code schedules on closing."""
    entry = runtime.catalog.latest(survey_id)
    assert entry is not None
    pseudonymizer = runtime.service.pseudonymizer
    async with runtime.db.transaction() as s:
        campaign = Campaign(
            name=name,
            survey_id=survey_id,
            survey_version_id=entry.version_id,
            audience="true",
            channels=["webchat"],
            status=status,
            starts_at=created_at,
            ends_at=closed_at or START + timedelta(days=7),
            participation="konsultation",
            feedback_delay=feedback_delay,
            feedback_to=feedback_to,
            created_at=created_at,
            closed_at=closed_at if status == "closed" else None,
        )
        s.add(campaign)
        await s.flush()
        for person in persons:
            contact = Contact(
                language=person.language,
                gender=person.gender,
                unit=person.unit,
                target_group=person.target_group,
                opted_out_at=START - timedelta(days=1) if person.opted_out else None,
            )
            s.add(contact)
            await s.flush()
            token = uuid.uuid4().hex
            s.add(
                ContactAddress(
                    contact_id=contact.id,
                    channel="webchat",
                    address=token,
                    address_key=pseudonymizer.address_key("webchat", token),
                )
            )
            invited = person.status not in ("pending", "unreachable")
            s.add(
                Invitation(
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    channel="webchat" if invited else None,
                    status=person.status,
                    invited_at=created_at if invited else None,
                )
            )
            if not invited:
                continue
            respondent_id = str(uuid.uuid4())
            completed = person.status == "completed"
            s.add(
                Respondent(
                    id=respondent_id,
                    survey_id=survey_id,
                    survey_version_id=entry.version_id,
                    campaign_id=campaign.id,
                    attributes={
                        "unit": person.unit,
                        "gender": person.gender,
                        "target_group": person.target_group,
                        "language": person.language,
                    },
                    channel="webchat",
                    status="completed" if completed else "closed",
                    started_on=created_at.date(),
                    completed=completed,
                )
            )
            await s.flush()
            answers = person.answers if completed or person.status == "opted_out" else {}
            for question_id, value in answers.items():
                s.add(
                    Answer(
                        respondent_id=respondent_id,
                        question_id=question_id,
                        value=value,
                        skipped=False,
                        answered_on=created_at.date(),
                    )
                )
        await s.flush()
        if status == "closed" and closed_at is not None:
            await repo_tasks.schedule(
                s,
                feedback.FEEDBACK_TASK,
                f"{feedback.FEEDBACK_TASK}:{campaign.id}",
                closed_at + timedelta(seconds=feedback_delay),
                {"campaign_id": campaign.id},
            )
        return int(campaign.id)


async def feedback_messages(runtime: Runtime, campaign_id: int) -> list[Message]:
    from sqlalchemy import select

    async with runtime.db.transaction(read_only=True) as s:
        return list(
            await s.scalars(
                select(Message)
                .where(Message.campaign_id == campaign_id, Message.kind == "feedback")
                .order_by(Message.id)
            )
        )


async def contact_languages(runtime: Runtime) -> dict[int, str | None]:
    from sqlalchemy import select

    async with runtime.db.transaction(read_only=True) as s:
        rows = await s.execute(select(Contact.id, Contact.language))
        return {int(cid): lang for cid, lang in rows.all()}


def walk_figures(data: Any) -> Iterator[dict[str, Any]]:
    """Every {"value", "suppressed"} figure in a JSON document."""
    if isinstance(data, dict):
        if set(data) == {"value", "suppressed"}:
            yield data
        for value in data.values():
            yield from walk_figures(value)
    elif isinstance(data, list):
        for item in data:
            yield from walk_figures(item)
