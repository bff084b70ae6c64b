"""The users page: an admin adds people, gives new passwords and disables accounts in the
browser, as `brukardialog users` does; nobody else sees or uses it."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from bot.web.staff import accounts
from storage.models import ApiToken, AuditEntry
from tests.web.staff.helpers import PASSWORD, Client, add_user, runtime_of, sign_in

NEW = "another long password"


async def test_an_admin_manages_the_accounts(client: Client) -> None:
    await add_user(client, "ada", "admin")
    csrf = await sign_in(client, "ada")
    page = await (await client.get("/staff/users")).text()
    assert "Användare" in page and "ada" in page
    # Added with the password typed twice; a mismatch or an unknown role changes nothing.
    form = {"csrf_token": csrf, "name": "bo", "role": "analyst", "password": NEW}
    mismatch = await client.post("/staff/users", data={**form, "password_again": "other"})
    assert mismatch.status == 422 and "Lösenorden är inte lika" in await mismatch.text()
    bad_role = await client.post(
        "/staff/users", data={**form, "role": "root", "password_again": NEW}
    )
    assert bad_role.status == 422
    assert [u.name for u in await accounts.list_users(runtime_of(client))] == ["ada"]
    added = await client.post(
        "/staff/users", data={**form, "password_again": NEW}, allow_redirects=False
    )
    assert added.status == 303
    people = {u.name: u.role for u in await accounts.list_users(runtime_of(client))}
    assert people == {"ada": "admin", "bo": "analyst"}
    twice = await client.post("/staff/users", data={**form, "password_again": NEW})
    assert twice.status == 422 and "already exists" in await twice.text()

    # A new password; then disabled (not oneself).
    again = {"csrf_token": csrf, "password": NEW + "!", "password_again": NEW + "!"}
    changed = await client.post("/staff/users/bo/password", data=again, allow_redirects=False)
    assert changed.status == 303
    self_off = await client.post("/staff/users/ada/disable", data={"csrf_token": csrf})
    assert self_off.status == 422
    off = await client.post(
        "/staff/users/bo/disable", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert off.status == 303
    missing = await client.post("/staff/users/nobody/disable", data={"csrf_token": csrf})
    assert missing.status == 404
    page = await (await client.get("/staff/users")).text()
    assert "avstängd" in page
    # Without the CSRF token nothing happens.
    no_token = {k: v for k, v in form.items() if k != "csrf_token"}
    refused = await client.post(
        "/staff/users", data={**no_token, "name": "cy", "password_again": NEW}
    )
    assert refused.status == 403
    assert "cy" not in {u.name for u in await accounts.list_users(runtime_of(client))}
    async with runtime_of(client).db.transaction(read_only=True) as s:
        done = list(
            await s.execute(
                select(AuditEntry.actor, AuditEntry.action).where(
                    AuditEntry.action.like("staff.user_%")
                )
            )
        )
    assert ("staff:ada", "staff.user_add") in done
    assert ("staff:ada", "staff.user_reset_password") in done
    assert ("staff:ada", "staff.user_disable") in done


async def test_only_admins_see_and_use_the_users_page(client: Client) -> None:
    await add_user(client, "bo", "analyst")
    csrf = await sign_in(client, "bo", PASSWORD)
    overview = await (await client.get("/staff/")).text()
    assert "/staff/users" not in overview
    assert (await client.get("/staff/users")).status == 403
    add = {"csrf_token": csrf, "name": "x", "role": "admin", "password": NEW}
    assert (await client.post("/staff/users", data={**add, "password_again": NEW})).status == 403
    assert {u.name for u in await accounts.list_users(runtime_of(client))} == {"bo"}


async def test_an_admin_makes_an_api_token_that_works_until_revoked(client: Client) -> None:
    await add_user(client, "ada", "admin")
    csrf = await sign_in(client, "ada")
    bad = await client.post("/staff/users/tokens", data={"csrf_token": csrf, "name": "A B"})
    assert bad.status == 422
    made = await client.post(
        "/staff/users/tokens", data={"csrf_token": csrf, "name": "verksamhetssystem"}
    )
    page = await made.text()
    assert made.status == 200 and "visas inte igen" in page
    match = re.search(r'<code class="mono" id="new-token">([^<]+)</code>', page)
    assert match
    token = match[1]
    # Only its hash is stored, and the page never shows it again.
    async with runtime_of(client).db.transaction(read_only=True) as s:
        stored = list(await s.scalars(select(ApiToken.token_hash)))
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in await (await client.get("/staff/users")).text()

    headers = {"Authorization": f"Bearer {token}"}
    listed = await client.get("/api/v1/campaigns", headers=headers)
    assert listed.status == 200
    wrong = await client.get("/api/v1/campaigns", headers={"Authorization": "Bearer x" + token})
    assert wrong.status == 401
    revoked = await client.post(
        "/staff/users/tokens/verksamhetssystem/revoke",
        data={"csrf_token": csrf},
        allow_redirects=False,
    )
    assert revoked.status == 303
    assert (await client.get("/api/v1/campaigns", headers=headers)).status == 401
    again = await client.post(
        "/staff/users/tokens/verksamhetssystem/revoke", data={"csrf_token": csrf}
    )
    assert again.status == 404
    async with runtime_of(client).db.transaction(read_only=True) as s:
        actions = list(
            await s.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("staff.token_%"))
            )
        )
    assert actions == ["staff.token_add", "staff.token_revoke"]
