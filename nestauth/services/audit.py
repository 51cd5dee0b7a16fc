"""Audit events, written in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import AuditEvent, core_table
from nestauth.services.pagination import Order, Page, PageRequest, paginate


@dataclass(frozen=True)
class RequestMeta:
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Actor:
    """Who did it, as the audit trail names them."""

    kind: str  # "admin" or "user"
    id: uuid.UUID
    email: str


@dataclass(frozen=True)
class AdminActor:
    admin_id: uuid.UUID
    email: str
    role: str
    session_id: uuid.UUID

    @property
    def actor(self) -> Actor:
        return Actor("admin", self.admin_id, self.email)


NEWEST_FIRST = Order("audit", (AuditEvent.occurred_at, AuditEvent.id))
# Built once: a statement's construction and cache key cost more than its execution.
_INSERT_EVENT = insert(core_table(AuditEvent))  # Core: no unit-of-work flush


async def record_admin_action(session: AsyncSession, *, actor: AdminActor, **event: Any) -> None:
    """An event whose actor is a signed-in admin; `event` as for record_event."""
    await record_action(session, actor=actor.actor, **event)


async def record_action(session: AsyncSession, *, actor: Actor, **event: Any) -> None:
    """An event done by a signed-in admin or user; `event` as for record_event."""
    await record_event(
        session, actor_type=actor.kind, actor_id=actor.id, actor_email=actor.email, **event
    )


async def record_event(
    session: AsyncSession,
    *,
    action: str,
    actor_type: str,
    actor_id: uuid.UUID | None,
    actor_email: str | None,
    meta: RequestMeta,
    now: datetime,
    target_type: str | None = None,
    target_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        _INSERT_EVENT,
        {
            "id": uuid.uuid4(), "occurred_at": now, "action": action,
            "actor_type": actor_type, "actor_id": actor_id, "actor_email": actor_email,
            "target_type": target_type, "target_id": target_id, "user_id": user_id,
            "ip": meta.ip, "user_agent": (meta.user_agent or "")[:512] or None,
            "details": details,
        },
    )  # fmt: skip


async def list_events(
    session: AsyncSession,
    request: PageRequest,
    *,
    user_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
) -> Page[Any]:
    """Newest first. There is deliberately no way to change or delete an event."""
    query = select(*core_table(AuditEvent).c)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return await paginate(session, query, NEWEST_FIRST, request)
