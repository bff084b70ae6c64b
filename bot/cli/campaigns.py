"""`brukardialog contacts import` and `brukardialog campaigns ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bot import campaigns
from bot.campaigns import (
    CampaignInvalid,
    CampaignNotFound,
    CampaignRequest,
    CampaignStateError,
    EmptyAudience,
)
from bot.cli import common
from bot.cli.common import CommandError, cli_actor, run_with_runtime, warn_public_url
from bot.contacts import links as contact_links
from bot.contacts.csvfile import columns_text
from bot.contacts.importer import ImportRefused, ImportReport, import_validated, validate_csv
from bot.results import feedback
from bot.runtime import Runtime
from flows.expr import ExprError
from storage.models import Campaign

T = TypeVar("T")


def _run(args: argparse.Namespace, work: Callable[[Runtime], Awaitable[T]]) -> T:
    return run_with_runtime(args, work)


def _progress(stream: TextIO) -> Callable[[int, int], None] | None:
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\rimporting {done}/{total}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


# -- contacts ------------------------------------------------------------------------------------


def cmd_contacts_import(args: argparse.Namespace) -> int:
    """`contacts import FILE`: check a contacts CSV and import it whole, or report its problems."""
    path = Path(args.file)
    tz = common.settings(args).schedule.tz
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            validated = validate_csv(handle, today=datetime.now(tz).date())
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None

    async def work(runtime: Runtime) -> ImportReport:
        return await import_validated(
            runtime.db,
            runtime.service.pseudonymizer,
            validated,
            skip_invalid=args.skip_invalid,
            actor=cli_actor(),
            source=path.name,
            progress=_progress(sys.stderr),
        )

    try:
        report = _run(args, work)
    except ImportRefused as e:
        if e.whole_file:
            reasons = "; ".join(str(error) for error in e.errors if error.whole_file)
            raise CommandError(f"{path}: {reasons}; nothing was imported") from None
        for error in e.errors:
            print(error, file=sys.stderr)
        raise CommandError(
            f"{len(e.errors)} invalid rows in {path}; nothing was imported "
            "(fix them, or use --skip-invalid to import the valid rows)"
        ) from None
    for error in report.skipped:
        print(f"skipped {error}", file=sys.stderr)
    print(
        f"imported {report.imported} contacts ({report.inserted} new, {report.updated} "
        f"updated), skipped {len(report.skipped)} invalid rows"
    )
    return 0


def cmd_contacts_links(args: argparse.Namespace) -> int:
    """`contacts links AUDIENCE`: write each matching contact's personal web chat link as CSV."""
    warn_public_url(common.settings(args))

    async def work(runtime: Runtime) -> contact_links.LinkList:
        try:
            return await contact_links.audience_links(runtime, args.audience, actor=cli_actor())
        except ExprError as e:
            raise CommandError(f"audience: {e}") from None

    result = _run(args, work)
    if args.out == "-":
        contact_links.write_csv(result.links, sys.stdout)
    else:
        try:
            contact_links.write_csv_file(result.links, Path(args.out))
        except OSError as e:
            raise CommandError(f"cannot write {args.out}: {e.strerror or e}") from None
    telegram = any(link.telegram_link for link in result.links)
    print(
        f"wrote {len(result.links)} personal links"
        + ("" if args.out == "-" else f" to {args.out}")
        + ("" if telegram or not result.links else " (no Telegram links: the bot is not known)"),
        file=sys.stderr,
    )
    if result.without_ref:
        print(f"left out {result.without_ref} people without an external_ref", file=sys.stderr)
    if result.without_token:
        print(
            f"left out {result.without_token} people without a personal web chat token",
            file=sys.stderr,
        )
    return 0


# -- campaigns -----------------------------------------------------------------------------------


def _campaign_errors(func: Callable[[Runtime], Awaitable[T]]) -> Callable[[Runtime], Awaitable[T]]:
    async def wrapped(runtime: Runtime) -> T:
        try:
            return await func(runtime)
        except EmptyAudience as e:
            raise CommandError(f"warning: {e}") from None
        except CampaignInvalid as e:
            raise CommandError(
                "\n  ".join(("the campaign was not created:", *e.problems))
            ) from None
        except CampaignNotFound as e:
            raise CommandError(f"no campaign with id {e.args[0]}") from None
        except CampaignStateError as e:
            raise CommandError(str(e)) from None

    return wrapped


def cmd_campaigns_create(args: argparse.Namespace) -> int:
    """`campaigns create`: create a campaign from the options and print its id."""
    tz = common.settings(args).schedule.tz
    request = CampaignRequest(
        survey_id=args.survey,
        audience=args.audience,
        ends=campaigns.resolve_ends(args.ends, args.starts, tz, datetime.now(UTC)),
        name=args.name,
        starts=args.starts,
        reminders=args.reminders or "",
        channels=args.channels or "",
        participation=args.participation,
        feedback_delay=args.feedback_delay,
        feedback_to=args.feedback_to,
    )

    @_campaign_errors
    async def work(runtime: Runtime) -> campaigns.CreatedCampaign:
        return await campaigns.create_campaign_with_warnings(runtime, request, actor=cli_actor())

    created = _run(args, work)
    for warning in created.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(created.campaign.id)
    return 0


def _format(data: dict[str, Any]) -> str:
    lines = []
    for key, value in data.items():
        if key == "counts":
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        lines.append(f"{key:15} {value if value is not None else '-'}")
    counts = data.get("counts")
    if counts:
        for key, value in counts.items():
            if key == "response_rate":
                value = f"{value:.1%}" if value is not None else "-"
            lines.append(f"{key:15} {value}")
    return "\n".join(lines)


def cmd_campaigns_list(args: argparse.Namespace) -> int:
    """`campaigns list`: one line per campaign with its id, status, survey and end."""

    async def work(runtime: Runtime) -> list[Any]:
        return await campaigns.list_campaigns(runtime)

    rows = _run(args, work)
    if not rows:
        print("no campaigns")
    for c in rows:
        print(f"{c.id:>5}  {c.status:9}  {c.survey_id:28}  {c.ends_at:%Y-%m-%d %H:%M}  {c.name}")
    return 0


def _held_line(held: campaigns.QuietHold, runtime: Runtime) -> str:
    schedule = runtime.settings.schedule
    until = held.until.astimezone(schedule.tz)
    what = [f"{held.messages} messages queued"]
    if held.next_round is not None:
        what.append("invitations not yet sent")
    return (
        f"{'held until':15} {until:%Y-%m-%d %H:%M} {schedule.timezone} by quiet hours "
        f"{schedule.quiet_hours or '(none now)'}: {' and '.join(what)}"
    )


def cmd_campaigns_show(args: argparse.Namespace) -> int:
    """`campaigns show ID`: a campaign's settings, counts, held sends and feedback timing."""

    @_campaign_errors
    async def work(runtime: Runtime) -> str:

        view = await campaigns.show_campaign(runtime, args.id)
        data = campaigns.campaign_json(view.campaign, view.counts)
        data.pop("held_by_quiet_hours", None)
        shown = _format(data)
        if view.held is not None:
            shown += "\n" + _held_line(view.held, runtime)
        timing = await feedback.feedback_timing(runtime, view.campaign)
        return shown + f"\n{'feedback':15} {timing.describe(runtime.settings.schedule.tz)}"

    print(_run(args, work))
    return 0


def _action(name: str) -> Callable[[argparse.Namespace], int]:
    actions: dict[str, Callable[..., Awaitable[Campaign]]] = {
        "pause": campaigns.pause_campaign,
        "resume": campaigns.resume_campaign,
        "close": campaigns.close_campaign,
    }

    def cmd(args: argparse.Namespace) -> int:
        @_campaign_errors
        async def work(runtime: Runtime) -> str:
            campaign = await actions[name](runtime, args.id, actor=cli_actor())
            return str(campaign.status)

        print(f"campaign {args.id}: {_run(args, work)}")
        return 0

    return cmd


def add_commands(sub: Any) -> None:
    """Add `contacts` and `campaigns` to the top-level subcommands."""
    contacts = sub.add_parser("contacts", help="contact lists").add_subparsers(
        dest="contacts", required=True
    )
    imp = contacts.add_parser(
        "import",
        help="import or update contacts from a CSV file",
        description="Import or update contacts from a CSV file.",
        epilog="columns:\n" + columns_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", help="CSV with a header row (columns below)")
    imp.add_argument(
        "--skip-invalid", action="store_true", help="import the valid rows, list the rest"
    )
    imp.set_defaults(func=cmd_contacts_import)
    links = contacts.add_parser(
        "links",
        help="each person's personal web chat (and Telegram) link, as CSV",
        description=(
            "Write external_ref, language, webchat_link and telegram_link for everyone in an "
            "audience (everyone by default; opted-out people are left out). A link lets whoever "
            "holds it answer as that person: the file is readable by you only."
        ),
    )
    links.add_argument("--audience", help="expression, e.g. \"unit == 'Norr'\" (default: all)")
    links.add_argument("--out", required=True, help="CSV file to write, or - for standard output")
    links.set_defaults(func=cmd_contacts_links)

    camp = sub.add_parser("campaigns", help="survey campaigns").add_subparsers(
        dest="campaigns", required=True
    )
    create = camp.add_parser("create", help="send a survey to an audience; prints the new id")
    create.add_argument("--survey", required=True, help="survey id")
    create.add_argument(
        "--audience", required=True, help="expression, e.g. \"target_group == 'missbruk'\""
    )
    create.add_argument("--name")
    create.add_argument("--starts", help="ISO date/time (local time unless an offset is given)")
    create.add_argument(
        "--ends",
        required=True,
        help="a duration after the start (30d), or an ISO date/time (a date means its end)",
    )
    create.add_argument("--reminders", help="offsets after the start, e.g. 2d,5d")
    create.add_argument("--channels", help="in order of preference, e.g. sms,telegram,webchat")
    create.add_argument("--participation", help="participation rung (default: the survey's)")
    create.add_argument("--feedback-delay", help="after closing, e.g. 3d")
    create.add_argument(
        "--feedback-to", default="respondents", choices=("respondents", "invited", "none")
    )
    create.set_defaults(func=cmd_campaigns_create)
    camp.add_parser("list", help="all campaigns").set_defaults(func=cmd_campaigns_list)
    for name, helptext, func in (
        ("show", "a campaign with live counts", cmd_campaigns_show),
        ("pause", "hold a campaign's sending", _action("pause")),
        ("resume", "continue a paused campaign", _action("resume")),
        ("close", "close a campaign now", _action("close")),
    ):
        parser = camp.add_parser(name, help=helptext)
        parser.add_argument("id", type=int)
        parser.set_defaults(func=func)
