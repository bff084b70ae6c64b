"""The `brukardialog` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

from aiohttp import web

from bot.app import create_app
from bot.channels.base import SendError
from bot.channels.telegram import TelegramChannel, TelegramSettings
from bot.cli import campaigns, common, events, lifecycle, results, users
from bot.cli.common import CommandError, config_source, public_url_warning, reason, sqlite_file
from bot.config import SHIPPED_SURVEYS, ConfigError, Settings
from bot.logging_setup import setup_logging
from bot.ops.logformat import use_format
from bot.ops.metrics import ListenError
from bot.privacy import Pseudonymizer, load_or_create_key
from bot.runtime import sealer_for
from bot.survey_files import load_paths
from flows import engine
from flows.conversation import Input
from flows.model import Survey
from flows.render import render_text
from storage.migrate import current, head, upgrade

log = logging.getLogger("brukardialog")
T = TypeVar("T")


# -- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """`serve`: run the web server, the dispatcher and the due-task poller until stopped."""
    settings = common.settings(args)
    setup_logging(args.verbose)
    use_format(getattr(args, "log_format", None) or settings.logging.format)
    warning = public_url_warning(settings)
    if warning:
        log.warning(warning)
    if not settings.organisation.configured:
        log.warning(
            "organisation.name or organisation.results_url is not set: surveys name the "
            "example %r and %r",
            settings.organisation.name,
            settings.organisation.results_url,
        )
    embedded = settings.database.url.startswith("sqlite")
    if not embedded:
        try:
            up_to_date = current(settings.database.url) == head()
        except Exception as e:
            raise CommandError(f"cannot reach the database: {reason(e)}") from None
        if not up_to_date:
            raise CommandError(
                "the database schema is not up to date: run `brukardialog db upgrade` first"
            )
    app = create_app(settings, migrate=embedded)
    app.on_startup.append(_freeze_startup_objects)
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
    except ListenError as e:
        raise CommandError(str(e)) from None
    return 0


async def _freeze_startup_objects(app: web.Application) -> None:
    """Once the service has started (after the runtime: registered first), keep what startup
    made out of the garbage collector's full passes: the surveys, SQLAlchemy's metadata and the
    libraries stay for the life of the process, and walking them made every full collection
    stop the event loop for about 50 ms under load (`gc.freeze`)."""
    gc.collect()
    gc.freeze()


# -- db ------------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """`db upgrade`: migrate the database to head; a new one gets its pseudonym key made."""
    settings = common.settings(args)
    url = settings.database.url
    privacy = settings.privacy
    try:
        database = sqlite_file(url)
        revision = None if database is not None and not database.exists() else current(url)
        new = revision is None
        key_file = privacy.pseudonym_key_file
        has_pseudonym_key = bool(privacy.pseudonym_key) or key_file.exists()
        address_file = privacy.address_key_file
        if (
            not new
            and revision is not None
            and revision >= "0004"
            and not privacy.address_key
            and not address_file.exists()
        ):
            raise CommandError(
                f"no address key file at {address_file.resolve()}, but the database already "
                "holds sealed addresses: restore its key file (a new key could not open them)"
            )
        keyer = None
        if has_pseudonym_key or new:
            key = (
                privacy.pseudonym_key.encode("utf-8")
                if privacy.pseudonym_key
                else load_or_create_key(key_file)
            )
            keyer = Pseudonymizer(key).address_key
        upgrade(url, sealer=sealer_for(settings), keyer=keyer)
    except CommandError:
        raise
    except Exception as e:
        raise CommandError(f"database upgrade failed: {reason(e)}") from None
    print("database is up to date")
    if not privacy.pseudonym_key and not has_pseudonym_key:
        if new:
            print(f"created the pseudonym key file {key_file} (keep it, and back it up)")
        else:
            print(
                f"warning: no pseudonym key file at {key_file.resolve()}, but the database "
                "already existed: restore its key file (a new key would not match the stored "
                "contacts)",
                file=sys.stderr,
            )
    return 0


# -- status --------------------------------------------------------------------------------------


def _schema(settings: Settings, database: Path | None) -> str:

    newest = head()
    if database is not None and not database.exists():
        return f"none yet (`brukardialog db upgrade` creates the database at {newest})"
    try:
        revision = current(settings.database.url)
    except Exception as e:
        return f"unknown: cannot read the database: {reason(e)}"
    if revision is None:
        return f"none: an empty database (run `brukardialog db upgrade` to reach {newest})"
    if revision != newest:
        return f"{revision}, behind this code's {newest}: run `brukardialog db upgrade`"
    return f"{revision} (up to date)"


def _surveys_line(settings: Settings) -> list[str]:

    paths = settings.surveys.resolved_paths
    lines = [f"{p.resolve()}{' (shipped)' if p == SHIPPED_SURVEYS else ''}" for p in paths]
    result = load_paths(paths, placeholders=settings.organisation.placeholders())
    ids = ", ".join(s.id for s in result.surveys) or "none"
    loaded = f"{len(result.surveys)} loaded: {ids}"
    if result.problems:
        loaded += f"; {len(result.problems)} problems (see `brukardialog flows check`)"
    return [*lines, loaded]


def _channel_lines(settings: Settings) -> list[str]:
    tw, tg = settings.twilio, settings.telegram
    if tw.enabled:
        sender = tw.from_number or f"messaging service {tw.messaging_service_sid}"
        sms = f"sms: on, from {sender}"
    else:
        sms = "sms: off (twilio.account_sid is not set)"
    telegram = "telegram: on" if tg.enabled else "telegram: off (telegram.bot_token is not set)"
    return [sms, telegram, "webchat: on"]


def _organisation_line(settings: Settings) -> str:
    org = settings.organisation
    line = f"{org.name}, results at {org.results_url}"
    if not org.configured:
        line += " (the example: set organisation.name and organisation.results_url)"
    return line


def status_lines(args: argparse.Namespace, settings: Settings) -> list[tuple[str, str]]:
    """What a command run with these arguments would use; nothing is created or changed."""
    database = sqlite_file(settings.database.url)
    shown_url = str(settings.redacted()["database"]["url"])
    if database is not None:
        exists = "" if database.exists() else ", does not exist"
        shown_url += f" ({database.resolve()}{exists})"
    privacy = settings.privacy
    if privacy.pseudonym_key:
        key = "privacy.pseudonym_key (from the config or environment)"
    else:
        missing = "" if privacy.pseudonym_key_file.exists() else " (does not exist)"
        key = f"{privacy.pseudonym_key_file.resolve()}{missing}"
    public = settings.server.public_url
    if not settings.server.public_url_set:
        public += " (server.public_url is not set: links point at this machine)"
    quiet = settings.schedule.quiet_hours or "none"
    rows = [
        ("config", config_source(args)),
        ("database", shown_url),
        ("schema", _schema(settings, database)),
        ("pseudonym key", key),
        *(("surveys", line) for line in _surveys_line(settings)),
        *(("channels", line) for line in _channel_lines(settings)),
        ("organisation", _organisation_line(settings)),
        ("public url", public),
        ("schedule", f"{settings.schedule.timezone}, quiet hours {quiet}"),
    ]
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: the configuration and database state in labelled lines."""
    settings = common.settings(args)
    previous = ""
    for label, value in status_lines(args, settings):
        print(f"{label if label != previous else '':14} {value}")
        previous = label
    return 0


# -- flows ---------------------------------------------------------------------------------------


def cmd_flows_check(args: argparse.Namespace) -> int:
    """`flows check`: load survey files, print each problem as `path:line: message`; 1 if any."""
    settings = common.settings(args)
    paths = [Path(p) for p in args.paths] if args.paths else settings.surveys.resolved_paths
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}:0: no such file or folder")
    # Filled as the service fills them, so SMS lengths are checked with the real values.
    placeholders = settings.organisation.placeholders()
    result = load_paths([p for p in paths if p.exists()], placeholders=placeholders)
    for problem in result.problems:
        print(problem)
    if missing or result.problems:
        return 1
    print(f"ok: {len(result.surveys)} surveys")
    return 0


def cmd_flows_try(args: argparse.Namespace) -> int:
    """`flows try SURVEY`: take a survey in the terminal on the real engine (see `try_survey`)."""
    settings = common.settings(args)
    result = load_paths(
        settings.surveys.resolved_paths, placeholders=settings.organisation.placeholders()
    )
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
    """`telegram set-webhook`: point the bot's webhook at this service's public URL."""
    settings = common.settings(args)
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
    """The `brukardialog` argument parser: core commands, then each capability's command group."""
    parser = argparse.ArgumentParser(
        prog="brukardialog",
        description="Conversational surveys and feedback over SMS, Telegram and web chat.",
    )
    parser.add_argument("--config", help="TOML config file (or set BRUKARDIALOG_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service (web chat, webhooks, sending, timers)")
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text for people, json (one object a line) for log shippers (default: logging.format)",
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser(
        "status",
        help="which config, database, key, surveys and channels commands use; the schema",
    ).set_defaults(func=cmd_status)

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

    # lifecycle adds to the contacts and db groups made above and by campaigns: it goes last.
    for commands in (campaigns, events, results, users, lifecycle):
        commands.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `brukardialog` command; the exit status is 2 for a bad config, 1 for an error."""
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
