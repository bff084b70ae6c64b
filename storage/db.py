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

from storage.sqlite_driver import one_hop_dbapi

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
_READ_ONLY = "brukardialog_read_only"
"""Execution option: this connection's transactions only read (SQLite: plain deferred BEGIN)."""
_RAW_BEGIN = "brukardialog_raw_begin"
"""Execution option (SQLite): BEGIN is left to the session's first raw script (storage.raw),
which sends it in the same trip to SQLite's thread as its own statements."""
RAW_BEGIN_KEY = "brukardialog.raw_begin"
"""Session info key: the BEGIN a raw script must send first."""


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
    foreign_keys = "ON" if sqlite_foreign_keys else "OFF"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver; `_on_begin` emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA foreign_keys={foreign_keys}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_RAW_BEGIN, False):
            return
        conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY, False) else "BEGIN IMMEDIATE")

    return engine


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
    """The engine and session factory of one database."""

    def __init__(self, url: str | URL, *, engine: AsyncEngine | None = None) -> None:
        self.url = normalize_url(url).render_as_string(hide_password=False)
        self.engine = engine if engine is not None else make_engine(url)
        self.dialect: str = self.engine.dialect.name
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self._raw_sessions = async_sessionmaker(
            self.engine.execution_options(**{_RAW_BEGIN: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time. Queueing this process's writers here, in order, is
        # fairer and much faster under load than letting them sleep in SQLite's busy handler.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._writer: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def transaction(
        self, *, read_only: bool = False, raw_first: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        Raises DatabaseUnavailable when no connection can be made. `read_only=True` only
        changes SQLite's locking: the transaction does not queue behind writers. On SQLite a
        write transaction opened inside another in the same task would wait for itself: that is
        refused at once with RuntimeError.

        `raw_first=True` promises that the first statement is a storage.raw script; on SQLite
        that script then sends BEGIN itself, saving a trip to SQLite's thread."""
        if read_only or self._write_lock is None:
            async with self._session(read_only) as session:
                yield session
            return
        task = asyncio.current_task()
        if task is not None and self._writer is task:
            raise RuntimeError("a write transaction was opened inside another one (SQLite)")
        async with self._write_lock:
            self._writer = task
            try:
                async with self._session(read_only, raw_first=raw_first) as session:
                    yield session
            finally:
                self._writer = None

    @asynccontextmanager
    async def _session(
        self, read_only: bool, *, raw_first: bool = False
    ) -> AsyncIterator[AsyncSession]:
        if raw_first:
            factory = self._raw_sessions
        else:
            factory = self._read_sessions if read_only else self._sessions
        async with factory() as session:
            if raw_first:
                session.info[RAW_BEGIN_KEY] = "BEGIN IMMEDIATE"
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
        """Close every pooled connection."""
        await self.engine.dispose()

    def _unavailable(self, error: BaseException) -> DatabaseUnavailable:
        reason = getattr(error, "orig", None) or error
        return DatabaseUnavailable(f"cannot reach the database at {safe_url(self.url)}: {reason}")
