"""Prometheus metrics, one registry per service (never the process-global one).

Counters and histograms are bumped where things happen: the webhooks and the turn service (inbound
messages, turn time), the dispatcher (sends by result, channel up/down), the due-task poller (tasks
run, how late) and the database engine (errors). Nothing on the hot path touches the database.

What needs a query (outbox depth and the oldest due message, overdue tasks, each open campaign's
funnel) is read when Prometheus scrapes: a few aggregate queries on indexed columns, bounded in
time, and at most MAX_CAMPAIGNS campaigns. Labels are channels, outcomes, task kinds and campaign
ids; never an address, a name or a text.

/metrics is never public: the main listener serves it only with `metrics.token` (a bearer token),
and `metrics.listen` opens a listener of its own for it (e.g. on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from sqlalchemy import event, func, select

from storage.models import Campaign, DueTask, Invitation, Message

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.config import MetricsSettings
    from storage.db import Database

log = logging.getLogger(__name__)

PREFIX = "brukardialog"
MAX_CAMPAIGNS = 50
"""Open campaigns whose funnel a scrape shows (the newest)."""
SCRAPE_TIMEOUT = 5.0
"""Seconds the scrape-time queries may take; past that the scrape answers without them."""
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
OPEN_CAMPAIGNS = ("scheduled", "running", "paused")


@dataclass
class Snapshot:
    """What the scrape-time queries found."""

    ok: bool = False
    seconds: float = 0.0
    outbox: dict[str, int] = field(default_factory=dict)
    oldest_due: dict[str, float] = field(default_factory=dict)
    overdue_tasks: int = 0
    oldest_overdue_task: float = 0.0
    funnel: dict[int, dict[str, int]] = field(default_factory=dict)


class _Scraped:
    """A collector yielding the last snapshot (prometheus_client collectors are synchronous, so
    the queries run before `generate_latest`)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def describe(self) -> Iterator[Metric]:
        return self._families(Snapshot())

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot)

    def _families(self, snap: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_scrape_queries_ok",
            "1 when the scrape-time queries answered in time, else 0 (their gauges are left out)",
            value=1.0 if snap.ok else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_scrape_queries_seconds",
            "Seconds the scrape-time queries took",
            value=snap.seconds,
        )
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_queued_messages",
            "Outgoing messages waiting to be sent (queued or being sent), per channel",
            labels=["channel"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_due_age_seconds",
            "How long the oldest queued message that is due has been waiting, per channel "
            "(0: none due; messages held for quiet hours are not due yet)",
            labels=["channel"],
        )
        for channel, n in sorted(snap.outbox.items()):
            depth.add_metric([channel], n)
            oldest.add_metric([channel], snap.oldest_due.get(channel, 0.0))
        overdue = GaugeMetricFamily(
            f"{PREFIX}_due_tasks_overdue",
            "Timers (reminders, expiries, campaign rounds...) due and not yet run",
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}_due_tasks_oldest_overdue_seconds",
            "How late the most overdue timer is (0: none overdue)",
        )
        funnel = GaugeMetricFamily(
            f"{PREFIX}_campaign_people",
            "People of each open campaign by stage: audience, invited, started, completed",
            labels=["campaign", "stage"],
        )
        if snap.ok:
            overdue.add_metric([], snap.overdue_tasks)
            lag.add_metric([], snap.oldest_overdue_task)
            for campaign_id, stages in sorted(snap.funnel.items()):
                for stage, n in stages.items():
                    funnel.add_metric([str(campaign_id), stage], n)
        yield from (depth, oldest, overdue, lag, funnel)


class Metrics:
    """The service's metrics in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            f"{PREFIX}_inbound_messages",
            "Inbound messages per channel and outcome: handled, duplicate (a redelivery), "
            "ignored (recorded, never answered), rejected_signature, rejected_request, error",
            ["channel", "outcome"],
            registry=r,
        )
        self.turn_seconds = Histogram(
            f"{PREFIX}_turn_duration_seconds",
            "Seconds from an inbound message reaching the turn service to its turn committed",
            ["channel"],
            buckets=TURN_BUCKETS,
            registry=r,
        )
        self.sends = Counter(
            f"{PREFIX}_sends",
            "Outgoing messages by result: sent, retried (a transient failure, sent again later), "
            "failed (for good), opted_out (not sent: the recipient unsubscribed)",
            ["channel", "result"],
            registry=r,
        )
        self.channel_up = Gauge(
            f"{PREFIX}_channel_up",
            "0 while a channel's sends fail in a row (an outage seen by this process), else 1",
            ["channel"],
            registry=r,
        )
        self.due_tasks = Counter(
            f"{PREFIX}_due_tasks",
            "Timers run by this process, per kind and result (ok, failed)",
            ["kind", "result"],
            registry=r,
        )
        self.due_task_delay = Histogram(
            f"{PREFIX}_due_task_delay_seconds",
            "Seconds between a timer's due time and this process running it",
            ["kind"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.database_errors = Counter(
            f"{PREFIX}_database_errors",
            "Errors the database driver raised, by type (connection lost, lock timeouts...)",
            ["error"],
            registry=r,
        )
        self._scraped = _Scraped()
        r.register(self._scraped)
        self._db: Database | None = None
        self._clock: Clock | None = None
        self._lock = asyncio.Lock()
        self.scrape_timeout = SCRAPE_TIMEOUT

    # -- the edges ------------------------------------------------------------------------

    def inbound_done(self, channel: str, outcome: str, seconds: float | None = None) -> None:
        """One inbound message's turn finished (seconds: how long the turn took)."""
        self.inbound.labels(channel, outcome).inc()
        if seconds is not None:
            self.turn_seconds.labels(channel).observe(seconds)

    def rejected(self, webhook: str, status: int) -> None:
        """A provider request refused before any turn (bad signature, bad body)."""
        channel = webhook.replace(" ", "_")
        outcome = "rejected_signature" if status in (401, 403) else "rejected_request"
        self.inbound.labels(channel, outcome).inc()

    def sent(self, channel: str, result: str, n: int = 1) -> None:
        """Count `n` sends on `channel` that ended in `result`."""
        self.sends.labels(channel, result).inc(n)

    def channel_state(self, channel: str, up: bool) -> None:
        """Set whether `channel` is up (1) or down after failed sends (0)."""
        self.channel_up.labels(channel).set(1 if up else 0)

    def task_started(self, kind: str, due_at: datetime, now: datetime) -> None:
        """A due task started: observe how late it ran after `due_at`."""
        self.due_task_delay.labels(kind).observe(max(0.0, (now - due_at).total_seconds()))

    def task_done(self, kind: str, ok: bool) -> None:
        """A due task finished, counted as ok or failed by kind."""
        self.due_tasks.labels(kind, "ok" if ok else "failed").inc()

    # -- the database ------------------------------------------------------------------------

    def bind(self, db: Database, clock: Clock, channels: Sequence[str] = ()) -> None:
        """Read the scrape-time gauges from `db`, count its driver errors, and show each
        channel as up until a send says otherwise."""
        self._db, self._clock = db, clock
        for channel in channels:
            self.channel_state(channel, True)
        event.listen(db.engine.sync_engine, "handle_error", self._on_error)

    def _on_error(self, context: Any) -> None:
        error = context.original_exception
        self.database_errors.labels(type(error).__name__).inc()

    async def refresh(self) -> Snapshot:
        """Run the scrape-time queries (one scrape at a time, bounded by SCRAPE_TIMEOUT)."""
        async with self._lock:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.scrape_timeout):
                    snap = await self._query()
            except Exception as e:  # the type only: a database error's text carries SQL
                log.warning("metrics: the scrape-time queries failed (%s)", type(e).__name__)
                snap = Snapshot(ok=False)
            snap.seconds = time.perf_counter() - started
            self._scraped.snapshot = snap
            return snap

    async def _query(self) -> Snapshot:
        if self._db is None or self._clock is None:
            return Snapshot(ok=False)
        now = self._clock.now()
        snap = Snapshot(ok=True)
        out = Message.direction == "out"
        async with self._db.transaction(read_only=True) as s:
            depth = await s.execute(
                select(Message.channel, func.count())
                .where(out, Message.status.in_(("queued", "sending")))
                .group_by(Message.channel)
            )
            snap.outbox = {str(c): int(n) for c, n in depth.all()}
            due = await s.execute(
                select(Message.channel, func.min(Message.not_before))
                .where(out, Message.status == "queued", Message.not_before <= now)
                .group_by(Message.channel)
            )
            snap.oldest_due = {str(c): _age(now, at) for c, at in due.all() if at is not None}
            overdue, oldest = (
                await s.execute(
                    select(func.count(), func.min(DueTask.due_at)).where(
                        DueTask.status == "pending", DueTask.due_at <= now
                    )
                )
            ).one()
            snap.overdue_tasks = int(overdue or 0)
            snap.oldest_overdue_task = _age(now, oldest) if oldest is not None else 0.0
            campaigns = (
                await s.execute(
                    select(Campaign.id, Campaign.audience_size)
                    .where(Campaign.status.in_(OPEN_CAMPAIGNS))
                    .order_by(Campaign.id.desc())
                    .limit(MAX_CAMPAIGNS)
                )
            ).all()
            if campaigns:
                snap.funnel = {
                    int(cid): dict.fromkeys(("invited", "started", "completed"), 0)
                    | {"audience": int(size or 0)}
                    for cid, size in campaigns
                }
                funnel = await s.execute(
                    select(
                        Invitation.campaign_id,
                        Invitation.status,
                        func.count(),
                        func.count(Invitation.invited_at),
                    )
                    .where(Invitation.campaign_id.in_(list(snap.funnel)))
                    .group_by(Invitation.campaign_id, Invitation.status)
                )
                for cid, status, n, invited in funnel.all():
                    stages = snap.funnel[int(cid)]
                    stages["invited"] += int(invited)
                    if status in ("started", "completed"):
                        stages["started"] += int(n)
                    if status == "completed":
                        stages["completed"] += int(n)
        return snap

    async def exposition(self) -> bytes:
        """The text format Prometheus scrapes, after refreshing the scrape-time gauges."""
        await self.refresh()
        return generate_latest(self.registry)


def _age(now: datetime, at: object) -> float:
    """Seconds from `at` (a datetime from the database) to now; 0 for anything else."""
    if not isinstance(at, datetime):
        return 0.0
    if at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - at).total_seconds())


# -- HTTP -----------------------------------------------------------------------------------------


def _authorized(request: web.Request, token: str) -> bool:
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    )


def handler(
    token: str, metrics_of: Callable[[web.Request], Metrics]
) -> Callable[[web.Request], Any]:
    """The /metrics handler: 401 without the bearer token (when one is configured)."""

    async def serve(request: web.Request) -> web.Response:
        if not _authorized(request, token):
            return web.json_response(
                {"error": "metrics need the bearer token (metrics.token)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await metrics_of(request).exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        response.headers["Cache-Control"] = "no-store"
        return response

    return serve


def add_routes(
    app: web.Application, settings: MetricsSettings, metrics_of: Callable[[web.Request], Metrics]
) -> None:
    """/metrics on the main listener, only when a token guards it."""
    if settings.token:
        app.router.add_get("/metrics", handler(settings.token, metrics_of))


class ListenError(Exception):
    """The separate metrics listener cannot listen; the message names metrics.listen."""


async def start_listener(metrics: Metrics, settings: MetricsSettings) -> web.AppRunner | None:
    """The separate /metrics listener of `metrics.listen`, or None when it is not configured."""
    address = settings.listen_address
    if address is None:
        return None
    app = web.Application()
    app.router.add_get("/metrics", handler(settings.token, lambda _: metrics))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = address
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise ListenError(
            f"cannot listen on metrics.listen {settings.listen}: {e.strerror or e}"
        ) from None
    log.info("metrics: serving /metrics on %s:%d", host, port)
    return runner
