"""Turns, run: each inbound message, and each start, reminder, expiry and close from outside.

Every turn is one job on the database's turn writer (storage.writer): in its transaction the
executor reads the facts (storage.executor), the pure decision makes the plan
(bot.inbound.decide), and the executor writes it — dedupe on the provider's id, answers, state,
timers and outbox together — before `handle_inbound` returns and the webhook answers 2xx.
Sending is the dispatcher's job (bot.outbox.dispatcher)."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from bot.catalog import SurveyCatalog
from bot.channels.base import InboundMessage, StatusUpdate, clean_text
from bot.clock import Clock
from bot.inbound.decide import (
    WEBCHAT,
    Address,
    Policy,
    decide_close,
    decide_expire,
    decide_followup,
    decide_inbound,
    decide_invite,
    decide_provider_opt_out,
    decide_remind,
    decide_webchat_start,
)
from bot.ops.metrics import Metrics
from bot.privacy import Pseudonymizer
from bot.reach import Route
from flows.model import Survey
from storage import executor, repo_messages
from storage.db import Database
from storage.executor import Inbound
from storage.outbox import Outgoing
from storage.plan import Handoff, InboundFacts, TurnResult
from storage.sqlexec import Exec

log = logging.getLogger(__name__)

CLOSED_GRACE = timedelta(days=30)
"""How long after a campaign closed a late answer gets "this survey has closed"."""
INVITABLE = ("pending", "waiting")


def new_id() -> str:
    """A random id for a conversation or respondent."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class InboundResult:
    """What an inbound turn did: a redelivery or not, the stored message, replies, outcome."""

    duplicate: bool = False
    message_id: int | None = None
    reply_ids: tuple[int, ...] = ()
    outcome: str = ""
    queued: bool = False
    """Some reply waits in the outbox to be claimed (not handed to this process's sender):
    wake the dispatcher."""


@dataclass(frozen=True, slots=True)
class WebChatSession:
    """A web chat started from the page: its token, conversation and the first replies."""

    token: str
    conversation_id: str
    reply_ids: tuple[int, ...] = field(default=())


class Sender(Protocol):
    """This process's outbox sender, as turns see it (bot.outbox.dispatcher.Dispatcher)."""

    def handoffs(self) -> Mapping[str, Handoff]:
        """The channels whose replies it takes straight from a turn (`storage.plan.Handoff`)."""
        ...

    def hand_over(self, items: Sequence[Outgoing]) -> None:
        """Replies a committed turn wrote claimed by it: send them."""
        ...


class ConversationService:
    """Runs turns through the executor, one transaction (or one group commit) each."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        pseudonymizer: Pseudonymizer,
        clock: Clock,
        *,
        policy: Policy | None = None,
        release_batch: int = 5,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.pseudonymizer = pseudonymizer
        self.clock = clock
        self.policy = policy or Policy()
        self.release_batch = release_batch
        self.ids = new_id
        self.metrics = metrics or Metrics()
        self.sender: Sender | None = None
        """Set by the runtime: replies due now go to it from the turn (`Handoff`)."""

    def address(self, route: Route) -> Address:
        """Where a route's messages go, with the address's key."""
        key = self.pseudonymizer.address_key(route.channel, route.address)
        return Address(route.channel, route.address, key)

    # -- inbound ---------------------------------------------------------------------------

    async def handle_inbound(self, msg: InboundMessage) -> InboundResult:
        """Store one inbound message and do what it asks, in one transaction."""
        if (text := clean_text(msg.text)) != msg.text:
            msg = replace(msg, text=text)
        now = self.clock.now()
        media = {"num_media": n} if (n := msg.extras.get("num_media")) else {}
        if msg.ignore is not None:
            # Recorded (a redelivery stays a duplicate, staff see it came), never answered, and
            # nothing of the sender kept: there is no one we may answer.
            key, body, payload = "", "", {"ignored": msg.ignore, **media}
        else:
            key, body = self.pseudonymizer.address_key(msg.channel, msg.address), msg.text
            payload = ({"button": msg.payload} if msg.payload else {}) | media
        pressed_message = msg.extras.get("message_id") if msg.extras else None
        inbound = Inbound(
            channel=msg.channel,
            provider_id=msg.provider_id,
            address_key=key,
            body=body,
            payload=payload,
            received_at=msg.received_at,
            start_token_key=(
                self.pseudonymizer.address_key(WEBCHAT, msg.start_token)
                if msg.start_token
                else None
            ),
            pressed_provider_id=(
                f"{msg.address}:{pressed_message}"
                if msg.extras.get("callback_query_id") and pressed_message
                else None
            ),
        )
        catalog, policy, ids = self.catalog, self.policy, self.ids
        period = policy.period(now.date())
        handoffs = self.sender.handoffs() if self.sender is not None else None

        def turn(x: Exec) -> TurnResult:
            facts = executor.load_inbound(
                x, inbound, now=now, closed_grace=CLOSED_GRACE, period=period
            )
            if facts is None:
                return TurnResult(duplicate=True)
            self._ensure_versions(x, facts)
            plan = decide_inbound(
                msg, facts, catalog, address_key=key, now=now, ids=ids, policy=policy
            )
            linked = (
                facts.sender.id if facts.sender else None,
                facts.conversation.id if facts.conversation else None,
            )
            return executor.write(
                x, plan, now=now, message_id=facts.message_id, linked=linked, handoff=handoffs
            )

        started = time.perf_counter()
        try:
            result = await self.db.turns.run(turn, quick=True)
        except Exception:
            self.metrics.inbound_done(msg.channel, "error")
            raise
        if result.handed and self.sender is not None:
            self.sender.hand_over(result.handed)
        outcome = "duplicate" if result.duplicate else "ignored" if msg.ignore else "handled"
        self.metrics.inbound_done(msg.channel, outcome, time.perf_counter() - started)
        return InboundResult(
            duplicate=result.duplicate,
            message_id=result.message_id,
            reply_ids=result.reply_ids,
            outcome=result.outcome,
            queued=len(result.reply_ids) > len(result.handed),
        )

    def _ensure_versions(self, x: Exec, facts: InboundFacts) -> None:
        for conv in (facts.conversation, facts.token_conversation):
            if conv is not None:
                self.catalog.ensure_version(x, conv.survey_version_id)

    async def handle_status(self, update: StatusUpdate) -> bool:
        """Apply a provider's delivery report; False if the message is unknown."""
        now = self.clock.now()
        async with self.db.transaction() as s:
            message = await repo_messages.apply_status(
                s, update.channel, update.provider_id, update.status, update.error, now
            )
            if message is None:
                return False
            contact_id = message.contact_id
        if update.opted_out and contact_id is not None:
            await self.opt_out_contact(contact_id)
        return True

    async def opt_out_contact(self, contact_id: int) -> None:
        """A provider says the person unsubscribed: nothing more is sent, their survey ends."""
        now, catalog = self.clock.now(), self.catalog

        def turn(x: Exec) -> TurnResult:
            facts = executor.load_start(x, contact_id)
            if facts.contact is None:
                return TurnResult(outcome="gone")
            if facts.active is not None:
                catalog.ensure_version(x, facts.active.survey_version_id)
            plan = decide_provider_opt_out(contact_id, facts.active, catalog, now=now)
            return executor.write(x, plan, now=now)

        await self.db.turns.run(turn, quick=True)

    # -- starts ----------------------------------------------------------------------------

    async def start_webchat(self, survey_id: str, lang: str | None) -> WebChatSession:
        """A visitor tries a public survey in the web chat: a fresh token, contact and
        conversation."""
        found = self.catalog.latest_survey(survey_id)
        if found is None:
            raise LookupError(survey_id)
        survey, version_id = found
        now = self.clock.now()
        token = secrets.token_urlsafe(18)
        to = Address(WEBCHAT, token, self.pseudonymizer.address_key(WEBCHAT, token))
        plan = decide_webchat_start(survey, version_id, lang, to, now=now, ids=self.ids)
        result = await self.db.turns.run(lambda x: executor.write(x, plan, now=now), quick=True)
        assert result.conversation_id is not None
        return WebChatSession(token, result.conversation_id, result.reply_ids)

    async def invite(
        self,
        *,
        campaign_id: int,
        people: Sequence[tuple[int, Route]],
        survey: Survey,
        version_id: int,
        invitation: Callable[[str], str],
        not_before: datetime,
    ) -> list[str]:
        """Invite people to a campaign (those whose invitation is still to be sent), each in a
        turn of their own within one job; returns each one's outcome: invited, waiting,
        opted_out, gone or skipped."""
        now, ids = self.clock.now(), self.ids
        targets = [(contact_id, self.address(route)) for contact_id, route in people]

        def turns(x: Exec) -> list[str]:
            outcomes = []
            for contact_id, to in targets:
                if executor.invitation_status(x, campaign_id, contact_id) not in INVITABLE:
                    outcomes.append("skipped")
                    continue
                facts = executor.load_start(x, contact_id)
                plan = decide_invite(
                    facts,
                    survey,
                    version_id,
                    to,
                    invitation,
                    campaign_id=campaign_id,
                    not_before=not_before,
                    now=now,
                    ids=ids,
                )
                outcomes.append(executor.write(x, plan, now=now).outcome)
            return outcomes

        return await self.db.turns.run(turns)

    async def start_followup(
        self, *, followup_id: int, contact_id: int, survey: Survey, version_id: int, route: Route
    ) -> str:
        """Start a follow-up survey if it is still pending; returns sent, busy, or the status
        it already had (sent, skipped, ...)."""
        now, ids = self.clock.now(), self.ids
        to = self.address(route)

        def turn(x: Exec) -> TurnResult:
            status = executor.followup_status(x, followup_id)
            if status != "pending":
                return TurnResult(outcome=status or "missing")
            facts = executor.load_start(x, contact_id)
            plan = decide_followup(
                facts, survey, version_id, to, followup_id=followup_id, now=now, ids=ids
            )
            return executor.write(x, plan, now=now)

        return (await self.db.turns.run(turn, quick=True)).outcome

    async def remind(
        self, *, conversation_id: str, campaign_id: int, route: Route, not_before: datetime
    ) -> bool:
        """Remind one person of a running campaign conversation; False if it has ended."""
        now, catalog = self.clock.now(), self.catalog
        to = self.address(route)

        def turn(x: Exec) -> TurnResult:
            conv = executor.load_conversation(x, conversation_id)
            if conv is None:
                return TurnResult(outcome="gone")
            survey = catalog.ensure_version(x, conv.survey_version_id)
            plan = decide_remind(
                conv,
                survey,
                to,
                campaign_id=campaign_id,
                not_before=not_before,
                now=now,
            )
            return executor.write(x, plan, now=now)

        return (await self.db.turns.run(turn, quick=True)).outcome == "reminded"

    # -- endings ---------------------------------------------------------------------------

    async def expire_conversation(self, conversation_id: str) -> bool:
        """The due task behind `expires_after`: finish a conversation nobody came back to."""
        now, catalog = self.clock.now(), self.catalog

        def turn(x: Exec) -> TurnResult:
            conv = executor.load_conversation(x, conversation_id)
            if conv is None:
                return TurnResult(outcome="gone")
            survey = catalog.ensure_version(x, conv.survey_version_id)
            waiting = executor.pending_out(x, conversation_id)
            plan = decide_expire(conv, survey, pending_out=waiting, now=now)
            return executor.write(x, plan, now=now)

        return (await self.db.turns.run(turn, quick=True)).outcome == "expired"

    async def close_conversation(self, conversation_id: str) -> bool:
        """End a conversation because its campaign closed (no message is sent)."""
        now, catalog = self.clock.now(), self.catalog

        def turn(x: Exec) -> TurnResult:
            conv = executor.load_conversation(x, conversation_id)
            if conv is None:
                return TurnResult(outcome="gone")
            survey = catalog.ensure_version(x, conv.survey_version_id)
            return executor.write(x, decide_close(conv, survey, now=now), now=now)

        return (await self.db.turns.run(turn, quick=True)).outcome == "closed"

    async def release_answers(self) -> int:
        """Release the answers of finished anonymous conversations that are ready (see
        storage.executor.release); returns how many people were released."""
        now, batch = self.clock.now(), self.release_batch
        released = await self.db.turns.run(lambda x: executor.release(x, min_batch=batch, now=now))
        if released:
            log.info("released the anonymous answers of %d people", released)
        return released
