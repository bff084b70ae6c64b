"""Staff accounts and their server-side sessions (the staff web app, bot/web/staff).

A session row is keyed by the SHA-256 of the random id in the browser's cookie, so the table
alone cannot be used to sign in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApiToken, StaffSession, StaffUser


@dataclass(frozen=True, slots=True)
class SessionUser:
    """A live session and its user, as a request sees them."""

    session_hash: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    user_id: int
    name: str
    role: str
    disabled: bool


def session_hash(session_id: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


async def count_users(s: AsyncSession) -> int:
    """How many staff accounts exist (disabled ones too)."""
    return int(await s.scalar(select(func.count()).select_from(StaffUser)) or 0)


async def get_user(s: AsyncSession, name: str, *, for_update: bool = False) -> StaffUser | None:
    """A staff account by its name."""
    stmt = select(StaffUser).where(StaffUser.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    return (await s.scalars(stmt.execution_options(populate_existing=True))).first()


async def users(s: AsyncSession) -> list[StaffUser]:
    """Every staff account, by name."""
    return list(await s.scalars(select(StaffUser).order_by(StaffUser.name)))


async def add_user(
    s: AsyncSession, name: str, role: str, password_hash: str, now: datetime
) -> StaffUser:
    """A new account, flushed so it has an id."""
    user = StaffUser(
        name=name,
        role=role,
        password_hash=password_hash,
        failed_logins=0,
        created_at=now,
        password_changed_at=now,
    )
    s.add(user)
    await s.flush()
    return user


async def add_session(
    s: AsyncSession, session_id: str, user_id: int, csrf_token: str, now: datetime
) -> None:
    """Store a new session."""
    s.add(
        StaffSession(
            id_hash=session_hash(session_id),
            user_id=user_id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
        )
    )
    await s.flush()


async def find_session(s: AsyncSession, session_id: str) -> SessionUser | None:
    """The session with this id and its user, or None."""
    stmt = (
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.id_hash == session_hash(session_id))
    )
    row = (await s.execute(stmt)).first()
    if row is None:
        return None
    session, user = row
    return SessionUser(
        session_hash=session.id_hash,
        csrf_token=session.csrf_token,
        created_at=session.created_at,
        last_seen_at=session.last_seen_at,
        user_id=user.id,
        name=user.name,
        role=user.role,
        disabled=user.disabled_at is not None,
    )


async def touch_session(s: AsyncSession, id_hash: str, now: datetime) -> None:
    """Record that the session was used now (its idle timeout counts from here)."""
    await s.execute(
        update(StaffSession)
        .where(StaffSession.id_hash == id_hash)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def delete_session(s: AsyncSession, id_hash: str) -> None:
    """End one session."""
    await s.execute(delete(StaffSession).where(StaffSession.id_hash == id_hash))


async def delete_user_sessions(s: AsyncSession, user_id: int) -> int:
    """End every session of a user; returns how many there were."""
    result = await s.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_stale_sessions(
    s: AsyncSession, idle_before: datetime, born_before: datetime
) -> int:
    """End sessions idle since before `idle_before` or created before `born_before`."""
    result = await s.execute(
        delete(StaffSession).where(
            (StaffSession.last_seen_at < idle_before) | (StaffSession.created_at < born_before)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def token_hash(token: str) -> str:
    """What the database keeps of an API token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def add_token(
    s: AsyncSession, name: str, hashed: str, created_by: str, now: datetime
) -> None:
    """Store a new API token by its hash."""
    s.add(ApiToken(name=name, token_hash=hashed, created_by=created_by, created_at=now))
    await s.flush()


async def get_token(s: AsyncSession, name: str) -> ApiToken | None:
    """The API token of this name (revoked ones too)."""
    return await s.scalar(select(ApiToken).where(ApiToken.name == name))


async def tokens(s: AsyncSession) -> list[ApiToken]:
    """Every API token made in the staff app, newest first."""
    return list(await s.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


async def active_token_name(s: AsyncSession, hashed: str) -> str | None:
    """The name of the unrevoked API token with this hash, if any."""
    return await s.scalar(
        select(ApiToken.name).where(ApiToken.token_hash == hashed, ApiToken.revoked_at.is_(None))
    )


async def revoke_token(s: AsyncSession, name: str, now: datetime) -> bool:
    """Revoke an API token; False when no unrevoked token has this name."""
    result = await s.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
