"""A person who did everything, over SMS on the whole app: a public survey that is not anonymous,
an anonymous campaign survey, an anonymous follow-up after a case event, and one more event
whose follow-up is still pending. Another person took part in the campaign too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot import features
from bot.clock import FixedClock
from tests.bot.harness import Harness, running, settings_for
from tests.fakes.twilio_server import FakeTwilio, new_sid

HERE = Path(__file__).parent
SURVEYS = HERE / "surveys"
RULES = HERE / "rules"
TOKEN = "staff-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+46701234561"
OTHER_PHONE = "+46701234562"
REF = "P-1"
OTHER_REF = "P-2"


@dataclass
class Story:
    """What the scenario did, for the tests to check against."""

    keyword_sid: str = ""
    """The MessageSid of the person's first message, for a redelivery."""
    sids: list[str] = field(default_factory=list)


def lifecycle_settings(database_url: str, twilio: FakeTwilio, **extra: str) -> Any:
    """The harness settings with this folder's surveys and follow-up rules."""
    env = {
        "BRUKARDIALOG__SURVEYS__PATHS": str(SURVEYS),
        "BRUKARDIALOG__FOLLOWUPS__PATHS": str(RULES),
    }
    return settings_for(database_url, twilio=twilio, extra=env | extra, public_surveys=False)


def today_at_noon() -> FixedClock:
    """A fixed clock at noon today (Stockholm): some rows are stamped by the wall clock (inbound
    messages, imported contacts), and retention compares them with the service's clock."""
    noon = datetime.now(ZoneInfo("Europe/Stockholm")).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    return FixedClock(noon.astimezone(UTC))


@asynccontextmanager
async def service(
    database_url: str,
    twilio: FakeTwilio,
    extra: Mapping[str, str] | None = None,
    clock: FixedClock | None = None,
) -> AsyncIterator[Harness]:
    """The whole app on `database_url` with the lifecycle test surveys and rules."""
    settings = lifecycle_settings(database_url, twilio, **dict(extra or {}))
    async with running(settings, clock) as h:
        yield h


async def api(h: Harness, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the staff API; returns the status and the JSON answer."""
    response = await h.client.request(method, f"/api/v1{path}", json=body, headers=AUTH)
    data = await response.json() if response.content_type == "application/json" else None
    return response.status, data


async def say(h: Harness, story: Story, phone: str, text: str) -> str:
    """The person sends an SMS; everything due goes out."""
    sid = new_sid("SM")
    assert await h.sms(phone, text, sid=sid) == 200
    story.sids.append(sid)
    await h.deliver()
    return sid


async def run_due(h: Harness) -> None:
    """Run every due task, and those they made due, and send what they queued."""
    while await h.runtime.tasks.run_due():
        await h.deliver()


async def person_did_everything(h: Harness) -> Story:
    """Play the scenario; the clock moves on by a few hours."""
    story = Story()
    # What `serve` does at startup: load the follow-up rules files of `followups.paths`.
    await features.start(h.runtime)
    status, _ = await api(
        h,
        "POST",
        "/contacts",
        {
            "contacts": [
                {"external_ref": REF, "phone": PHONE, "language": "sv", "gender": "kvinna"},
                {"external_ref": OTHER_REF, "phone": OTHER_PHONE, "language": "sv"},
            ]
        },
    )
    assert status == 200
    # A public survey that is not anonymous: answers stay linked to the person.
    story.keyword_sid = await say(h, story, PHONE, "DIALOGT")
    await say(h, story, PHONE, "1")
    # An anonymous campaign, for both people.
    status, created = await api(
        h,
        "POST",
        "/campaigns",
        {
            "survey": "kampanj",
            "audience": "language == 'sv'",
            "ends": (h.clock.now() + timedelta(days=30)).isoformat(),
            "channels": ["sms"],
        },
    )
    assert status == 201, created
    await run_due(h)
    await say(h, story, PHONE, "1")
    await say(h, story, OTHER_PHONE, "2")
    # A case event and its anonymous follow-up an hour later.
    status, reported = await api(
        h,
        "POST",
        "/events",
        {
            "event_id": "E-1",
            "type": "insats_ended",
            "external_ref": REF,
            "occurred_at": h.clock.now().isoformat(),
        },
    )
    assert status in (200, 201), reported
    assert [f["status"] for f in reported["followups"]] == ["pending"], reported
    h.clock.advance(timedelta(hours=2))
    await run_due(h)
    await say(h, story, PHONE, "1")
    # Anonymous answers are released (the service waits for k people; the test does not).
    assert await h.release() >= 2
    # One more event, its follow-up still pending.
    status, reported = await api(
        h,
        "POST",
        "/events",
        {
            "event_id": "E-2",
            "type": "insats_ended",
            "external_ref": REF,
            "occurred_at": h.clock.now().isoformat(),
        },
    )
    assert status in (200, 201), reported
    return story


async def rows(h: Harness, model: Any, *where: Any) -> list[Any]:
    async with h.runtime.db.transaction(read_only=True) as s:
        return list(await s.scalars(select(model).where(*where)))
