"""Shared by the staff web app's tests: a service on the aiohttp test client, users, sign-in."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from bot.app import RUNTIME
from bot.contacts_import import import_validated, validate_csv
from bot.runtime import Runtime
from bot.web.staff import accounts

Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def runtime_of(client: Client) -> Runtime:
    """The running service behind a test client."""
    runtime: Runtime = client.app[RUNTIME]
    return runtime


async def add_user(client: Client, name: str, role: str, password: str = PASSWORD) -> None:
    """A staff account, as `brukardialog users add` makes it."""
    await accounts.add_user(runtime_of(client), name, role, password, actor="test")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF field"
    return match[1]


async def sign_in(client: Client, name: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = await client.get("/staff/login")
    token = csrf_of(await page.text())
    response = await client.post(
        "/staff/login",
        data={"username": name, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    home = await client.get("/staff/")
    assert home.status == 200
    return csrf_of(await home.text())


CONTACTS_CSV = "external_ref,phone,language,unit\n" + "".join(
    f"P{i:03},+4670123{i:04},sv,{'Norr' if i % 2 else 'Syd'}\n" for i in range(1, 11)
)


async def import_contacts(client: Client, text: str = CONTACTS_CSV) -> None:
    """Contacts as the CLI imports them."""
    rt = runtime_of(client)
    validated = validate_csv(text.splitlines(keepends=True), today=rt.clock.now().date())
    await import_validated(
        rt.db, rt.service.pseudonymizer, validated, skip_invalid=False, actor="test", source="t"
    )
