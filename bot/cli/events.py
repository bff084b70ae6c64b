"""`brukardialog events ...`: import case events, check and list follow-up rules, show an event."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot import followups
from bot.cli import common
from bot.cli.common import CommandError, run_with_runtime
from bot.runtime import Runtime
from bot.survey_files import load_paths
from storage import repo_events

T = TypeVar("T")


def _run(args: argparse.Namespace, work: Callable[[Runtime], Awaitable[T]]) -> T:
    return run_with_runtime(args, work)


def add_commands(sub: Any) -> None:
    """Add the `events` command group to the top-level subparsers."""
    events = sub.add_parser("events", help="case events and the follow-ups they trigger")
    commands = events.add_subparsers(dest="events", required=True, metavar="COMMAND")

    import_ = commands.add_parser(
        "import", help="report case events from a CSV file (all rows or none)"
    )
    import_.add_argument("file", type=Path, help="CSV with event_id, type, external_ref, ...")
    import_.set_defaults(func=cmd_import)

    show = commands.add_parser("show", help="an event and the status of its follow-ups")
    show.add_argument("event_id")
    show.set_defaults(func=cmd_show)

    rules = commands.add_parser("rules", help="follow-up rules").add_subparsers(
        dest="rules", required=True, metavar="COMMAND"
    )
    rules.add_parser("list", help="list the rules (file and API)").set_defaults(func=cmd_rules_list)
    check = rules.add_parser("check", help="validate rules files")
    check.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help=f"rules files or folders (default: followups.paths, else {followups.RULES_FILE})",
    )
    check.set_defaults(func=cmd_rules_check)


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def cmd_import(args: argparse.Namespace) -> int:
    """`events import FILE`: report case events from a CSV, all rows or none."""
    settings = common.settings(args)
    tz = settings.schedule.tz
    path: Path = args.file
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            today = datetime.now(tz).date()
            parsed = followups.parse_events_csv(stream, tz=tz, today=today)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CommandError(f'{path}: not UTF-8 text; save it as "CSV UTF-8"') from None
    except OSError as e:
        raise CommandError(f"{path}: cannot be read: {e.strerror or e}") from None
    if parsed.problems:
        raise CommandError(_refused(path, list(parsed.problems)))

    async def work(runtime: Runtime) -> list[followups.EventOutcome]:
        await followups.load_rules(runtime)
        return await followups.ingest_events(runtime, parsed.events, actor="cli:events-import")

    try:
        outcomes = _run(args, work)
    except followups.EventsRefused as e:
        problems = [f"line {parsed.lines[p.index]}: {p.message}" for p in e.problems]
        raise CommandError(_refused(path, problems)) from None
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    planned = sum(1 for o in outcomes for f in o.followups if f.status == repo_events.PENDING)
    summary = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
    print(f"imported {len(outcomes)} events ({summary}); {planned} follow-ups pending")
    return 0


def _refused(path: Path, problems: list[str]) -> str:
    return f"{path}: nothing imported, fix these rows and import again:\n" + "\n".join(
        f"  {p}" for p in problems
    )


def cmd_show(args: argparse.Namespace) -> int:
    """`events show EVENT_ID`: an event and the status of each follow-up it triggered."""
    settings = common.settings(args)
    tz = settings.schedule.tz

    async def work(runtime: Runtime) -> followups.EventReport | None:
        return await followups.event_report(runtime, args.event_id)

    report = _run(args, work)
    if report is None:
        raise CommandError(f"no event with event_id {args.event_id!r}")
    print(f"event {report.event_id} ({report.type}) for external_ref {report.external_ref}")
    print(f"  occurred {_local(report.occurred_at, tz)} {tz.key}")
    if report.cancelled:
        print("  cancelled")
    if not report.followups:
        print(f"  no follow-ups: {report.note}" if report.note else "  no follow-ups")
    for f in report.followups:
        if f.status == repo_events.NOT_PLANNED:
            print(f"  {f.rule} -> {f.survey}: {f.reason}")
            continue
        line = f"  {f.rule} -> {f.survey}: {f.status}, due {_local(f.due_at, tz)}"
        if f.sent_at:
            line += f", sent {_local(f.sent_at, tz)}"
        if f.reason:
            line += f" ({f.reason})"
        print(line)
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    """`events rules list`: every follow-up rule, from the file and from the API."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        await followups.load_rules(runtime)
        async with runtime.db.transaction(read_only=True) as s:
            return [followups.rule_json(r) for r in await repo_events.list_rules(s)]

    rules = _run(args, work)
    if not rules:
        print("no follow-up rules")
    for rule in rules:
        state = "" if rule["enabled"] else " [disabled]"
        print(f"{rule['name']}{state} ({rule['source']})")
        print(f"  on {rule['event']}" + (f" if {rule['filter']}" if rule["filter"] else ""))
        window = f" within {rule['window']}" if rule["window"] else ""
        print(
            f"  send {rule['survey']} after {rule['delay']}{window}, expires after "
            f"{rule['expires_after']}"
        )
        channels = ", ".join(rule["channels"]) or "sms, telegram, webchat"
        print(f"  channels {channels}; at most one survey per {rule['fatigue_days']} days")
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    """`events rules check [PATHS]`: validate rules files against the surveys; 1 if any problem."""
    settings = common.settings(args)
    paths: list[Path] = args.paths or list(settings.followups.resolved_paths)
    placeholders = settings.organisation.placeholders()
    surveys = {s.id for s in load_paths(settings.surveys.resolved_paths, placeholders).surveys}
    result = followups.read_rules_files(paths, known_surveys=surveys, quiet=settings.schedule.quiet)
    for problem in result.problems:
        print(problem)
    if result.problems:
        return 1
    print(f"ok: {len(result.rules)} rules in {', '.join(str(p) for p in paths)}")
    return 0
