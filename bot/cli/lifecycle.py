"""`brukardialog retention report|run`, `contacts show|erase` and `db backup`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.cli import common
from bot.cli.common import CommandError, cli_actor, run_with_runtime, sqlite_file
from bot.lifecycle import backup, person, retention
from bot.runtime import Runtime


def _group(sub: Any, name: str, helptext: str) -> Any:
    """The sub-commands of top-level command `name`, made if no other module made it."""
    parser = sub.choices.get(name)
    if parser is None:
        return sub.add_parser(name, help=helptext).add_subparsers(
            dest=name, required=True, metavar="COMMAND"
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError(f"`{name}` has no sub-commands to add to")


def add_commands(sub: Any) -> None:
    """Add `retention`, `contacts show|erase` and `db backup` to the top-level subcommands."""
    ret = _group(sub, "retention", "delete personal data past its period ([retention])")
    ret.add_parser(
        "report", help="what a retention run would blank or delete now, per kind (changes nothing)"
    ).set_defaults(func=cmd_retention_report)
    ret.add_parser(
        "run", help="blank and delete what is past its period now (the service does it daily)"
    ).set_defaults(func=cmd_retention_run)

    contacts = _group(sub, "contacts", "contact lists")
    show = contacts.add_parser(
        "show",
        help="what is held about one person; --export writes all of it as JSON",
        description=(
            "Show how much is held about the person with this external_ref. With --export, "
            "write everything held about them to a JSON file (readable by you only), for a "
            "subject access request. Answers to anonymous surveys cannot be linked to anyone, "
            "by design, and are not in it (the file says so)."
        ),
    )
    show.add_argument("ref", help="the person's external_ref")
    show.add_argument(
        "--export", metavar="FILE", help="JSON file to write, or - for standard output"
    )
    show.set_defaults(func=cmd_contacts_show)
    erase = contacts.add_parser(
        "erase",
        help="erase everything held about one person (released anonymous answers stay)",
        description=(
            "Erase the person with this external_ref: contact, addresses, conversations, "
            "messages, invitations, follow-ups, case events and answers to surveys that are not "
            "anonymous. Released anonymous answers cannot be linked to anyone and stay. Asks "
            "first, unless --yes."
        ),
    )
    erase.add_argument("ref", help="the person's external_ref")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(func=cmd_contacts_erase)

    db = _group(sub, "db", "database schema")
    save = db.add_parser(
        "backup",
        help="a consistent copy of the SQLite database, also while the service runs",
        description=(
            "Copy the SQLite database to PATH with SQLite's online backup API: one consistent "
            "snapshot, taken while the service keeps serving. Back up the key files "
            "(privacy.address_key_file, privacy.pseudonym_key_file) separately: without the "
            "address key the copy's phone numbers and chat ids cannot be read. For PostgreSQL "
            "use pg_dump (see README, Backups)."
        ),
    )
    save.add_argument("path", type=Path, help="the file to write")
    save.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    save.set_defaults(func=cmd_db_backup)


# -- retention ------------------------------------------------------------------------------------


def _report_lines(reports: list[retention.KindReport], *, done: bool) -> list[str]:
    lines = []
    for r in reports:
        key = f"retention.{retention.PERIODS[r.kind]}"
        if r.cutoff is None:
            lines.append(f"{r.kind:18} kept for good ({key} = 0)")
            continue
        what = (
            retention.WHAT[r.kind]
            if done
            else retention.WHAT[r.kind]
            .replace("deleted", "to delete")
            .replace("blanked", "to blank")
            .replace("erased", "to erase")
        )
        lines.append(
            f"{r.kind:18} {r.rows:>8} {what}; older than {r.days} days "
            f"(before {r.cutoff.date().isoformat()}, {key})"
        )
    return lines


def cmd_retention_report(args: argparse.Namespace) -> int:
    """`retention report`: what a retention run would remove now, changing nothing."""
    reports = run_with_runtime(args, retention.retention_report)
    print("what a retention run would do now (nothing was changed):")
    for line in _report_lines(reports, done=False):
        print(f"  {line}")
    return 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    """`retention run`: remove what is past its retention period and print what was done."""
    actor = cli_actor()

    async def work(runtime: Runtime) -> list[retention.KindReport]:
        return await retention.run_retention(runtime, actor=actor)

    reports = run_with_runtime(args, work)
    print("retention run done:")
    for line in _report_lines(reports, done=True):
        print(f"  {line}")
    return 0


# -- a person -------------------------------------------------------------------------------------


def _write_private(path: str, text: str) -> None:
    """Write a file readable by its owner only (it holds phone numbers and messages)."""
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e}") from None


def cmd_contacts_show(args: argparse.Namespace) -> int:
    """`contacts show REF`: what is held about a person, or all of it as JSON with --export."""
    ref: str = args.ref
    actor = cli_actor()

    async def work(runtime: Runtime) -> dict[str, Any]:
        if args.export:
            return await person.export_person(runtime, ref, actor=actor)
        return {"summary": await person.person_summary(runtime, ref)}

    result = run_with_runtime(args, work, errors=(person.PersonNotFound,))
    if args.export:
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
        if args.export == "-":
            sys.stdout.write(text)
            return 0
        _write_private(args.export, text)
        counts = person.summary(result)
        print(f"wrote everything held about {ref} to {args.export} (readable by you only):")
    else:
        counts = result["summary"]
        print(f"held about {ref} (--export FILE writes all of it):")
    for kind, n in counts.items():
        print(f"  {kind:15} {n}")
    print("  answers to anonymous surveys cannot be linked to anyone and are not included")
    return 0


def cmd_contacts_erase(args: argparse.Namespace) -> int:
    """`contacts erase REF`: erase all held about a person, after a typed confirmation or --yes."""
    ref: str = args.ref
    actor = cli_actor()
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("erasing asks for confirmation: run it in a terminal, or add --yes")
        counts = run_with_runtime(
            args,
            lambda runtime: person.person_summary(runtime, ref),
            errors=(person.PersonNotFound,),
        )
        held = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        print(f"held about {ref}: the contact{', ' + held if held else ''}")
        answer = input(f"erase all of it for good? type the external_ref ({ref}) to confirm: ")
        if answer.strip() != ref:
            print("nothing erased")
            return 1

    async def work(runtime: Runtime) -> person.Erasure:
        return await person.erase_person(runtime, ref, actor=actor)

    erasure = run_with_runtime(args, work, errors=(person.PersonNotFound,))
    removed = ", ".join(f"{n} {kind}" for kind, n in erasure.counts.items() if n)
    print(f"erased {ref}: {removed}")
    print(f"the audit log names it {erasure.target}; released anonymous answers are kept")
    return 0


# -- backup ---------------------------------------------------------------------------------------


def cmd_db_backup(args: argparse.Namespace) -> int:
    """`db backup PATH`: a consistent copy of the SQLite database; refused for PostgreSQL."""
    settings = common.settings(args)
    url = settings.database.url
    database = sqlite_file(url)
    if database is None:
        if url.startswith("sqlite"):
            raise CommandError("database.url is an in-memory SQLite database: nothing to back up")
        raise CommandError(
            "database.url is PostgreSQL: back it up with PostgreSQL's own tool (see README, "
            f"Backups), e.g.\n  {backup.pg_dump_command(url, args.path)}"
        )
    try:
        result = backup.backup_sqlite(database, args.path, overwrite=args.overwrite)
    except backup.BackupError as e:
        raise CommandError(str(e)) from None
    privacy = settings.privacy
    print(f"backed up {database} to {result.path} ({result.bytes} bytes, {result.tables} tables)")
    keys = []
    if not privacy.address_key:
        keys.append(str(privacy.address_key_file.resolve()))
    if not privacy.pseudonym_key:
        keys.append(str(privacy.pseudonym_key_file.resolve()))
    if keys:
        print(f"back up the key files too, kept apart from the copy: {', '.join(keys)}")
    else:
        print("keep privacy.address_key and privacy.pseudonym_key too, apart from the copy")
    return 0
