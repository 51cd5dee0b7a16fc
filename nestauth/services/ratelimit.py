"""Failed-attempt limits kept in the database, so every server process shares one count.

After `max_failures` failures within `window` the subject is blocked for `window`
(OWASP ASVS 2.2.1: anti-automation against credential stuffing and brute force).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import RateLimited
from nestauth.models import RateLimitBucket, core_table

# Built once, and Core where no ORM object is needed: every login and MFA step runs these.
_BUCKETS = core_table(RateLimitBucket)
_NEW_BUCKET = {
    dialect: insert(_BUCKETS)
    .values(key=bindparam("key"), failures=0, window_started_at=bindparam("now"))
    .on_conflict_do_nothing(index_elements=["key"])
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_LOCKED_BUCKET = (
    select(RateLimitBucket)
    .where(RateLimitBucket.key == bindparam("key"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_LOCKED_BLOCK = (
    select(_BUCKETS.c.blocked_until).where(_BUCKETS.c.key == bindparam("key")).with_for_update()
)
_CLEAR_BUCKET = delete(_BUCKETS).where(_BUCKETS.c.key == bindparam("key"))


@dataclass(frozen=True)
class Limit:
    scope: str
    max_failures: int
    window: timedelta

    def key(self, subject: str) -> str:
        # A digest keeps emails out of this table and bounds the key length.
        return f"{self.scope}:{hashlib.sha256(subject.encode()).hexdigest()}"


async def ensure_allowed(session: AsyncSession, limit: Limit, subject: str, now: datetime) -> None:
    """Checks the subject's bucket and keeps it locked until the attempt is settled, so that
    parallel guesses are counted one after another instead of all passing one check."""
    key = limit.key(subject)
    await _ensure_bucket(session, key, now)
    blocked_until = await session.scalar(_LOCKED_BLOCK, {"key": key})
    if blocked_until and blocked_until > now:
        raise RateLimited(retry_after=_seconds_until(blocked_until, now))


async def _ensure_bucket(session: AsyncSession, key: str, now: datetime) -> None:
    """A row to lock, even for a subject that never failed."""
    await session.execute(_NEW_BUCKET[session.get_bind().dialect.name], {"key": key, "now": now})


async def _locked_bucket(session: AsyncSession, key: str, now: datetime) -> RateLimitBucket:
    await _ensure_bucket(session, key, now)
    return (await session.execute(_LOCKED_BUCKET, {"key": key})).scalar_one()


async def record_failure(session: AsyncSession, limit: Limit, subject: str, now: datetime) -> None:
    bucket = await _locked_bucket(session, limit.key(subject), now)
    if bucket.window_started_at + limit.window <= now:
        bucket.failures, bucket.window_started_at = 0, now
    bucket.failures += 1
    if bucket.failures >= limit.max_failures:
        bucket.blocked_until = now + limit.window
        bucket.failures, bucket.window_started_at = 0, now
    await session.flush()


async def clear(session: AsyncSession, limit: Limit, subject: str) -> None:
    await session.execute(_CLEAR_BUCKET, {"key": limit.key(subject)})


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
