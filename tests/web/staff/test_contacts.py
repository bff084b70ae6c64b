"""The contact pages: search, CSV upload (the CLI's errors), a contact, links and letters."""

from __future__ import annotations

import asyncio

from aiohttp import FormData, web
from sqlalchemy import func, select

from bot.web.staff.contacts_page import JOBS_KEY, ImportJob
from storage.models import AuditEntry, Contact
from tests.web.staff.helpers import (
    CONTACTS_CSV,
    Client,
    add_user,
    csrf_of,
    import_contacts,
    runtime_of,
    sign_in,
)


def _staff_app(client: Client) -> web.Application:
    for resource in client.app.router.resources():
        app = getattr(resource, "_app", None)
        if isinstance(app, web.Application) and JOBS_KEY in app:
            return app
    raise AssertionError("no staff app")


async def _upload(client: Client, csrf: str, text: bytes, *, skip: bool = False) -> str:
    form = FormData()
    form.add_field("csrf_token", csrf)
    if skip:
        form.add_field("skip_invalid", "1")
    form.add_field("file", text, filename="lista.csv", content_type="text/csv")
    response = await client.post("/staff/contacts/upload", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    jobs: dict[str, ImportJob] = _staff_app(client)[JOBS_KEY]
    job = jobs[location.rsplit("/", 1)[1]]
    if job.task is not None:
        await asyncio.wait_for(job.task, 30)
    page = await client.get(location)
    return await page.text()


async def _count(client: Client) -> int:
    async with runtime_of(client).db.transaction(read_only=True) as s:
        return int(await s.scalar(select(func.count()).select_from(Contact)) or 0)


async def test_upload_search_and_a_contact(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    text = await _upload(client, csrf, CONTACTS_CSV.encode())
    assert "Klart: 10 nya, 0 uppdaterade" in text
    found = await client.get("/staff/contacts?unit=Norr")
    body = await found.text()
    assert "5 kontakter matchar" in body and "P001" in body and "P002" not in body
    one = await client.get("/staff/contacts?ref=P00")
    assert "9 kontakter matchar" in await one.text()
    page = await client.get("/staff/contacts/1")
    body = await page.text()
    assert "+46" in body and "+4670123" not in body and "/chat/" in body
    async with runtime_of(client).db.transaction(read_only=True) as s:
        actors = list(
            await s.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.action.in_(["contacts.import", "contacts.link"])
                )
            )
        )
    assert actors == ["staff:anna", "staff:anna"]


async def test_bad_rows_and_unreadable_files(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    bad = b"external_ref,phone\nA1,+46701234567\nA2,12\n"
    text = await _upload(client, csrf, bad)
    assert "Inget importerades" in text and "line 3:" in text
    assert await _count(client) == 0
    skipped = await _upload(client, csrf, bad, skip=True)
    assert "1 nya" in skipped and "line 3:" in skipped
    unreadable = await _upload(client, csrf, "external_ref\nÅsa\n".encode("latin-1"))
    assert "UTF-8" in unreadable and "kunde inte läsas" in unreadable
    wrong_header = await _upload(client, csrf, b"namn,telefon\nx,y\n")
    assert "unknown column" in wrong_header
    assert await _count(client) == 1


async def test_upload_without_csrf_changes_nothing(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    await sign_in(client, "anna")
    form = FormData()
    form.add_field("file", CONTACTS_CSV.encode(), filename="l.csv", content_type="text/csv")
    response = await client.post("/staff/contacts/upload", data=form)
    assert response.status == 403
    assert await _count(client) == 0


async def test_viewer_sees_no_contacts(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "vera", "viewer")
    await sign_in(client, "vera")
    for path in ("/staff/contacts", "/staff/contacts/1", "/staff/contacts/links.csv"):
        assert (await client.get(path)).status == 403


async def test_links_csv_and_letters(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    await sign_in(client, "anna")
    csv_response = await client.get("/staff/contacts/links.csv?audience=unit == 'Norr'")
    assert csv_response.status == 200
    lines = (await csv_response.text()).lstrip("\ufeff").strip().splitlines()
    assert lines[0] == "external_ref,language,webchat_link,telegram_link" and len(lines) == 6
    letters = await client.get("/staff/contacts/letters?audience=unit == 'Norr'")
    body = await letters.text()
    assert body.count('class="letter"') == 5 and body.count('<svg role="img"') == 5
    wrong = await client.get("/staff/contacts/letters?audience=unit = 'Norr'")
    assert wrong.status == 422 and "tecken 6" in await wrong.text()
    form = await client.get("/staff/contacts/links")
    assert csrf_of(await form.text())


async def test_an_admin_exports_and_erases_a_person_from_their_page(client: Client) -> None:
    await import_contacts(client)
    await add_user(client, "anna", "analyst")
    await add_user(client, "ada", "admin")
    csrf = await sign_in(client, "anna")
    async with runtime_of(client).db.transaction(read_only=True) as s:
        cid = await s.scalar(select(Contact.id).where(Contact.external_ref == "P001"))
    page = await (await client.get(f"/staff/contacts/{cid}")).text()
    assert "Radera personen" not in page  # an analyst does not see the buttons...
    assert (
        await client.get(f"/staff/contacts/{cid}/export.json")
    ).status == 403  # ...nor uses them
    refused = await client.post(f"/staff/contacts/{cid}/erase", data={"csrf_token": csrf})
    assert refused.status == 403
    await client.post("/staff/logout", data={"csrf_token": csrf})

    csrf = await sign_in(client, "ada")
    page = await (await client.get(f"/staff/contacts/{cid}")).text()
    assert "Ladda ner registerutdrag" in page and "Radera personen" in page
    export = await client.get(f"/staff/contacts/{cid}/export.json")
    assert export.status == 200 and "attachment" in export.headers["Content-Disposition"]
    data = await export.json()
    assert "+46701230001" in export_text(data)  # the person's own number, readable
    confirm = await (await client.get(f"/staff/contacts/{cid}/erase")).text()
    assert "Radera för gott" in confirm
    # Without the CSRF token nothing is erased.
    assert (await client.post(f"/staff/contacts/{cid}/erase", data={})).status == 403
    assert await _count(client) == 10
    done = await client.post(
        f"/staff/contacts/{cid}/erase", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert done.status == 303 and "/staff/contacts" in done.headers["Location"]
    assert await _count(client) == 9
    assert (await client.get(f"/staff/contacts/{cid}")).status == 404
    async with runtime_of(client).db.transaction(read_only=True) as s:
        entries = list(
            await s.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).where(
                    AuditEntry.action.in_(["contacts.export", "contacts.erase"])
                )
            )
        )
    assert [(a, act) for a, act, _ in entries] == [
        ("staff:ada", "contacts.export"),
        ("staff:ada", "contacts.erase"),
    ]
    assert all("P001" not in target for _, _, target in entries)


def export_text(data: object) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)
