"""Sign-in, sessions, CSRF and roles of the staff web app (aiohttp test client, no browser)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.web.staff import accounts
from storage.models import AuditEntry, StaffSession
from tests.web.staff.helpers import PASSWORD, Client, add_user, csrf_of, runtime_of, sign_in


async def test_no_page_without_a_session(client: Client) -> None:
    response = await client.get("/staff/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/staff/login?next=")
    page = await client.get("/staff/campaigns")
    assert page.status == 200 and 'name="password"' in await page.text()
    posted = await client.post("/staff/logout", data={"csrf_token": "x"})
    assert posted.status == 403


async def test_sign_in_and_out(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    csrf = await sign_in(client, "anna")
    home = await client.get("/staff/")
    text = await home.text()
    assert "anna" in text and home.headers["Cache-Control"] == "no-store"
    out = await client.post("/staff/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303
    again = await client.get("/staff/", allow_redirects=False)
    assert again.status == 303
    async with runtime_of(client).db.transaction(read_only=True) as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "staff:anna"))
        )
    assert "staff.sign_in" in actions and "staff.sign_out" in actions


async def test_wrong_name_and_wrong_password_say_the_same(client: Client) -> None:
    await add_user(client, "anna", "viewer")
    texts = []
    for name, password in (("anna", "wrong password!"), ("nobody", PASSWORD)):
        page = await client.get("/staff/login")
        response = await client.post(
            "/staff/login",
            data={"username": name, "password": password, "csrf_token": csrf_of(await page.text())},
        )
        assert response.status == 401
        text = await response.text()
        texts.append(text.replace(name, "NAME"))
        assert "Traceback" not in text
    assert texts[0] == texts[1]


async def test_lockout_after_five_failures(client: Client, clock: FixedClock) -> None:
    await add_user(client, "anna", "viewer")
    page = await client.get("/staff/login")
    token = csrf_of(await page.text())
    for _ in range(5):
        r = await client.post(
            "/staff/login",
            data={"username": "anna", "password": "nope nope nope", "csrf_token": token},
        )
        assert r.status == 401
    # Locked: even the right password fails, with the same message.
    r = await client.post(
        "/staff/login", data={"username": "anna", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status == 401
    clock.advance(accounts.LOCKOUT + timedelta(seconds=1))
    await sign_in(client, "anna")


async def test_login_without_csrf_is_refused(client: Client) -> None:
    await add_user(client, "anna", "viewer")
    r = await client.post("/staff/login", data={"username": "anna", "password": PASSWORD})
    assert r.status == 403
    async with runtime_of(client).db.transaction(read_only=True) as s:
        assert await s.scalar(select(func.count()).select_from(StaffSession)) == 0


async def test_idle_and_lifetime_end_sessions(client: Client, clock: FixedClock) -> None:
    await add_user(client, "anna", "viewer")
    await sign_in(client, "anna")
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/staff/", allow_redirects=False)).status == 200
    clock.advance(timedelta(minutes=31))
    expired = await client.get("/staff/", allow_redirects=False)
    assert expired.status == 303 and "expired=1" in expired.headers["Location"]
    await sign_in(client, "anna")
    for _ in range(13):
        clock.advance(timedelta(minutes=59))
        if (await client.get("/staff/", allow_redirects=False)).status != 200:
            break
    assert (await client.get("/staff/", allow_redirects=False)).status == 303


async def test_disabling_a_user_ends_their_session(client: Client) -> None:
    await add_user(client, "anna", "analyst")
    await sign_in(client, "anna")
    await accounts.disable_user(runtime_of(client), "anna", actor="test")
    assert (await client.get("/staff/", allow_redirects=False)).status == 303
    page = await client.get("/staff/login")
    r = await client.post(
        "/staff/login",
        data={"username": "anna", "password": PASSWORD, "csrf_token": csrf_of(await page.text())},
    )
    assert r.status == 401


async def test_unknown_page_is_a_friendly_404(client: Client) -> None:
    await add_user(client, "anna", "viewer")
    await sign_in(client, "anna")
    r = await client.get("/staff/no-such-page")
    assert r.status == 404
    text = await r.text()
    assert "Sidan finns inte" in text and "Traceback" not in text


async def test_language_switch(client: Client) -> None:
    r = await client.get("/staff/language/en?next=/staff/login")
    assert r.status == 200 and "Sign in" in await r.text()
    r = await client.get("/staff/language/sv?next=https://evil.example/")
    assert r.url.path == "/staff/login" or r.url.path == "/staff/"


@pytest.mark.parametrize("public_url", ["https://enkat.example.se"])
async def test_cookie_is_secure_over_https(client: Client) -> None:
    await add_user(client, "anna", "viewer")
    page = await client.get("/staff/login")
    login_cookie = page.cookies["bd_staff_login"]
    assert "Secure" in page.headers["Set-Cookie"]
    token = csrf_of(await page.text())
    response = await client.post(
        "/staff/login",
        data={"username": "anna", "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": f"bd_staff_login={login_cookie.value}"},
        allow_redirects=False,
    )
    assert response.status == 303
    header = response.headers["Set-Cookie"]
    assert "bd_staff=" in header and "Secure" in header and "HttpOnly" in header
    assert "SameSite=Lax" in header
