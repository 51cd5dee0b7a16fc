"""Admin login, server-side sessions (idle and absolute expiry), CSRF binding, logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import InvalidCredentials, SessionExpired, SessionInvalid
from nestauth.models import Admin, AdminSession, core_table
from nestauth.services import credentials, passwords, ratelimit, tokens
from nestauth.services.audit import AdminActor, RequestMeta, record_admin_action, record_event
from nestauth.services.emails import normalize_email

# Writing last_seen_at on every request would turn each read into a write; a minute of
# slack on a 30-minute idle limit is immaterial.
TOUCH_INTERVAL = timedelta(seconds=60)
# Built once, Core: every admin request runs these, so no statement is rebuilt and no ORM
# object made for them.
_SESSIONS, _ADMINS = core_table(AdminSession), core_table(Admin)
_SESSION_BY_TOKEN = (
    select(
        _SESSIONS.c.id, _SESSIONS.c.csrf_token_hash, _SESSIONS.c.last_seen_at,
        _SESSIONS.c.expires_at, _SESSIONS.c.revoked_at,
        _ADMINS.c.id.label("admin_id"), _ADMINS.c.email, _ADMINS.c.role,
    )
    .join_from(_SESSIONS, _ADMINS, _ADMINS.c.id == _SESSIONS.c.admin_id)
    .where(_SESSIONS.c.token_hash == bindparam("token_hash"))
)  # fmt: skip
_TOUCH = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("sid"))
    .values(last_seen_at=bindparam("now"))
)


@dataclass(frozen=True)
class SignedInAdmin:
    """The admin behind a live session: what authorisation and the audit trail need."""

    session_id: uuid.UUID
    admin_id: uuid.UUID
    email: str
    role: str
    csrf_token_hash: str

    @property
    def actor(self) -> AdminActor:
        return AdminActor(self.admin_id, self.email, self.role, self.session_id)


@dataclass(frozen=True)
class IssuedSession:
    admin: Admin
    token: str
    csrf_token: str
    expires_at: datetime
    session_id: uuid.UUID


def login_policy(settings: Settings) -> ratelimit.Policy:
    return ratelimit.Policy.of(
        "admin-login",
        settings.admin_login_max_failures,
        timedelta(seconds=settings.admin_login_lock_seconds),
        settings,
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
    policy = login_policy(settings)
    with passwords.admission(settings, meta.ip):
        admin = await session.scalar(select(Admin).where(Admin.email == normalized))
        if not await credentials.check_password(
            session, policy, normalized, meta.ip, admin, password, now
        ):
            await record_event(
                session, action="admin.login_failed", actor_type="anonymous", actor_id=None,
                actor_email=normalized, meta=meta, now=now, target_type="admin",
                target_id=admin.id if admin else None,
            )  # fmt: skip
            # The failure must count although the request fails: commit before raising.
            await session.commit()
            raise InvalidCredentials()
    assert admin is not None
    issued = await _issue(session, settings, admin, meta, now)
    # Same transaction as the new session: no session without its event, nor the reverse.
    await record_admin_action(
        session, actor=AdminActor(admin.id, admin.email, admin.role, issued.session_id),
        meta=meta, now=now, action="admin.login", target_type="admin_session",
        target_id=issued.session_id, details={"role": admin.role},
    )  # fmt: skip
    return issued


async def _issue(
    session: AsyncSession, settings: Settings, admin: Admin, meta: RequestMeta, now: datetime
) -> IssuedSession:
    token, csrf_token = tokens.new_token(), tokens.new_token()
    expires_at = now + timedelta(seconds=settings.admin_session_absolute_seconds)
    admin_session = AdminSession(
        admin_id=admin.id,
        token_hash=tokens.digest(token),
        csrf_token_hash=tokens.digest(csrf_token),
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
        ip=meta.ip,
        user_agent=(meta.user_agent or "")[:512] or None,
    )
    session.add(admin_session)
    await session.flush()
    return IssuedSession(admin, token, csrf_token, expires_at, admin_session.id)


async def authenticate(
    session: AsyncSession, settings: Settings, *, token: str, now: datetime
) -> SignedInAdmin:
    """The live session behind a token, or SESSION_INVALID / SESSION_EXPIRED."""
    row = (await session.execute(_SESSION_BY_TOKEN, {"token_hash": tokens.digest(token)})).first()
    if row is None:
        raise SessionInvalid()
    if row.revoked_at is not None:
        raise SessionInvalid("Admin session has been revoked")
    idle_limit = row.last_seen_at + timedelta(seconds=settings.admin_session_idle_seconds)
    if now >= row.expires_at or now >= idle_limit:
        raise SessionExpired()
    if now - row.last_seen_at >= TOUCH_INTERVAL:
        # Committed at once (authentication comes before any change of the request): a
        # request that fails is activity too, and its rollback must not undo the touch.
        await session.execute(_TOUCH, {"sid": row.id, "now": now})
        await session.commit()
    return SignedInAdmin(row.id, row.admin_id, row.email, row.role, row.csrf_token_hash)


def csrf_token_matches(admin: SignedInAdmin, csrf_token: str | None) -> bool:
    return csrf_token is not None and tokens.same_digest(csrf_token, admin.csrf_token_hash)


async def revoke(session: AsyncSession, admin_session_id: object, now: datetime) -> None:
    admin_session = await session.get(AdminSession, admin_session_id)
    if admin_session is not None and admin_session.revoked_at is None:
        admin_session.revoked_at = now


async def log_out(
    session: AsyncSession, actor: AdminActor, meta: RequestMeta, now: datetime
) -> None:
    """Revokes the actor's own session and records it, in one transaction."""
    await revoke(session, actor.session_id, now)
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="admin.logout",
        target_type="admin_session", target_id=actor.session_id,
    )  # fmt: skip
