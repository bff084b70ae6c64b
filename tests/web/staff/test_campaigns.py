"""The campaign pages: create (live count, errors at the token), detail, pause/resume/close."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.models import AuditEntry, Campaign
from tests.web.staff.helpers import Client, add_user, import_contacts, runtime_of, sign_in

FORM = {
    "survey": "nojdhet",
    "name": "Våren",
    "audience": "unit == 'Norr'",
    "channels": "webchat",
    "ends": "30d",
    "reminders": "3d",
    "feedback_delay": "3d",
    "feedback_to": "respondents",
}


async def _campaigns(client: Client) -> int:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(Campaign)) or 0)


async def test_create_a_campaign(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    count = await client.post(
        "/staff/campaigns/audience-count",
        data={"audience": "unit == 'Norr'"},
        headers={"X-CSRF-Token": csrf},
    )
    assert (await count.json())["count"] == 5
    form = await client.get("/staff/campaigns/new")
    assert form.status == 200
    created = await client.post("/staff/campaigns/new", data={**FORM, "csrf_token": csrf})
    assert created.status == 200 and created.url.path == "/staff/campaigns/1"
    text = await created.text()
    assert "Kampanjen är skapad" in text and "Våren" in text
    async with runtime_of(client).db.transaction(read_only=True) as s:
        actors = list(
            await s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "campaign.create"))
        )
    assert actors == ["staff:anna"]
    live = await client.get("/staff/campaigns/1.json")
    assert (await live.json())["rate"] == "–"


async def test_audience_errors_are_shown_at_the_token(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    count = await client.post(
        "/staff/campaigns/audience-count",
        data={"audience": "unit = 'Norr'"},
        headers={"X-CSRF-Token": csrf},
    )
    data = await count.json()
    assert data["error"] and data["pointer"].endswith("\n     ^")
    page = await client.post(
        "/staff/campaigns/new", data={**FORM, "audience": "unit = 'Norr'", "csrf_token": csrf}
    )
    assert page.status == 422
    assert "tecken 6" in await page.text()
    nobody = await client.post(
        "/staff/campaigns/new", data={**FORM, "audience": "unit == 'Väst'", "csrf_token": csrf}
    )
    assert nobody.status == 422 and "matchar ingen" in await nobody.text()
    assert await _campaigns(client) == 0


async def test_viewer_cannot_create_or_pause(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    await add_user(client, "vera", "viewer")
    csrf = await sign_in(client, "anna")
    await client.post("/staff/campaigns/new", data={**FORM, "csrf_token": csrf})
    await client.post("/staff/logout", data={"csrf_token": csrf})
    csrf = await sign_in(client, "vera")
    assert (await client.get("/staff/campaigns/1")).status == 200
    refused = await client.post("/staff/campaigns/new", data={**FORM, "csrf_token": csrf})
    assert refused.status == 403
    pause = await client.post("/staff/campaigns/1/pause", data={"csrf_token": csrf})
    assert pause.status == 403
    assert (await client.get("/staff/campaigns/1/pause")).status == 403
    assert await _campaigns(client) == 1
    async with runtime_of(client).db.transaction(read_only=True) as s:
        assert (await s.get(Campaign, 1)).status == "scheduled"  # type: ignore[union-attr]


async def test_pause_resume_close_with_confirmation(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    await client.post("/staff/campaigns/new", data={**FORM, "csrf_token": csrf})
    confirm = await client.get("/staff/campaigns/1/pause")
    assert confirm.status == 200 and "Pausa Våren?" in await confirm.text()
    no_token = await client.post("/staff/campaigns/1/pause")
    assert no_token.status == 403
    async with runtime_of(client).db.transaction(read_only=True) as s:
        assert (await s.get(Campaign, 1)).status == "scheduled"  # type: ignore[union-attr]
    paused = await client.post("/staff/campaigns/1/pause", data={"csrf_token": csrf})
    assert "Kampanjen är pausad" in await paused.text()
    resumed = await client.post("/staff/campaigns/1/resume", data={"csrf_token": csrf})
    assert "återupptagen" in await resumed.text()
    closed = await client.post("/staff/campaigns/1/close", data={"csrf_token": csrf})
    assert "Kampanjen är stängd" in await closed.text()
    again = await client.post("/staff/campaigns/1/pause", data={"csrf_token": csrf})
    assert "Det går inte just nu" in await again.text()


async def test_a_campaign_that_does_not_exist(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    for path in ("/staff/campaigns/99", "/staff/campaigns/abc", "/staff/campaigns/99/pause"):
        r = await client.get(path)
        assert r.status == 404 and "Sidan finns inte" in await r.text()
    r = await client.post("/staff/campaigns/99/close", data={"csrf_token": csrf})
    assert r.status == 404
