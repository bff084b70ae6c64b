"""Running SQLAlchemy Core statements synchronously, on SQLite's own driver or through SQLAlchemy.

The turn executor (storage.executor) is written once, as plain synchronous code over `Exec`:
- `SqliteExec` runs on the single writer thread (storage.writer) with a `sqlite3` connection.
  Each Core statement is compiled once per set of parameter names and cached; values go through
  the column types' own bind and result processors (public SQLAlchemy API), so stored values are
  exactly what the ORM writes and reads. This skips SQLAlchemy's per-execution machinery, which
  costs several times the statement itself on SQLite.
- `AlchemyExec` wraps a SQLAlchemy `Connection` (PostgreSQL, inside `AsyncConnection.run_sync`).

Statements are written with `bindparam`s; an INSERT or UPDATE of a table takes its columns from the
parameter names, as SQLAlchemy does when executing with a dict. An INSERT must be given every
column that has a Python-side default (the SQLite path does not compute defaults)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Delete, Insert, Select, Update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.expression import Executable

Row = Mapping[str, Any]
Processor = Callable[[Any], Any] | None


class Exec(Protocol):
    """Synchronous statement execution inside one transaction."""

    dialect: str
    """"sqlite" or "postgresql"."""

    def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a statement that returns rows (SELECT, or DML with RETURNING)."""
        ...

    def run(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        ...

    def many(self, stmt: Executable, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement that returns no rows once for each set of parameters (executemany;
        every set has the same names)."""
        ...

    def insert(self, stmt: Insert, params: Mapping[str, Any]) -> int | None:
        """Insert one row into a table with an integer `id`; the new row's id, or None when the
        statement's ON CONFLICT clause skipped it. `stmt` has no RETURNING of its own."""
        ...


_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, str, Any, Processor], ...]
    """(name in the SQL, key the caller gives, value built into the statement, processor)."""
    results: tuple[tuple[str, Processor], ...]
    statement: Executable
    """Kept so its id() is not reused while cached."""


def _result_columns(stmt: Executable) -> Sequence[Any]:
    if isinstance(stmt, Select):
        return list(stmt.selected_columns)
    if isinstance(stmt, Insert | Update | Delete):
        return list(stmt.exported_columns)
    return []


class SqliteCompiler:
    """Compiles Core statements once for SQLite's driver (named parameters)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._cache: dict[tuple[int, tuple[str, ...] | None], _Compiled] = {}

    def compiled(self, stmt: Executable, names: tuple[str, ...] | None) -> _Compiled:
        """The statement compiled for these parameter names, cached by the statement's identity."""
        key = (id(stmt), names)
        found = self._cache.get(key)
        if found is None:
            found = self._compile(stmt, names)
            self._cache[key] = found
        return found

    def _compile(self, stmt: Executable, names: tuple[str, ...] | None) -> _Compiled:
        dialect = self.dialect
        kwargs: dict[str, Any] = {}
        if names is not None:
            kwargs["column_keys"] = list(names)
        compiled = stmt.compile(dialect=dialect, **kwargs)  # type: ignore[attr-defined]
        binds = tuple(
            (
                name,
                bind.key,
                _MISSING if bind.required else bind.effective_value,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
            )
            for bind, name in compiled.bind_names.items()
        )
        results = tuple(
            (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
            for column in _result_columns(stmt)
        )
        return _Compiled(compiled.string, binds, results, stmt)


class SqliteExec:
    """`Exec` on a sqlite3 connection (used only on the writer thread)."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, compiler: SqliteCompiler) -> None:
        self.connection = connection
        self.compiler = compiler

    def _compiled(self, stmt: Executable, params: Mapping[str, Any]) -> _Compiled:
        names = tuple(params) if isinstance(stmt, Insert | Update) else None
        return self.compiler.compiled(stmt, names)

    @staticmethod
    def _values(compiled: _Compiled, params: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, key, built_in, process in compiled.binds:
            value = params.get(key, built_in)
            if value is _MISSING:
                raise KeyError(f"no value for parameter {key!r} of {compiled.sql!r}")
            values[name] = process(value) if process is not None else value
        return values

    def _execute(self, stmt: Executable, params: Mapping[str, Any] | None) -> tuple[Any, _Compiled]:
        params = params or {}
        compiled = self._compiled(stmt, params)
        return self.connection.execute(compiled.sql, self._values(compiled, params)), compiled

    def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a statement and return its rows as dicts, values through the columns' processors."""
        cursor, compiled = self._execute(stmt, params)
        out: list[Row] = []
        results = compiled.results
        for raw in cursor.fetchall():
            out.append(
                {
                    key: (process(value) if process is not None else value)
                    for (key, process), value in zip(results, raw, strict=True)
                }
            )
        return out

    def run(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement and return the number of rows it changed."""
        cursor, _ = self._execute(stmt, params)
        return int(cursor.rowcount)

    def many(self, stmt: Executable, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per set of parameters, in one `executemany`."""
        if not params:
            return
        compiled = self._compiled(stmt, params[0])
        self.connection.executemany(compiled.sql, [self._values(compiled, p) for p in params])

    def insert(self, stmt: Insert, params: Mapping[str, Any]) -> int | None:
        """Insert one row; its id from the connection (`lastrowid`). SQLite runs RETURNING as a
        program of its own, which costs about as much as the row (bench/statement_cost.py:
        12 us instead of 7 us for an outgoing message on a new database)."""
        cursor, _ = self._execute(stmt, params)
        return int(cursor.lastrowid) if cursor.rowcount == 1 else None


class AlchemyExec:
    """`Exec` on a SQLAlchemy connection (PostgreSQL)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a statement and return its rows as dicts."""
        result = self.connection.execute(stmt, dict(params or {}))
        return [dict(row) for row in result.mappings()]

    def run(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement and return the number of rows it changed."""
        result = self.connection.execute(stmt, dict(params or {}))
        return int(getattr(result, "rowcount", 0) or 0)

    def many(self, stmt: Executable, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per set of parameters (the driver's executemany)."""
        if params:
            self.connection.execute(stmt, [dict(p) for p in params])

    def insert(self, stmt: Insert, params: Mapping[str, Any]) -> int | None:
        """Insert one row and return its id (RETURNING)."""
        row = self.connection.execute(_returning_id(stmt), dict(params)).first()
        return None if row is None else int(row[0])


@cache
def _returning_id(stmt: Insert) -> Insert:
    """`stmt` returning the id of the row it inserts (built once per statement)."""
    return stmt.returning(stmt.table.c.id)
