"""Failed-attempt limits kept in the database, so every server process shares one count.

After `max_failures` failures within `window` the subject is blocked for `window`
(OWASP ASVS 2.2.1: anti-automation against credential stuffing and brute force).

A secret guessed from many sides (a password, an MFA code) is guarded by a `Policy` of
three layers, so that no one can lock an account's owner out by failing on purpose:
- per (account, address): a strict lock; it binds only the address that failed;
- per address, whatever the account: a lock with a higher threshold (credential stuffing);
- per account, from every address: never a lock, only a slowing. Past `after` failures in
  the window, each further failure holds back the address that made it, for that account,
  for a delay doubling with every failure (1, 2, 4 ... seconds, up to `max_delay`). An
  address that does not fail is never held back, so the owner still signs in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import RateLimited, ServiceUnavailable
from nestauth.models import RateLimitBucket, core_table

# Built once, and Core where no ORM object is needed: every login and MFA step runs these.
_BUCKETS = core_table(RateLimitBucket)
LOCK_ATTEMPTS = 3
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
_BLOCK = select(_BUCKETS.c.blocked_until).where(_BUCKETS.c.key == bindparam("key"))
_WITHDRAW_FAILURE = (
    update(_BUCKETS)
    .where(_BUCKETS.c.key == bindparam("bucket"), _BUCKETS.c.failures > 0)
    .values(failures=_BUCKETS.c.failures - 1)
)
_CLEAR_BUCKET = delete(_BUCKETS).where(_BUCKETS.c.key == bindparam("key"))


@dataclass(frozen=True)
class Limit:
    scope: str
    max_failures: int
    window: timedelta

    def key(self, subject: str) -> str:
        return _key(self.scope, subject)


def _key(scope: str, subject: str) -> str:
    # A digest keeps emails and addresses out of this table and bounds the key length.
    return f"{scope}:{hashlib.sha256(subject.encode()).hexdigest()}"


async def ensure_allowed(session: AsyncSession, limit: Limit, subject: str, now: datetime) -> None:
    """Checks the subject's bucket and keeps it locked until the attempt is settled, so that
    parallel guesses are counted one after another instead of all passing one check."""
    (blocked_until,) = await _lock_row(session, _LOCKED_BLOCK, limit.key(subject), now)
    if blocked_until and blocked_until > now:
        raise RateLimited(retry_after=_seconds_until(blocked_until, now))


async def _ensure_bucket(session: AsyncSession, key: str, now: datetime) -> None:
    """A row to lock, even for a subject that never failed."""
    await session.execute(_NEW_BUCKET[session.get_bind().dialect.name], {"key": key, "now": now})


async def _locked_bucket(session: AsyncSession, key: str, now: datetime) -> RateLimitBucket:
    bucket: RateLimitBucket = (await _lock_row(session, _LOCKED_BUCKET, key, now))[0]
    return bucket


async def _lock_row(session: AsyncSession, statement: Any, key: str, now: datetime) -> Any:
    """The bucket's row, locked. A success elsewhere may delete the row (`clear`) between our
    insert and our lock, leaving nothing to lock (a 500 on PostgreSQL, 1 in 10 runs of
    concurrent logins): insert it again. Three misses in a row is contention, not a bug."""
    for _ in range(LOCK_ATTEMPTS):
        await _ensure_bucket(session, key, now)
        row = (await session.execute(statement, {"key": key})).first()
        if row is not None:
            return row
    raise ServiceUnavailable()


async def record_failure(
    session: AsyncSession, limit: Limit, subject: str, now: datetime
) -> RateLimitBucket:
    bucket = await _locked_bucket(session, limit.key(subject), now)
    if bucket.window_started_at + limit.window <= now:
        bucket.failures, bucket.window_started_at = 0, now
    bucket.failures += 1
    if bucket.failures >= limit.max_failures:
        bucket.blocked_until = now + limit.window
        bucket.failures, bucket.window_started_at = 0, now
    await session.flush()
    return bucket


@dataclass(frozen=True)
class Slowdown:
    scope: str
    after: int
    window: timedelta
    max_delay: timedelta

    def delay(self, failures: int) -> timedelta | None:
        if failures < self.after:
            return None
        doublings = min(failures - self.after, 30)  # 2**30 s is past any max_delay
        return min(self.max_delay, timedelta(seconds=2**doublings))

    def scope_key(self, account: str) -> str:
        return _key(self.scope, account)


@dataclass(frozen=True)
class Policy:
    pair: Limit  # per (account, address): strict
    address: Limit  # per address, every account
    account: Slowdown  # per account, every address: delays only

    @classmethod
    def of(cls, scope: str, max_failures: int, window: timedelta, settings: Settings) -> Policy:
        """The pair keeps the plain scope name (and the settings of the old per-account
        lock), the other layers add a suffix: every scope counts apart."""
        return cls(
            Limit(scope, max_failures, window),
            Limit(f"{scope}-ip", settings.ip_max_failures, window),
            Slowdown(
                f"{scope}-account",
                settings.account_slow_after_failures,
                window,
                timedelta(seconds=settings.account_slow_max_seconds),
            ),
        )

    def limits(self) -> tuple[Limit, Limit, Limit]:
        """Every scope this policy writes, with its window (for pruning)."""
        slow = self.account
        return self.pair, self.address, Limit(slow.scope, slow.after, slow.window)


def _pair(account: str, address: str | None) -> str:
    return f"{account}|{address or 'unknown'}"


async def ensure_allowed_from(
    session: AsyncSession, policy: Policy, account: str, address: str | None, now: datetime
) -> None:
    """The pair's block, its row locked until the attempt is settled (parallel guesses from
    one address count one after another), and the address's, read without a lock (parallel
    attempts from one address are bounded by the hashing queue's per-address cap). Rows are
    locked pair, then address, then account, in every transaction: no lock-order deadlock
    on PostgreSQL."""
    await ensure_allowed(session, policy.pair, _pair(account, address), now)
    blocked_until = await session.scalar(_BLOCK, {"key": policy.address.key(address or "unknown")})
    if blocked_until and blocked_until > now:
        raise RateLimited(retry_after=_seconds_until(blocked_until, now))


async def record_failure_from(
    session: AsyncSession, policy: Policy, account: str, address: str | None, now: datetime
) -> None:
    pair = await record_failure(session, policy.pair, _pair(account, address), now)
    await record_failure(session, policy.address, address or "unknown", now)
    slow = policy.account
    counted = await _locked_bucket(session, slow.scope_key(account), now)
    if counted.window_started_at + slow.window <= now:
        counted.failures, counted.window_started_at = 0, now
    counted.failures += 1
    delay = slow.delay(counted.failures)
    if delay is not None and (pair.blocked_until is None or pair.blocked_until < now + delay):
        pair.blocked_until = now + delay
    await session.flush()


async def clear_pair(
    session: AsyncSession, policy: Policy, account: str, address: str | None
) -> None:
    """A success clears its own pair only: an address cannot wash its record, nor an
    owner's success the slowing of an attack that goes on."""
    await clear(session, policy.pair, _pair(account, address))


async def withdraw_failure(
    session: AsyncSession, policy: Policy, account: str, address: str | None
) -> None:
    """Takes back a failure counted before the outcome was known (the password step counts
    first, see credentials) from the address's and the account's counts; without it every
    success would count against its address (the pair is cleared by clear_pair)."""
    for key in (policy.address.key(address or "unknown"), policy.account.scope_key(account)):
        await session.execute(_WITHDRAW_FAILURE, {"bucket": key})


async def count_attempt(session: AsyncSession, limit: Limit, subject: str, now: datetime) -> None:
    """For limits on attempts, failed or not (sign-ups): the `max_failures`th attempt in the
    window is the last one allowed."""
    await ensure_allowed(session, limit, subject, now)
    await record_failure(session, limit, subject, now)


async def clear(session: AsyncSession, limit: Limit, subject: str) -> None:
    await session.execute(_CLEAR_BUCKET, {"key": limit.key(subject)})


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
