"""Staff accounts and API tokens, for admins: who has which role and whether they can sign in;
add a person, give a new password (which also lifts a lockout), disable an account (its
sessions end at once) — the same operations as `brukardialog users` — and make or revoke a
staff API token (shown once; only its hash is kept). Everything through `accounts`,
audit-logged under the admin's name."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from bot.web.staff import accounts, i18n
from bot.web.staff.accounts import AccountError
from bot.web.staff.framework import ROLES, redirect, render, require, runtime, t, user
from storage.models import StaffUser


def _state(request: web.Request, account: StaffUser, now: datetime) -> str:
    state = accounts.account_state(account, now)
    if state.startswith("locked"):
        return t(request, "users.locked", until=f"{account.locked_until:%Y-%m-%d %H:%M}")
    return t(request, f"users.{state}")


async def _page(
    request: web.Request,
    *,
    error: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
    new_token: tuple[str, str] | None = None,
) -> web.StreamResponse:
    rt = runtime(request)
    now = rt.clock.now()
    people = await accounts.list_users(rt)
    api_tokens = await accounts.list_tokens(rt)
    return await render(
        request,
        "users.html",
        {
            "title": t(request, "nav.users"),
            "people": [(p, _state(request, p, now), p.disabled_at is None) for p in people],
            "roles": ROLES,
            "error": error,
            "form": form or {},
            "min_length": accounts.MIN_PASSWORD_LENGTH,
            "tokens": api_tokens,
            "configured_tokens": len(rt.settings.admin.api_tokens),
            "new_token": new_token,
        },
        status=status,
    )


@require("admin")
async def index(request: web.Request) -> web.StreamResponse:
    """GET /users: every account with its role and state, and the form to add one."""
    return await _page(request)


@require("admin")
async def add(request: web.Request) -> web.StreamResponse:
    """POST /users: add an account (the password typed twice)."""
    form = await request.post()
    name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    kept = {"name": name, "role": role}
    if role not in ROLES:
        return await _page(request, error=t(request, "users.bad_role"), form=kept, status=422)
    if password != again:
        return await _page(request, error=t(request, "users.mismatch"), form=kept, status=422)
    try:
        await accounts.add_user(runtime(request), name, role, password, actor=user(request).actor)
    except AccountError as e:
        return await _page(request, error=str(e), form=kept, status=422)
    raise redirect("/users", msg="user_added")


@require("admin")
async def disable(request: web.Request) -> web.StreamResponse:
    """POST /users/{name}/disable: the account can no longer sign in; its sessions end."""
    name = request.match_info["name"]
    if name == user(request).name:
        return await _page(request, error=t(request, "users.not_yourself"), status=422)
    try:
        await accounts.disable_user(runtime(request), name, actor=user(request).actor)
    except AccountError as e:
        return await _page(request, error=str(e), status=404)
    raise redirect("/users", msg="user_disabled")


@require("admin")
async def new_password(request: web.Request) -> web.StreamResponse:
    """POST /users/{name}/password: a new password (typed twice); lifts a lockout."""
    name = request.match_info["name"]
    form = await request.post()
    password, again = str(form.get("password", "")), str(form.get("password_again", ""))
    if password != again:
        return await _page(request, error=t(request, "users.mismatch"), status=422)
    try:
        await accounts.reset_password(runtime(request), name, password, actor=user(request).actor)
    except AccountError as e:
        return await _page(request, error=str(e), status=422)
    raise redirect("/users", msg="user_password")


@require("admin")
async def add_token(request: web.Request) -> web.StreamResponse:
    """POST /users/tokens: make an API token; the page shows it this once."""
    form = await request.post()
    name = str(form.get("name", ""))[:100]
    try:
        token = await accounts.make_token(runtime(request), name, actor=user(request).actor)
    except AccountError as e:
        return await _page(request, error=str(e), form={"token_name": name}, status=422)
    return await _page(request, new_token=(name.strip().lower(), token))


@require("admin")
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """POST /users/tokens/{name}/revoke: the token stops working at once."""
    name = request.match_info["name"]
    try:
        await accounts.revoke_token(runtime(request), name, actor=user(request).actor)
    except AccountError as e:
        return await _page(request, error=str(e), status=404)
    raise redirect("/users", msg="token_revoked")


def add_routes(app: web.Application) -> None:
    """The users page, its three actions, and making and revoking API tokens."""
    app.router.add_post("/users/tokens", add_token)
    app.router.add_post("/users/tokens/{name}/revoke", revoke_token)
    app.router.add_get("/users", index)
    app.router.add_post("/users", add)
    app.router.add_post("/users/{name}/disable", disable)
    app.router.add_post("/users/{name}/password", new_password)


i18n.add_messages(
    {
        "sv": {
            "users.intro": (
                "Konton för personalen. Samma sak görs med kommandot brukardialog users."
            ),
            "users.name": "Namn",
            "users.role": "Roll",
            "users.state": "Läge",
            "users.active": "aktiv",
            "users.disabled": "avstängd",
            "users.locked": "låst till {until} UTC",
            "users.add": "Lägg till en person",
            "users.password": "Lösenord (minst {n} tecken)",
            "users.password_again": "Samma lösenord igen",
            "users.add_button": "Lägg till",
            "users.disable": "Stäng av",
            "users.new_password": "Nytt lösenord",
            "users.new_password_button": "Byt lösenord",
            "users.bad_role": "Välj en roll: viewer, analyst eller admin.",
            "users.mismatch": "Lösenorden är inte lika.",
            "users.not_yourself": "Du kan inte stänga av ditt eget konto.",
            "tokens.title": "API-nycklar",
            "tokens.intro": (
                "Nycklar för verksamhetssystem som använder personal-API:t (/api/v1). En ny "
                "nyckel visas en gång; databasen sparar bara ett fingeravtryck av den. "
                "{n} nycklar finns dessutom i konfigurationen."
            ),
            "tokens.name": "Namn på nyckeln (t.ex. verksamhetssystem)",
            "tokens.made_by": "Skapad av",
            "tokens.made": "Skapad",
            "tokens.revoked": "Återkallad {when}",
            "tokens.active": "aktiv",
            "tokens.add": "Skapa nyckel",
            "tokens.revoke": "Återkalla",
            "tokens.new": "Den nya nyckeln {name}. Kopiera den nu, den visas inte igen:",
            "tokens.none": "Inga nycklar skapade här.",
            "flash.token_revoked": "Nyckeln är återkallad.",
            "flash.user_added": "Personen är tillagd.",
            "flash.user_disabled": "Kontot är avstängt och dess inloggningar avslutade.",
            "flash.user_password": "Lösenordet är bytt.",
        },
        "en": {
            "users.intro": ("Staff accounts. The command brukardialog users does the same."),
            "users.name": "Name",
            "users.role": "Role",
            "users.state": "State",
            "users.active": "active",
            "users.disabled": "disabled",
            "users.locked": "locked until {until} UTC",
            "users.add": "Add a person",
            "users.password": "Password (at least {n} characters)",
            "users.password_again": "The same password again",
            "users.add_button": "Add",
            "users.disable": "Disable",
            "users.new_password": "New password",
            "users.new_password_button": "Change password",
            "users.bad_role": "Choose a role: viewer, analyst or admin.",
            "users.mismatch": "The passwords differ.",
            "users.not_yourself": "You cannot disable your own account.",
            "tokens.title": "API tokens",
            "tokens.intro": (
                "Tokens for case systems that use the staff API (/api/v1). A new token is shown "
                "once; the database keeps only a fingerprint of it. {n} more tokens are in the "
                "configuration."
            ),
            "tokens.name": "The token's name (e.g. case-system)",
            "tokens.made_by": "Made by",
            "tokens.made": "Made",
            "tokens.revoked": "Revoked {when}",
            "tokens.active": "active",
            "tokens.add": "Make a token",
            "tokens.revoke": "Revoke",
            "tokens.new": "The new token {name}. Copy it now, it is not shown again:",
            "tokens.none": "No tokens made here.",
            "flash.token_revoked": "The token is revoked.",
            "flash.user_added": "The person is added.",
            "flash.user_disabled": "The account is disabled and its sessions ended.",
            "flash.user_password": "The password is changed.",
        },
    }
)
