"""/metrics: a small conversation through the whole app, scraped; and the doors it keeps shut."""

from __future__ import annotations

import socket
from datetime import timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from bot.inbound.decide import EXPIRE_TASK
from storage.models import DueTask
from tests.bot.harness import PUBLIC_URL, Harness, running, settings_for
from tests.fakes.twilio_server import FakeTwilio, new_sid, signed_form_request
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)

TOKEN = "metrics-token-0123456789abcdef"
PHONE = "+46701234567"
OTHER = "+46701234568"


def parse(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample as {(name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(
    h: Harness, token: str | None = TOKEN
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await h.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


async def test_a_conversation_is_counted(database_url: str, twilio: FakeTwilio) -> None:
    settings = settings_for(
        database_url, twilio=twilio, extra={"BRUKARDIALOG__METRICS__TOKEN": TOKEN}
    )
    async with running(settings) as h:
        sid = new_sid("SM")
        assert await h.sms(PHONE, "uppfoljning", sid=sid) == 200
        assert await h.sms(PHONE, "uppfoljning", sid=sid) == 200  # Twilio redelivers
        assert await h.sms(OTHER, "uppfoljning") == 200
        # A request signed with the wrong token is refused before any turn.
        headers, body = signed_form_request(
            f"{PUBLIC_URL}/webhooks/twilio", {"From": PHONE, "Body": "x"}, "wrong" * 6
        )
        assert (await h.client.post("/webhooks/twilio", data=body, headers=headers)).status == 403

        h.clock.advance(timedelta(seconds=30))
        before = await scrape(h)
        assert (
            value(before, "brukardialog_inbound_messages_total", channel="sms", outcome="handled")
            == 2
        )
        assert (
            value(before, "brukardialog_inbound_messages_total", channel="sms", outcome="duplicate")
            == 1
        )
        assert (
            value(
                before,
                "brukardialog_inbound_messages_total",
                channel="sms",
                outcome="rejected_signature",
            )
            == 1
        )
        assert value(before, "brukardialog_turn_duration_seconds_count", channel="sms") == 3
        queued = value(before, "brukardialog_outbox_queued_messages", channel="sms")
        assert queued >= 2, "each person's first question waits in the outbox"
        assert value(before, "brukardialog_outbox_oldest_due_age_seconds", channel="sms") == 30
        assert value(before, "brukardialog_scrape_queries_ok") == 1
        assert value(before, "brukardialog_channel_up", channel="sms") == 1

        await h.deliver()
        after = await scrape(h)
        assert value(after, "brukardialog_sends_total", channel="sms", result="sent") == queued
        assert len(twilio.sends) == queued
        assert value(after, "brukardialog_outbox_queued_messages", channel="sms") == 0
        assert value(after, "brukardialog_outbox_oldest_due_age_seconds", channel="sms") == 0

        # Nobody answers: both conversations' expiry timers come due and run once each.
        async with h.runtime.db.transaction(read_only=True) as s:
            due = list(await s.scalars(select(DueTask.due_at).where(DueTask.kind == EXPIRE_TASK)))
        assert len(due) == 2
        h.clock.set(max(due) + timedelta(minutes=5))
        late = await scrape(h)
        assert value(late, "brukardialog_due_tasks_overdue") == 2
        oldest = (h.clock.now() - min(due)).total_seconds()
        assert value(late, "brukardialog_due_tasks_oldest_overdue_seconds") == oldest
        assert await h.runtime.tasks.run_due() == 2
        done = await scrape(h)
        assert value(done, "brukardialog_due_tasks_total", kind=EXPIRE_TASK, result="ok") == 2
        assert value(done, "brukardialog_due_task_delay_seconds_count", kind=EXPIRE_TASK) == 2
        assert value(done, "brukardialog_due_tasks_overdue") == 0

        # A statement the database refuses is counted by the driver's error type.
        with pytest.raises(DBAPIError):
            async with h.runtime.db.transaction(read_only=True) as s:
                await s.execute(text("SELECT * FROM no_such_table"))
        errors = await scrape(h)
        assert (
            sum(v for (n, _), v in errors.items() if n == "brukardialog_database_errors_total") == 1
        )


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", "Bearer"]
)
async def test_metrics_refuse_without_the_token(
    database_url: str, authorization: str | None
) -> None:
    settings = settings_for(database_url, extra={"BRUKARDIALOG__METRICS__TOKEN": TOKEN})
    async with running(settings) as h:
        headers = {"Authorization": authorization} if authorization else {}
        response = await h.client.get("/metrics", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "brukardialog_" not in await response.text()


async def test_no_metrics_on_the_public_site_without_a_token(database_url: str) -> None:
    async with running(settings_for(database_url)) as h:
        assert (await h.client.get("/metrics")).status == 404


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_separate_listener_serves_metrics_off_the_public_site(database_url: str) -> None:
    port = free_port()
    settings = settings_for(
        database_url, extra={"BRUKARDIALOG__METRICS__LISTEN": f"127.0.0.1:{port}"}
    )
    async with running(settings) as h:
        assert (await h.client.get("/metrics")).status == 404, "not on the main listener"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                body = await response.text()
            async with session.get(f"http://127.0.0.1:{port}/chat") as response:
                assert response.status == 404, "only /metrics there"
        assert "brukardialog_inbound_messages" in body
        assert "brukardialog_scrape_queries_ok 1.0" in body
