"""What every `brukardialog` command shares: settings, errors people can fix, a runtime for the
length of one command, who ran it."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url

from bot.config import Settings, load_settings
from bot.features import open_runtime
from bot.runtime import Runtime
from storage.db import DatabaseUnavailable

T = TypeVar("T")


class CommandError(Exception):
    """A problem the person running the command can fix; printed without a traceback."""


def settings(args: argparse.Namespace) -> Settings:
    """The settings a command runs with: --config, BRUKARDIALOG_CONFIG, then the environment."""
    path = args.config or os.environ.get("BRUKARDIALOG_CONFIG")
    return load_settings(Path(path) if path else None, os.environ)


def config_source(args: argparse.Namespace) -> str:
    """Where the settings came from, in words."""
    if getattr(args, "config", None):
        return f"{Path(args.config).resolve()} (--config)"
    from_env = os.environ.get("BRUKARDIALOG_CONFIG", "").strip()
    if from_env:
        return f"{Path(from_env).resolve()} (BRUKARDIALOG_CONFIG)"
    return "none: the defaults and any BRUKARDIALOG__* variables (give one with --config)"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL (None for PostgreSQL and in-memory SQLite)."""
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def _require_existing(settings: Settings, source: str | None) -> None:
    """Refuse to run a command on a database or pseudonym key that does not exist yet: either
    would be made new and empty, silently, and a new key never matches stored contacts."""
    missing: list[str] = []
    database = sqlite_file(settings.database.url)
    if database is not None and not database.exists():
        missing.append(f"no database at {database.resolve()}")
    privacy = settings.privacy
    if not privacy.pseudonym_key and not privacy.pseudonym_key_file.exists():
        missing.append(f"no pseudonym key file at {privacy.pseudonym_key_file.resolve()}")
    if not privacy.address_key and not privacy.address_key_file.exists():
        missing.append(f"no address key file at {privacy.address_key_file.resolve()}")
    if not missing:
        return
    where = f"; config: {source}" if source else ""
    if database is not None and database.exists():
        advice = (
            "the database exists, so its keys were lost or are elsewhere: restore the key files "
            "or set privacy.pseudonym_key and privacy.address_key; new keys would not match "
            "the stored contacts"
        )
    else:
        advice = (
            "run the command in the service's folder or with its --config; "
            "`brukardialog db upgrade` creates a new database (and its keys)"
        )
    raise CommandError(f"{' and '.join(missing)}{where}\n  {advice}")


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
    migrated first). A database or pseudonym key that does not exist yet is refused (only
    `serve` and `db upgrade` create them); a database that cannot be reached, and any of
    `errors`, become a CommandError with their message."""
    config = args if isinstance(args, Settings) else settings(args)
    _require_existing(config, None if isinstance(args, Settings) else config_source(args))

    async def main() -> T:
        migrate = config.database.url.startswith("sqlite")
        # Commands only store work for the service; sending is the service's, so no channels.
        async with open_runtime(config, migrate=migrate, channels={}) as runtime:
            return await work(runtime)

    caught: tuple[type[Exception], ...] = (DatabaseUnavailable, *errors)
    try:
        return asyncio.run(main())
    except caught as e:
        raise CommandError(str(e)) from None


def public_url_warning(settings: Settings) -> str | None:
    """A warning when server.public_url is not set: links in messages would point here."""
    if settings.server.public_url_set:
        return None
    return (
        f"server.public_url is not set: links in messages (web chat, results page) point at "
        f"{settings.server.public_url}, which only this machine can open; set it to the "
        "address people reach the service at"
    )


def warn_public_url(settings: Settings) -> None:
    """Print the public_url warning, if any, to standard error."""
    warning = public_url_warning(settings)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def reason(e: BaseException) -> str:
    """The first line of an error, for a one-line message."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
