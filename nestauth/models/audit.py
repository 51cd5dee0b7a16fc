"""The append-only audit trail of changes made through the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from nestauth.models.base import Base, UuidPrimaryKey, utcnow


class AuditEvent(UuidPrimaryKey, Base):
    __tablename__ = "audit_events"
    # Newest first, id breaking ties; each filter leads an index of its own in that order.
    __table_args__ = (
        Index("ix_audit_events_occurred_at_id", "occurred_at", "id"),
        Index("ix_audit_events_user_id_occurred_at_id", "user_id", "occurred_at", "id"),
        Index("ix_audit_events_actor_id_occurred_at_id", "actor_id", "occurred_at", "id"),
        Index("ix_audit_events_action_occurred_at_id", "action", "occurred_at", "id"),
    )

    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(100))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_email: Mapped[str | None] = mapped_column(String(254))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any] | None]
