"""List and search cases (issue 11 part 3): every admin list at the large population, with
audit events bulk-loaded to the same count; the target is p99 at most 50 ms each.

Cursors are made by the service's own encoder from rows sampled across the table, so the
cursor cases read pages at every depth, as a client following `meta.nextCursor` would.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import Load
from nestauth.models import Admin, AuditEvent, User, core_table
from nestauth.services import audit, users
from nestauth.services.pagination import encode_cursor

BATCH = 5_000
SAMPLES = 200  # rows sampled for cursors and filters
ACTIONS = (
    "user.updated", "user.created", "user.sessions.revoked", "admin.login",
    "user.totp_device.removed", "user.deleted", "admin.updated", "user.session.revoked",
)  # fmt: skip
AUDIT = "/auth/admin/api/audit-logs"
USERS = "/auth/admin/api/users"


async def load_events(engine: AsyncEngine, count: int) -> None:
    """`count` audit events over the last year, actions, actors and users spread out."""
    async with engine.connect() as connection:
        admin_ids = list((await connection.scalars(select(Admin.id))).all())
        user_ids = list((await connection.scalars(select(User.id).limit(10_000))).all())
    start, rng = datetime.now(UTC) - timedelta(days=365), random.Random(11)
    for first in range(0, count, BATCH):
        rows = [
            {"id": uuid.uuid4(), "occurred_at": start + timedelta(seconds=rng.random() * 3e7),
             "action": rng.choice(ACTIONS), "actor_type": "admin",
             "actor_id": rng.choice(admin_ids), "actor_email": "bench-admin@example.test",
             "target_type": "user", "user_id": rng.choice(user_ids), "ip": "127.0.0.1"}
            for _ in range(min(BATCH, count - first))
        ]  # fmt: skip
        async with engine.begin() as connection:
            await connection.execute(insert(core_table(AuditEvent)), rows)


async def count_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(AuditEvent)) or 0)


async def _sample(engine: AsyncEngine, model: Any, order: Any) -> list[Any]:
    """Rows spread over the whole table (random ids: an id range is a random sample)."""
    rows = []
    async with engine.connect() as connection:
        for _ in range(SAMPLES):
            above = uuid.uuid4()
            row = (await connection.execute(
                select(*order.keys).where(model.id >= above).order_by(model.id).limit(1)
            )).first()  # fmt: skip
            if row is not None:
                rows.append(row)
    return rows


def _get(path: str, **query: object) -> tuple[str, str, str]:
    return ("GET", f"{path}?{urlencode(query)}" if query else path, "")


async def cases(engine: AsyncEngine, headers: dict[str, str]) -> dict[str, Load]:
    """Each case a list of GETs sent over and over (all must answer 200)."""
    user_rows = await _sample(engine, User, users.BY_CREATION)
    event_rows = await _sample(engine, AuditEvent, audit.NEWEST_FIRST)
    async with engine.connect() as connection:
        emails = list((await connection.scalars(select(User.email).limit(50))).all())
    user_cursors = [encode_cursor(users.BY_CREATION, 2, r) for r in user_rows]
    event_cursors = [encode_cursor(audit.NEWEST_FIRST, 2, r) for r in event_rows]
    prefixes = ["b", "bench-1", "bench-42", "bench-999"] + [e[: len(e) // 2] for e in emails]
    requests = {
        "list-users": [_get(USERS), _get(USERS, status="inactive"), _get(USERS, status="verified")],
        "list-users-deep": [_get(USERS, page=100, limit=100), _get(USERS, page=500)],
        "list-users-cursor": [_get(USERS, cursor=c) for c in user_cursors],
        "search-users": [_get(USERS, search=p) for p in prefixes],
        "list-audit": [
            _get(AUDIT),
            *(_get(AUDIT, action=a) for a in ACTIONS),
            *(_get(AUDIT, userId=str(r.id)) for r in user_rows[:20]),
        ],  # fmt: skip
        "list-audit-cursor": [_get(AUDIT, cursor=c) for c in event_cursors],
        "list-admins": [_get("/auth/admin/admins")],
    }
    return {name: Load(list(reqs), 200, repeat=True, headers=headers)
            for name, reqs in requests.items()}  # fmt: skip
