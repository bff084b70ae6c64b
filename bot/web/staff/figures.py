"""Figures several staff pages show: a campaign's live counts, answers per day as an
accessible bar chart, local times, and when feedback goes out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.results.feedback import FeedbackTiming
from bot.web.staff import i18n
from flows.durations import format_duration
from storage.models import Campaign
from storage.repo_campaigns import CampaignCounts

CHART_DAYS = 14


def percent(rate: float | None) -> str:
    """A response rate as "42 %" (Swedish and English alike), or "–"."""
    return "–" if rate is None else f"{round(rate * 100)} %"


def local_time(moment: datetime | None, tz: ZoneInfo) -> str:
    """A time as local "YYYY-MM-DD HH:MM", or "–"."""
    return "–" if moment is None else f"{moment.astimezone(tz):%Y-%m-%d %H:%M}"


def counts_json(campaign: Campaign, counts: CampaignCounts) -> dict[str, Any]:
    """What the pages poll for one campaign."""
    return {
        "id": campaign.id,
        "status": campaign.status,
        "audience": counts.audience,
        "invited": counts.invited,
        "delivered": counts.delivered,
        "started": counts.started,
        "completed": counts.completed,
        "opted_out": counts.opted_out,
        "waiting": counts.waiting,
        "pending": counts.pending,
        "failed": counts.failed,
        "rate": percent(counts.response_rate),
        "rate_value": round((counts.response_rate or 0) * 100),
    }


@dataclass(frozen=True, slots=True)
class DayBar:
    """One day of a bar chart, with its place in the SVG."""

    day: date
    count: int
    x: int
    height: int
    y: int


@dataclass(frozen=True, slots=True)
class DayChart:
    """Answers per day over the last CHART_DAYS days (the table beside it is the text)."""

    bars: tuple[DayBar, ...]
    total: int
    most: int
    width: int
    height: int


def day_chart(days: list[tuple[date, int]], today: date, *, span: int = CHART_DAYS) -> DayChart:
    """Bars for each of the last `span` days, empty days included."""
    per_day = dict(days)
    first = today - timedelta(days=span - 1)
    counts = [
        (first + timedelta(days=i), per_day.get(first + timedelta(days=i), 0)) for i in range(span)
    ]
    most = max((n for _, n in counts), default=0)
    height, bar_w, gap = 60, 14, 4
    bars = []
    for i, (day, n) in enumerate(counts):
        h = round(n / most * height) if most else 0
        bars.append(DayBar(day, n, i * (bar_w + gap), h, height - h))
    return DayChart(tuple(bars), sum(n for _, n in counts), most, span * (bar_w + gap), height)


def feedback_when(timing: FeedbackTiming, tz: ZoneInfo, lang: str) -> str:
    """When a campaign's feedback goes out, in words."""

    def t(key: str, **fields: object) -> str:
        return i18n.translate(lang, key, **fields)

    if timing.status == "none":
        return t("feedback.none")
    if timing.status == "sent":
        return t("feedback.sent")
    if timing.status == "sending":
        return t("feedback.sending")
    when = local_time(timing.sends_from, tz) if timing.sends_from else ""
    if when and timing.quiet_hours:
        when = t("feedback.after_quiet", when=when)
    if timing.after_close is not None:
        when = t("feedback.after_close", delay=format_duration(timing.after_close), when=when)
    if timing.status == "held":
        return t("feedback.held", when=when or "–")
    return t("feedback.pending", when=when or "–")


i18n.add_messages(
    {
        "sv": {
            "feedback.none": "ingen återkoppling skickas",
            "feedback.sent": "skickad",
            "feedback.sending": "skickas nu",
            "feedback.after_quiet": "{when} (efter tysta timmar)",
            "feedback.after_close": "{delay} efter att kampanjen stängs (planerat {when})",
            "feedback.held": "pausad: går ut när den släpps (planerat {when})",
            "feedback.pending": "går ut {when}",
        },
        "en": {
            "feedback.none": "no feedback is sent",
            "feedback.sent": "sent",
            "feedback.sending": "being sent now",
            "feedback.after_quiet": "{when} (after quiet hours)",
            "feedback.after_close": "{delay} after the campaign closes (planned {when})",
            "feedback.held": "held: goes out when released (planned {when})",
            "feedback.pending": "goes out {when}",
        },
    }
)
