"""End-user accounts as admins see and manage them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import UserNotFound
from nestauth.models import RecoveryCode, TotpDevice, User, UserSession, core_table
from nestauth.services import passwords, user_sessions
from nestauth.services.audit import AdminActor, RequestMeta, record_admin_action
from nestauth.services.emails import flush_unique_email, normalize_email
from nestauth.services.pagination import Order, Page, PageRequest, paginate

STATUS_FILTERS = {
    "active": User.is_active.is_(True),
    "inactive": User.is_active.is_(False),
    "verified": User.is_verified.is_(True),
    "unverified": User.is_verified.is_(False),
}
# Newest first; a search instead walks the email index in its order (emails are unique).
BY_CREATION = Order("users", (User.created_at, User.id))
BY_EMAIL = Order("users-search", (User.email,), descending=False)
# Request field → model attribute, for updates and the audit's list of changed fields.
UPDATABLE = {
    "email": "email",
    "phone": "phone",
    "isActive": "is_active",
    "isVerified": "is_verified",
    "isMfaEnabled": "is_mfa_enabled",
    "metadata": "metadata_",
}

DETAIL_SESSIONS = 10  # a user's view shows the newest; GET .../sessions pages through all
# Built once: a statement's construction and cache key cost more than its execution.
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))
_USER_BY_ID_LOCKED = _USER_BY_ID.with_for_update()
_DEVICES_OF_USER = (
    select(TotpDevice)
    .where(TotpDevice.user_id == bindparam("user_id"))
    .order_by(TotpDevice.created_at, TotpDevice.id)
)
# An admin's view of one user, read with Core: only the columns the response shows (no
# password hash, TOTP secret or refresh-token digest is even loaded), no ORM objects.
_USERS, _DEVICES, _SESSIONS, _CODES = (
    core_table(model) for model in (User, TotpDevice, UserSession, RecoveryCode)
)
_DETAIL_USER = select(
    _USERS.c.id, _USERS.c.email, _USERS.c.phone, _USERS.c.is_active, _USERS.c.is_verified,
    _USERS.c.is_mfa_enabled, _USERS.c.metadata.label("metadata_"), _USERS.c.created_at,
    _USERS.c.updated_at,
    exists()
    .where(_CODES.c.user_id == _USERS.c.id, _CODES.c.used_at.is_(None))
    .correlate(_USERS)
    .label("has_recovery_codes"),
).where(_USERS.c.id == bindparam("user_id"))  # fmt: skip
_LIST_USERS = select(
    _USERS.c.id, _USERS.c.email, _USERS.c.phone, _USERS.c.is_active, _USERS.c.is_verified,
    _USERS.c.is_mfa_enabled, _USERS.c.metadata.label("metadata_"), _USERS.c.created_at,
    _USERS.c.updated_at,
)  # fmt: skip
_DETAIL_DEVICES = (
    select(
        _DEVICES.c.id, _DEVICES.c.device_name, _DEVICES.c.verified, _DEVICES.c.last_used_at,
        _DEVICES.c.created_at,
    )
    .where(_DEVICES.c.user_id == bindparam("user_id"))
    .order_by(_DEVICES.c.created_at, _DEVICES.c.id)
)  # fmt: skip
_DETAIL_SESSIONS = (
    select(
        _SESSIONS.c.id, _SESSIONS.c.created_at, _SESSIONS.c.last_used_at,
        _SESSIONS.c.expires_at, _SESSIONS.c.ip, _SESSIONS.c.user_agent,
    )
    .where(
        _SESSIONS.c.user_id == bindparam("user_id"),
        _SESSIONS.c.revoked_at.is_(None),
        _SESSIONS.c.expires_at > bindparam("now"),
    )
    .order_by(_SESSIONS.c.created_at.desc(), _SESSIONS.c.id.desc())
    .limit(DETAIL_SESSIONS)
)  # fmt: skip


@dataclass(frozen=True)
class UserDetail:
    """Rows with the attribute names of User, TotpDevice and UserSession (views take both)."""

    user: Any
    devices: list[Any]
    has_recovery_codes: bool
    sessions: list[Any]  # the newest DETAIL_SESSIONS live ones
    sessions_total: int  # all live ones


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str | None = None,
    phone: str | None = None,
    is_active: bool = True,
    is_verified: bool = False,
    metadata: dict[str, Any] | None = None,
) -> User:
    user = User(
        email=normalize_email(email),
        password_hash=await passwords.hash_password(password) if password else None,
        phone=phone,
        is_active=is_active,
        is_verified=is_verified,
        metadata_=metadata,
    )
    session.add(user)
    await flush_unique_email(session)
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User:
    query = _USER_BY_ID_LOCKED if lock else _USER_BY_ID
    user = await session.scalar(query, {"user_id": user_id})
    if user is None:
        raise UserNotFound()
    return user


async def list_users(
    session: AsyncSession, request: PageRequest, *, search: str | None, status: str | None
) -> Page[Any]:
    query = _LIST_USERS
    if status:
        query = query.where(STATUS_FILTERS[status])
    prefix = normalize_email(search or "")
    if not prefix:
        return await paginate(session, query, BY_CREATION, request)
    query = query.where(User.email >= prefix)
    following = _following_prefix(prefix)
    if following is not None:
        query = query.where(User.email < following)
    return await paginate(session, query, BY_EMAIL, request)


def _following_prefix(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in byte order (the
    emails' collation on both databases): [prefix, this) is the search's index range, and
    `%` or `_` in it are plain characters. None when no such string exists."""
    while prefix:
        last = ord(prefix[-1]) + 1
        last = 0xE000 if 0xD800 <= last <= 0xDFFF else last  # no surrogates in UTF-8
        if last <= 0x10FFFF:
            return prefix[:-1] + chr(last)
        prefix = prefix[:-1]
    return None


async def get_user_detail(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> UserDetail:
    """Four queries whatever the number of devices and sessions."""
    user = (await session.execute(_DETAIL_USER, {"user_id": user_id})).first()
    if user is None:
        raise UserNotFound()
    devices = (await session.execute(_DETAIL_DEVICES, {"user_id": user_id})).all()
    live = (await session.execute(_DETAIL_SESSIONS, {"user_id": user_id, "now": now})).all()
    total = await user_sessions.count_live(session, user_id, now)
    return UserDetail(user, list(devices), bool(user.has_recovery_codes), list(live), total)


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[TotpDevice]:
    return list((await session.scalars(_DEVICES_OF_USER, {"user_id": user_id})).all())


async def update_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> User:
    """Deactivation and a new password end every session of the user (ASVS 3.3.3)."""
    user = await get_user(session, user_id, lock=True)
    changed = _apply_changes(user, changes)
    if "password" in changes:
        user.password_hash = await passwords.hash_password(changes["password"])
        changed.append("password")
    await flush_unique_email(session)
    ends_sessions = "password" in changed or ("isActive" in changed and not user.is_active)
    revoked = await user_sessions.revoke_all(session, user_id, now) if ends_sessions else 0
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="user.updated",
        target_type="user", target_id=user_id, user_id=user_id,
        details={"changedFields": changed, "sessionsRevoked": revoked},
    )  # fmt: skip
    return user


def _apply_changes(user: User, changes: dict[str, Any]) -> list[str]:
    changed = []
    for field, attribute in UPDATABLE.items():
        if field not in changes:
            continue
        value = normalize_email(changes[field]) if field == "email" else changes[field]
        if getattr(user, attribute) != value:
            setattr(user, attribute, value)
            changed.append(field)
    return changed


async def delete_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> None:
    """Devices, recovery codes and sessions go with the user (ON DELETE CASCADE)."""
    user = await get_user(session, user_id, lock=True)
    await session.execute(delete(User).where(User.id == user_id))
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="user.deleted",
        target_type="user", target_id=user_id, user_id=user_id, details={"email": user.email},
    )  # fmt: skip


async def add_user(
    session: AsyncSession,
    fields: dict[str, Any],
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> User:
    user = await create_user(
        session,
        email=fields["email"],
        password=fields.get("password"),
        phone=fields.get("phone"),
        is_active=fields.get("isActive", True),
        is_verified=fields.get("isVerified", False),
        metadata=fields.get("metadata"),
    )
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="user.created",
        target_type="user", target_id=user.id, user_id=user.id,
        details={"fields": sorted(fields)},
    )  # fmt: skip
    return user


async def revoke_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> int:
    user = await get_user(session, user_id, lock=True)
    revoked = await user_sessions.revoke_all(session, user.id, now)
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="user.sessions.revoked",
        target_type="user", target_id=user.id, user_id=user.id,
        details={"sessionsRevoked": revoked},
    )  # fmt: skip
    return revoked


async def revoke_session(
    session: AsyncSession,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> None:
    user = await get_user(session, user_id, lock=True)
    await user_sessions.revoke_one(session, user.id, session_id, now)
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="user.session.revoked",
        target_type="user_session", target_id=session_id, user_id=user.id,
    )  # fmt: skip
