from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.migrate import current_async, downgrade, head, upgrade
from storage.models import Base
from tests.conftest import call_in_thread, run_in_thread


def _diff(metadata: MetaData) -> Any:
    def run(conn: Connection) -> Any:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    return run


async def test_migrated_schema_matches_the_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_diff(Base.metadata)) == []


async def test_the_comparison_would_see_a_difference(db: Database) -> None:
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    Table("contacts", changed, Column("nickname", String(20)), extend_existing=True)
    Table("extra", changed, Column("id", Integer, primary_key=True))
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(_diff(changed))
    kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in diff}
    assert {"add_column", "add_table"} <= kinds


async def test_database_is_at_head(database_url: str) -> None:
    assert await current_async(database_url) == head()


async def test_empty_database_has_no_revision(tmp_path: Path) -> None:
    assert await current_async(f"sqlite:///{tmp_path / 'empty.db'}") is None


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    call_in_thread(upgrade, url)
    call_in_thread(downgrade, url, "base")

    async def tables() -> set[str]:
        database = Database(url)
        try:
            async with database.engine.connect() as conn:
                names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        finally:
            await database.dispose()
        return set(names)

    assert run_in_thread(tables) <= {"alembic_version"}
    call_in_thread(upgrade, url)
    assert run_in_thread(tables) >= {t.name for t in Base.metadata.sorted_tables}


def test_upgrade_accepts_plain_urls_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "var" / "data" / "brukardialog.db"
    call_in_thread(upgrade, f"sqlite:///{path}")
    assert path.exists()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite+pysqlite:///x.db"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Database(url)
