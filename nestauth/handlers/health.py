"""GET /auth/health."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from nestauth import context


async def get_health() -> dict[str, Any]:
    await context.current().session.execute(text("SELECT 1"))
    return {"status": "ok", "database": "ok"}
