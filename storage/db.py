"""Engines and transactions for SQLite (the default) and PostgreSQL (scale-out).

SQLite runs in WAL mode and every write transaction starts with `BEGIN IMMEDIATE`, so concurrent
transactions queue on the write lock (for up to `busy_timeout`) instead of failing half-way with
"database is locked"; that also gives them the serial behaviour `SELECT .. FOR UPDATE` gives on
PostgreSQL. Do not open a second write transaction while holding one: it waits for itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Insert, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from storage.sealing import Sealer, attach
from storage.sqlite_driver import one_hop_dbapi
from storage.writer import AlchemyWriter, SqliteWriter, TurnWriter

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
_READ_ONLY = "brukardialog_read_only"
"""Execution option: this connection's transactions only read (SQLite: plain deferred BEGIN)."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached (down, wrong address, refused credentials)."""


def normalize_url(url: str | URL) -> URL:
    """The async-driver form of a database URL: `sqlite://` -> aiosqlite, `postgresql://` ->
    asyncpg."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    wanted = "aiosqlite" if backend == "sqlite" else "asyncpg"
    if driver and driver != wanted:
        raise ValueError(f"unsupported driver {driver!r} for {backend}: use {backend}+{wanted}")
    return parsed.set(drivername=f"{backend}+{wanted}")


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for logs and error messages."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def make_engine(url: str | URL, *, sqlite_foreign_keys: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine with this project's connection settings.

    SQLite: WAL, busy_timeout, foreign keys, synchronous=NORMAL on every connection, and
    transactions begun by SQLAlchemy (see the module docstring). `sqlite_foreign_keys=False` is
    for migrations, where recreating a table must not cascade deletes. PostgreSQL: pre-ping."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(parsed, **kwargs)

    if _is_memory(parsed):
        kwargs.setdefault("poolclass", StaticPool)
    elif parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # One thread hop per statement instead of four (see storage.sqlite_driver).
    kwargs.setdefault("module", one_hop_dbapi())
    engine = create_async_engine(parsed, **kwargs)
    pragmas = sqlite_pragmas(foreign_keys=sqlite_foreign_keys)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver; `_on_begin` emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def sqlite_pragmas(*, foreign_keys: bool = True) -> tuple[str, ...]:
    """The settings every SQLite connection of ours runs with."""
    return (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        "PRAGMA synchronous=NORMAL",
    )


def dialect_insert(session: AsyncSession, target: Any) -> Any:
    """An INSERT with the dialect's ON CONFLICT support (`sqlite.Insert` or `postgresql.Insert`).

    Typed `Any` because the two dialect classes share the methods but no common base with them."""
    name = session.get_bind().dialect.name
    insert_cls = postgresql.insert if name == "postgresql" else sqlite.insert
    stmt: Insert = insert_cls(target)
    return stmt


def dialect_name(session: AsyncSession) -> str:
    """ "sqlite" or "postgresql"."""
    return session.get_bind().dialect.name


class Database:
    """The engine and session factory of one database, and the writer of its turns.

    `sealer` seals addresses at rest (storage.sealing); without one, addresses can be neither
    read nor written."""

    def __init__(
        self, url: str | URL, *, engine: AsyncEngine | None = None, sealer: Sealer | None = None
    ) -> None:
        self.url = normalize_url(url).render_as_string(hide_password=False)
        self.engine = engine if engine is not None else make_engine(url)
        self.dialect: str = self.engine.dialect.name
        self.sealer = sealer
        attach(self.engine.dialect, sealer)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time. Queueing this process's writers here, in order, is
        # fairer and much faster under load than letting them sleep in SQLite's busy handler.
        # The turn writer (storage.writer) takes the same lock for each of its batches.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None
        self._turns: TurnWriter | None = None

    @property
    def turns(self) -> TurnWriter:
        """The writer of turns: group commit on SQLite, a transaction per turn on PostgreSQL."""
        if self._turns is None:
            if self._write_lock is None:
                self._turns = AlchemyWriter(self.engine)
            else:
                path = make_url(self.url).database
                if not path or _is_memory(make_url(self.url)):
                    raise ValueError("turns need a SQLite database file, not an in-memory one")
                self._turns = SqliteWriter(
                    path,
                    sealer=self.sealer,
                    lock=self._write_lock,
                    pragmas=sqlite_pragmas(),
                    holds_lock=self._holds_write_lock,
                    busy_timeout_ms=BUSY_TIMEOUT_MS,
                )
        return self._turns

    def _holds_write_lock(self) -> bool:
        # Asked on every turn: with no write transaction open the answer needs no task lookup
        # (`current_task` asks the kernel for the process id each time).
        if self._writer is None:
            return False
        task = asyncio.current_task()
        return task is not None and self._writer is task

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        Raises DatabaseUnavailable when no connection can be made. `read_only=True` only
        changes SQLite's locking: the transaction does not queue behind writers. On SQLite a
        write transaction opened inside another in the same task would wait for itself: that is
        refused at once with RuntimeError."""
        if read_only or self._write_lock is None:
            async with self._session(read_only) as session:
                yield session
            return
        if self._holds_write_lock():
            raise RuntimeError("a write transaction was opened inside another one (SQLite)")
        async with self._write_lock:
            self._writer = asyncio.current_task()
            try:
                async with self._session(read_only) as session:
                    yield session
            finally:
                self._writer = None

    @asynccontextmanager
    async def _session(self, read_only: bool) -> AsyncIterator[AsyncSession]:
        factory = self._read_sessions if read_only else self._sessions
        async with factory() as session:
            try:
                await session.connection()
            except (DBAPIError, OSError) as e:
                raise self._unavailable(e) from e
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    async def ping(self) -> bool:
        """True if the database answers `SELECT 1`."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as e:
            log.warning("database ping failed: %s", e)
            return False
        return True

    async def check(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as e:
            raise self._unavailable(e) from e

    async def dispose(self) -> None:
        """Stop the turn writer and close every pooled connection."""
        turns, self._turns = self._turns, None
        if turns is not None:
            await turns.close()
        await self.engine.dispose()

    def _unavailable(self, error: BaseException) -> DatabaseUnavailable:
        reason = getattr(error, "orig", None) or error
        return DatabaseUnavailable(f"cannot reach the database at {safe_url(self.url)}: {reason}")
