"""`brukardialog results show|export` and `brukardialog feedback set|preview|hold|release`.

Why one module: both command groups are thin over `bot.results`; most of the length is the
formatting of figures as text at the top, which `results show` needs whole.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from bot.cli import common
from bot.cli.common import CommandError, cli_actor, run_with_runtime, warn_public_url
from bot.results import feedback
from bot.results.aggregate import Comparison, Figure, QuestionFigures, Results
from bot.results.export_xlsx import SUPPRESSED_MARK, note
from bot.results.service import (
    FORMATS,
    ORIGINS,
    CampaignResults,
    ResultsError,
    SurveyResults,
    campaign_results,
    export_campaign,
    parse_breakdowns,
    period,
    survey_results,
)
from bot.results.texts import staff_texts
from bot.runtime import Runtime

T = TypeVar("T")


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


def _question_lines(q: QuestionFigures, labels: Mapping[str, str]) -> list[str]:
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


def _figures(results: Results, labels: Mapping[str, str]) -> list[str]:
    """Every question, then every breakdown (a background question not by itself)."""
    out: list[str] = []
    for q in results.questions:
        out.append("")
        out.extend(_question_lines(q, labels))
    for breakdown in results.breakdowns:
        out.append("")
        out.append(f"== {labels.get(breakdown.dimension, breakdown.dimension)} ==")
        for qi, question_id in enumerate(breakdown.question_ids):
            total = results.question(question_id)
            assert total is not None
            rows = [[labels["group"], labels["n"], labels["share_positive"], labels["mean"]]]
            rows.append(
                [
                    labels["total"],
                    _fmt(total.n),
                    _fmt(total.share_positive, percent=True),
                    _fmt(total.mean),
                ]
            )
            for group in breakdown.groups:
                g = group.questions[qi]
                rows.append(
                    [group.label, _fmt(g.n), _fmt(g.share_positive, percent=True), _fmt(g.mean)]
                )
            out.append(total.label)
            out.extend("  " + line for line in _table(rows))
    return out


def _change_lines(
    results: Results, comparison: Comparison, previous_id: int, labels: Mapping[str, str]
) -> list[str]:
    out = [labels["change"].format(id=previous_id)]
    names = {q.question_id: q.label for q in results.questions}
    for change in comparison.questions:
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
    return out


def format_results(data: CampaignResults, lang: str | None = None) -> str:
    """A campaign's results as plain-text tables for a terminal, headings in its language."""
    labels = staff_texts(lang or data.lang)
    results: Results = data.results
    c = data.campaign
    survey = labels["survey"].format(survey=data.survey.id, version=results.survey_version)
    out = [f"{c.name} ({labels['campaign'].format(id=c.id)}, {survey})"]
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
    out.extend(_figures(results, labels))
    out.append("")
    if data.comparison is not None and data.previous_campaign_id is not None:
        out.extend(_change_lines(results, data.comparison, data.previous_campaign_id, labels))
    else:
        out.append(labels["no_previous"].format(k=results.k))
    out.append("")
    out.append(note(results, labels))
    return "\n".join(out)


def format_survey_results(data: SurveyResults) -> str:
    """A follow-up survey's results in a period as plain-text tables."""
    labels = staff_texts(data.lang)
    results = data.results
    last = data.until - timedelta(days=1) if data.until else None
    period = labels["period"].format(
        since=data.since.isoformat() if data.since else "…",
        until=last.isoformat() if last else "…",
    )
    survey = labels["survey"].format(survey=data.survey.id, version=data.survey.version)
    out = [f"{survey}, {period}", data.origin_label, "", labels["participation"]]
    p = results.participation
    sent = [["  " + labels["followups_sent"], str(data.followups_sent)]]
    out.extend(
        _table(
            [
                *(sent if data.origin == "followup" else []),
                ["  " + labels["started"], _fmt(p.started)],
                ["  " + labels["completed"], _fmt(p.completed)],
                ["  " + labels["response_rate"], _fmt(p.response_rate, percent=True)],
            ]
        )
    )
    out.extend(_figures(results, labels))
    if data.other_versions:
        versions = ", ".join(f"v{v}: {n}" for v, n in sorted(data.other_versions.items()))
        out.extend(["", labels["other_versions"].format(versions=versions)])
    out.extend(["", note(results, labels)])
    return "\n".join(out)


# -- commands ---------------------------------------------------------------------------------


def _breakdowns(args: argparse.Namespace) -> tuple[str, ...]:
    try:
        return parse_breakdowns(args.breakdown)
    except ResultsError as e:
        raise CommandError(str(e)) from None


def _day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def cmd_results_show(args: argparse.Namespace) -> int:
    """`results show`: a campaign's (or a follow-up survey's) suppressed figures as text."""
    breakdowns = _breakdowns(args)
    if (args.id is None) == (args.survey is None):
        raise CommandError("give a campaign id, or --survey ID for a follow-up survey")
    if args.id is not None and (args.date_from or args.date_to or args.origin):
        raise CommandError(
            "--from, --to and --origin go with --survey (a campaign has its own period)"
        )
    try:
        since, until = period(
            _day("--from", args.date_from), _day("--to", args.date_to), names=("--from", "--to")
        )
    except ResultsError as e:
        raise CommandError(str(e)) from None

    async def work(runtime: Runtime) -> str:
        if args.survey is not None:
            data = await survey_results(
                runtime,
                args.survey,
                since=since,
                until=until,
                lang=args.lang,
                breakdowns=breakdowns,
                origin=args.origin or "followup",
            )
            return format_survey_results(data)
        campaign = await campaign_results(runtime, args.id, lang=args.lang, breakdowns=breakdowns)
        return format_results(campaign)

    print(_run(args, work))
    return 0


def cmd_results_export(args: argparse.Namespace) -> int:
    """`results export ID`: write a campaign's answers to a file in one of FORMATS (audited)."""
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
        lines = [f"wrote {result.path} ({result.format}, {result.answers} respondents)"]
        if not result.final:
            lines[0] += " (preliminary: the campaign is still open)"
        if result.attributes is not None and result.attributes.left_out:
            lines.extend(result.attributes.notes("en"))
        return "\n".join(lines)

    print(_run(args, work))
    return 0


_LANG_TAG: Final = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def _per_language(option: str, values: Sequence[str]) -> dict[str, str]:
    """["sv=Vi ...", "en=We ..."] -> {"sv": "Vi ...", "en": "We ..."}."""
    out: dict[str, str] = {}
    for item in values:
        lang, sep, text = item.partition("=")
        lang = lang.strip().lower()
        if not sep or not _LANG_TAG.fullmatch(lang):
            raise CommandError(
                f'{option} takes LANG=TEXT, one per language, e.g. {option} sv="Vi inför '
                f'kvällstider." {option} en="We will open in the evenings."'
            )
        if lang in out:
            raise CommandError(f"{option}: {lang} is given twice")
        out[lang] = text
    return out


def _plan_option(values: Sequence[str]) -> dict[str, str] | str | None:
    """--plan-ref "Mål 3.2" (every language) or --plan-ref sv=... --plan-ref en=..."""
    if not values:
        return None
    tagged = [
        v for v in values if _LANG_TAG.fullmatch(v.partition("=")[0].strip().lower()) and "=" in v
    ]
    if len(values) == 1 and not tagged:
        return values[0]
    return _per_language("--plan-ref", values)


def _languages_option(values: Sequence[str]) -> list[str]:
    out = [lang.strip().lower() for value in values for lang in value.split(",") if lang.strip()]
    for lang in out:
        if not _LANG_TAG.fullmatch(lang):
            raise CommandError(f"--without-text: {lang!r} is not a language code (e.g. ar)")
    return out


def _feedback_file(path: Path) -> dict[str, Any]:
    """A feedback TOML file: [text] and [plan_ref] per language (or plan_ref = "..."),
    without_text = ["ar"], delay = "3d"."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise CommandError(f"{path}: {e}") from None
    allowed = ("text", "plan_ref", "without_text", "delay")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise CommandError(f"{path}: unknown key {', '.join(unknown)} (use {', '.join(allowed)})")
    text, plan = data.get("text"), data.get("plan_ref")
    if text is not None and not (
        isinstance(text, dict) and all(isinstance(v, str) for v in text.values())
    ):
        raise CommandError(f'{path}: text must be a table of texts, e.g. [text] sv = "..."')
    if (
        plan is not None
        and not isinstance(plan, str)
        and not (isinstance(plan, dict) and all(isinstance(v, str) for v in plan.values()))
    ):
        raise CommandError(f"{path}: plan_ref must be a text, or a table of texts per language")
    bare = data.get("without_text")
    if bare is not None and not (isinstance(bare, list) and all(isinstance(v, str) for v in bare)):
        raise CommandError(f'{path}: without_text must be a list of languages, e.g. ["ar"]')
    delay = data.get("delay")
    if delay is not None and not isinstance(delay, str | int):
        raise CommandError(f'{path}: delay must be a duration like "3d"')
    return {"text": text, "plan_ref": plan, "without_text": bare, "delay": delay}


def cmd_feedback_set(args: argparse.Namespace) -> int:
    """`feedback set ID`: change a campaign's feedback texts, plan references or delay."""
    wanted: dict[str, Any] = {"text": None, "plan_ref": None, "without_text": None, "delay": None}
    if args.file:
        if args.text or args.plan_ref or args.without_text:
            raise CommandError("give --file, or --text/--plan-ref/--without-text, not both")
        wanted = _feedback_file(Path(args.file))
    else:
        if args.text:
            wanted["text"] = _per_language("--text", args.text)
        wanted["plan_ref"] = _plan_option(args.plan_ref or [])
        if args.without_text:
            wanted["without_text"] = _languages_option(args.without_text)
    if args.delay is not None:
        wanted["delay"] = args.delay
    if all(value is None for value in wanted.values()):
        raise CommandError(
            "give --text LANG=TEXT (one per language), --file, --without-text, --plan-ref "
            "or --delay"
        )
    try:
        delay = feedback.parse_delay(wanted["delay"]) if wanted["delay"] is not None else None
    except ResultsError as e:
        raise CommandError(str(e)) from None

    async def work(runtime: Runtime) -> str:
        campaign = await feedback.set_feedback(
            runtime,
            args.id,
            text=wanted["text"],
            plan_ref=wanted["plan_ref"],
            without_text=wanted["without_text"],
            delay=delay,
            actor=cli_actor(),
        )
        _, previews = await feedback.preview(runtime, args.id)
        timing = await feedback.feedback_timing(runtime, campaign)
        langs = ", ".join(sorted(campaign.feedback_text or {})) or "none"
        bare = ", ".join(campaign.feedback_without_text or ()) or "-"
        plans = ", ".join(sorted(campaign.plan_refs or {})) or "-"
        costs = ", ".join(f"{p.lang} {p.segments.segments}" for p in previews)
        return "\n".join(
            [
                f"campaign {campaign.id}: feedback text in {langs}; without text: {bare}; "
                f"plan reference in: {plans}",
                f"SMS segments now: {costs} (at most {feedback.MAX_SEGMENTS})",
                f"feedback {timing.describe(runtime.settings.schedule.tz)}",
            ]
        )

    print(_run(args, work))
    return 0


def cmd_feedback_preview(args: argparse.Namespace) -> int:
    """`feedback preview ID`: the feedback message each language would get, with its timing."""
    warn_public_url(common.settings(args))

    async def work(runtime: Runtime) -> str:
        campaign, previews = await feedback.preview(runtime, args.id)
        timing = await feedback.feedback_timing(runtime, campaign)
        lines = [
            f"campaign {campaign.id}: feedback to {campaign.feedback_to}",
            f"feedback {timing.describe(runtime.settings.schedule.tz)}",
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
            if p.without_text:
                lines.append('(sent without a "what we will do" text, as chosen)')
            elif p.staff_text is None:
                lines.append(
                    f'(no "what we will do" text in {p.lang}: set one with --text '
                    f"{p.lang}=..., or send it without one with --without-text {p.lang})"
                )
            if p.left_out:
                lines.append(
                    f"({p.left_out} headline(s) left out to stay within "
                    f"{feedback.MAX_SEGMENTS} segments)"
                )
            lines.append(p.text)
        return "\n".join(lines)

    print(_run(args, work))
    return 0


def cmd_feedback_send_now(args: argparse.Namespace) -> int:
    """`feedback send-now ID`: send a campaign's feedback at the next poll instead of waiting."""

    async def work(runtime: Runtime) -> str:
        timing = await feedback.send_now(runtime, args.id, actor=cli_actor())
        return (
            f"campaign {args.id}: feedback {timing.describe(runtime.settings.schedule.tz)}\n"
            "The running service sends it at its next poll (a few seconds)."
        )

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
    show = results.add_parser(
        "show", help="a campaign's results, or a follow-up survey's in a period, as tables"
    )
    show.add_argument("id", type=int, nargs="?", help="campaign id")
    show.add_argument("--survey", help="a follow-up survey's id: its answers outside campaigns")
    show.add_argument("--from", dest="date_from", help="with --survey: first day, YYYY-MM-DD")
    show.add_argument("--to", dest="date_to", help="with --survey: last day (included)")
    show.add_argument(
        "--origin",
        choices=ORIGINS,
        help="with --survey: answers to follow-ups (default) or from public starts (web chat "
        "list, keyword); the two are never mixed",
    )
    show.add_argument(
        "--lang", help="language of questions and headings (sv, en, ar; default: the survey's)"
    )
    show.add_argument("--breakdown", help="e.g. gender,target_group,contact_length,unit,age")
    show.set_defaults(func=cmd_results_show)
    export = results.add_parser("export", help="write a campaign's answers to a file (audited)")
    export.add_argument("id", type=int, help="campaign id")
    export.add_argument("--format", required=True, help=f"one of {', '.join(FORMATS)}")
    export.add_argument("--out", required=True, help="file (csv, xlsx) or folder (flow-results)")
    export.add_argument("--lang", help="sv, en or ar (default: the survey's)")
    export.add_argument("--breakdown", help="breakdown sheets in the XLSX")
    export.add_argument(
        "--partial",
        action="store_true",
        help="allow a preliminary export of a campaign that is still open",
    )
    export.set_defaults(func=cmd_results_export)

    fb = sub.add_parser("feedback", help='results back to respondents ("you said, we did")')
    fbs = fb.add_subparsers(dest="feedback", required=True)
    set_ = fbs.add_parser(
        "set",
        help='the "what we will do" text and plan reference per language, and the delay',
        description=(
            "Every language of the survey needs a text, or --without-text. A message over "
            f"{feedback.MAX_SEGMENTS} SMS segments is refused (nothing is cut)."
        ),
    )
    set_.add_argument("id", type=int, help="campaign id")
    set_.add_argument(
        "--text",
        action="append",
        metavar="LANG=TEXT",
        help='per language, e.g. --text sv="Vi inför kvällstider." --text en="..."; '
        "LANG= with nothing after it removes that text",
    )
    set_.add_argument(
        "--without-text",
        action="append",
        metavar="LANGS",
        help="languages to send without a text, e.g. ar or en,ar",
    )
    set_.add_argument(
        "--plan-ref",
        action="append",
        metavar="[LANG=]TEXT",
        help='one for all languages ("Mål 3.2") or one per language (sv="Mål 3.2" en="Goal 3.2")',
    )
    set_.add_argument(
        "--file",
        help='a TOML file: [text] sv = "..." en = "..."; plan_ref; without_text = ["ar"]; delay',
    )
    set_.add_argument("--delay", help="after closing, e.g. 1d or 12h (0s: at once)")
    set_.set_defaults(func=cmd_feedback_set)
    for name, helptext, func in (
        ("preview", "the message per language as it would be sent, and when", cmd_feedback_preview),
        (
            "send-now",
            "send a closed campaign's feedback now, not after its delay",
            cmd_feedback_send_now,
        ),
        ("hold", "keep the feedback from going out", _hold_action(True)),
        ("release", "let held feedback go out", _hold_action(False)),
    ):
        parser = fbs.add_parser(name, help=helptext)
        parser.add_argument("id", type=int, help="campaign id")
        parser.set_defaults(func=func)
