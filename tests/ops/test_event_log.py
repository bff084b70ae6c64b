"""The log people read: one INFO line per thing that happened, in text and in JSON, never a
person in it."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import campaigns
from bot.campaigns import CampaignRequest
from bot.clock import FixedClock
from bot.logging_setup import RedactingFilter
from bot.ops import events
from bot.ops.logformat import JsonFormatter, use_format
from bot.results import feedback
from bot.results.service import export_campaign
from tests.campaigns.helpers import (
    ROWS,
    START,
    campaign_runtime,
    csv_text,
    import_csv,
    webchat_token,
)
from tests.campaigns.test_campaigns import say
from tests.chaos.service import BRUKARDIALOG, ROOT, free_port
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)

PHONE = "+46701234567"


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(event, message) of every event line captured."""
    return [
        (str(getattr(r, events.EVENT)), r.getMessage())
        for r in caplog.records
        if r.name == events.log.name
    ]


async def test_a_campaign_cycle_is_told_line_by_line(
    database_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    clock = FixedClock(START)
    async with campaign_runtime(database_url, clock=clock) as runtime:
        feedback.register(runtime)
        await import_csv(runtime, csv_text())
        campaign = await campaigns.create_campaign(
            runtime,
            CampaignRequest(
                survey_id="kort",
                audience="true",
                ends="2026-03-20T12:00",
                reminders=("2d",),
                channels=("webchat",),
                feedback_delay="1d",
            ),
            actor="cli:anna.andersson",
        )
        cid = campaign.id
        await runtime.tasks.run_due()  # start: the audience
        await runtime.tasks.run_due()  # the first invite round
        for n, ref in enumerate(("P1", "P2", "P3", "P4", "P5")):
            token = await webchat_token(runtime, ref)
            await say(runtime, token, "1", 10 * n + 1)
            if ref != "P5":
                await say(runtime, token, "1", 10 * n + 2)
        funnel = {
            s.labels["stage"]: s.value
            for family in text_string_to_metric_families(
                (await runtime.metrics.exposition()).decode()
            )
            for s in family.samples
            if s.name == "brukardialog_campaign_people" and s.labels["campaign"] == str(cid)
        }
        assert funnel == {"audience": 5, "invited": 5, "started": 5, "completed": 4}
        clock.advance(timedelta(days=2))
        await runtime.tasks.run_due()  # the reminder (P5 has not finished)
        await runtime.dispatcher.run_once()
        clock.set(datetime(2026, 3, 20, 11, 0, 1, tzinfo=UTC))
        await runtime.tasks.run_due()  # closing
        after_close = await runtime.metrics.exposition()
        assert f'campaign="{cid}"'.encode() not in after_close, "only open campaigns"
        clock.advance(timedelta(days=1, minutes=1))
        await runtime.tasks.run_due()  # feedback
        await export_campaign(runtime, cid, "csv", tmp_path / "out.csv", actor="api:token-1")

    told = lines(caplog)
    assert [event for event, _ in told] == [
        "campaign.created",
        "campaign.started",
        "campaign.invitations",
        "campaign.reminders",
        "campaign.closed",
        "campaign.feedback",
        "results.export",
    ]
    text = dict(told)
    assert text["campaign.created"].startswith(f"campaign {cid} created by cli: survey kort")
    assert text["campaign.started"] == f"campaign {cid} started: an audience of 5"
    assert text["campaign.invitations"] == (
        f"campaign {cid} invite round: 5 invitations sent; the last round"
    )
    assert text["campaign.reminders"] == f"campaign {cid} reminder 1: 1 reminders sent"
    assert text["campaign.closed"] == (
        f"campaign {cid} closed by scheduler: 5 invited, 4 started, 4 completed; "
        "0 queued messages cancelled"
    )
    assert re.fullmatch(
        rf"campaign {cid} feedback sent: \d+ messages queued, 4 people in all",
        text["campaign.feedback"],
    ), text["campaign.feedback"]
    assert text["results.export"] == (
        f"campaign {cid} results exported by api: csv, 4 respondents, final, to a file"
    )
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "anna" not in everything and "token-1" not in everything
    for row in ROWS:
        ref, phone = row.split(",")[:2]
        assert phone not in everything and phone[1:] not in everything


def test_the_json_format_is_one_object_a_line_and_redacted() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.ops.json")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        use_format("json", logger)
        assert isinstance(handler.formatter, JsonFormatter)
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.info("reply to %s failed", PHONE)
        try:
            raise ValueError(f"bad number {PHONE}")
        except ValueError:
            logger.exception("while sending\nsecond line")
        events.log.addHandler(handler)
        events.log.propagate = False
        events.note(
            "channel.down",
            "channel {channel} is down ({reason})",
            channel="sms",
            reason=f"to {PHONE}",
        )
    finally:
        logger.removeHandler(handler)
        events.log.removeHandler(handler)
        events.log.propagate = True
    out = stream.getvalue().splitlines()
    assert len(out) == 3, out
    records = [json.loads(line) for line in out]
    assert PHONE not in stream.getvalue()
    assert records[0]["message"] == "reply to <phone> failed"
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "tests.ops.json"
    assert datetime.fromisoformat(records[0]["time"]).tzinfo is not None
    assert records[1]["message"] == "while sending\nsecond line"
    assert "ValueError: bad number <phone>" in records[1]["error"]
    assert records[2]["event"] == "channel.down"
    assert records[2]["data"] == {"channel": "sms", "reason": "to <phone>"}
    assert records[2]["message"] == "channel sms is down (to <phone>)"


def test_serve_log_format_json(tmp_path: Path) -> None:
    """`brukardialog serve --log-format json`: every line the service logs is a JSON object."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRUKARDIALOG")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "BRUKARDIALOG__SERVER__PORT": str(port),
        "BRUKARDIALOG__DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'bd.db'}",
        "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "test-pseudonym-key-0123456789abcdef",
        "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BRUKARDIALOG), "serve", "--log-format", "json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(30)
    written = log.read_text(encoding="utf-8").splitlines()
    assert written, "the service logs at startup"
    records = [json.loads(line) for line in written]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("public_url is not set" in r["message"] for r in records)
