from __future__ import annotations

import argparse
import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

import bot.app
import bot.cli
import bot.features
import bot.runtime
from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.cli import campaigns as cli_campaigns
from bot.clock import FixedClock
from bot.contacts.csvfile import column_rules, columns_markdown
from storage.models import AuditEntry, Campaign, Contact, ContactAddress
from tests.campaigns.helpers import (
    HEADER,
    ROWS,
    START,
    TOKEN,
    campaign_runtime,
    csv_text,
    import_csv,
    settings_for,
)

Client = TestClient[web.Request, web.Application]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run_cli(monkeypatch: pytest.MonkeyPatch, database_url: str, *argv: str) -> int:
    settings = settings_for(database_url)
    monkeypatch.setattr("bot.cli.common.settings", lambda args: settings)
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    cli_campaigns.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


async def counts(database_url: str) -> tuple[int, int]:
    async with (
        campaign_runtime(database_url) as runtime,
        runtime.db.transaction(read_only=True) as s,
    ):
        contacts = await s.scalar(select(func.count()).select_from(Contact))
        tokens = await s.scalar(
            select(func.count())
            .select_from(ContactAddress)
            .where(ContactAddress.channel == "webchat")
        )
    return int(contacts or 0), int(tokens or 0)


def test_cli_import_refuses_a_file_with_bad_rows_whole(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli.common import CommandError

    path = tmp_path / "contacts.csv"
    bad = [*ROWS[:2], "P9,12345,sv,,,,,,", ROWS[2], "P10,,xx_1,,1800,,,,"]
    path.write_text(csv_text(bad), encoding="utf-8")
    with pytest.raises(CommandError, match="2 invalid rows"):
        run_cli(monkeypatch, database_url, "contacts", "import", str(path))
    err = capsys.readouterr().err
    assert "line 4: phone is not a valid phone number" in err
    assert "line 6:" in err and "birth_year '1800'" in err
    assert asyncio.run(counts(database_url)) == (0, 0), "nothing imported"

    assert (
        run_cli(monkeypatch, database_url, "contacts", "import", str(path), "--skip-invalid") == 0
    )
    out, err = capsys.readouterr()
    assert "imported 3 contacts (3 new, 0 updated), skipped 2 invalid rows" in out
    assert "skipped line 4:" in err
    assert asyncio.run(counts(database_url)) == (3, 3)


async def test_upsert_on_external_ref_then_phone(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        # Someone wrote in before being imported: a contact with only a phone address.
        key = runtime.service.pseudonymizer.address_key("sms", "+46701234569")
        async with runtime.db.transaction() as s:
            from storage import repo_contacts

            early = await repo_contacts.create(s, language="ar")
            await repo_contacts.add_address(s, early.id, "sms", "+46701234569", key)
        await import_csv(runtime, csv_text())
        await import_csv(
            runtime,
            "\n".join(
                [
                    HEADER,
                    "P1,0701234561,sv,kvinna,1980,missbruk,Väster,2020-01-01,malmo",
                    "P8,070-123 45 69,en,,,,Norr,,",
                    ",0701234562,ar,,,,Syd,,",
                ]
            ),
        )
        async with runtime.db.transaction(read_only=True) as s:
            by_ref = {c.external_ref: c for c in await s.scalars(select(Contact))}
            tokens = list(
                await s.scalars(
                    select(ContactAddress.contact_id).where(ContactAddress.channel == "webchat")
                )
            )
    assert len(by_ref) == 6, "P1 and P2 updated, the early writer adopted as P8"
    assert by_ref["P1"].unit == "Väster"
    assert by_ref["P8"].id == early.id and by_ref["P8"].language == "en"
    assert by_ref["P2"].unit == "Syd" and by_ref["P2"].language == "ar", "matched on phone"
    assert sorted(tokens) == sorted(set(tokens)) and len(tokens) == 6, "one token each"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    app = create_app(
        settings_for(database_url),
        clock=FixedClock(START),
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/contacts"),
        ("POST", "/api/v1/campaigns"),
        ("GET", "/api/v1/campaigns"),
        ("GET", "/api/v1/campaigns/1"),
        ("POST", "/api/v1/campaigns/1/pause"),
        ("POST", "/api/v1/campaigns/1/resume"),
        ("POST", "/api/v1/campaigns/1/close"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"}])
async def test_api_needs_a_valid_token(
    client: Client,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    response = await client.request(method, path, json={}, headers=headers)
    assert response.status == 401


API_CONTACTS: list[dict[str, Any]] = [
    {"external_ref": "A1", "phone": "0701234561", "target_group": "Missbruk", "birth_year": 1980},
    {"external_ref": "A2", "telegram_chat_id": 4242, "attributes": {"kommun": "malmo"}},
]


async def test_api_contacts_and_campaigns(client: Client) -> None:
    bad = [*API_CONTACTS, {"phone": "123"}, {"external_ref": "A3", "shoe": 1}]
    response = await client.post("/api/v1/contacts", json={"contacts": bad}, headers=AUTH)
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert [e["index"] for e in errors] == [2, 3]
    assert "unknown field 'shoe'" in errors[1]["reason"]

    response = await client.post(
        "/api/v1/contacts", json={"contacts": bad, "skip_invalid": True}, headers=AUTH
    )
    assert response.status == 200
    assert (await response.json())["inserted"] == 2

    response = await client.post(
        "/api/v1/campaigns",
        json={"survey": "kort", "audience": "target_group == 'missbruk'", "ends": "2026-03-01"},
        headers=AUTH,
    )
    assert response.status == 422
    assert any("in the past" in p for p in (await response.json())["problems"])
    response = await client.post(
        "/api/v1/campaigns",
        json={"survey": "kort", "audience": "kommun == 'lund'", "ends": "2026-03-20"},
        headers=AUTH,
    )
    assert response.status == 422 and (await response.json())["empty_audience"] is True

    response = await client.post(
        "/api/v1/campaigns",
        json={
            "survey": "kort",
            "audience": "target_group == 'missbruk'",
            "ends": "2026-03-20",
            "reminders": ["2d"],
            "channels": ["webchat"],
        },
        headers=AUTH,
    )
    assert response.status == 201
    cid = (await response.json())["id"]
    listing = await (await client.get("/api/v1/campaigns", headers=AUTH)).json()
    assert [c["id"] for c in listing["campaigns"]] == [cid]
    for action, status in (("pause", "paused"), ("resume", "scheduled"), ("close", "closed")):
        response = await client.post(f"/api/v1/campaigns/{cid}/{action}", headers=AUTH)
        assert response.status == 200 and (await response.json())["status"] == status
    response = await client.post(f"/api/v1/campaigns/{cid}/resume", headers=AUTH)
    assert response.status == 409
    shown = await (await client.get(f"/api/v1/campaigns/{cid}", headers=AUTH)).json()
    assert shown["status"] == "closed" and shown["counts"]["invited"] == 0
    assert (await client.get("/api/v1/campaigns/999", headers=AUTH)).status == 404

    runtime = client.app[bot.runtime.RUNTIME]
    async with runtime.db.transaction(read_only=True) as s:
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        campaign = await s.get(Campaign, cid)
    assert actions == [
        "contacts.import",
        "campaign.create",
        "campaign.pause",
        "campaign.resume",
        "campaign.close",
    ]
    assert campaign is not None and campaign.created_by.startswith("api:")


# -- wrong headers and the columns' documentation ---------------------------------------------


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bot.cli.main` on the test database, as staff would run it."""
    settings = settings_for(database_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", database_url)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY", settings.privacy.pseudonym_key)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__ADDRESS_KEY", settings.privacy.address_key)
    monkeypatch.setenv("BRUKARDIALOG__SURVEYS__PATHS", str(settings.surveys.paths[0]))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("external_ref,phon,language\nP1,0701234561,sv\n", "unknown column 'phon'"),
        ("language,unit\nsv,Norr\n", "needs at least one of the columns"),
        ("", "the file is empty"),
    ],
)
@pytest.mark.usefixtures("cli_env")
def test_skip_invalid_does_not_skip_a_wrong_header(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(text, encoding="utf-8")
    assert bot.cli.main(["contacts", "import", str(path), "--skip-invalid"]) == 1
    err = capsys.readouterr().err
    assert reason in err and "nothing was imported" in err, err
    assert asyncio.run(counts(database_url)) == (0, 0)


def test_import_help_lists_every_column_and_its_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        bot.cli.main(["contacts", "import", "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, _rule in column_rules():
        assert name in out
    for value in ("kvinna (or kvinnlig", "annat (or annan", "from 1900 to this year"):
        assert value in out, value


README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"(<!-- contacts-columns:[^\n]*-->\n)(.*?)(<!-- /contacts-columns -->)", re.S)


def test_readme_lists_the_columns_as_bot_contacts_csv_defines_them() -> None:
    text = README.read_text(encoding="utf-8")
    found = _BLOCK.search(text)
    assert found is not None, "README.md lost its contacts-columns block"
    wanted = columns_markdown() + "\n"
    if os.environ.get("UPDATE_README") == "1":
        README.write_text(text[: found.start(2)] + wanted + text[found.end(2) :], encoding="utf-8")
        return
    assert found.group(2) == wanted, "run UPDATE_README=1 pytest -k readme_lists_the_columns"


# -- campaigns that share people -------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_cli_create_warns_about_a_shared_audience_and_show_has_waiting(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(csv_text(), encoding="utf-8")
    assert bot.cli.main(["contacts", "import", str(path)]) == 0
    capsys.readouterr()
    create = ["campaigns", "create", "--survey", "kort", "--ends", "2099-12-31"]
    assert bot.cli.main([*create, "--audience", "target_group == 'missbruk'"]) == 0
    first = capsys.readouterr()
    assert first.err == ""
    assert bot.cli.main([*create, "--audience", "unit == 'Norr'"]) == 0
    second = capsys.readouterr()
    assert second.out.strip().isdigit()
    assert second.err.startswith(
        f"warning: 2 of the 3 people in this audience are already in campaign {first.out.strip()}"
    )
    assert bot.cli.main(["campaigns", "show", second.out.strip()]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "waiting         0" in shown


async def test_api_create_warns_about_a_shared_audience(client: Client) -> None:
    response = await client.post("/api/v1/contacts", json={"contacts": API_CONTACTS}, headers=AUTH)
    assert response.status == 200
    body = {"survey": "kort", "audience": "target_group == 'missbruk'", "ends": "2026-03-20"}
    first = await client.post("/api/v1/campaigns", json=body, headers=AUTH)
    assert first.status == 201 and (await first.json())["warnings"] == []
    second = await client.post("/api/v1/campaigns", json=body, headers=AUTH)
    assert second.status == 201
    warnings = (await second.json())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"1 of the 1 people in this audience are already in campaign {(await first.json())['id']}"
    )
    shown = await client.get(f"/api/v1/campaigns/{(await second.json())['id']}", headers=AUTH)
    assert (await shown.json())["counts"]["waiting"] == 0
