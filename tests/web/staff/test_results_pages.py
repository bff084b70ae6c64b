"""The results page over HTTP, for each role: aggregates for everybody signed in, open answers
and downloads for analysts and admins only (and logged), clear pages for bad input."""

from __future__ import annotations

import io
import zipfile

import pytest
from openpyxl import load_workbook

from storage import repo_audit
from tests.results_integration.conftest import make_campaign, people
from tests.web.staff.helpers import Client, add_user, runtime_of, sign_in

PHONE = "070-123 45 67"


async def _campaign(client: Client, *, status: str = "closed") -> int:
    rt = runtime_of(client)
    answers = {"hjalp": "ja", "bemotande": "bra", "ovrigt": f"Ring mig på {PHONE}"}
    return await make_campaign(
        rt,
        people(7, gender="kvinna", answers=answers) + people(2, gender="man"),
        status=status,
    )


async def _as(client: Client, role: str) -> None:
    await add_user(client, role, role)
    await sign_in(client, role)


async def _audit_actions(client: Client) -> list[tuple[str, str]]:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        return [(e.actor, e.action) for e in await repo_audit.recent(s)]


async def test_viewer_reads_aggregates_but_not_answers_or_files(client: Client) -> None:
    campaign = await _campaign(client)
    await _as(client, "viewer")
    index = await client.get("/staff/results")
    assert index.status == 200 and "Våren 2026" in await index.text()
    page = await client.get(f"/staff/campaigns/{campaign}/results?breakdown=gender")
    html = await page.text()
    assert page.status == 200
    assert 'role="img"' in html and "<title id=" in html
    assert "Har du fått hjälp?" in html and "100 %" in html
    # 2 men are below k (5): hidden, with the other group hidden too (7 would give 2 away).
    assert "dold (färre än 5)" in html
    assert PHONE not in html and "Visa fritextsvar" not in html
    assert "/download/" not in html
    for path in (
        f"/staff/campaigns/{campaign}/results?open=1",
        f"/staff/campaigns/{campaign}/results/download/csv",
        f"/staff/campaigns/{campaign}/results/download/floip",
    ):
        refused = await client.get(path)
        assert refused.status == 403, path
    assert not [a for a in await _audit_actions(client) if a[1].startswith("results.")]


async def test_analyst_reads_masked_open_answers_and_downloads_logged(client: Client) -> None:
    campaign = await _campaign(client)
    await _as(client, "analyst")
    page = await client.get(f"/staff/campaigns/{campaign}/results?lang=en")
    html = await page.text()
    assert "Have you been helped?" in html and "Show open answers" not in html  # sv UI
    assert "Visa fritextsvar" in html
    opened = await client.get(f"/staff/campaigns/{campaign}/results?open=1")
    text = await opened.text()
    assert "Ring mig på" in text and PHONE not in text
    csv = await client.get(f"/staff/campaigns/{campaign}/results/download/csv")
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in csv.headers["Content-Disposition"]
    assert PHONE not in await csv.text()
    xlsx = await client.get(f"/staff/campaigns/{campaign}/results/download/xlsx")
    assert xlsx.status == 200
    assert load_workbook(io.BytesIO(await xlsx.read())).sheetnames
    floip = await client.get(f"/staff/campaigns/{campaign}/results/download/floip")
    assert floip.status == 200
    names = zipfile.ZipFile(io.BytesIO(await floip.read())).namelist()
    assert f"campaign-{campaign}/datapackage.json" in names
    actions = await _audit_actions(client)
    assert ("staff:analyst", "results.open_answers") in actions
    assert actions.count(("staff:analyst", "results.export")) == 3


async def test_open_campaign_downloads_are_preliminary(client: Client) -> None:
    await _as(client, "admin")
    campaign = await _campaign(client, status="running")
    page = await (await client.get(f"/staff/campaigns/{campaign}/results")).text()
    assert "preliminära" in page and "partial=1" in page
    refused = await client.get(f"/staff/campaigns/{campaign}/results/download/csv")
    assert refused.status == 400 and "preliminär" in await refused.text()
    partial = await client.get(f"/staff/campaigns/{campaign}/results/download/csv?partial=1")
    assert partial.status == 200


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/staff/campaigns/999/results", 404, "ingen kampanj med nummer 999"),
        ("/staff/campaigns/abc/results", 404, "ingen kampanj med nummer abc"),
        ("/staff/campaigns/999/results/download/csv", 404, "ingen kampanj med nummer 999"),
        ("/staff/campaigns/{id}/results/download/pdf", 400, "formatet pdf"),
        ("/staff/campaigns/{id}/results?lang=de", 200, "finns inte på språket de"),
        ("/staff/campaigns/{id}/results?breakdown=shoe", 200, "dela upp efter shoe"),
        ("/staff/campaigns/{id}/results/download/csv?lang=de", 400, "has no texts in"),
    ],
)
async def test_bad_input_gets_a_clear_page(
    client: Client, path: str, status: int, says: str
) -> None:
    campaign = await _campaign(client)
    await _as(client, "analyst")
    response = await client.get(path.format(id=campaign))
    assert response.status == status
    text = await response.text()
    assert says in text and "Traceback" not in text


async def test_results_need_a_session(client: Client) -> None:
    campaign = await _campaign(client)
    response = await client.get(f"/staff/campaigns/{campaign}/results", allow_redirects=False)
    assert response.status == 303 and "/staff/login" in response.headers["Location"]
