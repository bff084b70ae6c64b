"""Follow-up surveys never close: each quarter's respondents get the results, once k answered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.clock import FixedClock
from bot.results import feedback
from bot.runtime import Runtime
from storage import repo_tasks
from storage.models import (
    Answer,
    CaseEvent,
    Contact,
    ContactAddress,
    Followup,
    FollowupRule,
    Message,
    Respondent,
)
from tests.results_integration.conftest import START, SURVEY_ID


async def answered_followups(runtime: Runtime, n: int, finished: datetime, *, rule: int) -> None:
    """n people whose follow-up conversation was completed at `finished`."""
    entry = runtime.catalog.latest(SURVEY_ID)
    assert entry is not None
    async with runtime.db.transaction() as s:
        for _ in range(n):
            contact = Contact(language="en")
            s.add(contact)
            await s.flush()
            token = uuid.uuid4().hex
            s.add(
                ContactAddress(
                    contact_id=contact.id,
                    channel="webchat",
                    address=token,
                    address_key=runtime.service.pseudonymizer.address_key("webchat", token),
                )
            )
            event = CaseEvent(
                event_id=uuid.uuid4().hex,
                type="insats_ended",
                contact_id=contact.id,
                occurred_at=finished - timedelta(days=20),
            )
            s.add(event)
            await s.flush()
            s.add(
                Followup(
                    rule_id=rule,
                    event_id=event.id,
                    contact_id=contact.id,
                    due_at=finished,
                    status="sent",
                    sent_at=finished,
                    outcome="completed",
                    finished_on=finished.date(),
                )
            )
            respondent_id = str(uuid.uuid4())
            s.add(
                Respondent(
                    id=respondent_id,
                    survey_id=SURVEY_ID,
                    survey_version_id=entry.version_id,
                    campaign_id=None,
                    attributes={},
                    channel="webchat",
                    status="completed",
                    started_on=finished.date(),
                    completed=True,
                    origin="followup",
                )
            )
            await s.flush()
            s.add(
                Answer(
                    respondent_id=respondent_id,
                    question_id="hjalp",
                    value="ja",
                    skipped=False,
                    answered_on=finished.date(),
                )
            )


async def test_quarterly_feedback_waits_for_k_then_sends_once(
    runtime: Runtime, clock: FixedClock
) -> None:
    async with runtime.db.transaction() as s:
        rule = FollowupRule(name="r", event_type="insats_ended", survey_id=SURVEY_ID, delay=0)
        s.add(rule)
        await s.flush()
        rule_id = rule.id
    assert await feedback.schedule_periodic(runtime) == 1
    assert await feedback.schedule_periodic(runtime) == 0

    # Q1 2026: only 3 answered (k = 5), so nothing is sent and they wait for Q2.
    await answered_followups(runtime, 3, datetime(2026, 2, 10, 12, tzinfo=UTC), rule=rule_id)
    clock.advance(datetime(2026, 4, 4, 9, tzinfo=UTC) - clock.now())
    await runtime.tasks.run_due()
    async with runtime.db.transaction(read_only=True) as s:
        assert list(await s.scalars(select(Message).where(Message.kind == "feedback"))) == []
        pending = await repo_tasks.pending(s, kinds=[feedback.FOLLOWUP_TASK])
    assert [t.key for t in pending] == [f"followup.feedback:{SURVEY_ID}:2026Q2"]
    assert pending[0].payload["since"] == "2026-01-01"

    # Q2: 3 more; together 6 >= k, so all six get the results once.
    await answered_followups(runtime, 3, datetime(2026, 5, 10, 12, tzinfo=UTC), rule=rule_id)
    clock.advance(datetime(2026, 7, 4, 9, tzinfo=UTC) - clock.now())
    await runtime.tasks.run_due()
    async with runtime.db.transaction(read_only=True) as s:
        sent = list(await s.scalars(select(Message).where(Message.kind == "feedback")))
        flags = list(await s.scalars(select(Followup.feedback_sent)))
    assert len(sent) == 6 and all(flags)
    assert "6 people answered our survey" in (sent[0].body or "")
    assert '10 in 10 answered "Yes"' in (sent[0].body or "")
    assert (
        await feedback.run_followup_feedback(
            runtime, SURVEY_ID, "2026Q2", START.date().replace(month=1, day=1)
        )
        == 0
    )
