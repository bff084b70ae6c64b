from __future__ import annotations

from datetime import timedelta

from storage import repo_audit, repo_surveys
from storage.db import Database
from tests.storage.conftest import NOW


async def test_save_version_is_idempotent(db: Database) -> None:
    definition = {"id": "s", "questions": [{"id": "q1", "type": "scale"}]}
    async with db.transaction() as s:
        first = await repo_surveys.save_version(s, "s", 1, "c1", definition, "src")
    async with db.transaction() as s:
        again = await repo_surveys.save_version(s, "s", 1, "c1", {"ignored": True}, "other")
        edited = await repo_surveys.save_version(s, "s", 1, "c2", definition, "src2")
        stored = await repo_surveys.get(s, first)
    assert again == first
    assert edited != first
    assert stored is not None and stored.definition == definition


async def test_latest_versions(db: Database) -> None:
    async with db.transaction() as s:
        await repo_surveys.save_version(s, "a", 2, "x", {}, "")
        a3 = await repo_surveys.save_version(s, "a", 3, "x", {}, "")
        await repo_surveys.save_version(s, "a", 1, "y", {}, "")
        await repo_surveys.save_version(s, "b", 1, "x", {}, "")
        b1_edit = await repo_surveys.save_version(s, "b", 1, "z", {}, "")
    async with db.transaction() as s:
        latest_a = await repo_surveys.latest(s, "a")
        missing = await repo_surveys.latest(s, "nope")
        everything = await repo_surveys.list_latest(s)
        versions = await repo_surveys.versions(s, "a")
    assert latest_a is not None and latest_a.id == a3
    assert missing is None
    assert [(v.survey_id, v.id) for v in everything] == [("a", a3), ("b", b1_edit)]
    assert [v.version for v in versions] == [1, 2, 3]


async def test_audit_log(db: Database) -> None:
    async with db.transaction() as s:
        await repo_audit.log(s, "admin", "campaign.start", "campaign:1", {"recipients": 10}, at=NOW)
        await repo_audit.log(
            s, "cli", "contacts.import", "", {"rows": 3}, at=NOW + timedelta(seconds=1)
        )
    async with db.transaction() as s:
        entries = await repo_audit.recent(s, 10)
        imports = await repo_audit.recent(s, 10, action="contacts.import")
    assert [(e.actor, e.action, e.details) for e in entries] == [
        ("cli", "contacts.import", {"rows": 3}),
        ("admin", "campaign.start", {"recipients": 10}),
    ]
    assert [e.target for e in imports] == [""]
