"""What results are computed from: one respondent's answers, and the participation counts.

Read by `storage.repo_results`, computed on by `bot.results.aggregate`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from flows.conversation import AnswerValue

__all__ = ["Participation", "ResponseRecord"]


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """One respondent's answers, as results are computed from them."""

    respondent_id: str
    completed: bool
    started_on: date
    attributes: Mapping[str, str | None]
    """Copied at start: gender, target_group, unit, contact_length (band), age_group, language."""
    answers: Mapping[str, AnswerValue]
    """question_id -> value (choice id, list of ids, int, text, ISO date; None = skipped)."""
    answered_on: Mapping[str, date] = field(default_factory=dict)
    """question_id -> day answered, for exports; `started_on` where missing."""


@dataclass(frozen=True, slots=True)
class Participation:
    """How many were invited, started, completed and opted out (from the campaign)."""

    invited: int
    started: int
    completed: int
    opted_out: int
