"""End-user sessions as admins see and revoke them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import SessionNotFound
from nestauth.models import UserSession


def _live(user_id: uuid.UUID, now: datetime) -> ColumnElement[bool]:
    return and_(
        UserSession.user_id == user_id,
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
    )


# Built once: a statement's construction and cache key cost more than its execution.
_LIVE_OF_USER = _live(bindparam("uid"), bindparam("now"))  # type: ignore[arg-type]
_LIVE_SESSIONS = (
    select(UserSession).where(_LIVE_OF_USER).order_by(UserSession.created_at.desc(), UserSession.id)
)
_REVOKE_LIVE = update(UserSession).where(_LIVE_OF_USER).values(revoked_at=bindparam("now"))


async def list_live(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[UserSession]:
    """Sessions that can still be used, newest first."""
    return list((await session.scalars(_LIVE_SESSIONS, {"uid": user_id, "now": now})).all())


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
