"""Shared fixtures: a migrated database per test, on SQLite and (when configured) PostgreSQL.

`database_url` runs each test that uses it (or `db`) twice: on a fresh SQLite file, and on a
PostgreSQL database created for this test session from BRUKARDIALOG_TEST_DATABASE_URL, emptied
before every test. Without that variable the PostgreSQL runs are skipped."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bot.privacy import Pseudonymizer
from storage.db import Database, make_engine, normalize_url
from storage.migrate import upgrade
from storage.models import Base
from storage.sealing import Sealer
from tests.fakes.twilio_server import twilio  # noqa: F401  (the fixture, for every test)

PG_ENV = "BRUKARDIALOG_TEST_DATABASE_URL"
TEST_KEY = bytes(range(32))
"""The fixed pseudonym key of the `pseudonymizer` fixture."""
TEST_SEALER = Sealer(bytes(range(32, 64)))
"""Seals addresses in every test database."""

T = TypeVar("T")
P = ParamSpec("P")


def run_in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own event loop in a worker thread.

    For sync fixtures: the test's own event loop is left alone."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def call_in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a blocking function (one that may run its own event loop) in a worker thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


async def _execute_autocommit(url: str, *statements: str) -> None:
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    call_in_thread(upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A migrated PostgreSQL database for this session, dropped at the end; None if not set up."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield None
        return
    admin_url = normalize_url(base)
    name = f"bd_{secrets.token_hex(6)}"
    admin = admin_url.render_as_string(hide_password=False)
    run_in_thread(lambda: _execute_autocommit(admin, f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        call_in_thread(upgrade, url)
        yield url
    finally:
        run_in_thread(
            lambda: _execute_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "brukardialog.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    configured: str | None = request.getfixturevalue("postgres_url")
    if configured is None:
        pytest.skip(f"PostgreSQL variant: set {PG_ENV}=postgresql+asyncpg://user@host:port/db")
    url = configured
    run_in_thread(lambda: _truncate_all(url))
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A Database on `database_url`, disposed after the test."""
    database = Database(database_url, sealer=TEST_SEALER)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    """A Pseudonymizer with the fixed TEST_KEY."""
    return Pseudonymizer(TEST_KEY)
