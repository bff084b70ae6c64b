"""The feedback loop ("you said, we did"): results go back to the people who answered.

Campaigns: when a campaign closes, the campaign code schedules `campaign.feedback` at
closed_at + feedback_delay. The task sends every person who completed the survey (or everyone
invited, per `Campaign.feedback_to`) one short message in their language on the channel they
were invited on: how many answered, up to three headline results (questions with `positive`
choices, withheld ones left out), the staff's "what we will do" text and plan reference in that
language, and the link to the public results page. Exactly once per person:
`Invitation.feedback_sent` is set in the same transaction that queues the message, so the task is
safe to re-run. Held feedback waits (re-checked daily); opted-out people get nothing; messages
wait for the end of quiet hours. `send_now` brings the task forward; `set_feedback(delay=...)`
moves it.

At most three SMS segments, and the staff's text is never cut: `set_feedback` refuses a text that
would not fit (saying how many segments each language would take), checking the longest form the
rest of the message can take, and `compose` fits by leaving out headlines, never words. A
language with no text is refused unless staff say to send that language without one.

Follow-up surveys never close, so `followup.feedback:<survey>:<period>` runs after every
quarter and feeds back to those whose follow-up conversation was completed in it, once at least
k people have answered (a quarter with fewer is carried into the next one).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.inbound.decide import message_payload
from bot.ops import events
from bot.reach import Route, route_to
from bot.results.aggregate import Results
from bot.results.service import CampaignNotFound, ResultsError, campaign_results, load_campaign
from bot.results.service import followup_results as _followup_results
from bot.results.texts import feedback_texts
from bot.timewindows import next_allowed
from flows import engine
from flows.conversation import MessageKind, OutMessage
from flows.durations import format_duration, parse_duration
from flows.model import Survey, base_language, localize
from flows.segments import SegmentInfo, segment_info
from flows.types import kind_of
from storage import repo_audit, repo_contacts, repo_messages, repo_results, repo_tasks
from storage.models import Campaign
from storage.repo_results import FeedbackTarget

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "FEEDBACK_TASK",
    "FOLLOWUP_TASK",
    "FeedbackTiming",
    "Preview",
    "compose",
    "feedback_timing",
    "hold",
    "parse_delay",
    "preview",
    "register",
    "release",
    "run_campaign_feedback",
    "run_followup_feedback",
    "schedule_periodic",
    "send_now",
    "set_feedback",
]

FEEDBACK_TASK: Final = "campaign.feedback"
FOLLOWUP_TASK: Final = "followup.feedback"
BATCH: Final = 200
"""People per transaction."""
PER_RUN: Final = 2000
"""People per task run; a larger campaign continues in a fresh task right away."""
HELD_RETRY: Final = timedelta(days=1)
MAX_SEGMENTS: Final = 3
MAX_TEXT: Final = 1000
"""Characters of a staff text or plan reference (the segment check is the real limit)."""
MAX_DELAY: Final = 365 * 24 * 3600
MAX_HEADLINES: Final = 3
QUESTION_CHARS: Final = 60
FOLLOWUP_DELAY: Final = timedelta(days=3)
"""After a quarter ends, its follow-up feedback waits this long (late finishers, staff review)."""
FOLLOWUP_HOUR: Final = time(10, 0)

HELD = "held"
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
NONE = "none"


# -- the message ------------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word, with "..." (GSM-7 has no ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 3)].rsplit(" ", 1)[0].rstrip(",.;:!?")
    return f"{cut}..."


def headlines(survey: Survey, results: Results, lang: str) -> list[str]:
    """Up to three published "x in 10" lines, from the questions with positive choices."""
    texts = feedback_texts(lang)
    out: list[str] = []
    for q in survey.questions:
        if len(out) >= MAX_HEADLINES:
            break
        if not q.positive or not kind_of(q).choices:
            continue
        figures = results.question(q.id)
        if figures is None or figures.suppressed:
            continue
        share = figures.share_positive
        if share.suppressed or share.value is None:
            continue
        x = max(0, min(10, round(float(share.value) * 10)))
        question = _shorten(localize(q.text, lang, survey.default_language), QUESTION_CHARS)
        if len(q.positive) == 1 and (choice := q.choice(q.positive[0])) is not None:
            label = _shorten(localize(choice.text, lang, survey.default_language), 30)
            out.append(texts["one"].format(x=x, choice=label, question=question))
        else:
            out.append(texts["many"].format(x=x, question=question))
    return out


def _staff_part(lang: str, text: str | None, plan_ref: str | None) -> str:
    """The staff's part in `lang`: "What we will do: ... (plan)"; a plan only goes with a text."""
    texts = feedback_texts(lang)
    staff = " ".join((text or "").split())
    if not staff:
        return ""
    said = texts["we_will"].format(text=staff)
    plan = " ".join((plan_ref or "").split())
    return f"{said} {texts['plan'].format(plan=plan)}" if plan else said


def _hello(survey: Survey, lang: str) -> str:
    texts = feedback_texts(lang)
    sender = localize(survey.sender, lang, survey.default_language) if survey.sender else ""
    return texts["hello_from"].format(sender=sender) if sender else texts["hello"]


def _fit(
    fixed_head: Sequence[str],
    optional: Sequence[str],
    fixed_tail: Sequence[str],
    max_segments: int,
) -> tuple[str, int]:
    """The message with as many of the `optional` lines (in order) as fit in `max_segments`,
    and how many that was. The fixed lines always go in whole."""
    for count in range(len(optional), -1, -1):
        message = "\n".join([*fixed_head, *optional[:count], *fixed_tail])
        if segment_info(message).segments <= max_segments or count == 0:
            return message, count
    raise AssertionError("unreachable")


def compose(
    survey: Survey,
    results: Results,
    lang: str,
    *,
    text: str | None = None,
    plan_ref: str | None = None,
    link: str | None = None,
    max_segments: int = MAX_SEGMENTS,
) -> str:
    """The feedback message in `lang`, within `max_segments` SMS segments where it can be.

    Nothing withheld is shown: with fewer than k completed it only says there were too few.
    Headlines (or, without any, the note that results are hidden) go in only as far as they fit;
    the greeting, the count, the staff's text with the plan reference and the link always go in
    whole (`set_feedback` makes sure they fit)."""
    return _compose(survey, results, lang, text, plan_ref, link, max_segments)[0]


def _compose(
    survey: Survey,
    results: Results,
    lang: str,
    text: str | None,
    plan_ref: str | None,
    link: str | None,
    max_segments: int,
) -> tuple[str, int]:
    """The message and how many of its optional lines had to be left out to fit."""
    texts = feedback_texts(lang)
    completed = results.participation.completed
    optional: list[str] = []
    if completed.suppressed or not completed.value or completed.value < results.k:
        head = [_hello(survey, lang), texts["too_few"]]
    else:
        head = [_hello(survey, lang), texts["answered"].format(n=int(completed.value))]
        optional = headlines(survey, results, lang) or [texts["hidden"]]
    tail = [part for part in (_staff_part(lang, text, plan_ref),) if part]
    if link:
        tail.append(texts["link"].format(link=link))
    message, kept = _fit(head, optional, tail, max_segments)
    return message, len(optional) - kept


def longest_frame(
    survey: Survey,
    lang: str,
    *,
    text: str | None,
    plan_ref: str | None,
    link: str | None,
    most_answered: int,
) -> SegmentInfo:
    """What the parts of the message that always go in can cost at most: the greeting, "too
    few answered" or "N answered" (N at most `most_answered`), the staff's part and the link."""
    texts = feedback_texts(lang)
    tail = [part for part in (_staff_part(lang, text, plan_ref),) if part]
    if link:
        tail.append(texts["link"].format(link=link))
    costs = [
        segment_info("\n".join([_hello(survey, lang), opening, *tail]))
        for opening in (
            texts["too_few"],
            texts["answered"].format(n=max(most_answered, 10)),
        )
    ]
    return max(costs, key=lambda info: (info.segments, info.units))


@dataclass(frozen=True, slots=True)
class Preview:
    """The message one language group would get, and what it costs as SMS."""

    lang: str
    text: str
    segments: SegmentInfo
    recipients: int
    staff_text: str | None = None
    """The "what we will do" text in this language (None: sent without one)."""
    without_text: bool = False
    """Staff chose to send this language without a text."""
    left_out: int = 0
    """Headlines (or the "hidden" note) left out to fit the SMS cap."""


# -- staff actions ----------------------------------------------------------------------------


async def _campaign_for_update(s: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await repo_results.campaign(s, campaign_id, for_update=True)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    return campaign


def parse_delay(value: object) -> int:
    """A feedback delay: a duration text ("3d", "12h", "0s") or whole seconds, 0 to a year."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ResultsError('the delay must be a duration like "3d" or whole seconds')
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit() or text in ("0s", "0m", "0h", "0d"):
            seconds = int(text.rstrip("smhd") or 0)
        else:
            try:
                seconds = parse_duration(text)
            except ValueError as e:
                raise ResultsError(f"delay: {e}") from None
    else:
        seconds = value
    if not 0 <= seconds <= MAX_DELAY:
        raise ResultsError("the delay must be between 0 and 365 days")
    return seconds


def _clean(value: object, what: str, lang: str) -> str:
    if not isinstance(value, str):
        raise ResultsError(f"the {what} in {lang} must be text")
    cleaned = " ".join(value.split())
    if len(cleaned) > MAX_TEXT:
        raise ResultsError(f"the {what} in {lang} is longer than {MAX_TEXT} characters")
    return cleaned


def _check_languages(survey: Survey, langs: Iterable[str]) -> None:
    for lang in langs:
        if lang not in survey.languages:
            raise ResultsError(
                f"the survey has no language {lang!r} (it has {', '.join(survey.languages)})"
            )


def _not_gsm(text: str) -> list[str]:
    """Characters that turn an SMS into UCS-2 (70 instead of 160 characters a segment)."""
    return sorted({c for c in text if segment_info(c).encoding == "UCS-2"})


_GSM_HINTS: Final = {"–": "-", "—": "-", "…": "...", "’": "'", "‘": "'", "“": '"', "”": '"'}


def _too_long(
    costs: Mapping[str, SegmentInfo],
    texts: Mapping[str, str],
    plans: Mapping[str, str],
) -> str | None:
    """The refusal when some language's message would be over the cap, else None."""
    over = [lang for lang, info in costs.items() if info.segments > MAX_SEGMENTS]
    if not over:
        return None
    parts = []
    for lang, info in costs.items():
        mark = f" (over {MAX_SEGMENTS})" if lang in over else ""
        parts.append(
            f"{lang} {info.segments} segment(s), {info.encoding}, {info.units} characters{mark}"
        )
    lines = [
        f"the feedback message would be more than {MAX_SEGMENTS} SMS segments: "
        + "; ".join(parts)
        + f". Shorten the text in {', '.join(over)} (nothing is cut to fit)."
    ]
    for lang in over:
        if costs[lang].encoding != "UCS-2" or base_language(lang) not in ("sv", "en"):
            continue
        odd = _not_gsm(f"{texts.get(lang, '')} {plans.get(lang, '')}")
        if odd:
            hints = ", ".join(
                f"'{c}' (write '{_GSM_HINTS[c]}')" if c in _GSM_HINTS else f"'{c}'" for c in odd
            )
            lines.append(
                f"{lang}: {hints} is not in the SMS alphabet, so the whole message goes as "
                "UCS-2, 67 characters a segment instead of 153."
            )
    return " ".join(lines)


async def set_feedback(
    runtime: Runtime,
    campaign_id: int,
    *,
    text: Mapping[str, str] | None = None,
    plan_ref: Mapping[str, str] | str | None = None,
    without_text: Sequence[str] | None = None,
    hold: bool | None = None,
    delay: int | None = None,
    actor: str,
) -> Campaign:
    """Store the "what we will do" text per language (an empty text removes it), the plan
    reference (per language, or one text for all), the languages to send without a text, the
    delay after closing, and whether feedback is held. Refused once feedback has gone out.

    Texts: every language of the survey must then have one, or be in `without_text`. Each
    language's message must fit in three SMS segments in its longest form; the refusal gives
    each language's segment count. Nothing is stored when anything is refused."""
    async with runtime.db.transaction() as s:
        campaign = await _campaign_for_update(s, campaign_id)
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
        changes_text = text is not None or plan_ref is not None or without_text is not None
        if campaign.feedback_status in (SENDING, SENT) and (changes_text or delay is not None):
            raise ResultsError(
                f"the feedback of campaign {campaign_id} is already {campaign.feedback_status}"
            )
        texts = dict(campaign.feedback_text or {})
        bare = set(campaign.feedback_without_text or ())
        plans = dict(campaign.plan_refs or {})
        if text is not None:
            _check_languages(survey, text)
            for lang, value in text.items():
                cleaned = _clean(value, "feedback text", lang)
                if cleaned:
                    texts[lang] = cleaned
                    bare.discard(lang)
                else:
                    texts.pop(lang, None)
        if without_text is not None:
            _check_languages(survey, without_text)
            given = [lang for lang in without_text if text and (text.get(lang) or "").strip()]
            if given:
                raise ResultsError(
                    f"{', '.join(given)}: given a text and told to go without one; pick one"
                )
            for lang in without_text:
                texts.pop(lang, None)
                bare.add(lang)
        if text is not None or without_text is not None:
            missing = [lang for lang in survey.languages if lang not in texts and lang not in bare]
            if missing:
                raise ResultsError(
                    f"no feedback text in {', '.join(missing)}: give one per language "
                    f'(--text {missing[0]}="..."), or send '
                    f"{'that language' if len(missing) == 1 else 'those languages'} without "
                    f"one (--without-text {','.join(missing)})"
                )
        if plan_ref is not None:
            plans = _plan_refs(survey, plan_ref)
        if changes_text:
            await _check_fits(runtime, s, campaign, survey, texts, plans)
            campaign.feedback_text = texts
            campaign.feedback_without_text = [lang for lang in survey.languages if lang in bare]
            campaign.plan_refs = plans
        if delay is not None:
            await _set_delay(runtime, s, campaign, delay)
        if hold is not None:
            await _set_held(runtime, s, campaign, hold)
        await repo_audit.log(
            s,
            actor,
            "campaign.feedback.set",
            f"campaign:{campaign_id}",
            {
                "languages": sorted(texts),
                "without_text": sorted(bare),
                "plan_refs": sorted(plans),
                "hold": hold,
                "delay": delay,
            },
            at=runtime.clock.now(),
        )
        return campaign


def _plan_refs(survey: Survey, plan_ref: Mapping[str, str] | str) -> dict[str, str]:
    if isinstance(plan_ref, str):
        cleaned = _clean(plan_ref, "plan reference", "every language")
        return dict.fromkeys(survey.languages, cleaned) if cleaned else {}
    _check_languages(survey, plan_ref)
    plans = {lang: _clean(v, "plan reference", lang) for lang, v in plan_ref.items()}
    plans = {lang: v for lang, v in plans.items() if v}
    missing = [lang for lang in survey.languages if lang not in plans]
    if plans and missing:
        raise ResultsError(
            f"no plan reference in {', '.join(missing)}: give one per language, "
            'or one for all (--plan-ref "...")'
        )
    return plans


async def _check_fits(
    runtime: Runtime,
    s: AsyncSession,
    campaign: Campaign,
    survey: Survey,
    texts: Mapping[str, str],
    plans: Mapping[str, str],
) -> None:
    participation = await repo_results.participation(s, campaign.id)
    most = max(participation.invited, campaign.audience_size or 0, participation.completed)
    link = results_link(runtime, campaign.id)
    costs = {
        lang: longest_frame(
            survey,
            lang,
            text=texts.get(lang),
            plan_ref=plans.get(lang),
            link=link,
            most_answered=most,
        )
        for lang in survey.languages
    }
    refusal = _too_long(costs, texts, plans)
    if refusal:
        raise ResultsError(refusal)


async def _set_delay(runtime: Runtime, s: AsyncSession, campaign: Campaign, delay: int) -> None:
    """A new delay after closing; an already planned send moves with it."""
    campaign.feedback_delay = parse_delay(delay)
    if campaign.closed_at is None or campaign.feedback_status != PENDING:
        return
    due = max(runtime.clock.now(), campaign.closed_at + timedelta(seconds=campaign.feedback_delay))
    await _plan(s, campaign.id, due, "delay")


async def _plan(s: AsyncSession, campaign_id: int, due: datetime, why: str) -> None:
    """Move the campaign's planned feedback task to `due` (or plan one if it already ran)."""
    key = f"{FEEDBACK_TASK}:{campaign_id}"
    payload = {"campaign_id": campaign_id}
    if await repo_tasks.schedule(s, FEEDBACK_TASK, key, due, payload, replace=True):
        return
    # The first task has run (e.g. while held): plan a fresh one.
    await repo_tasks.schedule(
        s, FEEDBACK_TASK, f"{key}:{why}:{uuid.uuid4().hex[:12]}", due, payload
    )


async def _set_held(runtime: Runtime, s: AsyncSession, campaign: Campaign, held: bool) -> None:
    status = campaign.feedback_status
    if held:
        if status in (SENT, NONE):
            raise ResultsError(f"the feedback of campaign {campaign.id} is already {status}")
        campaign.feedback_status = HELD
        return
    if status == HELD:
        campaign.feedback_status = PENDING
        if campaign.closed_at is not None and campaign.feedback_to != NONE:
            due = max(
                runtime.clock.now(),
                campaign.closed_at + timedelta(seconds=campaign.feedback_delay),
            )
            await repo_tasks.schedule(
                s,
                FEEDBACK_TASK,
                f"{FEEDBACK_TASK}:{campaign.id}:release:{uuid.uuid4().hex[:12]}",
                due,
                {"campaign_id": campaign.id},
            )


async def hold(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Keep the feedback from going out until released."""
    return await set_feedback(runtime, campaign_id, hold=True, actor=actor)


async def release(runtime: Runtime, campaign_id: int, *, actor: str) -> Campaign:
    """Let held feedback go out (at its planned time, or now if that has passed)."""
    return await set_feedback(runtime, campaign_id, hold=False, actor=actor)


async def send_now(runtime: Runtime, campaign_id: int, *, actor: str) -> FeedbackTiming:
    """Send a closed campaign's feedback now instead of after its delay (staff are done early).

    The service's scheduler picks it up on its next poll; quiet hours still hold the messages."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await _campaign_for_update(s, campaign_id)
        status = campaign.feedback_status
        if campaign.feedback_to == NONE or status == NONE:
            raise ResultsError(f"campaign {campaign_id} sends no feedback (feedback_to none)")
        if status in (SENDING, SENT):
            raise ResultsError(f"the feedback of campaign {campaign_id} is already {status}")
        if status == HELD:
            raise ResultsError(
                f"the feedback of campaign {campaign_id} is held: release it first "
                f"(brukardialog feedback release {campaign_id})"
            )
        if campaign.status != "closed" or campaign.closed_at is None:
            raise ResultsError(
                f"campaign {campaign_id} is {campaign.status}: feedback can go out once it "
                f"has closed (brukardialog campaigns close {campaign_id})"
            )
        await _plan(s, campaign_id, now, "now")
        await repo_audit.log(
            s, actor, "campaign.feedback.send_now", f"campaign:{campaign_id}", {}, at=now
        )
        return await _timing(runtime, s, campaign)


@dataclass(frozen=True, slots=True)
class FeedbackTiming:
    """When a campaign's feedback goes out, as staff are told it."""

    status: str
    """pending, held, sending, sent or none."""
    due: datetime | None = None
    """When the feedback task is planned (planned close + delay while the campaign is open)."""
    sends_from: datetime | None = None
    """When messages can leave: `due` (now, if that has passed), or the end of quiet hours."""
    quiet_hours: bool = False
    """Quiet hours move `sends_from` past the planned time."""
    after_close: int | None = None
    """The delay, while the campaign has not closed yet."""

    def describe(self, tz: ZoneInfo) -> str:
        """One line for a terminal, local times in `tz`."""

        def local(moment: datetime) -> str:
            return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"

        if self.status == NONE:
            return "none: no feedback is sent (feedback_to none)"
        if self.status == SENT:
            return "sent"
        if self.status == SENDING:
            return "being sent now"
        when = ""
        if self.sends_from is not None:
            when = f"{local(self.sends_from)} {tz.key}"
            if self.quiet_hours:
                when += " (after quiet hours)"
        if self.after_close is not None:
            when = f"{format_duration(self.after_close)} after the campaign closes" + (
                f" (as planned: {when})" if when else ""
            )
        if self.status == HELD:
            return f"held: goes out when released{f'; planned {when}' if when else ''}"
        return f"pending: goes out {when}" if when else "pending"

    def to_json(self) -> dict[str, Any]:
        """The timing for the API and the staff page: status, due and send times as ISO text."""
        return {
            "status": self.status,
            "due": self.due.isoformat() if self.due else None,
            "sends_from": self.sends_from.isoformat() if self.sends_from else None,
            "quiet_hours": self.quiet_hours,
            "after_close": format_duration(self.after_close)
            if self.after_close is not None
            else None,
        }


async def feedback_timing(runtime: Runtime, campaign: Campaign) -> FeedbackTiming:
    """When a campaign's feedback goes out (for `feedback preview` and `campaigns show`)."""
    async with runtime.db.transaction(read_only=True) as s:
        return await _timing(runtime, s, campaign)


async def _timing(runtime: Runtime, s: AsyncSession, campaign: Campaign) -> FeedbackTiming:
    status = NONE if campaign.feedback_to == NONE else campaign.feedback_status
    if status in (NONE, SENT, SENDING):
        return FeedbackTiming(status)
    if campaign.closed_at is None:
        due = campaign.ends_at + timedelta(seconds=campaign.feedback_delay)
        after_close: int | None = campaign.feedback_delay
    else:
        planned = [
            task.due_at
            for task in await repo_tasks.pending(s, kinds=[FEEDBACK_TASK])
            if task.payload.get("campaign_id") == campaign.id and ":held:" not in task.key
        ]
        due = (
            min(planned)
            if planned
            else campaign.closed_at + timedelta(seconds=campaign.feedback_delay)
        )
        after_close = None
    start = max(due, runtime.clock.now())
    sends_from = _allowed(runtime, start)
    return FeedbackTiming(status, due, sends_from, sends_from > start, after_close)


async def preview(runtime: Runtime, campaign_id: int) -> tuple[Campaign, list[Preview]]:
    """The exact message per language of the survey, as it would be sent now."""
    data = await campaign_results(runtime, campaign_id, with_previous=False, headings=False)
    campaign, survey = data.campaign, data.survey
    counts: dict[str, int] = {}
    async with runtime.db.transaction(read_only=True) as s:
        after = 0
        while True:
            batch = await repo_results.campaign_feedback_targets(
                s, campaign_id, campaign.feedback_to, after_id=after, limit=5000
            )
            for target in batch:
                lang = engine.pick_language(survey, target.language)
                counts[lang] = counts.get(lang, 0) + 1
            if len(batch) < 5000:
                break
            after = batch[-1].row_id
    if campaign.feedback_to == NONE:
        counts = {}
    link = results_link(runtime, campaign_id)
    out = []
    bare = set(campaign.feedback_without_text or ())
    for lang in survey.languages:
        staff = (campaign.feedback_text or {}).get(lang)
        text, left_out = _compose(
            survey,
            data.results,
            lang,
            staff,
            (campaign.plan_refs or {}).get(lang),
            link,
            MAX_SEGMENTS,
        )
        out.append(
            Preview(
                lang,
                text,
                segment_info(text),
                counts.get(lang, 0),
                staff_text=staff,
                without_text=lang in bare,
                left_out=left_out,
            )
        )
    return campaign, out


def results_link(runtime: Runtime, campaign_id: int) -> str:
    """The public results page of a campaign."""
    return f"{runtime.settings.server.public_url}/results/{campaign_id}"


# -- sending ----------------------------------------------------------------------------------


async def _route(
    runtime: Runtime, s: AsyncSession, target: FeedbackTarget, wanted: Sequence[str]
) -> Route | None:
    """The channel they were reached on if it still runs, else the best one they have."""
    channel = target.channel
    if channel and channel in runtime.channels:
        address = await repo_contacts.address_on(s, target.contact_id, channel)
        if address is not None:
            return Route(channel, address.address)
    return await route_to(s, target.contact_id, wanted, runtime.channels.keys())


async def _enqueue(
    runtime: Runtime,
    s: AsyncSession,
    route: Route,
    target: FeedbackTarget,
    body: str,
    lang: str,
    campaign_id: int | None,
    not_before: datetime,
) -> None:
    await repo_messages.enqueue(
        s,
        channel=route.channel,
        address=route.address,
        address_key=runtime.service.pseudonymizer.address_key(route.channel, route.address),
        body=body,
        payload=message_payload(OutMessage(body, MessageKind.INFO), lang),
        kind="feedback",
        contact_id=target.contact_id,
        conversation_id=None,
        campaign_id=campaign_id,
        not_before=not_before,
    )


def _allowed(runtime: Runtime, now: datetime) -> datetime:
    schedule = runtime.settings.schedule
    return next_allowed(now, schedule.tz, quiet=schedule.quiet)


def _campaign_text(
    campaign: Campaign, survey: Survey, results: Results, lang: str, link: str
) -> str:
    """A campaign's feedback message in one language, with the staff's "what we will do"."""
    return compose(
        survey,
        results,
        lang,
        text=(campaign.feedback_text or {}).get(lang),
        plan_ref=(campaign.plan_refs or {}).get(lang),
        link=link,
    )


async def run_campaign_feedback(runtime: Runtime, campaign_id: int, *, after: int = 0) -> int:
    """The `campaign.feedback` task: send what is owed; returns how many messages it queued."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        campaign = await repo_results.campaign(s, campaign_id, for_update=True)
        if campaign is None:
            log.warning("campaign %s no longer exists; no feedback to send", campaign_id)
            return 0
        if campaign.status != "closed" or campaign.feedback_status in (SENT, NONE):
            return 0
        if campaign.feedback_to == NONE:
            campaign.feedback_status = NONE
            return 0
        if campaign.feedback_status == HELD:
            await _schedule_held(s, campaign_id, now)
            return 0
        campaign.feedback_status = SENDING
    data = await campaign_results(runtime, campaign_id, with_previous=False, headings=False)
    campaign, survey = data.campaign, data.survey
    link = results_link(runtime, campaign_id)
    not_before = _allowed(runtime, now)
    current = campaign

    async def targets(s: AsyncSession, after_id: int) -> Sequence[FeedbackTarget] | None:
        nonlocal current
        current = await load_campaign(s, campaign_id)
        if current.feedback_status == HELD:
            await _schedule_held(s, campaign_id, now)
            return None
        return await repo_results.campaign_feedback_targets(
            s, campaign_id, current.feedback_to, after_id=after_id, limit=BATCH
        )

    queued, done = await _feed_back(
        runtime,
        survey,
        after=after,
        targets=targets,
        claim=repo_results.claim_invitation_feedback,
        body=lambda lang: _campaign_text(current, survey, data.results, lang, link),
        channels=campaign.channels,
        campaign_id=campaign_id,
        now=now,
        not_before=not_before,
        resume=lambda after: (
            FEEDBACK_TASK,
            f"{FEEDBACK_TASK}:{campaign_id}:after:{after}",
            {"campaign_id": campaign_id, "after": after},
        ),
    )
    if not done:
        return queued
    async with runtime.db.transaction() as s:
        current = await _campaign_for_update(s, campaign_id)
        if current.feedback_status == SENDING:
            current.feedback_status = SENT
        sent_total = await repo_results.count_feedback_sent(s, campaign_id)
        await repo_audit.log(
            s,
            "scheduler",
            "campaign.feedback.sent",
            f"campaign:{campaign_id}",
            {"queued": queued, "total": sent_total},
            at=now,
        )
    events.note(
        "campaign.feedback",
        "campaign {campaign} feedback sent: {queued} messages queued, {total} people in all",
        campaign=campaign_id,
        queued=queued,
        total=sent_total,
    )
    runtime.dispatcher.wake()
    return queued


async def _feed_back(
    runtime: Runtime,
    survey: Survey,
    *,
    after: int,
    targets: Callable[[AsyncSession, int], Awaitable[Sequence[FeedbackTarget] | None]],
    claim: Callable[[AsyncSession, int], Awaitable[bool]],
    body: Callable[[str], str],
    channels: Sequence[str],
    campaign_id: int | None,
    now: datetime,
    not_before: datetime,
    resume: Callable[[int], tuple[str, str, dict[str, Any]]],
) -> tuple[int, bool]:
    """Queue the feedback message for everyone `targets` lists, in batches of BATCH, each person
    claimed first so nobody gets it twice. After PER_RUN people the work goes on in a new task
    (`resume(after)` gives its kind, key and payload). `targets` answering None stops (held).
    Returns (messages queued, whether everyone was reached)."""
    bodies: dict[str, str] = {}
    queued = processed = 0
    while True:
        async with runtime.db.transaction() as s:
            batch = await targets(s, after)
            if batch is None:
                return queued, False
            for target in batch:
                after = target.row_id
                route = await _route(runtime, s, target, channels)
                if route is None or not await claim(s, target.row_id):
                    continue
                lang = engine.pick_language(survey, target.language)
                if lang not in bodies:
                    bodies[lang] = body(lang)
                await _enqueue(
                    runtime, s, route, target, bodies[lang], lang, campaign_id, not_before
                )
                queued += 1
        processed += len(batch)
        if len(batch) < BATCH:
            return queued, True
        if processed >= PER_RUN:
            kind, key, payload = resume(after)
            async with runtime.db.transaction() as s:
                await repo_tasks.schedule(s, kind, key, now, payload)
            return queued, False


async def _schedule_held(s: AsyncSession, campaign_id: int, now: datetime) -> None:
    later = now + HELD_RETRY
    await repo_tasks.schedule(
        s,
        FEEDBACK_TASK,
        f"{FEEDBACK_TASK}:{campaign_id}:held:{later:%Y%m%dT%H%M}",
        later,
        {"campaign_id": campaign_id},
    )


# -- follow-up surveys ------------------------------------------------------------------------


def period_of(day: date) -> str:
    """The quarter a day falls in, e.g. "2026Q1"."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def period_bounds(period: str) -> tuple[date, date]:
    """A quarter's first day and the first day after it."""
    year_text, _, quarter_text = period.partition("Q")
    year, quarter = int(year_text), int(quarter_text)
    if not 1 <= quarter <= 4:
        raise ValueError(f"not a quarter: {period!r}")
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end


def _followup_due(runtime: Runtime, period: str) -> datetime:
    _, end = period_bounds(period)
    tz = runtime.settings.schedule.tz
    return datetime.combine(end + FOLLOWUP_DELAY, FOLLOWUP_HOUR, tzinfo=tz)


async def _schedule_followup(
    s: AsyncSession, runtime: Runtime, survey_id: str, period: str, since: date
) -> None:
    await repo_tasks.schedule(
        s,
        FOLLOWUP_TASK,
        f"{FOLLOWUP_TASK}:{survey_id}:{period}",
        _followup_due(runtime, period),
        {"survey_id": survey_id, "period": period, "since": since.isoformat()},
        replace=True,
    )


async def schedule_periodic(runtime: Runtime) -> int:
    """Plan this quarter's feedback for every follow-up survey (call at startup, after the
    follow-up rules are loaded); returns how many were newly planned."""
    today = runtime.clock.now().astimezone(runtime.settings.schedule.tz).date()
    period = period_of(today)
    start, _ = period_bounds(period)
    planned = 0
    async with runtime.db.transaction() as s:
        for survey_id in await repo_results.followup_surveys(s):
            planned += await repo_tasks.schedule(
                s,
                FOLLOWUP_TASK,
                f"{FOLLOWUP_TASK}:{survey_id}:{period}",
                _followup_due(runtime, period),
                {"survey_id": survey_id, "period": period, "since": start.isoformat()},
            )
    return planned


async def run_followup_feedback(
    runtime: Runtime, survey_id: str, period: str, since: date, *, after: int = 0
) -> int:
    """Feed one period's follow-up results back; returns how many messages it queued."""
    now = runtime.clock.now()
    start, end = period_bounds(period)
    since = min(since, start)
    next_period, next_start = period_of(end), end
    k = runtime.settings.privacy.min_group_size
    computed = await _followup_results(runtime, survey_id, since, end)
    completed = computed[1].participation.completed if computed else None
    if computed is None or completed is None or completed.suppressed or (completed.value or 0) < k:
        # Too few to publish: this period's people are fed back with the next period's.
        async with runtime.db.transaction() as s:
            await _schedule_followup(s, runtime, survey_id, next_period, since)
        return 0
    survey, results = computed
    not_before = _allowed(runtime, now)

    async def targets(s: AsyncSession, after_id: int) -> Sequence[FeedbackTarget]:
        return await repo_results.followup_feedback_targets(
            s, survey_id, since, end, after_id=after_id, limit=BATCH
        )

    queued, done = await _feed_back(
        runtime,
        survey,
        after=after,
        targets=targets,
        claim=repo_results.claim_followup_feedback,
        body=lambda lang: compose(survey, results, lang),
        channels=(),
        campaign_id=None,
        now=now,
        not_before=not_before,
        resume=lambda after: (
            FOLLOWUP_TASK,
            f"{FOLLOWUP_TASK}:{survey_id}:{period}:after:{after}",
            {"survey_id": survey_id, "period": period, "since": since.isoformat(), "after": after},
        ),
    )
    if not done:
        return queued
    async with runtime.db.transaction() as s:
        await _schedule_followup(s, runtime, survey_id, next_period, next_start)
        await repo_audit.log(
            s,
            "scheduler",
            "followup.feedback.sent",
            f"survey:{survey_id}",
            {"period": period, "since": since.isoformat(), "queued": queued},
            at=now,
        )
    events.note(
        "followup.feedback",
        "follow-up survey {survey} feedback for {period} sent: {queued} messages queued",
        survey=survey_id,
        period=period,
        queued=queued,
    )
    runtime.dispatcher.wake()
    return queued


# -- registration -----------------------------------------------------------------------------


def register(runtime: Runtime) -> None:
    """Register the feedback task handlers on a runtime."""

    async def campaign_feedback(payload: dict[str, Any]) -> None:
        await run_campaign_feedback(
            runtime, int(payload["campaign_id"]), after=int(payload.get("after", 0))
        )

    async def followup_feedback(payload: dict[str, Any]) -> None:
        await run_followup_feedback(
            runtime,
            str(payload["survey_id"]),
            str(payload["period"]),
            date.fromisoformat(str(payload["since"])),
            after=int(payload.get("after", 0)),
        )

    runtime.tasks.register(FEEDBACK_TASK, campaign_feedback)
    runtime.tasks.register(FOLLOWUP_TASK, followup_feedback)
