"""Offset pagination: one page of rows and the {page, limit, total, totalPages} meta."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    limit: int
    total: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.limit else 0


async def paginate(session: AsyncSession, query: Select[Any], page: int, limit: int) -> Page[Any]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.limit(limit).offset((page - 1) * limit))).all()
    return Page(items=list(rows), page=page, limit=limit, total=int(total or 0))


def escape_like(text: str) -> str:
    """A search for "50%_off" matches those characters, not any string (LIKE wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
