"""The public results page `/results/{campaign_id}`: aggregates of a closed campaign, no login.

Only what `bot.results.aggregate.compute` publishes (the same small-number suppression as every
other output), never free-text answers. The page exists in every language of the survey
(`?lang=`, default the survey's first), right to left for Arabic, with links to the others.

Charts are tables: each answer option is a row header, and its cell holds the share as text and
a bar drawn as an SVG rectangle that carries no text. Labels and figures are page text, so they
keep the page's font size on a 390 px phone and a 1280 px desktop alike (text inside a scaled SVG
shrank to ~10 px on a phone and grew to ~24 px on a desktop), and screen readers read a plain
table. No inline script or style attribute anywhere: the page works under a strict CSP.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Final

from aiohttp import web

from bot.results.aggregate import Figure, QuestionFigures, Results
from bot.results.service import CampaignNotFound, CampaignResults, ResultsError, campaign_results
from bot.results.texts import page_texts
from bot.runtime import RUNTIME
from bot.web.inputs import db_id
from flows.model import Survey, base_language, localize
from flows.texts import language_name
from flows.types import Figures, kind_of

if TYPE_CHECKING:
    from collections.abc import Mapping

RTL_LANGUAGES: Final = frozenset({"ar", "fa", "he", "ur", "ps", "ku"})
_CHARTED: Final = frozenset({Figures.CHOICE, Figures.CHOICES, Figures.NUMBER})


def direction(lang: str) -> str:
    """The page direction of a language: "rtl" (Arabic, Persian, ...) or "ltr"."""
    return "rtl" if base_language(lang) in RTL_LANGUAGES else "ltr"


def _wanted(request: web.Request) -> str | None:
    text = request.query.get("lang", "").strip().lower()
    return text or None


def _percent(figure: Figure) -> str:
    if figure.suppressed or figure.value is None:
        return ""
    return f"{float(figure.value) * 100:.0f} %"


def _page(lang: str, title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{escape(lang)}" dir="{direction(lang)}"><head>'
        '<meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/chat/static/chat.css">'
        '<link rel="stylesheet" href="/chat/static/results.css">'
        f'</head><body><main class="results">{body}</main></body></html>'
    )


def _bar(share: Figure) -> str:
    """A bar as wide as the share: two rectangles, no text (the figure is beside it)."""
    width = 0.0 if share.suppressed or share.value is None else float(share.value) * 100
    return (
        '<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" '
        'focusable="false"><rect class="track" width="100" height="10"/>'
        f'<rect class="fill" width="{max(0.0, min(100.0, width)):.1f}" height="10"/></svg>'
    )


def chart(q: QuestionFigures, index: int, texts: Mapping[str, str]) -> str:
    """One question's shares as a table whose cells also draw a bar."""
    rows = "".join(
        f'<tr><th scope="row">{escape(c.label)}</th><td><div class="bar-cell">{_bar(c.share)}'
        f'<span class="value">{escape(_percent(c.share) or texts["hidden_cell"])}</span>'
        "</div></td></tr>"
        for c in q.counts
    )
    return (
        f'<table class="figures chart" id="chart-{index}">'
        f'<caption class="visually-hidden">{escape(texts["chart"].format(question=q.label))}'
        f'</caption><thead><tr><th scope="col">{escape(texts["choice"])}</th>'
        f'<th scope="col">{escape(texts["share"])}</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _question(survey: Survey, q: QuestionFigures, index: int, texts: Mapping[str, str]) -> str:
    out = [f'<section class="question"><h2>{escape(q.label)}</h2>']
    if q.suppressed or q.n.value is None:
        out.append(f'<p class="muted">{escape(texts["hidden_question"])}</p></section>')
        return "".join(out)
    out.append(f'<p class="muted">{escape(texts["n"].format(n=q.n.value))}</p>')
    if q.counts:
        out.append(chart(q, index, texts))
    notes = []
    if not q.share_positive.suppressed and q.share_positive.value is not None:
        notes.append(texts["share_positive"].format(pct=_percent(q.share_positive)))
    if not q.mean.suppressed and q.mean.value is not None:
        notes.append(texts["mean"].format(mean=f"{float(q.mean.value):.1f}"))
    if notes:
        out.append(f"<p>{escape(' '.join(notes))}</p>")
    out.append("</section>")
    return "".join(out)


def _languages(survey: Survey, lang: str, texts: Mapping[str, str]) -> str:
    links = "".join(
        f'<li><a href="?lang={escape(other)}" hreflang="{escape(other)}" lang="{escape(other)}" '
        f'dir="{direction(other)}">{escape(language_name(other))}</a></li>'
        for other in survey.languages
        if other != lang
    )
    if not links:
        return ""
    return f'<nav class="langs" aria-label="{escape(texts["languages"])}"><ul>{links}</ul></nav>'


def _in_language(values: Mapping[str, str], lang: str, default: str) -> tuple[str, str] | None:
    """A per-language staff text in `lang`, else in the survey's default (with its language)."""
    for key in (lang, default):
        if values.get(key):
            return values[key], key
    return None


def render(data: CampaignResults, lang: str) -> str:
    """The whole page for a closed campaign's results, in `lang`."""
    texts = page_texts(lang)
    survey, results, campaign = data.survey, data.results, data.campaign
    title = texts["title"].format(title=localize(survey.title, lang, survey.default_language))
    body = [_languages(survey, lang, texts), f"<h1>{escape(title)}</h1>"]
    if survey.sender:
        sender = localize(survey.sender, lang, survey.default_language)
        body.append(f'<p class="muted">{escape(texts["from"].format(sender=sender))}</p>')
    said = _in_language(campaign.feedback_text or {}, lang, survey.default_language)
    plan = _in_language(campaign.plan_refs or {}, lang, survey.default_language)
    if said or plan:
        body.append(f'<section class="we-will"><h2>{escape(texts["we_will"])}</h2>')
        for part, template in ((said, "{}"), (plan, texts["plan"].replace("{plan}", "{}"))):
            if part is None:
                continue
            text, text_lang = part
            marked = "" if text_lang == lang else f' lang="{escape(text_lang)}" dir="auto"'
            body.append(f"<p{marked}>{escape(template.format(text))}</p>")
        body.append("</section>")
    body.append(_participation(results, texts))
    if _too_few(results):
        body.append(f"<p><strong>{escape(texts['too_few'])}</strong></p>")
    else:
        for index, q in enumerate(results.questions):
            question = survey.question(q.question_id)
            if question is None or kind_of(question).figures not in _CHARTED:
                continue
            body.append(_question(survey, q, index, texts))
    rule = "k_rule_cells" if results.suppression == "cells" else "k_rule_groups"
    body.append(f'<p class="note">{escape(texts[rule].format(k=results.k))}</p>')
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
    """GET /results/{campaign_id}: a closed campaign's public results page; 404 while it is open."""
    runtime = request.app[RUNTIME]
    wanted = _wanted(request)
    fallback = wanted if wanted in ("sv", "en", "ar") else "sv"
    campaign_id = db_id(request.match_info["campaign_id"])
    if campaign_id is None:
        return not_found(fallback)
    try:
        try:
            data = await campaign_results(
                runtime, campaign_id, lang=wanted, headings=False, with_previous=False
            )
        except CampaignNotFound:
            raise
        except ResultsError:  # a language the survey does not have: its default instead
            data = await campaign_results(
                runtime, campaign_id, lang=None, headings=False, with_previous=False
            )
    except ResultsError:
        return not_found(fallback)
    if not data.final:
        return not_found(data.lang)
    return web.Response(
        text=render(data, data.lang),
        content_type="text/html",
        headers={"Cache-Control": "public, max-age=300"},
    )


def add_routes(app: web.Application) -> None:
    """Mount the public results page on the main app."""
    app.router.add_get("/results/{campaign_id}", results_page)
