"""End users, their TOTP devices, recovery codes and sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from nestauth.models.base import Base, Timestamps, UuidPrimaryKey, utcnow

# Byte order on PostgreSQL too, as on SQLite: a search is a range of the email index
# ([prefix, next prefix)), which a linguistic collation would not keep contiguous.
EMAIL_TYPE = String(254).with_variant(String(254, collation="C"), "postgresql")


class User(UuidPrimaryKey, Timestamps, Base):
    __tablename__ = "users"
    # The list's order (newest first, id breaking ties) and each status filter with it: a
    # page, and the next one after a cursor, is a short range of one index.
    __table_args__ = (
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_is_active_created_at_id", "is_active", "created_at", "id"),
        Index("ix_users_is_verified_created_at_id", "is_verified", "created_at", "id"),
    )

    email: Mapped[str] = mapped_column(EMAIL_TYPE, unique=True)  # normalised: trimmed, lower
    password_hash: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_verified: Mapped[bool] = mapped_column(default=False)
    is_mfa_enabled: Mapped[bool] = mapped_column(default=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


class TotpDevice(UuidPrimaryKey, Base):
    __tablename__ = "totp_devices"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    device_name: Mapped[str] = mapped_column(String(100))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM, see services.secrets
    verified: Mapped[bool] = mapped_column(default=False)
    last_used_step: Mapped[int | None]  # RFC 6238 time step of the last accepted code
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(UuidPrimaryKey, Base):
    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSession(UuidPrimaryKey, Base):
    __tablename__ = "user_sessions"
    # A user's unrevoked sessions newest first (the admin views, the per-user cap): revoked
    # ones, however many, are not in it.
    __table_args__ = (
        Index(
            "ix_user_sessions_unrevoked", "user_id", "created_at", "id", "expires_at",
            sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL"),
        ),
    )  # fmt: skip

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    refresh_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # The last sign-in, or step-up proof, behind this session: factor changes need it recent.
    # A refresh-token rotation is not a sign-in and leaves it as it is.
    authenticated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))


class UsedRefreshToken(Base):
    """Every refresh token a session has exchanged: presenting one again proves that two
    parties hold the session's tokens (OWASP: refresh token rotation with reuse detection)."""

    __tablename__ = "used_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_sessions.id", ondelete="CASCADE"), index=True
    )
    used_at: Mapped[datetime] = mapped_column(default=utcnow)
