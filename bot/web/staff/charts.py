"""Accessible bar charts as inline SVG, drawn on the server (no chart script in the browser).

Each chart is an `<svg role="img">` named by its `<title>` and described by its `<desc>`, which
says every bar's label and value in words; the page also shows the same figures as a table next
to it (the text alternative a person can read, copy and sort by eye). A bar whose figure is
withheld by the small-number rule (`bot.results.suppress`) is not drawn: its row says "hidden
(fewer than k)" in the caller's language instead, so nothing below k is ever shown.

The SVG has no viewBox: positions are in CSS pixels and percentages of the chart's width, so
the text keeps the page's font size on a 390 px phone and a 1280 px desktop alike, and only
the bars stretch. Labels stand on their own line above each bar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

from bot.results.aggregate import Count, Figure

__all__ = [
    "Bar",
    "bar_chart",
    "bars_from_counts",
    "percent",
    "share_bar",
]

ROW_HEIGHT: Final = 52
"""Pixels per bar: a label line (about 1.25 rem) and the bar with its value."""
BAR_HEIGHT: Final = 18
BAR_SPAN: Final = 78.0
"""Percent of the chart width the longest possible bar takes; the value text sits after it."""
LABEL_CHARS: Final = 48
"""Longer labels are shortened in the drawing (the table beside it has them whole)."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: `value` is a share of 0..1 (None: withheld, drawn as the hidden text)."""

    label: str
    value: float | None
    text: str
    """The figure as written beside the bar, e.g. "63 %"."""

    @property
    def hidden(self) -> bool:
        """True when the figure is withheld (drawn as the hidden text)."""
        return self.value is None


def percent(figure: Figure) -> str:
    """A share as "63 %", or "" when withheld or not applicable."""
    if figure.suppressed or figure.value is None:
        return ""
    return f"{float(figure.value) * 100:.0f} %"


def share_bar(label: str, figure: Figure, hidden_text: str) -> Bar:
    """A bar for one published share; a withheld one carries `hidden_text`."""
    if figure.suppressed or figure.value is None:
        return Bar(label, None, hidden_text)
    return Bar(label, float(figure.value), percent(figure))


def bars_from_counts(counts: Sequence[Count], hidden_text: str) -> list[Bar]:
    """One bar per choice (or scale step, numeric bin), its share as the bar's length."""
    return [share_bar(c.label, c.share, hidden_text) for c in counts]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def bar_chart(
    bars: Sequence[Bar],
    *,
    chart_id: str,
    title: str,
    desc: str = "",
    scale: float = 1.0,
) -> Markup:
    """A horizontal bar chart, one bar per row; `scale` is the value of a full-length bar.

    The `<desc>` is `desc` followed by every bar's "label: value"; screen readers read the
    chart as one image with that description."""
    if scale <= 0:
        raise ValueError("scale must be above zero")
    ident = _attr(chart_id)
    spoken = "; ".join(f"{' '.join(b.label.split())}: {b.text}" for b in bars)
    description = f"{desc} {spoken}".strip() if desc else spoken
    height = ROW_HEIGHT * len(bars) + 4
    parts = [
        f'<svg class="bar-chart" id="{ident}" role="img" width="100%" height="{height}" '
        f'aria-labelledby="{ident}-title" aria-describedby="{ident}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    for index, bar in enumerate(bars):
        top = index * ROW_HEIGHT
        label_y = top + 18
        bar_y = top + 26
        text_y = bar_y + BAR_HEIGHT - 4
        classes = "row hidden" if bar.hidden else "row"
        parts.append(f'<g class="{classes}">')
        parts.append(f'<text class="label" x="0" y="{label_y}">{escape(_short(bar.label))}</text>')
        if bar.hidden or bar.value is None:
            parts.append(
                f'<rect class="track" x="0" y="{bar_y}" width="{BAR_SPAN:.1f}%" '
                f'height="{BAR_HEIGHT}"/>'
                f'<text class="value hidden-note" x="6" y="{text_y}">{escape(bar.text)}</text>'
            )
        else:
            share = max(0.0, min(1.0, bar.value / scale))
            width = BAR_SPAN * share
            parts.append(
                f'<rect class="track" x="0" y="{bar_y}" width="{BAR_SPAN:.1f}%" '
                f'height="{BAR_HEIGHT}"/>'
                f'<rect class="fill" x="0" y="{bar_y}" width="{width:.1f}%" '
                f'height="{BAR_HEIGHT}"/>'
                f'<text class="value" x="100%" y="{text_y}" text-anchor="end">'
                f"{escape(bar.text)}</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
