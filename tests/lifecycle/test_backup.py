"""`brukardialog db backup`: a consistent copy of a live SQLite database that opens and holds
every row; PostgreSQL is pointed at pg_dump."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot import lifecycle
from bot.cli import main
from bot.config import DatabaseSettings
from bot.features import open_runtime
from bot.lifecycle.backup import backup_sqlite
from bot.web.staff import accounts
from storage import repo_audit
from storage.models import Base
from tests.bot.harness import Harness
from tests.fakes.twilio_server import FakeTwilio
from tests.lifecycle.scenario import PHONE, REF, person_did_everything, service


def table_rows(path: Path) -> dict[str, set[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            t.name: set(conn.execute(f'SELECT * FROM "{t.name}"').fetchall())
            for t in Base.metadata.sorted_tables
        }


async def test_a_backup_taken_while_the_service_writes_holds_every_row(
    tmp_path: Path, twilio: FakeTwilio, sqlite_template: Path
) -> None:
    source = tmp_path / "live.db"
    shutil.copyfile(sqlite_template, source)
    url = f"sqlite+aiosqlite:///{source}"
    target = tmp_path / "copy.db"
    async with service(url, twilio) as h:
        await person_did_everything(h)
        await h.runtime.dispatcher.run_once()
        # A staff member signed in: the staff tables have rows too.
        await accounts.add_user(h.runtime, "ada", "admin", "a long enough password", actor="t")
        assert await accounts.sign_in(h.runtime, "ada", "a long enough password") is not None
        await accounts.make_token(h.runtime, "case-system", actor="staff:ada")
        before = table_rows(source)
        empty = sorted(name for name, found in before.items() if not found)
        assert empty == [], f"the scenario leaves these tables empty: {empty}"

        async def keep_writing(h: Harness) -> int:
            written = 0
            while not done.is_set():
                async with h.runtime.db.transaction() as s:
                    await repo_audit.log(s, "test", "test.write", "backup", {"n": written})
                written += 1
                await asyncio.sleep(0)
            return written

        done = asyncio.Event()
        writer = asyncio.create_task(keep_writing(h))
        await asyncio.sleep(0.05)
        result = await asyncio.to_thread(backup_sqlite, source, target)
        done.set()
        written = await writer
    assert written > 0
    assert result.path == target and result.bytes > 0

    copy = table_rows(target)
    for name, found in before.items():
        assert found <= copy[name], name
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        in_copy = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'test.write'")
        assert 0 <= in_copy.fetchone()[0] <= written
    assert target.stat().st_mode & 0o777 == 0o600

    # Restored: the service opens the copy with its keys and finds the person, number and all.
    settings = dataclasses.replace(
        h.settings, database=DatabaseSettings(url=f"sqlite+aiosqlite:///{target}")
    )
    async with open_runtime(settings, channels={}) as runtime:
        export = await lifecycle.export_person(runtime, REF, actor="test")
    assert PHONE in [a["address"] for a in export["addresses"]]
    assert export["answers"] and export["invitations"] and export["followups"]


def test_the_command_backs_up_and_refuses_what_it_cannot(
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "bd.db"
    source.write_bytes(sqlite_template.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", f"sqlite+aiosqlite:///{source}")
    assert main(["db", "backup", "copy.db"]) == 0
    out = capsys.readouterr().out
    assert "backed up" in out and "key files" in out
    assert (tmp_path / "copy.db").exists()
    assert main(["db", "backup", "copy.db"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["db", "backup", "no/such/folder/copy.db"]) == 1
    assert "no folder" in capsys.readouterr().err

    pg = "postgresql+asyncpg://bd:secret@db.example:5433/brukardialog"
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", pg)
    assert main(["db", "backup", "x.dump"]) == 1
    err = capsys.readouterr().err
    assert "pg_dump --format=custom" in err and "README" in err and "secret" not in err
    assert f" {make_url(pg).database}" in err
