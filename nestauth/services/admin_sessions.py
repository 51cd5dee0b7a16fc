"""Admin login, server-side sessions (idle and absolute expiry), CSRF binding, logout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import InvalidCredentials, SessionExpired, SessionInvalid
from nestauth.models import Admin, AdminSession
from nestauth.services import credentials, ratelimit, tokens
from nestauth.services.audit import RequestMeta, record_event
from nestauth.services.emails import normalize_email

# Writing last_seen_at on every request would turn each read into a write; a minute of
# slack on a 30-minute idle limit is immaterial.
TOUCH_INTERVAL = timedelta(seconds=60)
# Built once: a statement's construction and cache key cost more than its execution.
_SESSION_BY_TOKEN = (
    select(AdminSession, Admin)
    .join(Admin, Admin.id == AdminSession.admin_id)
    .where(AdminSession.token_hash == bindparam("token_hash"))
)


@dataclass(frozen=True)
class IssuedSession:
    admin: Admin
    token: str
    csrf_token: str
    expires_at: datetime


def login_limit(settings: Settings) -> ratelimit.Limit:
    return ratelimit.Limit(
        scope="admin-login",
        max_failures=settings.admin_login_max_failures,
        window=timedelta(seconds=settings.admin_login_lock_seconds),
    )


async def log_in(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    meta: RequestMeta,
    now: datetime,
) -> IssuedSession:
    """One answer for an unknown email and a wrong password, in similar time (ASVS 2.2.x)."""
    normalized = normalize_email(email)
    admin = await session.scalar(select(Admin).where(Admin.email == normalized))
    limit = login_limit(settings)
    if not await credentials.check_password(session, limit, normalized, admin, password, now):
        await record_event(
            session, action="admin.login_failed", actor_type="anonymous", actor_id=None,
            actor_email=normalized, meta=meta, now=now, target_type="admin",
            target_id=admin.id if admin else None,
        )  # fmt: skip
        # The failure must count although the request fails: commit before raising.
        await session.commit()
        raise InvalidCredentials()
    assert admin is not None
    return await _issue(session, settings, admin, meta, now)


async def _issue(
    session: AsyncSession, settings: Settings, admin: Admin, meta: RequestMeta, now: datetime
) -> IssuedSession:
    token, csrf_token = tokens.new_token(), tokens.new_token()
    expires_at = now + timedelta(seconds=settings.admin_session_absolute_seconds)
    session.add(
        AdminSession(
            admin_id=admin.id,
            token_hash=tokens.digest(token),
            csrf_token_hash=tokens.digest(csrf_token),
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            ip=meta.ip,
            user_agent=(meta.user_agent or "")[:512] or None,
        )
    )
    await session.flush()
    return IssuedSession(admin=admin, token=token, csrf_token=csrf_token, expires_at=expires_at)


async def authenticate(
    session: AsyncSession, settings: Settings, *, token: str, now: datetime
) -> tuple[AdminSession, Admin]:
    """The live session behind a token, or SESSION_INVALID / SESSION_EXPIRED."""
    row = (await session.execute(_SESSION_BY_TOKEN, {"token_hash": tokens.digest(token)})).first()
    if row is None:
        raise SessionInvalid()
    admin_session, admin = row
    if admin_session.revoked_at is not None:
        raise SessionInvalid("Admin session has been revoked")
    idle_limit = admin_session.last_seen_at + timedelta(seconds=settings.admin_session_idle_seconds)
    if now >= admin_session.expires_at or now >= idle_limit:
        raise SessionExpired()
    if now - admin_session.last_seen_at >= TOUCH_INTERVAL:
        # Committed at once (authentication comes before any change of the request): a
        # request that fails is activity too, and its rollback must not undo the touch.
        admin_session.last_seen_at = now
        await session.commit()
    return admin_session, admin


def csrf_token_matches(admin_session: AdminSession, csrf_token: str | None) -> bool:
    return csrf_token is not None and tokens.same_digest(csrf_token, admin_session.csrf_token_hash)


async def revoke(session: AsyncSession, admin_session_id: object, now: datetime) -> None:
    admin_session = await session.get(AdminSession, admin_session_id)
    if admin_session is not None and admin_session.revoked_at is None:
        admin_session.revoked_at = now
