"""Admin accounts: the one-time bootstrap signup, the CLI, and owners managing admins."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import (
    AdminBootstrapClosed,
    AdminNotFound,
    AdminSecretInvalid,
    LastOwner,
)
from nestauth.models import Admin, AdminSession
from nestauth.services import passwords, ratelimit
from nestauth.services.audit import AdminActor, RequestMeta, record_admin_action, record_event
from nestauth.services.emails import flush_unique_email, normalize_email
from nestauth.services.pagination import Order, Page, PageRequest, paginate
from nestauth.services.tokens import same_secret

# Arbitrary constant naming the bootstrap lock among PostgreSQL advisory locks.
BOOTSTRAP_LOCK_ID = 0x6E61_6274
_OWNERS_IN_ID_ORDER = (
    select(Admin.id).where(Admin.role == "owner").order_by(Admin.id).with_for_update()
)


async def create_admin(
    session: AsyncSession, *, email: str, password: str, role: str, name: str | None = None
) -> Admin:
    admin = Admin(
        email=normalize_email(email),
        name=name,
        role=role,
        password_hash=await passwords.hash_password(password),
    )
    session.add(admin)
    await flush_unique_email(session)
    return admin


def signup_limits(settings: Settings) -> tuple[ratelimit.Limit, ratelimit.Limit]:
    """Wrong bootstrap secrets, per client address and in all: the secret cannot be
    guessed quickly, from one address or from many."""
    window = timedelta(seconds=settings.admin_signup_lock_seconds)
    return (
        ratelimit.Limit("admin-signup-ip", settings.admin_signup_max_failures, window),
        ratelimit.Limit("admin-signup", settings.admin_signup_max_failures_total, window),
    )


async def bootstrap_first_admin(
    session: AsyncSession,
    settings: Settings,
    *,
    given_secret: str | None,
    email: str,
    password: str,
    name: str | None,
    meta: RequestMeta,
    now: datetime,
) -> Admin:
    """Creates the first admin as owner. Once closed, one answer whatever the secret: it is
    checked only while the bootstrap is open, and rate limited."""
    if settings.admin_secret is None:
        raise AdminBootstrapClosed("Bootstrap signup is disabled; use `nestauth admin create`")
    if await _any_admin(session):
        raise AdminBootstrapClosed()
    await _check_bootstrap_secret(session, settings, given_secret, meta, now)
    await _serialize_bootstrap(session)
    if await _any_admin(session):
        raise AdminBootstrapClosed()
    admin = await create_admin(session, email=email, password=password, role="owner", name=name)
    await record_event(
        session,
        action="admin.bootstrapped",
        actor_type="bootstrap",
        actor_id=admin.id,
        actor_email=admin.email,
        meta=meta,
        now=now,
        target_type="admin",
        target_id=admin.id,
        details={"role": admin.role},
    )
    return admin


async def _any_admin(session: AsyncSession) -> bool:
    return await session.scalar(select(Admin.id).limit(1)) is not None


async def _check_bootstrap_secret(
    session: AsyncSession,
    settings: Settings,
    given_secret: str | None,
    meta: RequestMeta,
    now: datetime,
) -> None:
    """Limits first (a blocked client learns nothing, even with the right secret); a wrong
    secret counts against the client and the total, committed although the request fails."""
    per_ip, total = signup_limits(settings)
    subjects = ((per_ip, meta.ip or "unknown"), (total, "all"))
    for limit, subject in subjects:  # always in this order: no lock-order deadlock
        await ratelimit.ensure_allowed(session, limit, subject, now)
    assert settings.admin_secret is not None
    if given_secret is not None and same_secret(given_secret, settings.admin_secret):
        return
    for limit, subject in subjects:
        await ratelimit.record_failure(session, limit, subject, now)
    await session.commit()
    raise AdminSecretInvalid()


async def _serialize_bootstrap(session: AsyncSession) -> None:
    """Two concurrent signups must not both see an empty table (SQLite: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": BOOTSTRAP_LOCK_ID})


OLDEST_FIRST = Order("admins", (Admin.created_at, Admin.id), descending=False)


_LIST_ADMINS = select(Admin.id, Admin.email, Admin.name, Admin.role, Admin.created_at)


async def list_admins(session: AsyncSession, request: PageRequest) -> Page[Any]:
    return await paginate(session, _LIST_ADMINS, OLDEST_FIRST, request)


async def add_admin(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: str,
    name: str | None,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> Admin:
    admin = await create_admin(session, email=email, password=password, role=role, name=name)
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="admin.created",
        target_type="admin", target_id=admin.id, details={"role": role},
    )  # fmt: skip
    return admin


async def update_admin(
    session: AsyncSession,
    admin_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> Admin:
    """A demotion or a new password ends the admin's sessions at once (ASVS 3.3.3)."""
    owners = await _lock_owners(session) if "role" in changes else []
    admin = await get_admin(session, admin_id, lock=True)
    changed = []
    if "role" in changes and changes["role"] != admin.role:
        if admin.role == "owner":
            _ensure_another_owner(owners, admin.id)
        admin.role = changes["role"]
        changed.append("role")
    if "name" in changes and changes["name"] != admin.name:
        admin.name = changes["name"]
        changed.append("name")
    if "password" in changes:
        admin.password_hash = await passwords.hash_password(changes["password"])
        changed.append("password")
    revoked = await _revoke_sessions(session, admin.id, now) if set(changed) - {"name"} else 0
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="admin.updated",
        target_type="admin", target_id=admin.id,
        details={"changedFields": changed, "sessionsRevoked": revoked},
    )  # fmt: skip
    return admin


async def delete_admin(
    session: AsyncSession,
    admin_id: uuid.UUID,
    *,
    actor: AdminActor,
    meta: RequestMeta,
    now: datetime,
) -> None:
    """Sessions go with the admin (ON DELETE CASCADE), so its tokens fail at once."""
    owners = await _lock_owners(session)
    admin = await get_admin(session, admin_id, lock=True)
    if admin.role == "owner":
        _ensure_another_owner(owners, admin.id)
    await session.execute(delete(Admin).where(Admin.id == admin_id))
    await record_admin_action(
        session, actor=actor, meta=meta, now=now, action="admin.deleted",
        target_type="admin", target_id=admin_id, details={"email": admin.email, "role": admin.role},
    )  # fmt: skip


async def get_admin(session: AsyncSession, admin_id: uuid.UUID, *, lock: bool = False) -> Admin:
    query = select(Admin).where(Admin.id == admin_id)
    admin = await session.scalar(query.with_for_update() if lock else query)
    if admin is None:
        raise AdminNotFound()
    return admin


async def _lock_owners(session: AsyncSession) -> list[uuid.UUID]:
    """Locks every owner row, in id order and in one statement, before the target is
    touched: two owners removing each other then queue on the same first row instead of
    each holding the row the other waits for (a deadlock, 503, on PostgreSQL). A row
    demoted meanwhile is re-checked after the wait and left out."""
    return list((await session.scalars(_OWNERS_IN_ID_ORDER)).all())


def _ensure_another_owner(owners: list[uuid.UUID], owner_id: uuid.UUID) -> None:
    """The owners are locked, so none of them can be removed before this change commits."""
    if not set(owners) - {owner_id}:
        raise LastOwner()


async def _revoke_sessions(session: AsyncSession, admin_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        update(AdminSession)
        .where(AdminSession.admin_id == admin_id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
