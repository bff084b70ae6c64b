"""Staff accounts: argon2 password hashes, sign-in with a lockout, sessions, and the account
changes the `users` commands make. Every change is written to the audit log."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.runtime import Runtime
from storage import repo_audit, repo_staff
from storage.models import ApiToken, StaffUser

MAX_FAILURES = 5
"""Failed sign-ins in a row after which the account waits LOCKOUT."""
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 100

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
"""Checked against when the name is unknown, so timing does not tell which names exist."""


class AccountError(ValueError):
    """A user command that cannot be carried out; the message says why."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie value and the person."""

    session_id: str
    csrf_token: str
    name: str
    role: str


def hash_password(password: str) -> str:
    """An argon2id hash of the password (PHC string)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    """A user name as stored: trimmed, 1-100 printable characters without spaces."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise AccountError(f"a user name is 1-{MAX_NAME_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in name):
        raise AccountError("a user name may not contain spaces or control characters")
    return name


def check_password(password: str) -> str:
    """Refuse passwords that are too short (or absurdly long)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the password may be at most {MAX_PASSWORD_LENGTH} characters")
    return password


async def sign_in(runtime: Runtime, name: str, password: str) -> SignedIn | None:
    """A new session if the name and password match an enabled account that is not locked;
    None otherwise, whichever was wrong. The MAX_FAILURES-th failure in a row locks the account
    for LOCKOUT."""
    now = runtime.clock.now()
    async with runtime.db.transaction(read_only=True) as s:
        account = await repo_staff.get_user(s, name.strip()) if name.strip() else None
    if account is None or len(password) > MAX_PASSWORD_LENGTH:
        await asyncio.to_thread(verify_password, _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        return None
    locked = account.locked_until is not None and account.locked_until > now
    ok = await asyncio.to_thread(verify_password, account.password_hash, password)
    settings = runtime.settings.staff
    async with runtime.db.transaction() as s:
        account = await repo_staff.get_user(s, account.name, for_update=True)
        if account is None:
            return None
        if locked or account.disabled_at is not None:
            await repo_audit.log(
                s,
                f"staff:{account.name}",
                "staff.sign_in_refused",
                f"staff_user:{account.name}",
                {"locked": locked, "disabled": account.disabled_at is not None},
                at=now,
            )
            return None
        if not ok:
            account.failed_logins += 1
            lock = account.failed_logins >= MAX_FAILURES
            if lock:
                account.locked_until = now + LOCKOUT
                account.failed_logins = 0
            await repo_audit.log(
                s,
                f"staff:{account.name}",
                "staff.sign_in_failed",
                f"staff_user:{account.name}",
                {"locked": lock},
                at=now,
            )
            return None
        account.failed_logins = 0
        account.locked_until = None
        await repo_staff.delete_stale_sessions(
            s,
            now - timedelta(minutes=settings.idle_minutes),
            now - timedelta(hours=settings.lifetime_hours),
        )
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await repo_staff.add_session(s, session_id, account.id, csrf, now)
        await repo_audit.log(
            s, f"staff:{account.name}", "staff.sign_in", f"staff_user:{account.name}", at=now
        )
        return SignedIn(session_id, csrf, account.name, account.role)


async def sign_out(runtime: Runtime, session_hash: str, name: str) -> None:
    """End a session."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        await repo_staff.delete_session(s, session_hash)
        await repo_audit.log(s, f"staff:{name}", "staff.sign_out", f"staff_user:{name}", at=now)


async def add_user(runtime: Runtime, name: str, role: str, password: str, *, actor: str) -> None:
    """Create an account."""
    name = check_name(name)
    check_password(password)
    hashed = await asyncio.to_thread(hash_password, password)
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        if await repo_staff.get_user(s, name) is not None:
            raise AccountError(f"a user named {name!r} already exists")
        await repo_staff.add_user(s, name, role, hashed, now)
        await repo_audit.log(
            s, actor, "staff.user_add", f"staff_user:{name}", {"role": role}, at=now
        )


async def list_users(runtime: Runtime) -> list[StaffUser]:
    """Every account, by name."""
    async with runtime.db.transaction(read_only=True) as s:
        return await repo_staff.users(s)


async def disable_user(runtime: Runtime, name: str, *, actor: str) -> int:
    """Disable an account and end its sessions; returns how many sessions ended."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        account = await repo_staff.get_user(s, name, for_update=True)
        if account is None:
            raise AccountError(f"no user named {name!r}")
        if account.disabled_at is None:
            account.disabled_at = now
        ended = await repo_staff.delete_user_sessions(s, account.id)
        await repo_audit.log(
            s, actor, "staff.user_disable", f"staff_user:{name}", {"sessions": ended}, at=now
        )
        return ended


async def reset_password(runtime: Runtime, name: str, password: str, *, actor: str) -> None:
    """Give an account a new password, lift a lockout and end its sessions."""
    check_password(password)
    hashed = await asyncio.to_thread(hash_password, password)
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        account = await repo_staff.get_user(s, name, for_update=True)
        if account is None:
            raise AccountError(f"no user named {name!r}")
        account.password_hash = hashed
        account.password_changed_at = now
        account.failed_logins = 0
        account.locked_until = None
        ended = await repo_staff.delete_user_sessions(s, account.id)
        await repo_audit.log(
            s,
            actor,
            "staff.user_reset_password",
            f"staff_user:{name}",
            {"sessions": ended},
            at=now,
        )


def account_state(account: StaffUser, now: datetime) -> str:
    """active, disabled or locked (until a time)."""
    if account.disabled_at is not None:
        return "disabled"
    if account.locked_until is not None and account.locked_until > now:
        return f"locked until {account.locked_until:%Y-%m-%d %H:%M} UTC"
    return "active"


async def has_users(runtime: Runtime) -> bool:
    """Whether any staff account exists."""
    async with runtime.db.transaction(read_only=True) as s:
        return await repo_staff.count_users(s) > 0


TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,59}")


async def make_token(runtime: Runtime, name: str, *, actor: str) -> str:
    """A new staff API token named `name` (lowercase letters, digits, . _ -); returns the token,
    which is shown once: the database keeps only its SHA-256."""
    name = name.strip().lower()
    if not TOKEN_NAME.fullmatch(name):
        raise AccountError(
            "a token's name is 2-60 lowercase letters, digits, dots, dashes or underscores"
        )
    token = secrets.token_urlsafe(32)
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        if await repo_staff.get_token(s, name) is not None:
            raise AccountError(f"a token named {name!r} already exists")
        await repo_staff.add_token(s, name, repo_staff.token_hash(token), actor, now)
        await repo_audit.log(s, actor, "staff.token_add", f"api_token:{name}", {}, at=now)
    return token


async def list_tokens(runtime: Runtime) -> list[ApiToken]:
    """The API tokens made in the staff web app, newest first."""
    async with runtime.db.transaction(read_only=True) as s:
        return await repo_staff.tokens(s)


async def revoke_token(runtime: Runtime, name: str, *, actor: str) -> None:
    """Revoke an API token at once (its callers get 401)."""
    now = runtime.clock.now()
    async with runtime.db.transaction() as s:
        if not await repo_staff.revoke_token(s, name, now):
            raise AccountError(f"no active token named {name!r}")
        await repo_audit.log(s, actor, "staff.token_revoke", f"api_token:{name}", {}, at=now)
