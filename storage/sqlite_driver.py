"""SQLite through aiosqlite with one thread hop per statement.

SQLAlchemy's aiosqlite adapter makes four trips to aiosqlite's worker thread for every statement
(create a cursor, execute, fetch, close); each trip costs a thread switch and an event-loop
wake-up, which on a webhook's ten statements is most of its time. This cursor does all four in
one function on the same worker thread, so SQLite still never runs on the event loop. Plugged in
with `create_async_engine(..., module=one_hop_dbapi())`; server-side (streaming) cursors are
left as they are."""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

Outcome = tuple[Any, list[Any] | None, int, int | None]


def run_statement(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """Runs on aiosqlite's worker thread: the whole life of one cursor."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """An aiosqlite cursor that runs each statement in one trip to the worker thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        """The result's column descriptions (DB-API), None for a statement without rows."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (DB-API)."""
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        """The rowid of the last inserted row (DB-API)."""
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        """Always 1: rows are fetched in one go, so the size is not used."""
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None

    async def _one_hop(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            # aiosqlite's own way to run a function on its worker thread (untyped there).
            description, rows, rowcount, lastrowid = await connection._execute(  # type: ignore[no-untyped-call]
                run_statement, connection._conn, operation, parameters, many
            )
        self._description = description
        self._rows = collections.deque(rows or ())
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        """Run one statement and keep its rows, in one trip to the worker thread."""
        try:
            await_(self._one_hop(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        """Run one statement for each set of parameters, in one trip to the worker thread."""
        try:
            await_(self._one_hop(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        """Drop the rows not fetched; the SQLite cursor was closed after its statement."""
        self._rows.clear()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """An aiosqlite connection whose cursors are `OneHopCursor`s."""

    __slots__ = ()
    _cursor_cls = OneHopCursor


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DB-API module with `OneHopConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """Open a connection; its worker thread is a daemon, so it never holds up the exit."""
        creator_fn = kw.pop("async_creator_fn", None)
        connection = creator_fn(*arg, **kw) if creator_fn else self.aiosqlite.connect(*arg, **kw)
        thread = connection if isinstance(connection, Thread) else connection._thread
        thread.daemon = True
        return OneHopConnection(self, await_(connection))


def one_hop_dbapi() -> OneHopDBAPI:
    """The DBAPI module to give SQLAlchemy's aiosqlite dialect (`module=`)."""
    return OneHopDBAPI(aiosqlite, sqlite3)
