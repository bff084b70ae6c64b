"""Statements written once in SQL and run on a session's own driver connection.

For the inbound hot path only (storage.turns). There, SQLAlchemy's work around each statement
(building it, its cache key, the execution context, ORM loading) costs five to ten times the
statement itself: `bench/statement_cost.py` measures a raw aiosqlite statement at 50-70 µs and
the same lookup through the ORM at about 600 µs. The statements run inside the session's
transaction, so they commit or roll back with everything else in it.

An `SQL` is written with `:name` parameters, as SQLite takes them; PostgreSQL's `$1` form is
derived once. Parameters are plain Python values: aware datetimes, dates, bools, None, numbers
and strings (JSON columns take `json.dumps` text on both databases). Results are tuples of what
the driver returns: on SQLite datetimes and dates come back as text and JSON as text, on
PostgreSQL as `datetime`, `date` and decoded JSON; `datetime_of`, `date_of` and `json_of` read
either.

Raw statements do not autoflush the ORM: `RawConnection.of` flushes pending ORM changes first,
and a caller that mixes the two afterwards must flush itself."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import RAW_BEGIN_KEY

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_SESSION_KEY = "brukardialog.raw"
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
"""SQLAlchemy's storage format for DATETIME on SQLite; comparisons in SQL rely on it."""

Row = tuple[Any, ...]


class SQL:
    """One statement in both dialects' parameter styles."""

    __slots__ = ("names", "postgresql", "returns_rows", "sqlite")

    def __init__(self, text: str, *, postgresql: str | None = None) -> None:
        self.sqlite = text
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.postgresql = _PARAM.sub(number, postgresql if postgresql is not None else text)
        self.names = tuple(names)
        head = text.lstrip()[:6].upper()
        self.returns_rows = head in ("SELECT", "WITH") or _RETURNING.search(text) is not None
        if postgresql is not None and set(_PARAM.findall(text)) != set(names):
            raise ValueError("the SQLite and PostgreSQL forms take different parameters")

    def __repr__(self) -> str:
        return f"SQL({self.sqlite!r})"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).strftime(_SQLITE_DATETIME)
    if isinstance(value, date):
        return value.isoformat()
    return value


def datetime_of(value: Any) -> datetime | None:
    """A stored UTC datetime, as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def date_of(value: Any) -> date | None:
    """A stored date."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(value)


def json_of(value: Any) -> Any:
    """A stored JSON value (text on SQLite, already decoded on PostgreSQL)."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement with its parameters."""

    sql: SQL
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement gave: its rows (RETURNING or SELECT) and the rows it changed."""

    rows: list[Row]
    rowcount: int

    def first(self) -> Row | None:
        return self.rows[0] if self.rows else None


T = TypeVar("T")
Script = Generator[Statement, Result, T]
"""Statements yielded one at a time, each sent its Result; returns the script's answer."""


class RawConnection:
    """The driver connection under a session, inside the session's transaction."""

    __slots__ = ("_adapted", "_begin", "_driver", "dialect")

    def __init__(self, dialect: str, adapted: Any, driver: Any, begin: str | None = None) -> None:
        self.dialect = dialect
        self._adapted = adapted
        self._driver = driver
        self._begin = begin
        """SQLite: the BEGIN the first script sends (see Database.transaction's raw_first)."""

    @classmethod
    async def of(cls, s: AsyncSession) -> RawConnection:
        """The session's raw connection (one per session), its transaction begun."""
        raw = s.info.get(_SESSION_KEY)
        if raw is None:
            sync = s.sync_session
            if sync.new or sync.dirty or sync.deleted:
                await s.flush()
            # Without a greenlet hop when the session already holds its connection (as
            # storage.db's sessions do from the start).
            connection = (
                sync.connection()
                if sync.in_transaction()
                else (await s.connection()).sync_connection
            )
            assert connection is not None
            fairy = connection.connection
            raw = cls(
                connection.dialect.name,
                fairy.dbapi_connection,
                fairy.driver_connection,
                s.info.pop(RAW_BEGIN_KEY, None),
            )
            if raw.dialect == "postgresql":
                await raw._begin_postgresql(s)
            s.info[_SESSION_KEY] = raw
        assert isinstance(raw, RawConnection)
        return raw

    async def _begin_postgresql(self, s: AsyncSession) -> None:
        # SQLAlchemy's asyncpg adapter issues BEGIN lazily, with the first statement it runs;
        # a raw statement before that would run outside the transaction.
        if getattr(self._adapted, "_transaction", "unknown") is None:
            await self._adapted._start_transaction()
        elif not self._driver.is_in_transaction():
            await s.execute(text("SELECT 1"))

    async def run(self, script: Script[T]) -> T:
        """Run a script: a generator that yields `Statement`s, is sent each one's `Result`, and
        returns the answer. On SQLite the whole script runs on the driver's worker thread in one
        hop, so the generator must only compute (no I/O, no event loop); on PostgreSQL each
        statement is awaited in turn."""
        try:
            if self.dialect == "sqlite":
                begin, self._begin = self._begin, None
                async with self._adapted._execute_mutex:
                    # aiosqlite's way to run a function on its worker thread.
                    result: T = await self._driver._execute(
                        _run_sqlite, self._driver._conn, script, begin
                    )
                    return result
            return await self._run_postgresql(script)
        except Exception as error:
            if not _is_driver(error):
                raise
            # The same exception family SQLAlchemy raises for its own statements.
            raise DBAPIError.instance(None, None, error, Exception) from error

    async def run_all(self, statements: Sequence[Statement]) -> list[Result]:
        """Run statements in order (one hop on SQLite); each one's result."""
        return await self.run(_each(statements))

    async def fetch(self, sql: SQL, **params: Any) -> list[Row]:
        """All rows one statement returns."""
        (result,) = await self.run_all([Statement(sql, params)])
        return result.rows

    async def fetchone(self, sql: SQL, **params: Any) -> Row | None:
        """The first row one statement returns, or None."""
        rows = await self.fetch(sql, **params)
        return rows[0] if rows else None

    async def execute(self, sql: SQL, **params: Any) -> int:
        """Run one statement; the number of rows it changed."""
        (result,) = await self.run_all([Statement(sql, params)])
        return result.rowcount

    async def _run_postgresql(self, script: Script[T]) -> T:
        driver = self._driver
        async with self._adapted._execute_mutex:
            try:
                statement = next(script)
                while True:
                    sql = statement.sql
                    args = [statement.params[name] for name in sql.names]
                    if sql.returns_rows:
                        records = await driver.fetch(sql.postgresql, *args)
                        result = Result([tuple(r) for r in records], len(records))
                    else:
                        # asyncpg answers with the command tag: "UPDATE 3", "INSERT 0 1".
                        tag: str = await driver.execute(sql.postgresql, *args)
                        tail = tag.rsplit(" ", 1)[-1]
                        result = Result([], int(tail) if tail.isdigit() else -1)
                    statement = script.send(result)
            except StopIteration as done:
                answer: T = done.value
                return answer


def _run_sqlite(conn: sqlite3.Connection, script: Script[T], begin: str | None) -> T:
    """Runs on aiosqlite's worker thread: every statement of the script, after `begin`."""
    if begin is not None:
        conn.execute(begin).close()
    try:
        statement = next(script)
        while True:
            values = {name: _sqlite_value(v) for name, v in statement.params.items()}
            cursor = conn.execute(statement.sql.sqlite, values)
            try:
                rows = cursor.fetchall() if cursor.description else []
                result = Result(rows, cursor.rowcount)
            finally:
                cursor.close()
            statement = script.send(result)
    except StopIteration as done:
        answer: T = done.value
        return answer


def _each(statements: Sequence[Statement]) -> Script[list[Result]]:
    results = []
    for statement in statements:
        results.append((yield statement))
    return results


def _is_driver(error: BaseException) -> bool:
    module = type(error).__module__
    return module.startswith(("sqlite3", "asyncpg"))
