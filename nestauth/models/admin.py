"""Console administrators and their server-side sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from nestauth.models.base import Base, Timestamps, UuidPrimaryKey, utcnow

ADMIN_ROLES = ("owner", "admin", "viewer")


class Admin(UuidPrimaryKey, Timestamps, Base):
    __tablename__ = "admins"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'admin', 'viewer')", name="role"),
        Index("ix_admins_created_at_id", "created_at", "id"),  # the list's order
    )

    email: Mapped[str] = mapped_column(String(254), unique=True)  # normalised: trimmed, lower
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))


class AdminSession(UuidPrimaryKey, Base):
    __tablename__ = "admin_sessions"

    admin_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("admins.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the bearer
    csrf_token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  # the absolute limit; the idle limit runs from last_seen_at
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
