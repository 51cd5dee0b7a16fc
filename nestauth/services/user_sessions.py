"""End-user sessions as admins see and revoke them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import SessionNotFound
from nestauth.models import User, UserSession
from nestauth.services.audit import Actor, RequestMeta, record_action
from nestauth.services.pagination import Order, Page, PageRequest, paginate

NEWEST_FIRST = Order("user-sessions", (UserSession.created_at, UserSession.id))


def _live(user_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
    return and_(
        UserSession.user_id == user_id,
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
    )


# Built once: a statement's construction and cache key cost more than its execution.
_LIVE_OF_USER = _live(bindparam("uid"), bindparam("now"))  # type: ignore[arg-type]
_REVOKE_LIVE = update(UserSession).where(_LIVE_OF_USER).values(revoked_at=bindparam("now"))
_LOCK_USER = select(User.id).where(User.id == bindparam("uid")).with_for_update()
# The live sessions after the newest `keep` ones (SQLite: LIMIT -1 OFFSET n).
_OLDER_LIVE = (
    select(UserSession.id)
    .where(_LIVE_OF_USER)
    .order_by(UserSession.created_at.desc(), UserSession.id.desc())
    .offset(bindparam("keep"))
)
_REVOKE_OLDER = (
    update(UserSession)
    .where(UserSession.id.in_(_OLDER_LIVE.scalar_subquery()))
    .values(revoked_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)
_VIEW = select(
    UserSession.id, UserSession.created_at, UserSession.last_used_at, UserSession.expires_at,
    UserSession.ip, UserSession.user_agent,
)  # fmt: skip
_COUNT_LIVE = select(func.count()).select_from(UserSession).where(_LIVE_OF_USER)


async def list_live(
    session: AsyncSession, user_id: uuid.UUID, now: datetime, request: PageRequest
) -> Page[Any]:
    """Sessions that can still be used, newest first."""
    return await paginate(session, _VIEW.where(_live(user_id, now)), NEWEST_FIRST, request)


async def count_live(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    return int(await session.scalar(_COUNT_LIVE, {"uid": user_id, "now": now}) or 0)


async def make_room(
    session: AsyncSession,
    user: User,
    max_sessions: int,
    *,
    meta: RequestMeta,
    now: datetime,
) -> int:
    """Before a new session opens: the user keeps at most `max_sessions` live ones, so the
    oldest beyond the newest `max_sessions - 1` are revoked, and the eviction audited. The
    user row is locked first (PostgreSQL), so two sign-ins at once cannot both stay under:
    before the insert, as the insert's foreign-key share lock would deadlock two of them."""
    if session.get_bind().dialect.name == "postgresql":  # SQLite: the one writer already
        await session.execute(_LOCK_USER, {"uid": user.id})
    result = await session.execute(
        _REVOKE_OLDER, {"uid": user.id, "now": now, "keep": max_sessions - 1}
    )
    evicted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if evicted:
        await record_action(
            session, actor=Actor("user", user.id, user.email), meta=meta, now=now,
            action="user.sessions.evicted", target_type="user", target_id=user.id,
            user_id=user.id, details={"sessionsRevoked": evicted, "maxSessions": max_sessions},
        )  # fmt: skip
    return evicted


async def revoke_all(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """Ends every live session; the count is of those an admin was shown as live."""
    result = await session.execute(_REVOKE_LIVE, {"uid": user_id, "now": now})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_one(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> None:
    """Another user's session, or one already ended, is not found (no cross-user probing)."""
    result = await session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, _live(user_id, now))
        .values(revoked_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise SessionNotFound()
