"""Schema migrations, run from code: `upgrade(url)` brings a database to the newest revision.

Alembic is configured programmatically (no alembic.ini), with the scripts found next to this
module, so it works the same from a checkout and from an installed package."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from storage.db import make_engine
from storage.sealing import Sealer

Keyer = Callable[[str, str], str]
"""(channel, address) -> the address's keyed HMAC (bot.privacy.Pseudonymizer.address_key)."""


def alembic_config(url: str, *, sealer: Sealer | None = None, keyer: Keyer | None = None) -> Config:
    """An Alembic Config for `url`, e.g. for `alembic.command` calls beyond upgrade.

    `sealer` and `keyer` are for migrations that seal addresses stored in clear (0004)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(files("storage").joinpath("migrations")))
    # Kept out of the ini options: configparser would treat a "%" in a password as interpolation.
    cfg.attributes["database_url"] = url
    cfg.attributes["address_sealer"] = sealer
    cfg.attributes["address_keyer"] = keyer
    return cfg


def upgrade(
    url: str,
    revision: str = "head",
    *,
    sealer: Sealer | None = None,
    keyer: Keyer | None = None,
) -> None:
    """Migrate the database at `url` to `revision`. Not for use inside a running event loop."""
    command.upgrade(alembic_config(url, sealer=sealer, keyer=keyer), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision` ("base" empties it)."""
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(
    url: str,
    revision: str = "head",
    *,
    sealer: Sealer | None = None,
    keyer: Keyer | None = None,
) -> None:
    """`upgrade` from async code: it runs in a worker thread with its own event loop."""
    await asyncio.to_thread(upgrade, url, revision, sealer=sealer, keyer=keyer)


def head() -> str:
    """The newest revision the code ships."""
    heads = ScriptDirectory.from_config(alembic_config("")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_async(url: str) -> str | None:
    """The revision the database at `url` is at; None for an empty database."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            revision: Any = await conn.run_sync(_current_revision)
    finally:
        await engine.dispose()
    return None if revision is None else str(revision)


def current(url: str) -> str | None:
    """`current_async` for sync callers (CLI). Not for use inside a running event loop."""
    return asyncio.run(current_async(url))
