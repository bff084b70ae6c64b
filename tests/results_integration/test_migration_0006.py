"""Migration 0006: a campaign's one plan reference becomes one per language of its survey."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from storage.migrate import downgrade, upgrade
from tests.conftest import call_in_thread

NOW = "2026-03-02 10:00:00.000000"


def test_plan_ref_is_copied_to_every_language_and_back(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    call_in_thread(upgrade, url, "0003")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO survey_versions (id, survey_id, version, checksum, definition, source, "
            "loaded_at) VALUES (1, 's', 1, 'x', ?, '', ?)",
            (json.dumps({"id": "s", "languages": ["sv", "en", "ar"]}), NOW),
        )
        for cid, ref in ((1, "Mål 3.2"), (2, None)):
            db.execute(
                "INSERT INTO campaigns (id, name, survey_id, survey_version_id, audience, "
                "channels, status, starts_at, ends_at, reminders, participation, feedback_delay, "
                "feedback_to, feedback_text, plan_ref, feedback_status, created_by, created_at) "
                "VALUES (?, 'c', 's', 1, 'true', '[]', 'closed', ?, ?, '[]', 'konsultation', 60, "
                "'respondents', '{}', ?, 'pending', '', ?)",
                (cid, NOW, NOW, ref, NOW),
            )
    call_in_thread(upgrade, url, "0006")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT id, plan_refs, feedback_without_text FROM campaigns ORDER BY id"
        ).fetchall()
        columns = [r[1] for r in db.execute("PRAGMA table_info(campaigns)")]
    assert [(cid, json.loads(refs), json.loads(bare)) for cid, refs, bare in rows] == [
        (1, {"sv": "Mål 3.2", "en": "Mål 3.2", "ar": "Mål 3.2"}, []),
        (2, {}, []),
    ]
    assert "plan_ref" not in columns
    call_in_thread(downgrade, url, "0003")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, plan_ref FROM campaigns ORDER BY id").fetchall() == [
            (1, "Mål 3.2"),
            (2, None),
        ]
