"""`brukardialog results show|export` and `brukardialog feedback set|preview|hold|release`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bot.cli import CommandError, _settings, cli_actor, run_with_runtime, warn_public_url
from bot.results import feedback
from bot.results.aggregate import Figure, QuestionFigures, Results
from bot.results.export_xlsx import SUPPRESSED_MARK
from bot.results.service import (
    FORMATS,
    CampaignResults,
    ResultsError,
    campaign_results,
    export_campaign,
    parse_breakdowns,
)
from bot.runtime import Runtime

T = TypeVar("T")

_LABELS = {
    "sv": {
        "status_open": "PRELIMINÄRT: kampanjen är {status}; siffrorna är slutliga när den stängs.",
        "participation": "Deltagande",
        "invited": "Inbjudna",
        "started": "Påbörjade",
        "completed": "Slutförda",
        "opted_out": "Avböjda",
        "response_rate": "Svarsfrekvens",
        "n": "antal svar",
        "share_positive": "andel positiva",
        "mean": "medelvärde",
        "change": "Förändring mot kampanj {id}",
        "no_previous": "Ingen tidigare avslutad kampanj av samma enkät att jämföra med.",
        "footnote": (
            "{mark} = visas inte: bygger på färre än {k} personer eller kan räknas fram ur andra "
            "siffror (k-regeln, k = {k})."
        ),
        "group": "Grupp",
        "total": "Totalt",
    },
    "en": {
        "status_open": "PRELIMINARY: the campaign is {status}; figures are final when it closes.",
        "participation": "Participation",
        "invited": "Invited",
        "started": "Started",
        "completed": "Completed",
        "opted_out": "Opted out",
        "response_rate": "Response rate",
        "n": "answers",
        "share_positive": "share positive",
        "mean": "mean",
        "change": "Change since campaign {id}",
        "no_previous": "No earlier closed campaign of the same survey to compare with.",
        "footnote": (
            "{mark} = not shown: rests on fewer than {k} people or could be worked out from other "
            "figures (the k rule, k = {k})."
        ),
        "group": "Group",
        "total": "Total",
    },
}


def _run(args: argparse.Namespace, work: Callable[[Runtime], Awaitable[T]]) -> T:
    return run_with_runtime(args, work, errors=(ResultsError,))


# -- formatting -------------------------------------------------------------------------------


def _fmt(figure: Figure, *, percent: bool = False, decimals: int = 1) -> str:
    if figure.suppressed:
        return SUPPRESSED_MARK
    if figure.value is None:
        return ""
    if percent:
        return f"{figure.value * 100:.0f} %"
    if isinstance(figure.value, float):
        return f"{figure.value:.{decimals}f}"
    return str(figure.value)


def _table(rows: Sequence[Sequence[str]], *, right_from: int = 1) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i >= right_from else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _question_lines(q: QuestionFigures, labels: dict[str, str]) -> list[str]:
    lines = [f"{q.label}  ({labels['n']}: {_fmt(q.n)})"]
    rows = [["  " + c.label, _fmt(c.count), _fmt(c.share, percent=True)] for c in q.counts]
    if rows:
        lines.extend(_table(rows))
    extra = []
    if q.share_positive.value is not None or q.share_positive.suppressed:
        extra.append(f"{labels['share_positive']}: {_fmt(q.share_positive, percent=True)}")
    if q.mean.value is not None or q.mean.suppressed:
        extra.append(f"{labels['mean']}: {_fmt(q.mean)}")
    if extra:
        lines.append("  " + ", ".join(extra))
    return lines


def format_results(data: CampaignResults, lang: str) -> str:
    """The results as plain-text tables for a terminal."""
    labels = _LABELS.get(lang.split("-")[0], _LABELS["en"])
    results: Results = data.results
    c = data.campaign
    out = [f"{c.name} (campaign {c.id}, survey {data.survey.id} v{results.survey_version})"]
    if not data.final:
        out.append(labels["status_open"].format(status=c.status))
    out.append("")
    p = results.participation
    out.append(labels["participation"])
    out.extend(
        _table(
            [
                ["  " + labels[name], _fmt(getattr(p, name))]
                for name in ("invited", "started", "completed", "opted_out")
            ]
            + [["  " + labels["response_rate"], _fmt(p.response_rate, percent=True)]]
        )
    )
    for q in results.questions:
        out.append("")
        out.extend(_question_lines(q, labels))
    for breakdown in results.breakdowns:
        out.append("")
        out.append(f"== {breakdown.dimension} ==")
        for qi, q in enumerate(results.questions):
            rows = [[labels["group"], labels["n"], labels["share_positive"], labels["mean"]]]
            rows.append(
                [labels["total"], _fmt(q.n), _fmt(q.share_positive, percent=True), _fmt(q.mean)]
            )
            for group in breakdown.groups:
                g = group.questions[qi]
                rows.append(
                    [group.label, _fmt(g.n), _fmt(g.share_positive, percent=True), _fmt(g.mean)]
                )
            out.append(q.label)
            out.extend("  " + line for line in _table(rows))
    out.append("")
    if data.comparison is not None and data.previous_campaign_id is not None:
        out.append(labels["change"].format(id=data.previous_campaign_id))
        names = {q.question_id: q.label for q in results.questions}
        for change in data.comparison.questions:
            parts = []
            if change.share_positive_change is not None:
                parts.append(
                    f"{labels['share_positive']} {change.share_positive_before * 100:.0f} % -> "  # type: ignore[operator]
                    f"{change.share_positive_after * 100:.0f} % "  # type: ignore[operator]
                    f"({change.share_positive_change * 100:+.0f})"
                )
            if change.mean_change is not None:
                parts.append(
                    f"{labels['mean']} {change.mean_before:.1f} -> {change.mean_after:.1f} "
                    f"({change.mean_change:+.1f})"
                )
            out.append(f"  {names.get(change.question_id, change.question_id)}: {'; '.join(parts)}")
    else:
        out.append(labels["no_previous"])
    out.append("")
    out.append(labels["footnote"].format(mark=SUPPRESSED_MARK, k=results.k))
    return "\n".join(out)


# -- commands ---------------------------------------------------------------------------------


def _breakdowns(args: argparse.Namespace) -> tuple[str, ...]:
    try:
        return parse_breakdowns(args.breakdown)
    except ResultsError as e:
        raise CommandError(str(e)) from None


def cmd_results_show(args: argparse.Namespace) -> int:
    breakdowns = _breakdowns(args)

    async def work(runtime: Runtime) -> str:
        data = await campaign_results(runtime, args.id, lang=args.lang, breakdowns=breakdowns)
        return format_results(data, args.lang)

    print(_run(args, work))
    return 0


def cmd_results_export(args: argparse.Namespace) -> int:
    if args.format not in FORMATS:
        raise CommandError(f"unknown format {args.format!r} (use {', '.join(FORMATS)})")
    breakdowns = _breakdowns(args)
    out = Path(args.out)

    async def work(runtime: Runtime) -> str:
        result = await export_campaign(
            runtime,
            args.id,
            args.format,
            out,
            actor=cli_actor(),
            lang=args.lang,
            breakdowns=breakdowns,
            partial=args.partial,
        )
        note = "" if result.final else " (preliminary: the campaign is still open)"
        return f"wrote {result.path} ({result.format}, {result.answers} respondents){note}"

    print(_run(args, work))
    return 0


def cmd_feedback_set(args: argparse.Namespace) -> int:
    if args.text is None and args.plan_ref is None:
        raise CommandError("give --text and/or --plan-ref")

    async def work(runtime: Runtime) -> str:
        campaign = await feedback.set_feedback(
            runtime,
            args.id,
            text={args.lang: args.text} if args.text is not None else None,
            plan_ref=args.plan_ref,
            actor=cli_actor(),
        )
        langs = ", ".join(sorted(campaign.feedback_text or {})) or "none"
        return f"campaign {campaign.id}: feedback text in {langs}; plan: {campaign.plan_ref or '-'}"

    print(_run(args, work))
    return 0


def cmd_feedback_preview(args: argparse.Namespace) -> int:
    warn_public_url(_settings(args))

    async def work(runtime: Runtime) -> str:
        campaign, previews = await feedback.preview(runtime, args.id)
        lines = [
            f"campaign {campaign.id}: feedback {campaign.feedback_status}, "
            f"to {campaign.feedback_to}"
        ]
        if campaign.status != "closed":
            lines.append(
                f"(the campaign is {campaign.status}: figures will change until it closes)"
            )
        for p in previews:
            lines.append("")
            lines.append(
                f"--- {p.lang}: {p.recipients} recipients, SMS {p.segments.segments} segment(s), "
                f"{p.segments.encoding}, {p.segments.units} characters ---"
            )
            lines.append(p.text)
        return "\n".join(lines)

    print(_run(args, work))
    return 0


def _hold_action(held: bool) -> Callable[[argparse.Namespace], int]:
    def cmd(args: argparse.Namespace) -> int:
        async def work(runtime: Runtime) -> str:
            action = feedback.hold if held else feedback.release
            campaign = await action(runtime, args.id, actor=cli_actor())
            return f"campaign {campaign.id}: feedback {campaign.feedback_status}"

        print(_run(args, work))
        return 0

    return cmd


def add_commands(sub: Any) -> None:
    """Add `results` and `feedback` to the top-level subcommands."""
    results = sub.add_parser("results", help="survey results").add_subparsers(
        dest="results", required=True
    )
    show = results.add_parser("show", help="a campaign's results as tables")
    show.add_argument("id", type=int, help="campaign id")
    show.add_argument("--lang", default="sv", help="language of labels (sv, en)")
    show.add_argument("--breakdown", help="e.g. gender,target_group,contact_length,unit,age")
    show.set_defaults(func=cmd_results_show)
    export = results.add_parser("export", help="write a campaign's answers to a file (audited)")
    export.add_argument("id", type=int, help="campaign id")
    export.add_argument("--format", required=True, help=f"one of {', '.join(FORMATS)}")
    export.add_argument("--out", required=True, help="file (csv, xlsx) or folder (flow-results)")
    export.add_argument("--lang", default="sv")
    export.add_argument("--breakdown", help="breakdown sheets in the XLSX")
    export.add_argument(
        "--partial",
        action="store_true",
        help="allow a preliminary export of a campaign that is still open",
    )
    export.set_defaults(func=cmd_results_export)

    fb = sub.add_parser("feedback", help='results back to respondents ("you said, we did")')
    fbs = fb.add_subparsers(dest="feedback", required=True)
    set_ = fbs.add_parser("set", help='store the "what we will do" text and plan reference')
    set_.add_argument("id", type=int, help="campaign id")
    set_.add_argument("--text", help="short text; an empty text removes it")
    set_.add_argument("--lang", default="sv")
    set_.add_argument("--plan-ref", help='e.g. "Mål 3.2 i verksamhetsplanen 2027"')
    set_.set_defaults(func=cmd_feedback_set)
    for name, helptext, func in (
        ("preview", "the message per language as it would be sent", cmd_feedback_preview),
        ("hold", "keep the feedback from going out", _hold_action(True)),
        ("release", "let held feedback go out", _hold_action(False)),
    ):
        parser = fbs.add_parser(name, help=helptext)
        parser.add_argument("id", type=int, help="campaign id")
        parser.set_defaults(func=func)
