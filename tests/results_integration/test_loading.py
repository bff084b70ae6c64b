"""Loading answers for results: chunks, versions, participation, the previous campaign, speed."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

from sqlalchemy import insert

from bot.clock import FixedClock
from bot.results.service import campaign_results
from bot.runtime import Runtime
from storage import repo_results
from storage.models import Answer, Respondent
from storage.repo_results import RecordFilter
from tests.results_integration.conftest import START, SURVEY_ID, Person, make_campaign, people


async def test_records_chunks_and_filters(runtime: Runtime) -> None:
    persons = [*people(7), *people(2, status="closed"), Person(status="pending")]
    campaign_id = await make_campaign(runtime, persons)
    other = await make_campaign(runtime, people(3))
    entry = runtime.catalog.latest(SURVEY_ID)
    assert entry is not None
    async with runtime.db.transaction(read_only=True) as s:
        where = RecordFilter(entry.version_id, campaign_id=campaign_id)
        chunks = [c async for c in repo_results.record_chunks(s, where, chunk=3)]
        assert [len(c) for c in chunks] == [3, 3, 1]
        records = [r for c in chunks for r in c]
        assert len({r.respondent_id for r in records}) == 7
        assert all(
            r.completed and r.answers == {"hjalp": "ja", "bemotande": "bra"} for r in records
        )
        assert records[0].answered_on["hjalp"] == (START - timedelta(days=14)).date()
        with_partial = await repo_results.records(
            s, RecordFilter(entry.version_id, campaign_id=campaign_id, completed_only=False)
        )
        assert len(with_partial) == 9
        assert await repo_results.records(s, RecordFilter(entry.version_id + 999)) == []
        p = await repo_results.participation(s, campaign_id)
        assert (p.invited, p.started, p.completed, p.opted_out) == (9, 7, 7, 0)
        assert other


async def test_previous_campaign_is_the_last_closed_before(
    runtime: Runtime, clock: FixedClock
) -> None:
    first = await make_campaign(runtime, people(5), closed_at=START - timedelta(days=200))
    second = await make_campaign(runtime, people(5), closed_at=START - timedelta(days=100))
    current = await make_campaign(runtime, people(5))
    running = await make_campaign(runtime, people(5), status="running")
    assert (await campaign_results(runtime, current)).previous_campaign_id == second
    assert (await campaign_results(runtime, second)).previous_campaign_id == first
    assert (await campaign_results(runtime, first)).previous_campaign_id is None
    open_results = await campaign_results(runtime, running)
    assert open_results.previous_campaign_id == current and not open_results.final


async def test_many_answers_load_quickly(runtime: Runtime) -> None:
    """100,000 answers (a million with BRUKARDIALOG_RESULTS_MILLION=1) load in a few seconds."""
    answers_per = 10
    respondents = 100_000 if os.environ.get("BRUKARDIALOG_RESULTS_MILLION") else 10_000
    campaign_id = await make_campaign(runtime, [])
    entry = runtime.catalog.latest(SURVEY_ID)
    assert entry is not None
    day = START.date()
    batch = 5_000
    for offset in range(0, respondents, batch):
        ids = [str(uuid.uuid4()) for _ in range(min(batch, respondents - offset))]
        async with runtime.db.transaction() as s:
            await s.execute(
                insert(Respondent),
                [
                    {
                        "id": rid,
                        "survey_id": SURVEY_ID,
                        "survey_version_id": entry.version_id,
                        "campaign_id": campaign_id,
                        "contact_id": None,
                        "attributes": {"unit": "norr"},
                        "channel": "sms",
                        "status": "completed",
                        "started_on": day,
                        "completed": True,
                    }
                    for rid in ids
                ],
            )
            await s.execute(
                insert(Answer),
                [
                    {
                        "respondent_id": rid,
                        "question_id": f"q{i}" if i > 1 else ("hjalp", "bemotande")[i],
                        "value": "ja" if i == 0 else "bra",
                        "skipped": False,
                        "answered_on": day,
                    }
                    for rid in ids
                    for i in range(answers_per)
                ],
            )
    started = time.perf_counter()
    async with runtime.db.transaction(read_only=True) as s:
        records = await repo_results.records(
            s, RecordFilter(entry.version_id, campaign_id=campaign_id)
        )
    elapsed = time.perf_counter() - started
    assert len(records) == respondents
    assert sum(len(r.answers) for r in records) == respondents * answers_per
    # 10k respondents take well under a second; a generous bound keeps slow CI machines green.
    assert elapsed < (30 if respondents > 10_000 else 5), elapsed
