"""Survey results: aggregates with small-number suppression (`aggregate`, `suppress`: pure), PII
masking, exports, the results service reading the database, and the feedback loop."""

from __future__ import annotations

from bot.results.aggregate import (
    Comparison,
    Figure,
    OpenAnswer,
    Participation,
    ResponseRecord,
    Results,
    compare,
    compute,
    contact_length_band,
    open_answers,
)
from bot.results.redact import mask_pii

__all__ = [
    "Comparison",
    "Figure",
    "OpenAnswer",
    "Participation",
    "ResponseRecord",
    "Results",
    "compare",
    "compute",
    "contact_length_band",
    "mask_pii",
    "open_answers",
]
