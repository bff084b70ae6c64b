"""The outbox dispatcher: sends queued messages at each channel's rate, retrying without doubles.

Why one module: the lanes, the recorder and the leases share one running sender's claims, and their
interplay described below is the design, read in one place.

Every channel has a lane of its own: its own loop, token bucket (the channel's rate) and cap on
sends in flight, so a slow or paced channel never holds another. Within a lane, messages to one
recipient go out one at a time, in order; Telegram's one-message-a-second per chat is kept by
making that chat's next message wait its turn in memory while every other chat goes on.

Keeping up: a lane claims many due rows in one statement, and the outcomes of many sends (sent,
retry later, failed) are written together by a recorder. Claims, outcomes and leases are jobs on
the database's writer (storage.outbox, storage.writer): on SQLite they join the turns' group
commit, one job among the turns of the moment, instead of holding a write lock of their own
that turns would queue behind.

Outlasting an outage: transient failures (5xx, timeouts, connection errors, 429) are retried with
capped exponential backoff and jitter until `dispatcher.retry_horizon` has passed since the
message's first failed attempt; a Retry-After (Twilio's header, Telegram's retry_after) pauses the
whole lane for as long as asked and does not count as an attempt. Permanent errors fail at once.
Giving up is never silent: the row ends `failed` with the reason, and a warning names the message
and channel (never the recipient or the text).

Several processes (PostgreSQL): only one process sends on a channel at a time, the holder of that
channel's lease (`leases` row `outbox:<channel>`), so the provider sees one rate. Beneath that,
every message is claimed with `FOR UPDATE SKIP LOCKED` and a lease of its own. While the sender is
alive a heartbeat renews both every third of `dispatcher.lease_seconds`; after a `kill -9` another
process takes the channel over and reclaims the rows when they run out (10 s by default). A row
reclaimed that way counts a second attempt, and on a channel that can list what it accepted (SMS)
the provider is asked first, so a message the dead process had already handed over is recorded,
not sent again. A clean stop hands everything back at once."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import re
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.channels import limits_from
from bot.channels.base import (
    Channel,
    ChannelLimits,
    OutboundMessage,
    Reconciling,
    SendError,
    SendResult,
)
from bot.clock import Clock
from bot.config import DispatcherSettings, Settings
from bot.ops import events
from bot.ops.metrics import Metrics
from bot.outbox.sendproc import SendProcess
from flows.conversation import Button
from storage import outbox, repo_messages
from storage.db import Database
from storage.outbox import Claim, Failure, Outgoing, Release, SentMark
from storage.plan import Handoff
from storage.sqlexec import Exec

if TYPE_CHECKING:
    from bot.inbound.service import ConversationService

log = logging.getLogger(__name__)

ALWAYS_SENT = frozenset({"opt_out", "ack"})
"""Kinds sent even to an opted-out contact: the one confirmation, and a button acknowledgement."""

CLAIM_BATCH = 200
"""Most rows one claim takes."""
CLAIM_AHEAD = 2.0
"""A lane holds about this many seconds of sending (at its rate) claimed in memory."""
CLAIM_INTERVAL = 0.02
"""Seconds between two claims of a lane woken by new messages: lets a batch gather."""
MAX_PER_ADDRESS = 20
"""Messages to one paced recipient held in memory; more wait in the table, deferred."""
RECORD_LINGER = 0.005
"""Seconds the recorder waits after the first outcome, so one transaction takes many."""
STOP_GRACE = 5.0
"""Seconds a stop waits for sends in flight."""
OUTAGE_FAILURES = 3
"""Transient failures in a row after which the next success brings every waiting retry forward
(at most every 30 s): after an outage the backlog goes out at once, not as its backoffs end."""
RECONCILE_MARGIN = timedelta(minutes=2)
"""How far before a row was queued a provider's message may be dated and still be that row's
(clocks differ)."""

_NOTHING_DUE = Claim([], set())
"""What an idle lane's claim finds when nothing on its channel is due (no lease is taken)."""
_EPSILON = 1e-6
"""Seconds of pacing slack: a wait computed in floats may end a hair early."""
_DIGITS = re.compile(r"\+?\d[\d\s-]{5,}\d")


def safe_reason(reason: str) -> str:
    """A provider's error text fit for a log line: numbers that could be a phone number or a chat
    id are masked."""
    return _DIGITS.sub("<number>", reason)


class Timer(Protocol):
    """Where pacing gets its time: real seconds, or a fake in tests."""

    def monotonic(self) -> float:
        """Seconds from a clock that never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (pacing between sends)."""
        ...


class RealTimer:
    """`time.monotonic` and `asyncio.sleep`."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        await asyncio.sleep(seconds)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float | None = None, timer: Timer | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 0.2)
        self._timer: Timer = timer or RealTimer()
        self._tokens = self.burst
        self._at = self._timer.monotonic()

    def _refill(self) -> None:
        now = self._timer.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait_time(self) -> float:
        """Seconds until a token is there (0.0: now)."""
        self._refill()
        # A hair under one token counts as one: float sums of small refills may never reach it.
        return 0.0 if self._tokens >= 1 - 1e-9 else (1 - self._tokens) / self.rate

    def take(self) -> bool:
        """Take a token if one is there."""
        if self.wait_time() > 0:
            return False
        self._tokens = max(0.0, self._tokens - 1)
        return True

    async def acquire(self) -> None:
        """Wait for a token and take it."""
        while not self.take():
            await self._timer.sleep(self.wait_time())


def backoff(
    attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the n-th failed attempt: exponential, capped, with jitter (half the
    wait is random, so a burst of failures does not come back all at once)."""
    wait: float = min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))
    jitter: float = (rng or random).uniform(0, wait / 2)
    return wait / 2 + jitter


def outbound(item: Outgoing) -> OutboundMessage:
    """The neutral message a channel sends for a claimed row."""
    payload = item.payload
    return OutboundMessage(
        id=item.id,
        channel=item.channel,
        address=item.address,
        text=item.body,
        buttons=tuple(Button(str(p), str(label)) for p, label in payload.get("buttons", [])),
        numbered=tuple(str(n) for n in payload.get("numbered", [])),
        multiple=bool(payload.get("multiple", False)),
        extras=dict(payload.get("extras", {})),
    )


# -- outcomes: what became of one claimed message, written in batches by the recorder ----------


@dataclass(frozen=True, slots=True)
class _Sent:
    item: Outgoing
    result: SendResult


@dataclass(frozen=True, slots=True)
class _Retry:
    item: Outgoing
    release: Release
    reason: str | None = None
    """Set when an attempt failed; None for a message deferred without trying."""


@dataclass(frozen=True, slots=True)
class _Failed:
    item: Outgoing
    reason: str
    cancelled: bool = False
    opted_out: bool = False


_Outcome = _Sent | _Retry | _Failed


# -- one channel's lane -------------------------------------------------------------------------


@dataclass
class _Lane:
    """One channel's sending state: what it claimed, who may be sent to next, what is in flight."""

    name: str
    channel: Channel
    limits: ChannelLimits
    bucket: TokenBucket
    lease_valid_until: datetime | None = None
    """Until when this process may send on the channel (a margin before its lease runs out)."""
    paused_until: datetime | None = None
    """A Retry-After: nothing is claimed or sent before this."""
    queues: dict[str, deque[Outgoing]] = field(default_factory=dict)
    ready: list[tuple[float, int, str]] = field(default_factory=list)
    """Heap of (ready at, order, address): recipients with messages waiting and none in flight."""
    queued: set[str] = field(default_factory=set)
    """Addresses in `ready`."""
    in_flight: set[str] = field(default_factory=set)
    last_sent: dict[str, float] = field(default_factory=dict)
    retry_floor: dict[str, datetime] = field(default_factory=dict)
    """The latest retry time given to a recipient's message: a later message to them is retried
    no earlier, so after an outage their messages still arrive in order."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    opted_out: set[int] = field(default_factory=set)
    failures_in_a_row: int = 0
    """Transient failures since the last message went through."""
    recovered_at: float = -math.inf
    down_since: float | None = None
    """When this process saw the channel go down (OUTAGE_FAILURES failures in a row)."""
    recover: bool = False
    """The provider answers again after an outage: bring the waiting retries forward."""
    pending: int = 0
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    woken: bool = True
    last_fill: float = -math.inf
    blocked_until: float = -math.inf
    """Another process holds the channel: no claim before this, however often woken."""
    order: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def lease_name(self) -> str:
        return f"outbox:{self.name}"

    @property
    def gap(self) -> float:
        """Seconds between two messages to one recipient."""
        per_address = self.limits.per_address
        return 1.0 / per_address if per_address else 0.0

    @property
    def target(self) -> int:
        """How many claimed rows this lane keeps in memory: a few seconds at its rate."""
        ahead = max(1, math.ceil(self.limits.rate * CLAIM_AHEAD), 2 * self.limits.concurrency)
        return min(CLAIM_BATCH, ahead)

    @property
    def hungry(self) -> bool:
        """Whether it is worth claiming: half of the target has gone out."""
        return self.pending <= self.target // 2

    def room(self, limit: int | None) -> int:
        """How many more rows this lane should claim now."""
        want = self.target - self.pending
        return max(0, min(want, limit) if limit is not None else want)

    def holds_lease(self, now: datetime) -> bool:
        return self.lease_valid_until is not None and now < self.lease_valid_until

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def add(self, item: Outgoing, mono: float) -> bool:
        """Queue a claimed message; False if its recipient already has too many waiting."""
        queue = self.queues.setdefault(item.address, deque())
        if self.gap and len(queue) >= MAX_PER_ADDRESS:
            return False
        queue.append(item)
        self.pending += 1
        self._schedule(item.address, mono)
        return True

    def _schedule(self, address: str, mono: float) -> None:
        if address in self.in_flight or address in self.queued:
            return
        ready_at = max(mono, self.last_sent.get(address, -math.inf) + self.gap)
        heapq.heappush(self.ready, (ready_at, next(self.order), address))
        self.queued.add(address)

    def take(self, mono: float, now: datetime) -> list[Outgoing]:
        """The messages that may go now: recipients whose turn it is, within the rate and the
        cap on sends in flight."""
        taken: list[Outgoing] = []
        if self.paused(now) or not self.holds_lease(now):
            return taken
        while (
            self.ready
            and self.ready[0][0] <= mono + _EPSILON
            and len(self.in_flight) < self.limits.concurrency
            and self.bucket.take()
        ):
            _, _, address = heapq.heappop(self.ready)
            self.queued.discard(address)
            queue = self.queues[address]
            item = queue.popleft()
            self.pending -= 1
            self.in_flight.add(address)
            taken.append(item)
        return taken

    def done(self, item: Outgoing, started: float, *, sent: bool = True) -> None:
        """A send finished: its recipient's next message may follow after the gap."""
        address = item.address
        self.in_flight.discard(address)
        if self.gap and sent:
            self.last_sent[address] = started
        if self.queues.get(address):
            self._schedule(address, started)
        else:
            self.queues.pop(address, None)

    def wait_hint(self, mono: float) -> float | None:
        """Seconds until a waiting message may go (None: nothing to wait for here)."""
        if not self.ready or len(self.in_flight) >= self.limits.concurrency:
            return None
        return max(self.ready[0][0] - mono - _EPSILON, self.bucket.wait_time(), 0.0)

    def drain(self) -> list[Outgoing]:
        """Take every waiting message out of memory (to hand back to the table)."""
        items = [item for queue in self.queues.values() for item in queue]
        for address in list(self.queues):
            if address not in self.in_flight:
                del self.queues[address]
            else:
                self.queues[address].clear()
        self.ready.clear()
        self.queued.clear()
        self.pending = 0
        return items

    def forget_old(self, mono: float, now: datetime) -> None:
        """Drop send times older than the gap and retry floors already passed."""
        if len(self.last_sent) > 1000:
            horizon = mono - self.gap
            self.last_sent = {a: t for a, t in self.last_sent.items() if t > horizon}
        if len(self.retry_floor) > 1000:
            self.retry_floor = {a: t for a, t in self.retry_floor.items() if t > now}


# -- the dispatcher -----------------------------------------------------------------------------


class Dispatcher:
    """Claims due outbox rows and sends them: one lane per channel, outcomes written in batches.

    `start()` runs it in the background; `run_once()` is one pass for tests and commands."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        settings: DispatcherSettings,
        clock: Clock,
        service: ConversationService | None = None,
        *,
        limits: Mapping[str, ChannelLimits] | None = None,
        timer: Timer | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        remote: SendProcess | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.remote = remote
        """Where the sends of its channels go while sending in the background (sendproc)."""
        self.channels = dict(channels)
        self.settings = settings
        self.clock = clock
        self.service = service
        self.timer: Timer = timer or RealTimer()
        self.rng = rng or random.Random()
        self.worker = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        # The channels' own limits (`bot.channels`), with these dispatcher settings; `limits`
        # overrides them channel by channel.
        self.limits = {**limits_from(Settings(dispatcher=settings)), **(limits or {})}
        self.lanes = {
            name: _Lane(
                name,
                channel,
                lim := self.limits.get(name, ChannelLimits(1.0)),
                TokenBucket(lim.rate, timer=self.timer),
            )
            for name, channel in self.channels.items()
        }
        self._outcomes: list[_Outcome] = []
        self._recorded = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._renewal: asyncio.Future[None] | None = None

    # -- running ---------------------------------------------------------------------------

    def wake(self) -> None:
        """New messages were queued in this process: look now instead of at the next poll."""
        for lane in self.lanes.values():
            lane.woken = True
            lane.signal.set()

    async def start(self) -> None:
        """Send in the background: a loop per channel, a recorder and a lease heartbeat."""
        self._stopping = False
        if self.remote is not None:
            try:
                await self.remote.start()
            except SendError as e:
                log.warning("outbox: %s; sending from this process", e.reason)
                self.remote = None
        self._tasks = [
            *(
                asyncio.create_task(self._run_lane(lane), name=f"outbox-lane-{lane.name}")
                for lane in self.lanes.values()
            ),
            asyncio.create_task(self._run_recorder(), name="outbox-recorder"),
            asyncio.create_task(self._run_heartbeat(), name="outbox-heartbeat"),
        ]

    async def stop(self) -> None:
        """Stop sending: wait briefly for sends in flight, record every outcome, and hand the
        unsent messages and the channel leases back at once."""
        self._stopping = True
        self.wake()
        self._recorded.set()
        tasks, self._tasks = self._tasks, []
        lanes = [t for t in tasks if t.get_name().startswith("outbox-lane-")]
        if lanes:
            await asyncio.wait(lanes, timeout=STOP_GRACE)
        sends = [t for lane in self.lanes.values() for t in lane.tasks]
        if sends:
            _, late = await asyncio.wait(sends, timeout=STOP_GRACE)
            for task in late:  # its row stays leased: retried (and reconciled) after the lease
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # The recorder ends by itself once nothing is left to record, and a renewal under way
        # is let finish: cancelled inside a transaction, either would leave a connection to be
        # rolled back by the pool.
        busy: list[asyncio.Future[None]] = [t for t in tasks if t.get_name() == "outbox-recorder"]
        if self._renewal is not None and not self._renewal.done():
            busy.append(self._renewal)
        if busy:
            await asyncio.wait(busy, timeout=STOP_GRACE)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.remote is not None:
            await self.remote.stop()
        with contextlib.suppress(Exception):
            await self.flush()
        try:
            await self._hand_back()
        except Exception as e:
            log.warning("outbox: could not hand back leases on stop (%s)", type(e).__name__)

    async def run_once(self, limit: int | None = None) -> int:
        """One pass: claim what is due on every channel and send it all, waiting only where a
        recipient's pacing asks for it. Returns how many messages were handled (sent, failed,
        cancelled or put back to retry)."""
        handled = 0
        full: list[_Lane] = []
        for lane in self.lanes.values():
            room = lane.room(limit)
            if await self._fill(lane, limit) >= room > 0:
                full.append(lane)
        while True:
            started: list[asyncio.Task[None]] = []
            for lane in self.lanes.values():
                if lane.pending and not lane.holds_lease(self.clock.now()):
                    await self._fill(lane, 0)
                started += self._start_ready(lane)
            if started:
                await asyncio.gather(*started)
            handled += await self.flush()
            if not any(lane.pending for lane in self.lanes.values()):
                # A lane that took a whole claim's worth may have more due (without a limit).
                again, full = (full if limit is None else []), []
                for lane in again:
                    room = lane.room(None)
                    if await self._fill(lane) >= room > 0:
                        full.append(lane)
                if not any(lane.pending for lane in self.lanes.values()):
                    return handled
                continue
            if not started:
                mono = self.timer.monotonic()
                hints = [
                    h for lane in self.lanes.values() if (h := lane.wait_hint(mono)) is not None
                ]
                if not hints:
                    return handled
                await self.timer.sleep(min(hints))

    async def _run_lane(self, lane: _Lane) -> None:
        poll = self.settings.poll_interval
        next_fill = -math.inf
        while not self._stopping:
            mono = self.timer.monotonic()
            if lane.woken:
                lane.woken = False
                soonest = max(lane.last_fill + CLAIM_INTERVAL, lane.blocked_until)
                next_fill = min(next_fill, soonest)
            if mono >= next_fill and lane.hungry:
                room = lane.room(None)
                try:
                    got = await self._fill(lane)
                except Exception as e:  # the type only: a database error's text carries SQL
                    log.warning(
                        "outbox %s: claiming failed (%s); trying again", lane.name, type(e).__name__
                    )
                    got = 0
                mono = self.timer.monotonic()
                next_fill = mono + (CLAIM_INTERVAL if got >= room else poll)
            self._start_ready(lane)
            waits = [poll, max(0.0, next_fill - mono)]
            if (hint := lane.wait_hint(mono)) is not None:
                waits.append(hint)
            if lane.paused_until is not None:
                left = (lane.paused_until - self.clock.now()).total_seconds()
                waits.append(max(0.0, left))
            lane.signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.signal.wait(), max(0.001, min(waits)))

    def _start_ready(self, lane: _Lane) -> list[asyncio.Task[None]]:
        started = []
        for item in lane.take(self.timer.monotonic(), self.clock.now()):
            if item.kind not in ALWAYS_SENT and item.contact_id in lane.opted_out:
                lane.done(item, self.timer.monotonic(), sent=False)
                self._record(_Failed(item, "recipient has opted out", cancelled=True))
                continue
            task = asyncio.create_task(self._deliver(lane, item))
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)
            started.append(task)
        return started

    # -- replies straight from turns ---------------------------------------------------------------

    def handoffs(self) -> dict[str, Handoff]:
        """The channels whose replies a turn may write already claimed by this sender: sending in
        the background, holding the channel's lease, not paused, with room in memory."""
        if not self._tasks or self._stopping:
            return {}
        now = self.clock.now()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        return {
            name: Handoff(name, self.worker, until)
            for name, lane in self.lanes.items()
            if lane.holds_lease(now) and not lane.paused(now) and lane.pending < lane.target
        }

    def hand_over(self, items: Sequence[Outgoing]) -> None:
        """Replies a committed turn wrote claimed by this sender (`handoffs`): queue them as if
        claimed. Should the lane have lost its channel meanwhile, they go back to the table."""
        now, mono = self.clock.now(), self.timer.monotonic()
        for item in items:
            lane = self.lanes.get(item.channel)
            if lane is None or self._stopping or not lane.holds_lease(now):
                self._record(_Retry(item, Release(item.id, None, counted=False)))
            elif not lane.add(item, mono):
                waiting = len(lane.queues[item.address])
                later = now + timedelta(seconds=lane.gap * (waiting + 1))
                self._record(_Retry(item, Release(item.id, later, counted=False)))
            else:
                self._start_ready(lane)
                lane.signal.set()

    # -- claiming and leases ---------------------------------------------------------------------

    async def _fill(self, lane: _Lane, limit: int | None = None) -> int:
        """Take or renew the channel's lease and claim what is due, in one writer job. Returns
        rows claimed."""
        now = self.clock.now()
        lane.last_fill = self.timer.monotonic()
        lane.forget_old(lane.last_fill, now)
        if lane.paused(now):
            return 0
        lane.paused_until = None
        worker, name, lease_name = self.worker, lane.name, lane.lease_name
        until = now + timedelta(seconds=self.settings.lease_seconds)
        room = lane.room(limit)
        # Idle: no lease is taken unless something is due (wake() comes with every inbound
        # message). Driven by run_once, with no heartbeat, the rows' leases are renewed here; in
        # the background only the heartbeat renews them.
        idle = not lane.pending and not lane.in_flight
        renew_rows = not idle and not self._tasks

        def job(x: Exec) -> Claim | None:
            if idle and not outbox.due(x, name, now):
                return _NOTHING_DUE
            if not outbox.acquire_lease(x, lease_name, worker, now, until):
                return None
            if renew_rows:
                outbox.renew(x, worker, name, until)
            if room <= 0:
                return Claim([], set())
            return outbox.claim(x, channel=name, worker=worker, now=now, until=until, limit=room)

        claimed = await self.db.turns.run(job, quick=True)
        if claimed is _NOTHING_DUE:
            return 0
        if claimed is None:
            self._lost(lane)
            lane.blocked_until = self.timer.monotonic() + self.settings.poll_interval
            return 0
        self._holding(lane, now)
        mono = self.timer.monotonic()
        for item in claimed.items:
            if item.kind not in ALWAYS_SENT and item.contact_id in claimed.opted_out:
                self._record(_Failed(item, "recipient has opted out", cancelled=True))
            elif not lane.add(item, mono):
                waiting = len(lane.queues[item.address])
                later = now + timedelta(seconds=lane.gap * (waiting + 1))
                self._record(_Retry(item, Release(item.id, later, counted=False)))
        if claimed.items:
            lane.signal.set()
        return len(claimed.items)

    def _holding(self, lane: _Lane, now: datetime) -> None:
        if lane.lease_valid_until is None:
            log.info("outbox %s: sending from this process (%s)", lane.name, self.worker)
        lane.lease_valid_until = now + timedelta(seconds=self.settings.lease_seconds * 0.8)

    def _lost(self, lane: _Lane) -> None:
        """Another process holds the channel: give back what this one had waiting."""
        lane.lease_valid_until = None
        waiting = lane.drain()
        if waiting:
            log.warning(
                "outbox %s: another process took over the channel; handing back %d messages",
                lane.name,
                len(waiting),
            )
            self._record_all(_Retry(i, Release(i.id, None, counted=False)) for i in waiting)

    async def renew(self) -> None:
        """The heartbeat: renew each held channel lease and the leases of its claimed rows."""
        now = self.clock.now()
        ttl = self.settings.lease_seconds
        held = [
            lane
            for lane in self.lanes.values()
            if lane.lease_valid_until is not None or lane.pending or lane.in_flight
        ]
        if not held:
            return
        worker, until = self.worker, now + timedelta(seconds=ttl)
        names = [(lane.name, lane.lease_name) for lane in held]

        def job(x: Exec) -> dict[str, bool]:
            kept = {}
            for name, lease_name in names:
                kept[name] = outbox.acquire_lease(x, lease_name, worker, now, until)
                if kept[name]:
                    outbox.renew(x, worker, name, until)
            return kept

        kept = await self.db.turns.run(job, quick=True)
        for lane in held:
            if kept[lane.name]:
                self._holding(lane, now)
            else:
                self._lost(lane)

    async def _run_heartbeat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while not self._stopping:
            await self.timer.sleep(interval)
            if self._stopping:
                return
            self._renewal = asyncio.ensure_future(self.renew())
            try:
                await self._renewal
            except Exception as e:  # the type only: a database error's text carries SQL
                log.warning("outbox: renewing leases failed (%s); trying again", type(e).__name__)

    async def _hand_back(self) -> None:
        """Put every claimed but unsent message back in the queue and release the leases."""
        releases = [
            Release(item.id, None, counted=False)
            for lane in self.lanes.values()
            for item in lane.drain()
        ]
        worker, now = self.worker, self.clock.now()
        names = [lane.lease_name for lane in self.lanes.values()]

        def job(x: Exec) -> None:
            outbox.record(x, worker, now=now, releases=releases)
            outbox.release_leases(x, worker, names)

        await self.db.turns.run(job, quick=True)
        for lane in self.lanes.values():
            lane.lease_valid_until = None

    # -- sending ------------------------------------------------------------------------------

    async def _deliver(self, lane: _Lane, item: Outgoing) -> None:
        started = self.timer.monotonic()
        try:
            outcome = await self._attempt(lane, item)
        finally:
            lane.done(item, started)
        if isinstance(outcome, _Sent):
            mono = self.timer.monotonic()
            if lane.failures_in_a_row >= OUTAGE_FAILURES and mono - lane.recovered_at > 30:
                lane.recover, lane.recovered_at = True, mono
            lane.failures_in_a_row = 0
            if lane.down_since is not None:
                self._back(lane, mono - lane.down_since)
        self._record(outcome)
        if isinstance(outcome, _Failed) and outcome.opted_out and item.contact_id is not None:
            lane.opted_out.add(item.contact_id)
        if self._tasks and not self._stopping:
            # In the background the next sends start right here; the lane's loop is woken only
            # to claim more or to wait out pacing.
            self._start_ready(lane)
            waiting_on_time = lane.ready and len(lane.in_flight) < lane.limits.concurrency
            if lane.hungry or waiting_on_time or not lane.in_flight:
                lane.signal.set()

    async def _attempt(self, lane: _Lane, item: Outgoing) -> _Outcome:
        channel = lane.channel
        message = outbound(item)
        try:
            if item.attempts > 1 and isinstance(channel, Reconciling):
                accepted = await self._accepted_before(channel, item, message)
                if accepted is not None:
                    return _Sent(item, accepted)
            remote = self.remote
            if remote is not None and remote.running and lane.name in remote.channels:
                result = await remote.send(lane.name, message)
            else:
                result = await channel.send(message)
        except SendError as e:
            return self._after_error(lane, item, e)
        except Exception as e:  # a bug or an unmapped provider error: retry, never lose the message
            log.error(
                "outbox %s: unexpected %s sending message %s",
                item.channel,
                type(e).__name__,
                item.id,
            )
            log.debug("the unexpected error", exc_info=True)
            error = SendError(f"unexpected error: {type(e).__name__}", retryable=True)
            return self._after_error(lane, item, error)
        return _Sent(item, result)

    def _after_error(self, lane: _Lane, item: Outgoing, error: SendError) -> _Outcome:
        now = self.clock.now()
        reason = safe_reason(error.reason)
        if error.opted_out:
            return _Failed(item, reason, opted_out=True)
        if not error.retryable:
            return _Failed(item, reason)
        first_failure = item.retrying_since or now
        horizon = timedelta(seconds=self.settings.retry_horizon_seconds)
        if now - first_failure >= horizon:
            return _Failed(
                item,
                f"gave up after retrying for {self.settings.retry_horizon}: {reason}",
            )
        if error.retry_after is not None:
            # The provider says when: the whole channel waits, and no attempt is used up.
            until = now + timedelta(seconds=error.retry_after)
            self._pause(lane, until)
            release = Release(item.id, until, reason, counted=False, failed_at=first_failure)
        else:
            lane.failures_in_a_row += 1
            if lane.failures_in_a_row == OUTAGE_FAILURES and lane.down_since is None:
                self._down(lane, reason)
            delay = backoff(
                item.attempts,
                base=self.settings.backoff_base,
                cap=self.settings.backoff_max,
                rng=self.rng,
            )
            # One last try at the horizon rather than none after it.
            retry_at = min(now + timedelta(seconds=delay), first_failure + horizon)
            floor = lane.retry_floor.get(item.address)
            if floor is not None and floor >= retry_at:
                retry_at = floor + timedelta(milliseconds=1)
            lane.retry_floor[item.address] = retry_at
            release = Release(item.id, retry_at, reason, counted=True, failed_at=first_failure)
        return _Retry(item, release, reason)

    def _down(self, lane: _Lane, reason: str) -> None:
        lane.down_since = self.timer.monotonic()
        self.metrics.channel_state(lane.name, up=False)
        events.note(
            "channel.down",
            "channel {channel} is down: {failures} sends in a row failed ({reason}); "
            "retrying with backoff",
            channel=lane.name,
            failures=lane.failures_in_a_row,
            reason=reason,
        )

    def _back(self, lane: _Lane, seconds: float) -> None:
        lane.down_since = None
        self.metrics.channel_state(lane.name, up=True)
        events.note(
            "channel.up",
            "channel {channel} is back: a send went through after {seconds} s down",
            channel=lane.name,
            seconds=round(seconds),
        )

    def _pause(self, lane: _Lane, until: datetime) -> None:
        if lane.paused_until is None or until > lane.paused_until:
            lane.paused_until = until
            log.info(
                "outbox %s: provider asked to wait; pausing until %s",
                lane.name,
                until.isoformat(timespec="seconds"),
            )
        waiting = lane.drain()
        self._record_all(_Retry(i, Release(i.id, until, counted=False)) for i in waiting)

    async def _accepted_before(
        self, channel: Reconciling, item: Outgoing, message: OutboundMessage
    ) -> SendResult | None:
        """What the provider accepted of this row in an earlier attempt that seemed to fail (a
        timeout after the request went out, a crash before the outcome was written): a matching
        message no other row holds."""
        since = item.created_at - RECONCILE_MARGIN
        found = await channel.sent_since(message, since)
        if not found:
            return None
        async with self.db.transaction(read_only=True) as s:
            known = await repo_messages.known_provider_ids(
                s, item.channel, [r.provider_id for r in found]
            )
        accepted = next((r for r in found if r.provider_id not in known), None)
        if accepted is not None:
            log.warning(
                "message %s on %s had been accepted (%s) before its last attempt failed; "
                "not sending it again",
                item.id,
                item.channel,
                accepted.provider_id,
            )
        return accepted

    # -- recording ------------------------------------------------------------------------------

    def _record(self, outcome: _Outcome) -> None:
        self._outcomes.append(outcome)
        self._recorded.set()

    def _record_all(self, outcomes: Iterable[_Outcome]) -> None:
        for outcome in outcomes:
            self._record(outcome)

    async def flush(self) -> int:
        """Write every outcome waiting to be recorded, in one transaction. Returns how many
        messages were handled (deferrals without an attempt are not counted)."""
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return 0
        try:
            await self._write(batch)
        except BaseException:
            self._outcomes[:0] = batch
            raise
        self._report(batch)
        return sum(1 for o in batch if not (isinstance(o, _Retry) and o.reason is None))

    async def _run_recorder(self) -> None:
        failures = 0
        while True:
            await self._recorded.wait()
            if not self._outcomes:
                self._recorded.clear()
                if self._stopping:
                    return
                continue
            await self.timer.sleep(RECORD_LINGER)
            self._recorded.clear()
            try:
                await self.flush()
                failures = 0
            except Exception as e:
                failures += 1
                log.warning(
                    "outbox: recording %d outcomes failed (%s); trying again",
                    len(self._outcomes),
                    type(e).__name__,
                )
                self._recorded.set()
                await self.timer.sleep(min(5.0, 0.1 * 2**failures))

    async def _write(self, batch: Sequence[_Outcome]) -> None:
        now = self.clock.now()
        sent = [
            SentMark(
                o.item.id,
                o.result.provider_id,
                o.result.status,
                o.result.segments,
                o.result.encoding,
                clear_body=o.item.kind == "ack",
            )
            for o in batch
            if isinstance(o, _Sent)
        ]
        releases = [o.release for o in batch if isinstance(o, _Retry)]
        failed = [o for o in batch if isinstance(o, _Failed)]
        failures = [Failure(f.item.id, f.reason, cancelled=f.cancelled) for f in failed]
        opted_out = [f.item.contact_id for f in failed if f.opted_out and f.item.contact_id]
        recovering = [lane.name for lane in self.lanes.values() if lane.recover]
        due_by = now + timedelta(seconds=self.settings.backoff_max)
        worker = self.worker

        def job(x: Exec) -> dict[str, int]:
            brought = {name: outbox.retry_now(x, name, now, due_by=due_by) for name in recovering}
            outbox.record(x, worker, now=now, sent=sent, releases=releases, failures=failures)
            return brought

        brought = await self.db.turns.run(job, quick=True)
        for name, count in brought.items():
            self.lanes[name].recover = False
            log.info(
                "outbox %s: the provider answers again; %d messages waiting to be retried go now",
                name,
                count,
            )
        # The provider says they unsubscribed: a turn of its own ends their survey.
        if self.service is not None:
            for contact_id in dict.fromkeys(opted_out):
                await self.service.opt_out_contact(contact_id)

    def _report(self, batch: Sequence[_Outcome]) -> None:
        retried: Counter[tuple[str, str]] = Counter()
        results: Counter[tuple[str, str]] = Counter()
        for o in batch:
            if isinstance(o, _Sent):
                results[(o.item.channel, "sent")] += 1
            elif isinstance(o, _Retry):
                if o.reason is not None:
                    results[(o.item.channel, "retried")] += 1
            else:
                opted_out = o.opted_out or o.cancelled
                results[(o.item.channel, "opted_out" if opted_out else "failed")] += 1
            if isinstance(o, _Failed) and not o.cancelled:
                log.warning(
                    "message %s on %s failed for good: %s", o.item.id, o.item.channel, o.reason
                )
            elif isinstance(o, _Retry) and o.reason is not None:
                retried[(o.item.channel, o.reason)] += 1
        for (channel, reason), count in retried.items():
            log.info("outbox %s: %d sends failed and will be retried: %s", channel, count, reason)
        for (channel, result), count in results.items():
            self.metrics.sent(channel, result, count)
