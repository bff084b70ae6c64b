"""The `brukardialog` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("brukardialog")
T = TypeVar("T")


class CommandError(Exception):
    """A problem the person running the command can fix; printed without a traceback."""


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or os.environ.get("BRUKARDIALOG_CONFIG")
    return load_settings(Path(path) if path else None, os.environ)


def cli_actor() -> str:
    """Who ran a command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def run_with_runtime(
    args: argparse.Namespace | Settings,
    work: Callable[[Runtime], Awaitable[T]],
    *,
    errors: tuple[type[Exception], ...] = (),
) -> T:
    """Run `work` on a runtime for the length of one command (the embedded SQLite database is
    migrated first). A database that cannot be reached, and any of `errors`, become a
    CommandError with their message."""
    from bot.runtime import open_runtime
    from storage.db import DatabaseUnavailable

    settings = args if isinstance(args, Settings) else _settings(args)

    async def main() -> T:
        migrate = settings.database.url.startswith("sqlite")
        # Commands only store work for the service; sending is the service's, so no channels.
        async with open_runtime(settings, migrate=migrate, channels={}) as runtime:
            return await work(runtime)

    caught: tuple[type[Exception], ...] = (DatabaseUnavailable, *errors)
    try:
        return asyncio.run(main())
    except caught as e:
        raise CommandError(str(e)) from None


def _setup_logging(verbose: bool = False) -> None:
    from bot.logging_setup import setup_logging

    setup_logging(verbose)


# -- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app
    from storage.migrate import current, head

    settings = _settings(args)
    _setup_logging(args.verbose)
    embedded = settings.database.url.startswith("sqlite")
    if not embedded:
        try:
            up_to_date = current(settings.database.url) == head()
        except Exception as e:
            raise CommandError(f"cannot reach the database: {_reason(e)}") from None
        if not up_to_date:
            raise CommandError(
                "the database schema is not up to date: run `brukardialog db upgrade` first"
            )
    app = create_app(settings, migrate=embedded)
    host, port = settings.server.host, settings.server.port
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    ready = f"Brukardialog is running. Web chat: http://{shown}:{port}/chat"
    try:
        # aiohttp calls `print` once the socket is bound, so the line never precedes a failure.
        web.run_app(
            app, host=host, port=port, print=lambda _: print(ready, flush=True), access_log=None
        )
    except OSError as e:
        raise CommandError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return 0


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# -- db ------------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.migrate import upgrade

    settings = _settings(args)
    try:
        upgrade(settings.database.url)
    except Exception as e:
        raise CommandError(f"database upgrade failed: {_reason(e)}") from None
    print("database is up to date")
    return 0


# -- flows ---------------------------------------------------------------------------------------


def cmd_flows_check(args: argparse.Namespace) -> int:
    from flows.loader import load_paths

    paths = [Path(p) for p in args.paths] if args.paths else _settings(args).surveys.resolved_paths
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}:0: no such file or folder")
    result = load_paths([p for p in paths if p.exists()])
    for problem in result.problems:
        print(problem)
    if missing or result.problems:
        return 1
    print(f"ok: {len(result.surveys)} surveys")
    return 0


def cmd_flows_try(args: argparse.Namespace) -> int:
    from flows.loader import load_paths

    settings = _settings(args)
    result = load_paths(settings.surveys.resolved_paths)
    survey = next((s for s in result.surveys if s.id == args.survey_id), None)
    if survey is None:
        known = ", ".join(s.id for s in result.surveys) or "none"
        raise CommandError(f"unknown survey '{args.survey_id}' (known: {known})")
    return try_survey(survey, args.lang, sys.stdin, sys.stdout)


def try_survey(
    survey: object,
    lang: str | None,
    stdin: TextIO,
    stdout: TextIO,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Chat with a survey in the terminal on the real engine; works in a pipe too."""
    from flows import engine
    from flows.conversation import Input
    from flows.model import Survey
    from flows.render import render_text

    assert isinstance(survey, Survey)
    interactive = stdin.isatty()

    def show(step_messages: Sequence[object]) -> None:
        for message in step_messages:
            stdout.write(render_text(message) + "\n\n")  # type: ignore[arg-type]
        stdout.flush()

    step = engine.start(survey, now=now(), lang=lang)
    show(step.messages)
    state = step.state
    while not state.status.finished:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")
        if not interactive:
            stdout.write(f"> {text}\n")
        step = engine.resume(survey, state, Input(text=text), now())
        show(step.messages)
        state = step.state
    stdout.write(f"[{state.status.value}]\n")
    return 0


# -- telegram ------------------------------------------------------------------------------------


def cmd_telegram_set_webhook(args: argparse.Namespace) -> int:
    from bot.channels.base import SendError
    from bot.channels.telegram import TelegramChannel, TelegramSettings

    settings = _settings(args)
    if not settings.telegram.enabled:
        raise CommandError("telegram.bot_token is not set")
    url = f"{settings.server.public_url}/webhooks/telegram"
    if not url.startswith("https://"):
        print(f"warning: Telegram only calls https URLs; {url} will be refused", file=sys.stderr)

    async def run() -> None:
        channel = TelegramChannel(
            TelegramSettings(
                bot_token=settings.telegram.bot_token,
                webhook_secret=settings.telegram.webhook_secret,
                api_base_url=settings.telegram.api_base_url,
            )
        )
        try:
            await channel.set_webhook(url)
        finally:
            await channel.close()

    try:
        asyncio.run(run())
    except SendError as e:
        raise CommandError(f"Telegram refused the webhook: {e.reason}") from None
    print(f"webhook set: {url}")
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brukardialog",
        description="Conversational surveys and feedback over SMS, Telegram and web chat.",
    )
    parser.add_argument("--config", help="TOML config file (or set BRUKARDIALOG_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (web chat, webhooks, sending, timers)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="migrate the database to the latest schema").set_defaults(
        func=cmd_db_upgrade
    )

    flows = sub.add_parser("flows", help="survey files").add_subparsers(dest="flows", required=True)
    check = flows.add_parser("check", help="validate survey files")
    check.add_argument("paths", nargs="*", help="files or folders (default: surveys.paths)")
    check.set_defaults(func=cmd_flows_check)
    try_ = flows.add_parser("try", help="take a survey in the terminal")
    try_.add_argument("survey_id")
    try_.add_argument("--lang", help="language code, e.g. sv, en, ar")
    try_.set_defaults(func=cmd_flows_try)

    telegram = sub.add_parser("telegram", help="Telegram bot").add_subparsers(
        dest="telegram", required=True
    )
    telegram.add_parser(
        "set-webhook", help="register server.public_url/webhooks/telegram with Telegram"
    ).set_defaults(func=cmd_telegram_set_webhook)

    from bot import features

    features.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Options given after the subcommand land in the namespace too; keep the global ones.
    args.config = getattr(args, "config", None)
    args.verbose = getattr(args, "verbose", False)
    try:
        code: int = args.func(args)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    except CommandError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
