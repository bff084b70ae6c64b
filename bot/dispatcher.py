"""The outbox dispatcher: sends queued messages at each channel's rate, retrying without doubles.

How several processes share the work (PostgreSQL): every process runs a dispatcher, but only one
sends on a channel at a time — the holder of that channel's lease row (`channel_leases`), renewed
every pass and taken over by another process when it runs out. So the channel's rate, kept by the
holder's token bucket, is the rate the provider sees. Beneath that, every message is claimed with
`FOR UPDATE SKIP LOCKED` and a lease of its own, so even two holders (a stalled process whose lease
was taken over) can never send the same row, and a process killed mid-send leaves its rows to be
reclaimed when their lease runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.channels.base import Channel, OutboundMessage, Reconciling, SendError, SendResult
from bot.clock import Clock
from flows.conversation import Button
from storage import repo_contacts, repo_leases, repo_messages
from storage.db import Database
from storage.models import Message

if TYPE_CHECKING:
    from bot.config import DispatcherSettings
    from bot.inbound.service import ConversationService

log = logging.getLogger(__name__)

ALWAYS_SENT = frozenset({"opt_out", "ack"})
"""Kinds sent even to an opted-out contact: the one confirmation, and a button acknowledgement."""


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_time(self) -> float:
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        wait = self.wait_time()
        if wait > 0:
            await asyncio.sleep(wait)
            self._refill()
        self._tokens -= 1


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    rate: float
    """Messages a second across the channel."""
    per_address: float | None = None
    """Messages a second to one recipient (Telegram: 1 per chat)."""


def backoff(attempt: int, *, base: float = 2.0, cap: float = 600.0) -> float:
    """Exponential backoff with full jitter, in seconds, for the n-th failed attempt."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))


def outbound_from_row(row: Message) -> OutboundMessage:
    payload: Mapping[str, Any] = row.payload or {}
    return OutboundMessage(
        id=row.id,
        channel=row.channel,
        address=row.address or "",
        text=row.body or "",
        buttons=tuple(Button(str(p), str(label)) for p, label in payload.get("buttons", [])),
        numbered=tuple(str(n) for n in payload.get("numbered", [])),
        multiple=bool(payload.get("multiple", False)),
        extras=dict(payload.get("extras", {})),
    )


RECONCILE_MARGIN = timedelta(minutes=2)
"""How far before a row was queued a provider's message may be dated and still be that row's
(clocks differ)."""


class Dispatcher:
    """Claims due outbox rows per channel and sends them, one loop per channel."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: DispatcherSettings,
        clock: Clock,
        service: ConversationService | None = None,
        *,
        limits: Mapping[str, ChannelLimits] | None = None,
    ) -> None:
        self.db = db
        self.channels = dict(channels)
        self.settings = settings
        self.clock = clock
        self.service = service
        self.worker = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.limits = dict(limits or {})
        self.limits.setdefault("webchat", ChannelLimits(rate=1000.0))
        self.limits.setdefault(
            "telegram",
            ChannelLimits(settings.telegram_rate, per_address=settings.telegram_per_chat_rate),
        )
        self.limits.setdefault("sms", ChannelLimits(1.0))
        self._buckets = {name: TokenBucket(lim.rate) for name, lim in self.limits.items()}
        self._last_to: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """New messages were queued in this process: look now instead of at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop(), name="outbox-dispatcher")]

    async def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                await repo_leases.release_all(s, self.worker)
        self._wake.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("outbox dispatcher pass failed; trying again")
                sent = 0
            if sent == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    async def run_once(self, limit: int = 100) -> int:
        """One pass over every channel: claim what is due and send it. Returns messages handled."""
        handled = 0
        for name, channel in self.channels.items():
            now = self.clock.now()
            ttl = self.settings.lease_seconds
            # Claim no more than can be sent well within the channel lease.
            rate = self.limits.get(name, ChannelLimits(rate=1.0)).rate
            batch = max(1, min(limit, int(rate * ttl / 2)))
            async with self.db.transaction() as s:
                if not await repo_leases.acquire(s, f"outbox:{name}", self.worker, now, ttl):
                    continue
                rows = await repo_messages.claim(
                    s,
                    channel=name,
                    worker=self.worker,
                    now=now,
                    lease_seconds=ttl,
                    limit=batch,
                )
                opted_out = await repo_contacts.opted_out_among(
                    s, {r.contact_id for r in rows if r.contact_id is not None}
                )
            for row in rows:
                if row.kind not in ALWAYS_SENT and row.contact_id in opted_out:
                    await self._finish(row, error="recipient has opted out", cancelled=True)
                elif await self._send(channel, row) and row.contact_id is not None:
                    # The provider says they unsubscribed: the rest of this batch waits no more.
                    opted_out.add(row.contact_id)
                handled += 1
        return handled

    async def _pace(self, row: Message) -> None:
        limits = self.limits.get(row.channel, ChannelLimits(rate=1.0))
        bucket = self._buckets.setdefault(row.channel, TokenBucket(limits.rate))
        await bucket.acquire()
        if limits.per_address:
            key = (row.channel, row.address or "")
            gap = 1.0 / limits.per_address
            last = self._last_to.get(key)
            if last is not None and (wait := last + gap - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            self._last_to[key] = time.monotonic()

    async def _send(self, channel: Channel, row: Message) -> bool:
        """Send one claimed row; True if the provider said the recipient has opted out."""
        await self._pace(row)
        try:
            if row.attempts > 1 and isinstance(channel, Reconciling):
                accepted = await self._accepted_before(channel, row)
                if accepted is not None:
                    await self._sent(row, accepted)
                    return False
            result = await channel.send(outbound_from_row(row))
        except SendError as e:
            await self._failed(row, e)
            return e.opted_out
        except Exception as e:  # a bug or an unmapped provider error: retry, never lose the message
            log.exception("unexpected error sending message %s on %s", row.id, row.channel)
            error = SendError(f"unexpected error: {type(e).__name__}", retryable=True)
            await self._failed(row, error)
            return False
        await self._sent(row, result)
        return False

    async def _accepted_before(self, channel: Reconciling, row: Message) -> SendResult | None:
        """What the provider accepted of this row in an earlier attempt that seemed to fail (a
        timeout after the request went out): a matching message no other row has claimed."""
        since = row.created_at - RECONCILE_MARGIN
        found = await channel.sent_since(outbound_from_row(row), since)
        if not found:
            return None
        async with self.db.transaction(read_only=True) as s:
            known = await repo_messages.known_provider_ids(
                s, row.channel, [r.provider_id for r in found]
            )
        accepted = next((r for r in found if r.provider_id not in known), None)
        if accepted is not None:
            log.warning(
                "message %s on %s had been accepted (%s) before its last attempt failed; "
                "not sending it again",
                row.id,
                row.channel,
                accepted.provider_id,
            )
        return accepted

    async def _sent(self, row: Message, result: SendResult) -> None:
        now = self.clock.now()
        async with self.db.transaction() as s:
            await repo_messages.mark_sent(
                s,
                row.id,
                self.worker,
                provider_id=result.provider_id,
                status=result.status,
                segments=result.segments,
                encoding=result.encoding,
                now=now,
                # A button acknowledgement shows the chosen answer: keep nothing of it once sent.
                clear_body=row.kind == "ack",
            )

    async def _failed(self, row: Message, error: SendError) -> None:
        now = self.clock.now()
        if error.opted_out:
            await self._finish(row, error=error.reason, opted_out=True)
        elif error.retryable and row.attempts < self.settings.max_attempts:
            delay = error.retry_after if error.retry_after is not None else backoff(row.attempts)
            async with self.db.transaction() as s:
                await repo_messages.release_for_retry(
                    s,
                    row.id,
                    self.worker,
                    not_before=now + timedelta(seconds=delay),
                    error=error.reason,
                )
            log.info(
                "message %s on %s will be retried in %.1fs: %s",
                row.id,
                row.channel,
                delay,
                error.reason,
            )
        else:
            await self._finish(row, error=error.reason)

    async def _finish(
        self, row: Message, *, error: str, opted_out: bool = False, cancelled: bool = False
    ) -> None:
        async with self.db.transaction() as s:
            await repo_messages.mark_failed(
                s, row.id, self.worker, error=error, status="cancelled" if cancelled else "failed"
            )
        if opted_out and row.contact_id is not None and self.service is not None:
            await self.service.opt_out_contact(row.contact_id)
        if not cancelled:
            log.warning("message %s on %s failed for good: %s", row.id, row.channel, error)
