"""The public results page `/results/{campaign_id}`: aggregates of a closed campaign, no login.

Only what `bot.results.aggregate.compute` publishes (the same small-number suppression as every
other output), never free-text answers. Charts are inline SVG horizontal bars with a title and
description for screen readers and the same figures as a table. Swedish and English (`?lang=`).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Final

from aiohttp import web

from bot.results.aggregate import Figure, QuestionFigures, Results
from bot.results.service import CampaignResults, ResultsError, campaign_results
from bot.results.texts import page_texts
from bot.web.inputs import db_id
from flows.model import QuestionType, Survey, base_language, localize

if TYPE_CHECKING:
    from collections.abc import Mapping

LANGS: Final = ("sv", "en")
CHART_WIDTH: Final = 320
BAR_HEIGHT: Final = 28
LABEL_WIDTH: Final = 130
"""Room (in SVG units) for the choice labels left of the bars."""
VALUE_WIDTH: Final = 40
_CHARTED: Final = frozenset(
    {QuestionType.SELECT_ONE, QuestionType.SELECT_MANY, QuestionType.SCALE, QuestionType.NUMERIC}
)


def _lang(request: web.Request) -> str:
    wanted = base_language(request.query.get("lang", "sv").strip().lower() or "sv")
    return wanted if wanted in LANGS else "sv"


def _percent(figure: Figure) -> str:
    if figure.suppressed or figure.value is None:
        return ""
    return f"{float(figure.value) * 100:.0f} %"


def _page(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/chat/static/chat.css">'
        '<link rel="stylesheet" href="/chat/static/results.css">'
        f'</head><body><main class="results">{body}</main></body></html>'
    )


def chart(q: QuestionFigures, index: int, texts: Mapping[str, str]) -> str:
    """A horizontal bar chart of one question's shares, as accessible inline SVG."""
    counts = q.counts
    height = BAR_HEIGHT * len(counts) + 4
    title_id, desc_id = f"chart-{index}-title", f"chart-{index}-desc"
    described = "; ".join(f"{c.label}: {_percent(c.share) or texts['hidden_cell']}" for c in counts)
    parts = [
        f'<svg role="img" aria-labelledby="{title_id} {desc_id}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" width="100%" class="chart">',
        f'<title id="{title_id}">{escape(texts["chart"].format(question=q.label))}</title>',
        f'<desc id="{desc_id}">{escape(texts["chart_desc"])} {escape(described)}</desc>',
    ]
    room = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    for i, c in enumerate(counts):
        y = i * BAR_HEIGHT + 2
        share = 0.0 if c.share.suppressed or c.share.value is None else float(c.share.value)
        width = room * share
        baseline = y + BAR_HEIGHT * 0.62
        label = c.label if len(c.label) <= 22 else c.label[:21] + "…"
        parts.append(
            f'<g><text x="0" y="{baseline:.1f}" class="label">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 5}" width="{width:.1f}" '
            f'height="{BAR_HEIGHT - 10}" class="bar"/>'
            f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{baseline:.1f}" class="value">'
            f"{escape(_percent(c.share) or '–')}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(q: QuestionFigures, texts: Mapping[str, str]) -> str:
    rows = "".join(
        f'<tr><th scope="row">{escape(c.label)}</th>'
        f"<td>{escape(_percent(c.share) or texts['hidden_cell'])}</td></tr>"
        for c in q.counts
    )
    return (
        f'<table class="figures"><thead><tr><th scope="col">{escape(texts["choice"])}</th>'
        f'<th scope="col">{escape(texts["share"])}</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _question(survey: Survey, q: QuestionFigures, index: int, texts: Mapping[str, str]) -> str:
    out = [f'<section class="question"><h2>{escape(q.label)}</h2>']
    if q.suppressed or q.n.value is None:
        out.append(f'<p class="muted">{escape(texts["hidden_question"])}</p></section>')
        return "".join(out)
    out.append(f'<p class="muted">{escape(texts["n"].format(n=q.n.value))}</p>')
    if q.counts:
        out.append(chart(q, index, texts))
        out.append(_table(q, texts))
    notes = []
    if not q.share_positive.suppressed and q.share_positive.value is not None:
        notes.append(texts["share_positive"].format(pct=_percent(q.share_positive)))
    if not q.mean.suppressed and q.mean.value is not None:
        notes.append(texts["mean"].format(mean=f"{float(q.mean.value):.1f}"))
    if notes:
        out.append(f"<p>{escape(' '.join(notes))}</p>")
    out.append("</section>")
    return "".join(out)


def render(data: CampaignResults, lang: str) -> str:
    """The whole page for a closed campaign's results."""
    texts = page_texts(lang)
    survey, results, campaign = data.survey, data.results, data.campaign
    title = texts["title"].format(title=localize(survey.title, lang, survey.default_language))
    body = [f"<h1>{escape(title)}</h1>"]
    other = texts["other_lang_code"]
    body.append(
        f'<p class="langs"><a href="?lang={other}" hreflang="{other}" lang="{other}">'
        f"{escape(texts['other_lang'])}</a></p>"
    )
    if survey.sender:
        sender = localize(survey.sender, lang, survey.default_language)
        body.append(f'<p class="muted">{escape(texts["from"].format(sender=sender))}</p>')
    feedback_texts = campaign.feedback_text or {}
    said = feedback_texts.get(lang) or feedback_texts.get(survey.default_language)
    if said or campaign.plan_ref:
        body.append(f'<section class="we-will"><h2>{escape(texts["we_will"])}</h2>')
        if said:
            body.append(f"<p>{escape(said)}</p>")
        if campaign.plan_ref:
            body.append(f"<p>{escape(texts['plan'].format(plan=campaign.plan_ref))}</p>")
        body.append("</section>")
    body.append(_participation(results, texts))
    if _too_few(results):
        body.append(f"<p><strong>{escape(texts['too_few'])}</strong></p>")
    else:
        for index, q in enumerate(results.questions):
            question = survey.question(q.question_id)
            if question is None or question.type not in _CHARTED:
                continue
            body.append(_question(survey, q, index, texts))
    body.append(f'<p class="note">{escape(texts["k_rule"].format(k=results.k))}</p>')
    return _page(lang, title, "".join(body))


def _too_few(results: Results) -> bool:
    completed = results.participation.completed
    return completed.suppressed or not completed.value or completed.value < results.k


def _participation(results: Results, texts: Mapping[str, str]) -> str:
    p = results.participation
    rows = []
    for name, figure, percent in (
        ("invited", p.invited, False),
        ("completed", p.completed, False),
        ("response_rate", p.response_rate, True),
    ):
        if figure.suppressed or figure.value is None:
            continue
        value = _percent(figure) if percent else str(figure.value)
        rows.append(f'<tr><th scope="row">{escape(texts[name])}</th><td>{value}</td></tr>')
    return (
        f'<section class="participation"><h2>{escape(texts["participation"])}</h2>'
        f'<table class="figures"><tbody>{"".join(rows)}</tbody></table></section>'
    )


def not_found(lang: str) -> web.Response:
    """A kind 404 page: the results are not there (yet)."""
    texts = page_texts(lang)
    body = f"<h1>{escape(texts['not_found_title'])}</h1><p>{escape(texts['not_found'])}</p>"
    return web.Response(
        status=404, text=_page(lang, texts["not_found_title"], body), content_type="text/html"
    )


async def results_page(request: web.Request) -> web.Response:
    from bot.app import RUNTIME

    runtime = request.app[RUNTIME]
    lang = _lang(request)
    campaign_id = db_id(request.match_info["campaign_id"])
    if campaign_id is None:
        return not_found(lang)
    try:
        data = await campaign_results(runtime, campaign_id, lang=lang)
    except ResultsError:
        return not_found(lang)
    if not data.final:
        return not_found(lang)
    return web.Response(
        text=render(data, lang),
        content_type="text/html",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_routes(app: web.Application) -> None:
    """Mount the public results page on the main app."""
    app.router.add_get("/results/{campaign_id}", results_page)
