"""What the staff feedback page shows and previews (page 5 of issue 9).

The messages come from `bot.results.feedback`: `preview` for what is stored, `compose` for a
draft that is being written (the live preview), and `longest_frame` for the same "does it fit
in three SMS segments" check `set_feedback` makes before it stores anything, so the page says
"too long" exactly when saving would be refused. Segment counts are `flows.segments`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.results import feedback
from bot.results.feedback import FeedbackTiming, Preview
from bot.results.service import ResultsError, campaign_results
from flows.model import Survey
from flows.segments import SegmentInfo, segment_info
from storage.models import Campaign

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "DraftPreview",
    "FeedbackView",
    "draft_preview",
    "feedback_view",
    "segments_json",
]


@dataclass(frozen=True, slots=True)
class FeedbackView:
    """What the feedback page of a campaign shows: its texts, previews and timing."""

    campaign: Campaign
    survey: Survey
    previews: tuple[Preview, ...]
    timing: FeedbackTiming

    @property
    def editable(self) -> bool:
        """Texts and the delay can still change (not sending or sent)."""
        return self.campaign.feedback_status not in (feedback.SENDING, feedback.SENT)


async def feedback_view(runtime: Runtime, campaign_id: int) -> FeedbackView:
    """The stored texts, the exact message per language and when it goes out."""
    campaign, previews = await feedback.preview(runtime, campaign_id)
    async with runtime.db.transaction(read_only=True) as s:
        survey = await runtime.catalog.version(s, campaign.survey_version_id)
    timing = await feedback.feedback_timing(runtime, campaign)
    return FeedbackView(campaign, survey, tuple(previews), timing)


@dataclass(frozen=True, slots=True)
class DraftPreview:
    """The message one language would get with a draft text, and whether it may be saved."""

    lang: str
    message: str
    segments: SegmentInfo
    """What this message costs now."""
    longest: SegmentInfo
    """What it can cost at most (the check `set_feedback` makes)."""
    text_segments: SegmentInfo
    """What the staff's own text costs alone."""

    @property
    def fits(self) -> bool:
        """True if the message fits MAX_SEGMENTS even at its longest."""
        return self.longest.segments <= feedback.MAX_SEGMENTS

    def to_json(self) -> dict[str, Any]:
        """The preview as JSON for the page's live check while typing."""
        return {
            "lang": self.lang,
            "message": self.message,
            "segments": segments_json(self.segments),
            "longest": segments_json(self.longest),
            "text": segments_json(self.text_segments),
            "fits": self.fits,
            "max_segments": feedback.MAX_SEGMENTS,
        }


def segments_json(info: SegmentInfo) -> dict[str, Any]:
    """An SMS cost as JSON: segments, encoding and units."""
    return {"segments": info.segments, "encoding": info.encoding, "units": info.units}


def _draft_text(values: Mapping[str, str], lang: str) -> str:
    value = values.get(lang, "")
    cleaned = " ".join(value.split())
    if len(cleaned) > feedback.MAX_TEXT:
        raise ResultsError(f"the text in {lang} is longer than {feedback.MAX_TEXT} characters")
    return cleaned


async def draft_preview(
    runtime: Runtime,
    campaign_id: int,
    texts: Mapping[str, str],
    plans: Mapping[str, str],
) -> list[DraftPreview]:
    """The message each language of the survey would get with these draft texts and plan
    references (not stored). A language the survey lacks is refused (ResultsError)."""
    data = await campaign_results(runtime, campaign_id, with_previous=False, headings=False)
    survey, campaign = data.survey, data.campaign
    for lang in (*texts, *plans):
        if lang not in survey.languages:
            raise ResultsError(
                f"the survey has no language {lang!r} (it has {', '.join(survey.languages)})"
            )
    link = feedback.results_link(runtime, campaign_id)
    p = data.participation
    most = max(p.invited, campaign.audience_size or 0, p.completed)
    out = []
    for lang in survey.languages:
        text = _draft_text(texts, lang) or None
        plan = _draft_text(plans, lang) or None
        message = feedback.compose(survey, data.results, lang, text=text, plan_ref=plan, link=link)
        longest = feedback.longest_frame(
            survey, lang, text=text, plan_ref=plan, link=link, most_answered=most
        )
        out.append(
            DraftPreview(lang, message, segment_info(message), longest, segment_info(text or ""))
        )
    return out
