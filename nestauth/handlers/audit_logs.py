"""Admin · Audit: the trail of who did what, read-only."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.handlers.views import audit_view, page_view
from nestauth.services import audit
from nestauth.services.pagination import PageRequest


async def list_audit_logs(
    *,
    page: int = 1,
    limit: int = 20,
    cursor: str | None = None,
    user_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    ctx = context.current()
    events = await audit.list_events(
        ctx.session,
        PageRequest(page, limit, cursor),
        user_id=uuid.UUID(user_id) if user_id else None,
        actor_id=uuid.UUID(actor_id) if actor_id else None,
        action=action,
    )
    return page_view(events, audit_view)
