"""Where turns are written: one writer with group commit on SQLite, a transaction each on PG.

A *job* is a synchronous function of an `Exec` (storage.sqlexec): it reads a turn's facts, decides
and writes the plan (storage.executor). `await writer.run(job)` returns once the transaction that
holds the job has committed, so a webhook answered after it has its turn on disk.

SQLite (`SqliteWriter`): SQLite has one writer at a time anyway, so one `sqlite3` connection
runs jobs in batches: the jobs that arrived while the previous batch was being written go
together in one transaction (`BEGIN IMMEDIATE` ... `COMMIT`), each inside its own savepoint so
one failing job fails alone, and one commit serves the whole batch. Batches take the database's
write lock, the same lock the ORM's write transactions take (storage.db), so staff work and
turns queue fairly in one line.

Where a batch runs: a batch of *quick* jobs (one person's turn, a claim or the outcomes of a
batch of sends: tens of SQLite statements of some microseconds each) is written right on the
event loop, which costs less than the trip to a thread and back and never waits for the GIL
between statements. A batch holding any other job (a campaign's round of invitations, a release
of answers) runs on the writer's own thread, so the loop keeps answering meanwhile. Nothing the
loop runs waits for another process or the disk: on the loop a batch asks for the write lock
without waiting (`busy_timeout` 0) and, should another process hold it (a command writing to the
same file), goes to the thread to wait there; the connection never checkpoints by itself
(`wal_autocheckpoint=0`); a second connection on the thread checkpoints the WAL (PASSIVE, which
never blocks a writer) after every `CHECKPOINT_EVERY` batches. With `synchronous=NORMAL` a
commit in WAL mode only appends to the log. The writer's connection keeps up to 64 MB of pages
(`cache_size`), so the index pages turns look people up in stay in memory as the file grows, and
keeps its savepoints' journals in memory (`temp_store`).

PostgreSQL (`AlchemyWriter`): each job in its own transaction on the pool, its rows locked by the
executor; several service processes write concurrently. A deadlock or serialization failure is
retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.sealing import Sealer, attach
from storage.sqlexec import AlchemyExec, Exec, SqliteCompiler, SqliteExec

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Exec], T]

MAX_BATCH = 256
"""Jobs written in one SQLite transaction at most."""
GATHER_ROUNDS = 3
"""Loop iterations a batch waits for the turns of requests already being read (see
`_run_batches`): a request reaches the writer some iterations after its bytes arrive."""
CHECKPOINT_EVERY = 32
"""Batches between two checkpoints of the WAL (on the writer's thread)."""
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})
"""PostgreSQL serialization failure and deadlock detected."""


class WriteFailed(Exception):
    """The transaction holding a job could not be committed (the database is locked or gone)."""


class TurnWriter(Protocol):
    """Runs jobs in write transactions."""

    async def run(self, job: Job[T], *, quick: bool = False) -> T:
        """Run `job` in a write transaction; returns its result once committed. `quick`: the
        job reads and writes a handful of rows (see SqliteWriter)."""
        ...

    async def close(self) -> None:
        """Stop taking jobs and release the connection."""
        ...


class SqliteWriter:
    """The single SQLite writer (see the module docstring)."""

    def __init__(
        self,
        path: str,
        *,
        sealer: Sealer | None,
        lock: asyncio.Lock,
        pragmas: tuple[str, ...],
        holds_lock: Callable[[], bool] = lambda: False,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._waits: bool | None = None
        """Whether the connection's busy_timeout is the waiting one (None: not set yet)."""
        self._lock = lock
        self._pragmas = pragmas
        self._holds_lock = holds_lock
        dialect = SQLiteDialect_pysqlite(paramstyle="named")
        attach(dialect, sealer)
        self._compiler = SqliteCompiler(dialect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._since_checkpoint = 0
        self._queue: asyncio.Queue[tuple[Job[Any], bool, asyncio.Future[Any]]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        """Transactions written so far (for tests and benchmarks)."""

    async def run(self, job: Job[T], *, quick: bool = False) -> T:
        """Queue `job` for the next batch and return its result once that batch has committed.
        A batch of quick jobs only is written on the event loop, any other on the thread."""
        if self._holds_lock():
            raise RuntimeError("a turn was written from inside a write transaction (SQLite)")
        loop = asyncio.get_running_loop()
        if self._pump is None or self._pump.done() or self._loop is not loop:
            self._queue = asyncio.Queue()
            self._loop = loop
            self._pump = loop.create_task(self._run_batches(), name="sqlite-writer")
        future: asyncio.Future[T] = loop.create_future()
        assert self._queue is not None
        self._queue.put_nowait((job, quick, future))
        return await future

    async def _run_batches(self) -> None:
        queue = self._queue
        assert queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            # Requests that arrived with this one are still on their way through the loop (read,
            # parsed, verified): let them catch up so one commit serves them all.
            for _ in range(GATHER_ROUNDS):
                await asyncio.sleep(0)
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            jobs = [job for job, _, _ in batch]
            try:
                async with self._lock:
                    outcomes = None
                    if all(quick for _, quick, _ in batch):
                        outcomes = self._write(jobs, wait=False)
                    if outcomes is None:  # a long job, or another process holds the lock
                        outcomes = await loop.run_in_executor(self._thread, self._write, jobs)
                    assert outcomes is not None, "a waiting write always has outcomes"
            except BaseException as e:  # cancelled while waiting: fail the batch, then stop
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(WriteFailed("the writer stopped"))
                if isinstance(e, asyncio.CancelledError):
                    raise
                log.exception("SQLite writer failed")
                continue
            self.batches += 1
            self._since_checkpoint += 1
            if self._since_checkpoint >= CHECKPOINT_EVERY and (
                self._checkpoint is None or self._checkpoint.done()
            ):
                self._since_checkpoint = 0
                self._checkpoint = loop.run_in_executor(self._thread, self._checkpoint_wal)
            for (_, _, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _connect(self) -> sqlite3.Connection:
        # Used from the loop and the writer's thread, never from both at once (one batch at a
        # time, and the checkpointer only on the thread).
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in self._pragmas:
            connection.execute(pragma)
        return connection

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = self._connect()
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute("PRAGMA cache_size=-65536")
            # Each job's savepoint keeps the pages it changes in a journal of its own, which by
            # default spills to a temporary file: a pwrite per page, on the loop. In memory it
            # holds only what one job changed since its savepoint.
            connection.execute("PRAGMA temp_store=MEMORY")
            self._connection = connection
        return self._connection

    def _checkpoint_wal(self) -> None:
        """On the writer's thread: copy what the WAL holds into the database, without blocking
        the writer (PASSIVE)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = self._connect()
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:
            log.warning("SQLite checkpoint failed (%s); trying again later", type(e).__name__)

    def _write(self, jobs: list[Job[Any]], wait: bool = True) -> list[tuple[bool, Any]] | None:
        """One transaction for the batch, a savepoint per job (on the loop or the thread).
        Without `wait`, None when another connection holds the write lock."""
        try:
            connection = self._open()
            if self._waits is not wait:
                timeout = self._busy_timeout_ms if wait else 0
                connection.execute(f"PRAGMA busy_timeout={timeout}")
                self._waits = wait
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if not wait and e.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            failure = WriteFailed(f"cannot start a write transaction: {e}")
            return [(False, failure) for _ in jobs]
        except sqlite3.Error as e:
            failure = WriteFailed(f"cannot start a write transaction: {e}")
            return [(False, failure) for _ in jobs]
        x = SqliteExec(connection, self._compiler)
        outcomes: list[tuple[bool, Any]] = []
        for job in jobs:
            connection.execute("SAVEPOINT turn")
            try:
                result = job(x)
            except Exception as e:
                connection.execute("ROLLBACK TO turn")
                connection.execute("RELEASE turn")
                outcomes.append((False, e))
                continue
            connection.execute("RELEASE turn")
            outcomes.append((True, result))
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            failure = WriteFailed(f"cannot commit: {e}")
            return [(False, failure) for _ in jobs]
        return outcomes

    async def close(self) -> None:
        """Stop the batch pump, then close the SQLite connection and its thread."""
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await pump
        loop = asyncio.get_running_loop()
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        for connection in (self._connection, self._checkpointer):
            if connection is not None:
                await loop.run_in_executor(self._thread, connection.close)
        self._connection = self._checkpointer = None
        self._thread.shutdown(wait=False)


class AlchemyWriter:
    """PostgreSQL: a transaction per job (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, *, attempts: int = 3) -> None:
        self._engine = engine
        self._attempts = attempts

    async def run(self, job: Job[T], *, quick: bool = False) -> T:
        """Run `job` in its own transaction, trying again on a serialization failure or deadlock
        (`quick` makes no difference here)."""
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._engine.begin() as conn:
                    return await conn.run_sync(lambda sync: job(AlchemyExec(sync)))
            except DBAPIError as e:
                code = getattr(e.orig, "sqlstate", None) or getattr(e.orig, "pgcode", None)
                if code in _RETRY_SQLSTATES and attempt < self._attempts:
                    log.info("turn rolled back (%s); trying again", code)
                    continue
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Nothing to release: the engine is disposed by its owner."""
        return None
