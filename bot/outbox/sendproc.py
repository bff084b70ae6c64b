"""Provider sends in a process of their own: the HTTP requests to Twilio and Telegram.

Under load the service's one event loop runs every turn, and each reply's HTTP request to the
provider (aiohttp's client: building the request, writing it, parsing the answer) cost it about a
fifth of its time. With `dispatcher.send_process` on (the default for `brukardialog serve`) the
dispatcher keeps everything it does (claims, leases, pacing, retries, recording outcomes) and
hands only the request itself to a child process over a pipe; the child runs the same channel
code and answers with the provider's result or error. The pipe costs a few microseconds per
message and the second core does the HTTP.

Nothing is lost when either side dies: the rows stay `sending` under the dispatcher's lease.
A child that exits fails every send in flight as retryable ("the send process stopped"), and
the next send starts a new one; a retry of a message that may have gone out asks the provider
first (`Reconciling.sent_since`), as after any timeout. The child exits when its input closes,
so it never outlives the service, even after `kill -9`.

The wire: frames of a 4-byte big-endian length and a pickle, between this process and a child
it started itself (nothing else can write to the pipe). First the settings, the channels to
serve and the service's log level; then `(seq, channel, OutboundMessage)` one way and
`(seq, kind, value)` back, where kind is "ok" (a SendResult), "error" (a SendError's fields) or
"bug" (an unexpected exception's type)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import Any

from bot.channels import build_channels
from bot.channels.base import Channel, OutboundMessage, SendError, SendResult
from bot.config import Settings

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
START_WITHIN = 60.0
"""Seconds a new child may take to import and build its channels."""
ANSWER_WITHIN = 120.0
"""Seconds a send may take in the child (each channel has its own, shorter, HTTP timeout)."""


class SendProcess:
    """This side of the pipe: starts the child, sends through it, restarts it when it died."""

    def __init__(self, settings: Settings, channels: Sequence[str]) -> None:
        self.settings = settings
        self.channels = frozenset(channels)
        """The channels whose sends go through the child."""
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[str, Any]]] = {}
        self._seq = 0
        self._starting: asyncio.Lock | None = None
        self._stopped = True
        self.started = 0
        """Children started so far (for tests and the log)."""

    @property
    def running(self) -> bool:
        """Started and not stopped: sends go through the child."""
        return not self._stopped

    @property
    def pid(self) -> int | None:
        """The child's process id while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self) -> None:
        """Start the child (sends made meanwhile wait for it)."""
        self._stopped = False
        await self._ensure()

    async def stop(self) -> None:
        """Close the child's input and let it finish what is in flight; kill it if it lingers."""
        self._stopped = True
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        self._fail_pending("the send process stopped")

    async def send(self, channel: str, message: OutboundMessage) -> SendResult:
        """Send `message` on `channel` through the child; raises SendError as the channel would."""
        proc = await self._ensure()
        assert proc.stdin is not None
        self._seq += 1
        seq = self._seq
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str, Any]] = loop.create_future()
        self._pending[seq] = future
        # A timer on the future rather than `wait_for`, which wraps it in a task of its own.
        expiry = loop.call_later(ANSWER_WITHIN, _expire, future)
        try:
            proc.stdin.write(_frame((seq, channel, message)))
            kind, value = await future
        except TimeoutError:
            raise SendError("the send process did not answer", retryable=True) from None
        finally:
            expiry.cancel()
            self._pending.pop(seq, None)
        if kind == "ok":
            assert isinstance(value, SendResult)
            return value
        if kind == "error":
            reason, retryable, retry_after, opted_out, code = value
            raise SendError(
                reason,
                retryable=retryable,
                retry_after=retry_after,
                opted_out=opted_out,
                code=code,
            )
        raise SendError(f"unexpected error: {value}", retryable=True)

    async def _ensure(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            return proc  # the usual case, asked on every send: no lock
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            proc = self._proc
            if proc is not None and proc.returncode is None:
                return proc
            if self._stopped:
                raise SendError("the send process is stopped", retryable=True)
            return await self._spawn()

    async def _spawn(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.outbox.sendproc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        level = logging.getLogger().getEffectiveLevel()
        proc.stdin.write(_frame((self.settings, sorted(self.channels), level)))
        try:
            ready = await asyncio.wait_for(_read(proc.stdout), START_WITHIN)
        except (TimeoutError, asyncio.IncompleteReadError, pickle.UnpicklingError):
            ready = None
        if ready != ("ready",):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            log.error("the send process did not start (exit status %s)", proc.returncode)
            raise SendError("the send process did not start", retryable=True)
        self._proc = proc
        self.started += 1
        self._reader = asyncio.create_task(self._read_answers(proc), name="send-process-reader")
        log.info("send process %s started for %s", proc.pid, ", ".join(sorted(self.channels)))
        return proc

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                seq, kind, value = await _read(proc.stdout)
                future = self._pending.get(seq)
                if future is not None and not future.done():
                    future.set_result((kind, value))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child exited
        finally:
            if self._proc is proc:
                self._proc = None
            if not self._stopped:
                code = await proc.wait()
                log.warning("the send process exited (status %s); sends in flight retry", code)
            self._fail_pending("the send process stopped")

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(SendError(reason, retryable=True))


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read(stream: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    # Only ever our own child or parent on the other end of the pipe.
    return pickle.loads(await stream.readexactly(length))


# -- the child -------------------------------------------------------------------------------------


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    settings, names, level = await _read(reader)
    assert isinstance(settings, Settings)
    logging.getLogger().setLevel(level)  # the service's (--verbose or not)
    built = build_channels(settings)
    channels: dict[str, Channel] = {name: built[name] for name in names if name in built}
    writer.write(_frame(("ready",)))
    in_flight: set[asyncio.Task[None]] = set()

    async def one(seq: int, name: str, message: OutboundMessage) -> None:
        answer: tuple[int, str, Any]
        try:
            channel = channels.get(name)
            if channel is None:
                raise SendError(f"the send process has no {name} channel", retryable=True)
            answer = (seq, "ok", await channel.send(message))
        except SendError as e:
            answer = (seq, "error", (e.reason, e.retryable, e.retry_after, e.opted_out, e.code))
        except Exception as e:  # a bug: the dispatcher retries, never loses the message
            log.error(
                "send process: unexpected %s sending message %s", type(e).__name__, message.id
            )
            log.debug("the unexpected error", exc_info=True)
            answer = (seq, "bug", type(e).__name__)
        writer.write(_frame(answer))

    try:
        while True:
            try:
                seq, name, message = await _read(reader)
            except asyncio.IncompleteReadError:
                break  # the service closed the pipe (stopping, or gone)
            task = asyncio.create_task(one(seq, name, message))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=ANSWER_WITHIN)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
    finally:
        for channel in channels.values():
            await channel.close()


async def _main(answers: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(answers, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    await _serve(reader, writer)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def main() -> None:
    """The child's entry (`python -m bot.outbox.sendproc`), started by `SendProcess`."""
    from bot.logging_setup import setup_logging

    # The answers get standard output's pipe to themselves: anything a library prints goes to
    # standard error instead of into a frame.
    answers = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    setup_logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(answers))


if __name__ == "__main__":
    main()
