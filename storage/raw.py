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
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.sqlite_driver import run_statement

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


class RawConnection:
    """The driver connection under a session, inside the session's transaction."""

    __slots__ = ("_adapted", "_driver", "dialect")

    def __init__(self, dialect: str, adapted: Any, driver: Any) -> None:
        self.dialect = dialect
        self._adapted = adapted
        self._driver = driver

    @classmethod
    async def of(cls, s: AsyncSession) -> RawConnection:
        """The session's raw connection (one per session), its transaction begun."""
        raw = s.info.get(_SESSION_KEY)
        if raw is None:
            if s.new or s.dirty or s.deleted:
                await s.flush()
            connection = await s.connection()
            fairy = await connection.get_raw_connection()
            raw = cls(connection.dialect.name, fairy.dbapi_connection, fairy.driver_connection)
            if raw.dialect == "postgresql":
                await raw._begin_postgresql(connection)
            s.info[_SESSION_KEY] = raw
        assert isinstance(raw, RawConnection)
        return raw

    async def _begin_postgresql(self, connection: Any) -> None:
        # SQLAlchemy's asyncpg adapter issues BEGIN lazily, with the first statement it runs;
        # a raw statement before that would run outside the transaction.
        if getattr(self._adapted, "_transaction", "unknown") is None:
            await self._adapted._start_transaction()
        elif not self._driver.is_in_transaction():
            await connection.exec_driver_sql("SELECT 1")

    async def fetch(self, sql: SQL, **params: Any) -> list[Row]:
        """All rows the statement returns."""
        rows, _ = await self._run(sql, params)
        return rows

    async def fetchone(self, sql: SQL, **params: Any) -> Row | None:
        """The first row, or None."""
        rows, _ = await self._run(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: SQL, **params: Any) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        _, count = await self._run(sql, params)
        return count

    async def _run(self, sql: SQL, params: dict[str, Any]) -> tuple[list[Row], int]:
        try:
            if self.dialect == "sqlite":
                return await self._run_sqlite(sql, params)
            return await self._run_postgresql(sql, params)
        except Exception as error:
            if not _is_driver(error):
                raise
            # The same exception family SQLAlchemy raises for its own statements.
            raise DBAPIError.instance(sql.sqlite, None, error, Exception) from error

    async def _run_sqlite(self, sql: SQL, params: dict[str, Any]) -> tuple[list[Row], int]:
        values = {name: _sqlite_value(value) for name, value in params.items()}
        async with self._adapted._execute_mutex:
            # aiosqlite's way to run a function on its worker thread: one hop per statement.
            description, rows, rowcount, _ = await self._driver._execute(
                run_statement, self._driver._conn, sql.sqlite, values, False
            )
        return (rows or [] if description else []), rowcount

    async def _run_postgresql(self, sql: SQL, params: dict[str, Any]) -> tuple[list[Row], int]:
        args = [params[name] for name in sql.names]
        async with self._adapted._execute_mutex:
            if sql.returns_rows:
                records = await self._driver.fetch(sql.postgresql, *args)
                return [tuple(r) for r in records], len(records)
            status: str = await self._driver.execute(sql.postgresql, *args)
        # asyncpg answers with the command tag: "UPDATE 3", "INSERT 0 1", "DELETE 0".
        tail = status.rsplit(" ", 1)[-1]
        return [], int(tail) if tail.isdigit() else -1


def _is_driver(error: BaseException) -> bool:
    module = type(error).__module__
    return module.startswith(("sqlite3", "asyncpg"))
