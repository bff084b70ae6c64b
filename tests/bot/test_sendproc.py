"""The send process: provider requests made by a child of the service, over a pipe.

The child runs the same channel code against the fake Twilio on 127.0.0.1; these tests check
what the dispatcher relies on: results and errors come back as the channel gives them, a child
that dies fails what it had in flight as retryable and is replaced, and a child never outlives
the service."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.base import OutboundMessage, SendError
from bot.config import Settings
from bot.outbox.sendproc import SendProcess
from storage.models import Message
from tests.bot.harness import Harness, running, settings_for
from tests.fakes.twilio_server import FakeTwilio
from tests.security.logcheck import no_personal_data_in_logs  # noqa: F401  (autouse)

PHONE = "+46701234567"


@pytest.fixture
def settings(tmp_path: Path, twilio: FakeTwilio) -> Settings:
    return settings_for(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", twilio=twilio)


@pytest.fixture
async def remote(settings: Settings) -> AsyncIterator[SendProcess]:
    process = SendProcess(settings, ["sms"])
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


def sms(text: str, message_id: int = 1) -> OutboundMessage:
    return OutboundMessage(id=message_id, channel="sms", address=PHONE, text=text)


def gone(pid: int) -> bool:
    """The process exited (a zombie nobody reaped counts: it runs no code)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_a_send_goes_out_through_the_child_and_its_result_comes_back(
    remote: SendProcess, twilio: FakeTwilio
) -> None:
    assert remote.running and remote.started == 1
    assert remote.pid is not None and remote.pid != os.getpid()
    results = await asyncio.gather(*(remote.send("sms", sms(f"Fråga {i} ✓", i)) for i in range(20)))
    assert sorted(r.provider_id for r in results) == sorted(twilio.messages)
    assert all(r.segments == 1 and r.encoding == "UCS-2" for r in results)
    assert sorted(r.form["Body"] for r in twilio.sends) == sorted(f"Fråga {i} ✓" for i in range(20))
    assert {r.form["To"] for r in twilio.sends} == {PHONE}
    assert remote.started == 1, "one child for every send"


async def test_provider_errors_come_back_as_the_channel_raised_them(
    remote: SendProcess, twilio: FakeTwilio
) -> None:
    twilio.fail_next(400, 21211)
    with pytest.raises(SendError) as invalid:
        await remote.send("sms", sms("Hej"))
    assert not invalid.value.retryable and invalid.value.code == "21211"
    assert "not a valid phone number" in invalid.value.reason

    twilio.fail_next(400, 21610)
    with pytest.raises(SendError) as stopped:
        await remote.send("sms", sms("Hej"))
    assert stopped.value.opted_out and not stopped.value.retryable

    twilio.fail_next(429, retry_after="7")
    with pytest.raises(SendError) as busy:
        await remote.send("sms", sms("Hej"))
    assert busy.value.retryable and busy.value.retry_after == 7

    twilio.fail_next(503)
    with pytest.raises(SendError) as down:
        await remote.send("sms", sms("Hej"))
    assert down.value.retryable

    with pytest.raises(SendError) as unknown:
        await remote.send("telegram", OutboundMessage(1, "telegram", "42", "Hej"))
    assert unknown.value.retryable and "no telegram channel" in unknown.value.reason
    assert (await remote.send("sms", sms("Hej"))).provider_id in twilio.messages
    assert remote.started == 1


async def test_a_child_that_dies_fails_its_sends_as_retryable_and_is_replaced(
    remote: SendProcess, twilio: FakeTwilio
) -> None:
    twilio.hold_answers()
    in_flight = [asyncio.create_task(remote.send("sms", sms("Hej", i))) for i in range(3)]
    for _ in range(200):
        if len(twilio.sends) == 3:
            break
        await asyncio.sleep(0.02)
    first = remote.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    for task in in_flight:
        with pytest.raises(SendError) as failed:
            await task
        assert failed.value.retryable and "send process stopped" in failed.value.reason
    twilio.release_answers()

    result = await remote.send("sms", sms("Igen"))
    assert result.provider_id in twilio.messages
    assert remote.started == 2 and remote.pid not in (None, first)


async def test_a_stopped_process_sends_nothing_and_its_child_exits(
    settings: Settings, twilio: FakeTwilio
) -> None:
    remote = SendProcess(settings, ["sms"])
    await remote.start()
    pid = remote.pid
    assert pid is not None
    await remote.stop()
    assert not remote.running and remote.pid is None and gone(pid)
    with pytest.raises(SendError) as refused:
        await remote.send("sms", sms("Hej"))
    assert refused.value.retryable
    assert twilio.sends == []


async def test_the_child_exits_when_the_service_is_killed(
    settings: Settings, twilio: FakeTwilio
) -> None:
    """`kill -9` of the service closes the pipe: the child sees the end of its input."""
    script = (
        "import asyncio, os\n"
        "from bot.config import load_settings\n"
        "from bot.outbox.sendproc import SendProcess\n"
        "async def main():\n"
        "    remote = SendProcess(load_settings(None, dict(os.environ)), ['sms'])\n"
        "    await remote.start()\n"
        "    print(remote.pid, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    env = os.environ | {
        "BRUKARDIALOG__TWILIO__ACCOUNT_SID": settings.twilio.account_sid,
        "BRUKARDIALOG__TWILIO__AUTH_TOKEN": settings.twilio.auth_token,
        "BRUKARDIALOG__TWILIO__FROM_NUMBER": settings.twilio.from_number,
        "BRUKARDIALOG__TWILIO__API_BASE_URL": twilio.base_url,
    }
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert service.stdout is not None
    try:
        line = await asyncio.wait_for(service.stdout.readline(), 60)
        child = int(line)
        assert not gone(child)
    finally:
        service.kill()
        await service.wait()
    for _ in range(250):
        if gone(child):
            break
        await asyncio.sleep(0.02)
    assert gone(child), "the send process outlived the service"


async def test_a_dispatcher_whose_child_cannot_start_sends_itself(
    database_url: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    async with running(settings_for(database_url, twilio=twilio)) as harness:
        dispatcher = harness.runtime.dispatcher
        assert dispatcher.remote is not None
        assert await harness.sms(PHONE, "uppfoljning") == 200
        await dispatcher.start()
        try:
            sent = await until_sent(harness, 1)
        finally:
            await dispatcher.stop()
        assert dispatcher.remote is None, "sends fell back to this process"
        assert len(twilio.sends) == len(sent)


async def test_the_service_sends_its_replies_through_the_child(
    database_url: str, twilio: FakeTwilio
) -> None:
    async with running(settings_for(database_url, twilio=twilio)) as harness:
        remote = harness.runtime.send_process
        assert remote is not None and remote.channels == {"sms"}, "the web chat sends itself"
        await harness.runtime.dispatcher.start()
        try:
            assert remote.running and remote.started == 1
            assert await harness.sms(PHONE, "uppfoljning") == 200
            await until_sent(harness, 1)
            assert await harness.sms(PHONE, "2") == 200
            await until_sent(harness, 2)
        finally:
            await harness.runtime.dispatcher.stop()
        assert not remote.running and remote.pid is None
        out = await harness.outbox("sms")
        assert sorted(m.provider_id or "" for m in out) == sorted(twilio.messages)
        assert all(m.status == "sent" and m.segments for m in out)


async def until_sent(harness: Harness, count: int) -> list[Message]:
    for _ in range(500):
        out = [m for m in await harness.outbox("sms") if m.status == "sent"]
        if len(out) >= count:
            return out
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} replies were sent")


async def test_the_send_process_is_off_when_configured_so(
    database_url: str, twilio: FakeTwilio
) -> None:
    settings = settings_for(
        database_url, twilio=twilio, extra={"BRUKARDIALOG__DISPATCHER__SEND_PROCESS": "false"}
    )
    async with running(settings) as harness:
        assert harness.runtime.send_process is None and harness.runtime.dispatcher.remote is None
