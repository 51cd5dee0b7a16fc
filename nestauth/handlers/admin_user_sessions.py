"""Admin · Users: a user's sessions, listed and revoked."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.handlers.views import page_view, session_view
from nestauth.services import user_sessions, users
from nestauth.services.pagination import PageRequest


async def list_user_sessions(
    *, id_: str, page: int = 1, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    ctx = context.current()
    user = await users.get_user(ctx.session, uuid.UUID(id_))
    request = PageRequest(page, limit, cursor)
    return page_view(await user_sessions.list_live(ctx.session, user.id, ctx.now(), request),
                     session_view)  # fmt: skip


async def revoke_user_sessions(*, id_: str) -> dict[str, Any]:
    ctx = context.current()
    revoked = await users.revoke_sessions(
        ctx.session, uuid.UUID(id_), actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now()
    )
    return {"message": "Sessions revoked", "userId": id_, "sessionsRevoked": revoked}


async def revoke_user_session(*, id_: str, session_id: str) -> dict[str, Any]:
    ctx = context.current()
    await users.revoke_session(
        ctx.session, uuid.UUID(id_), uuid.UUID(session_id),
        actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    return {"message": "Session revoked", "userId": id_, "sessionId": session_id}
