"""Personal links for staff: `contacts links` and `GET /api/v1/contacts/{external_ref}/link`."""

from __future__ import annotations

import csv
import dataclasses
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import bot.cli
from bot.app import create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import TelegramConfig
from bot.contacts import links as contact_links
from storage import repo_contacts
from tests.campaigns.helpers import (
    ROWS,
    START,
    TOKEN,
    campaign_runtime,
    contact_id,
    csv_text,
    import_csv,
    settings_for,
    webchat_token,
)
from tests.conftest import run_in_thread
from tests.fakes.telegram_server import (
    BOT_TOKEN,
    BOT_USERNAME,
    FakeTelegram,
    fake_telegram,  # noqa: F401  (pytest fixture)
)

Client = TestClient[web.Request, web.Application]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = "https://enkat.example.se"


def imported(database_url: str, *, opted_out: str | None = None) -> dict[str, str]:
    """Import the five test contacts; their web chat tokens by external_ref."""

    async def work() -> dict[str, str]:
        async with campaign_runtime(database_url) as runtime:
            await import_csv(runtime, csv_text())
            if opted_out:
                async with runtime.db.transaction() as s:
                    await repo_contacts.set_opted_out(
                        s, await contact_id(runtime, opted_out), START
                    )
            return {ref: await webchat_token(runtime, ref) for ref in ("P1", "P2", "P3", "P4")}

    return run_in_thread(work)


async def test_webchat_tokens_reads_each_contacts_token(database_url: str) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text())
        ids = {ref: await contact_id(runtime, ref) for ref in ("P1", "P2", "P5")}
        key = runtime.service.pseudonymizer.address_key
        async with runtime.db.transaction(read_only=True) as s:
            tokens = await repo_contacts.webchat_tokens(s, [*ids.values(), 999_999])
            assert sorted(tokens) == sorted(ids.values())
            for cid, token in tokens.items():
                owner = await repo_contacts.find_by_address(s, "webchat", key("webchat", token))
                assert owner is not None and owner.id == cid, "the token the web chat knows"


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(database_url)
    monkeypatch.delenv("BRUKARDIALOG_CONFIG", raising=False)
    monkeypatch.setenv("BRUKARDIALOG__DATABASE__URL", database_url)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY", settings.privacy.pseudonym_key)
    monkeypatch.setenv("BRUKARDIALOG__PRIVACY__ADDRESS_KEY", settings.privacy.address_key)
    monkeypatch.setenv("BRUKARDIALOG__SURVEYS__PATHS", str(settings.surveys.paths[0]))
    monkeypatch.setenv("BRUKARDIALOG__SERVER__PUBLIC_URL", PUBLIC)
    monkeypatch.setenv("BRUKARDIALOG__TELEGRAM__BOT_USERNAME", "@malmo_enkat_bot")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.usefixtures("cli_env")
def test_cli_writes_each_persons_links(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = imported(database_url, opted_out="P2")
    out = tmp_path / "links.csv"
    assert bot.cli.main(["contacts", "links", "--out", str(out)]) == 0
    rows = read_csv(out)
    assert [r["external_ref"] for r in rows] == ["P1", "P3", "P4", "P5"], "P2 opted out"
    p1 = rows[0]
    assert p1 == {
        "external_ref": "P1",
        "language": "sv",
        "webchat_link": f"{PUBLIC}/chat/{tokens['P1']}",
        "telegram_link": f"https://t.me/malmo_enkat_bot?start={tokens['P1']}",
    }
    assert stat.S_IMODE(out.stat().st_mode) == 0o600, "links let anyone answer as the person"
    assert "wrote 4 personal links" in capsys.readouterr().err

    assert bot.cli.main(["contacts", "links", "--audience", "unit == 'Norr'", "--out", "-"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "external_ref,language,webchat_link,telegram_link"
    assert [line.split(",")[0] for line in lines[1:]] == ["P1", "P3", "P4"]


@pytest.mark.usefixtures("cli_env")
def test_cli_names_a_wrong_audience(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(database_url)
    out = tmp_path / "links.csv"
    assert bot.cli.main(["contacts", "links", "--audience", "shoe == 1", "--out", str(out)]) == 1
    assert "error: audience: unknown attribute 'shoe'" in capsys.readouterr().err
    assert not out.exists()


async def test_telegram_links_ask_telegram_for_the_bot(
    database_url: str,
    fake_telegram: FakeTelegram,  # noqa: F811
) -> None:
    async with campaign_runtime(database_url) as runtime:
        await import_csv(runtime, csv_text(ROWS[:1]))
        runtime.settings = dataclasses.replace(
            runtime.settings,
            telegram=TelegramConfig(
                bot_token=BOT_TOKEN,
                webhook_secret="secret-0123456789abcdef",
                api_base_url=fake_telegram.api_base_url,
            ),
        )
        found = await contact_links.audience_links(runtime, None, actor="test")
        token = await webchat_token(runtime, "P1")
    assert [link.telegram_link for link in found.links] == [
        f"https://t.me/{BOT_USERNAME}?start={token}"
    ]
    assert len(fake_telegram.calls_to("getMe")) == 1


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    settings = settings_for(database_url)
    settings = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, public_url=PUBLIC)
    )
    app = create_app(
        settings,
        clock=FixedClock(START),
        channels={"webchat": WebChatChannel()},
        background=False,
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_api_gives_one_persons_link(client: Client) -> None:
    response = await client.post(
        "/api/v1/contacts",
        json={"contacts": [{"external_ref": "A1", "language": "ar", "phone": "0701234561"}]},
        headers=AUTH,
    )
    assert response.status == 200
    assert (await client.get("/api/v1/contacts/A1/link")).status == 401
    response = await client.get("/api/v1/contacts/A1/link", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert body["external_ref"] == "A1" and body["language"] == "ar"
    assert body["telegram_link"] is None, "Telegram is off and no bot is configured"
    link: str = body["webchat_link"]
    assert link.startswith(f"{PUBLIC}/chat/")
    page = await client.get(link.removeprefix(PUBLIC))
    assert page.status == 200, "the link opens the person's chat"

    missing = await client.get("/api/v1/contacts/nobody/link", headers=AUTH)
    assert missing.status == 404
    assert "nobody" in (await missing.json())["error"]
