"""`brukardialog users ...`: staff accounts for the web app at /staff."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from bot.cli.common import CommandError, cli_actor, run_with_runtime
from bot.runtime import Runtime
from bot.web.staff import accounts
from bot.web.staff.accounts import AccountError
from bot.web.staff.framework import ROLES


def _read_password(args: argparse.Namespace) -> str:
    """The new password: one line of standard input with --password-stdin, else asked twice."""
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password again: ")
        except EOFError:
            raise CommandError(
                "no terminal to ask for the password; give it with --password-stdin"
            ) from None
        if password != again:
            raise CommandError("the passwords differ; nothing was changed")
    try:
        return accounts.check_password(password)
    except AccountError as e:
        raise CommandError(str(e)) from None


def _run(args: argparse.Namespace, work: Any) -> Any:
    return run_with_runtime(args, work, errors=(AccountError,))


def cmd_users_add(args: argparse.Namespace) -> int:
    """`users add NAME --role ROLE`: add a staff account with a password asked for (or stdin)."""
    try:
        name = accounts.check_name(args.name)
    except AccountError as e:
        raise CommandError(str(e)) from None
    password = _read_password(args)

    async def work(runtime: Runtime) -> str:
        await accounts.add_user(runtime, name, args.role, password, actor=cli_actor())
        return runtime.settings.server.public_url

    public_url = _run(args, work)
    print(f"added {name} ({args.role}); sign in at {public_url}/staff/login")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    """`users list`: every staff account with its role and state."""

    async def work(runtime: Runtime) -> list[str]:
        now = runtime.clock.now()
        return [
            f"{u.name:30} {u.role:8} {accounts.account_state(u, now)}"
            for u in await accounts.list_users(runtime)
        ]

    lines = _run(args, work)
    if not lines:
        print("no users; add one with `brukardialog users add NAME --role admin`")
    for line in lines:
        print(line)
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    """`users disable NAME`: disable an account and end its sessions."""

    async def work(runtime: Runtime) -> int:
        return await accounts.disable_user(runtime, args.name, actor=cli_actor())

    ended = _run(args, work)
    print(f"disabled {args.name}; ended {ended} sessions")
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    """`users reset-password NAME`: set a new password and end the account's sessions."""
    password = _read_password(args)

    async def work(runtime: Runtime) -> None:
        await accounts.reset_password(runtime, args.name, password, actor=cli_actor())

    _run(args, work)
    print(f"new password set for {args.name}; their sessions ended")
    return 0


def add_commands(sub: Any) -> None:
    """Add `users` to the top-level subcommands."""
    users = sub.add_parser("users", help="staff accounts for the web app at /staff").add_subparsers(
        dest="users", required=True
    )
    add = users.add_parser("add", help="add a staff account (asks for the password twice)")
    add.add_argument("name")
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="viewer reads; analyst also runs campaigns and contacts; admin also manages users",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=cmd_users_add)
    users.add_parser("list", help="every staff account, its role and state").set_defaults(
        func=cmd_users_list
    )
    disable = users.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_users_disable)
    reset = users.add_parser(
        "reset-password", help="set a new password (lifts a lockout, ends sessions)"
    )
    reset.add_argument("name")
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset.set_defaults(func=cmd_users_reset_password)
