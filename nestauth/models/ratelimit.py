"""Failed-attempt counters, kept in the database so every server process shares them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from nestauth.models.base import Base


class RateLimitBucket(Base):
    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # scope + sha256 of subject
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]
