"""GET /auth/health."""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal, select

from nestauth import context, db

_PROBE = select(literal(1))  # a plain SELECT: on SQLite it runs on the read engine


async def get_health() -> dict[str, Any]:
    ctx = context.current()
    await ctx.session.execute(_PROBE)
    engine = ctx.runtime.engine
    # Reads still answer while another process holds SQLite's write lock: health stays 200
    # and says so, rather than failing every probe for a lock that may be held briefly.
    writes = "blocked" if engine is not None and db.writes_blocked(engine) else "ok"
    return {"status": "ok", "database": "ok", "writes": writes}
