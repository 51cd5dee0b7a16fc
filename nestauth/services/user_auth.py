"""End-user sign-up, password login, token refresh and logout."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import InvalidCredentials, SessionInvalid
from nestauth.models import UsedRefreshToken, User, UserSession, core_table
from nestauth.services import (
    credentials,
    mfa,
    passwords,
    ratelimit,
    tokens,
    user_sessions,
    user_tokens,
    users,
)
from nestauth.services.audit import RequestMeta
from nestauth.services.emails import normalize_email

# Built once, Core: no statement construction or unit-of-work flush per login.
_INSERT_SESSION = insert(core_table(UserSession))


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    user: User


@dataclass(frozen=True)
class Principal:
    user: User
    session: UserSession


def login_policy(settings: Settings) -> ratelimit.Policy:
    return ratelimit.Policy.of(
        "user-login",
        settings.user_login_max_failures,
        timedelta(seconds=settings.user_login_lock_seconds),
        settings,
    )


def signup_limits(settings: Settings) -> tuple[ratelimit.Limit, ratelimit.Limit]:
    """Sign-ups per (email, address) and per address, successful or not: an address cannot
    mass-create accounts, nor probe one email's 409 in a loop."""
    window = timedelta(seconds=settings.signup_window_seconds)
    return (
        ratelimit.Limit("signup", settings.signup_max_per_email_ip, window),
        ratelimit.Limit("signup-ip", settings.signup_max_per_ip, window),
    )


async def sign_up(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    meta: RequestMeta,
    now: datetime,
) -> Tokens:
    """The attempt is counted and committed before the hash, like a login's password step:
    no transaction waits on argon2."""
    pair_limit, address_limit = signup_limits(settings)
    address = meta.ip or "unknown"
    with passwords.admission(settings, meta.ip):
        await ratelimit.count_attempt(
            session, pair_limit, f"{normalize_email(email)}|{address}", now
        )
        await ratelimit.count_attempt(session, address_limit, address, now)
        await session.commit()
        user = await users.create_user(session, email=email, password=password)
    return await open_session(session, settings, user, meta, now)


async def check_password(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    address: str | None,
    now: datetime,
) -> User:
    """One answer for an unknown email, a wrong password and a deactivated account, in
    similar time (ASVS 2.2.x, no account enumeration)."""
    normalized = normalize_email(email)
    with passwords.admission(settings, address):
        user = await session.scalar(select(User).where(User.email == normalized))
        usable = user is not None and user.is_active
        if not await credentials.check_password(
            session, login_policy(settings), normalized, address, user, password, now,
            usable=usable,
        ):  # fmt: skip
            await session.commit()  # the failure counts although the request fails
            raise InvalidCredentials()
    assert user is not None
    return user


async def open_session(
    session: AsyncSession, settings: Settings, user: User, meta: RequestMeta, now: datetime
) -> Tokens:
    await user_sessions.make_room(session, user, settings.max_sessions_per_user, meta=meta, now=now)
    session_id = uuid.uuid4()
    refresh_token, refresh_digest = user_tokens.new_refresh_token(session_id)
    await session.execute(
        _INSERT_SESSION,
        {
            "id": session_id, "user_id": user.id, "refresh_token_hash": refresh_digest,
            "created_at": now, "last_used_at": now, "authenticated_at": now,
            "expires_at": now + timedelta(seconds=settings.refresh_token_seconds),
            "ip": meta.ip, "user_agent": meta.user_agent, "revoked_at": None,
        },
    )  # fmt: skip
    return Tokens(_access_token(settings, user.id, session_id, now), refresh_token, user)


def _access_token(
    settings: Settings, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> str:
    key = user_tokens.signing_key(settings.secret_key)  # the current key signs
    return user_tokens.issue_access_token(
        key, user_id, session_id, now, settings.access_token_seconds
    )


async def refresh(
    session: AsyncSession, settings: Settings, *, refresh_token: str, now: datetime
) -> Tokens:
    """Rotates the refresh token. Presenting one already exchanged means two parties hold it:
    the session is revoked (OWASP refresh token rotation, reuse detection)."""
    parts = user_tokens.split_refresh_token(refresh_token)
    if parts is None:
        raise SessionInvalid("Invalid refresh token")
    session_id, secret = parts
    row = await session.scalar(
        select(UserSession).where(UserSession.id == session_id).with_for_update()
    )
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise SessionInvalid("Invalid refresh token")
    if not tokens.same_digest(secret, row.refresh_token_hash):
        await _revoke_if_reused(session, row, secret, now)
        raise SessionInvalid("Invalid refresh token")
    user = await users.get_user(session, row.user_id)
    if not user.is_active:
        raise SessionInvalid("Invalid refresh token")
    new_token, new_digest = user_tokens.new_refresh_token(row.id)
    session.add(UsedRefreshToken(token_hash=row.refresh_token_hash, session_id=row.id, used_at=now))
    row.refresh_token_hash, row.last_used_at = new_digest, now
    return Tokens(_access_token(settings, user.id, row.id, now), new_token, user)


async def _revoke_if_reused(
    session: AsyncSession, row: UserSession, secret: str, now: datetime
) -> None:
    used = await session.scalar(
        select(UsedRefreshToken.session_id).where(
            UsedRefreshToken.token_hash == tokens.digest(secret),
            UsedRefreshToken.session_id == row.id,
        )
    )
    if used is not None:
        row.revoked_at = now
        await session.commit()  # the revocation must stand although the request fails
        raise SessionInvalid("Refresh token reuse detected; the session is revoked")


async def authenticate(
    session: AsyncSession, settings: Settings, *, access_token: str, now: datetime
) -> Principal:
    """The live session behind an access token, or SESSION_INVALID."""
    claims = user_tokens.read_access_token(
        user_tokens.verification_keys(settings), access_token, now
    )
    if claims is None:
        raise SessionInvalid("Invalid or expired access token")
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.id == claims.session_id, UserSession.user_id == claims.user_id)
        )
    ).first()
    if row is None:
        raise SessionInvalid("Invalid or expired access token")
    user_session, user = row
    if user_session.revoked_at is not None or user_session.expires_at <= now or not user.is_active:
        raise SessionInvalid("Session has been revoked")
    return Principal(user=user, session=user_session)


def log_out(user_session: UserSession, now: datetime) -> None:
    user_session.revoked_at = now


async def log_out_everywhere(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    return await user_sessions.revoke_all(session, user_id, now)


@dataclass(frozen=True)
class MfaPending:
    """The password was right; a second factor (or, first, a device to give one) is due."""

    mfa_token: str
    methods: list[str]
    setup_required: bool


async def log_in(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    meta: RequestMeta,
    now: datetime,
) -> Tokens | MfaPending:
    """A user flagged for MFA, or under an MFA policy, with no verified device gets a
    setup-only token: enrol, then the login finishes. Never locked out."""
    user = await check_password(
        session, settings, email=email, password=password, address=meta.ip, now=now
    )
    if not (user.is_mfa_enabled or settings.mfa_required):
        return await open_session(session, settings, user, meta, now)
    has_device = any(d.verified for d in await users.list_devices(session, user.id))
    token = await mfa.issue_challenge(
        session, settings, user, "login" if has_device else "setup", now
    )
    if not has_device:
        return MfaPending(token, [], setup_required=True)
    methods = ["totp"]
    if await mfa.has_unused_recovery_codes(session, user.id):
        methods.append("recovery")
    return MfaPending(token, methods, setup_required=False)
