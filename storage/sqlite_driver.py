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
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
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
        try:
            await_(self._one_hop(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            await_(self._one_hop(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        creator_fn = kw.pop("async_creator_fn", None)
        connection = creator_fn(*arg, **kw) if creator_fn else self.aiosqlite.connect(*arg, **kw)
        thread = connection if isinstance(connection, Thread) else connection._thread
        thread.daemon = True
        return OneHopConnection(self, await_(connection))


def one_hop_dbapi() -> OneHopDBAPI:
    """The DBAPI module to give SQLAlchemy's aiosqlite dialect (`module=`)."""
    return OneHopDBAPI(aiosqlite, sqlite3)
