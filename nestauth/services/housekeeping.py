"""Housekeeping: rows no request can use any more are deleted, in bounded batches.

What "no longer usable" means, table by table (`grace` = NESTAUTH_PRUNE_GRACE_SECONDS):
- user sessions revoked, or past their expiry, more than `grace` ago. Until then a refresh
  with one of their tokens still gets its precise answer, and an operator can still see
  what happened to them; their used refresh tokens go first (reuse detection only matters
  while a session is live, and a live session keeps all of them).
- admin sessions revoked, or past their absolute or idle limit, more than `grace` ago
  (until then a client is told SESSION_EXPIRED rather than SESSION_INVALID).
- MFA challenges used or expired more than `grace` ago.
- rate-limit buckets whose window is over and which block nobody: such a bucket counts
  exactly like an absent one (the next failure starts a new window either way).
- audit events older than NESTAUTH_AUDIT_RETENTION_DAYS, when that is set (default: kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Delete, Table, and_, delete, false, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from nestauth.config import Settings
from nestauth.models import (
    AdminSession,
    AuditEvent,
    MfaChallenge,
    RateLimitBucket,
    UsedRefreshToken,
    UserSession,
    core_table,
)
from nestauth.services import admin_sessions, admins, mfa, ratelimit, user_auth

if TYPE_CHECKING:
    from nestauth.context import Runtime

log = logging.getLogger("nestauth.housekeeping")

BATCH_SIZE = 500  # rows per transaction: short locks, a bounded WAL or undo per batch
# One pruning process at a time on PostgreSQL; the key spells "nestprun".
PRUNE_LOCK_KEY = 0x6E6573747072756E
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")

Condition = Callable[[Settings, datetime], ColumnElement[bool]]


def _user_sessions_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=settings.prune_grace_seconds)
    return or_(UserSession.revoked_at < cutoff, UserSession.expires_at < cutoff)


def _used_tokens_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    ended = select(UserSession.id).where(_user_sessions_gone(settings, now))
    return UsedRefreshToken.session_id.in_(ended)


def _admin_sessions_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=settings.prune_grace_seconds)
    idle = timedelta(seconds=settings.admin_session_idle_seconds)
    return or_(
        AdminSession.revoked_at < cutoff,
        AdminSession.expires_at < cutoff,
        AdminSession.last_seen_at < cutoff - idle,
    )


def _challenges_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=settings.prune_grace_seconds)
    return or_(MfaChallenge.used_at < cutoff, MfaChallenge.expires_at < cutoff)


def _buckets_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """Each scope has its own window; a bucket of an unknown scope is left alone."""
    limits = (
        *admin_sessions.login_policy(settings).limits(),
        *user_auth.login_policy(settings).limits(),
        *mfa.mfa_policy(settings).limits(),
        *user_auth.signup_limits(settings),
        *admins.signup_limits(settings),
    )
    return and_(
        or_(RateLimitBucket.blocked_until.is_(None), RateLimitBucket.blocked_until <= now),
        or_(*(_window_over(limit, now) for limit in limits)),
    )


def _window_over(limit: ratelimit.Limit, now: datetime) -> ColumnElement[bool]:
    return and_(
        RateLimitBucket.key.startswith(f"{limit.scope}:", autoescape=True),
        RateLimitBucket.window_started_at <= now - limit.window,
    )


def _audit_gone(settings: Settings, now: datetime) -> ColumnElement[bool]:
    if settings.audit_retention_days is None:
        return false()
    return AuditEvent.occurred_at < now - timedelta(days=settings.audit_retention_days)


# In this order: used refresh tokens before the sessions they belong to.
RULES: tuple[tuple[str, Table, str, Condition], ...] = (
    ("used_refresh_tokens", core_table(UsedRefreshToken), "token_hash", _used_tokens_gone),
    ("user_sessions", core_table(UserSession), "id", _user_sessions_gone),
    ("admin_sessions", core_table(AdminSession), "id", _admin_sessions_gone),
    ("mfa_challenges", core_table(MfaChallenge), "id", _challenges_gone),
    ("rate_limit_buckets", core_table(RateLimitBucket), "key", _buckets_gone),
    ("audit_events", core_table(AuditEvent), "id", _audit_gone),
)


@dataclass
class PruneReport:
    counts: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: another process held the prune lock, this run stopped


def _batch(table: Table, key: str, condition: ColumnElement[bool]) -> Delete:
    column = table.c[key]
    return delete(table).where(column.in_(select(column).where(condition).limit(BATCH_SIZE)))


async def prune(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> PruneReport:
    """Deletes what the rules above name, one batch per transaction."""
    report = PruneReport()
    for name, table, key, condition in RULES:
        report.counts[name] = 0
        statement = _batch(table, key, condition(settings, now))
        while True:
            async with sessions() as session, session.begin():
                if not await _lock(session):
                    report.complete = False
                    return report
                deleted = int((await session.execute(statement)).rowcount or 0)  # type: ignore[attr-defined]
            report.counts[name] += deleted
            if deleted < BATCH_SIZE:
                break
    return report


async def _lock(session: AsyncSession) -> bool:
    """PostgreSQL: held until this batch commits. SQLite: the write lock serialises anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(await session.scalar(_TRY_LOCK, {"key": PRUNE_LOCK_KEY}))


async def prune_periodically(
    runtime: Runtime, on_report: Callable[[PruneReport], None] = lambda _report: None
) -> None:
    """The server's own housekeeping, started in the app lifespan and cancelled at its end.

    The interval is read again before each wait, and a failed run (the database away, say)
    is logged and retried at the next turn: housekeeping never takes the server down."""
    while True:
        await asyncio.sleep(runtime.settings.prune_interval_seconds)
        if runtime.sessions is None:
            continue
        try:
            report = await prune(runtime.sessions, runtime.settings, runtime.clock())
            on_report(report)
        except Exception as exc:  # noqa: BLE001
            log.warning("housekeeping failed, retried next turn: %s", type(exc).__name__)
            continue
        if any(report.counts.values()):
            log.info("housekeeping pruned %s", report.counts)
