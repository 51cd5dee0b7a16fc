"""Admin accounts: creation by the CLI and the one-time bootstrap signup."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import AdminBootstrapClosed, AdminSecretInvalid, EmailAlreadyExists
from nestauth.models import Admin
from nestauth.services import passwords
from nestauth.services.audit import RequestMeta, record_event
from nestauth.services.emails import normalize_email
from nestauth.services.tokens import same_secret

# Arbitrary constant naming the bootstrap lock among PostgreSQL advisory locks.
BOOTSTRAP_LOCK_ID = 0x6E61_6274


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
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise EmailAlreadyExists() from None
    return admin


async def bootstrap_first_admin(
    session: AsyncSession,
    *,
    configured_secret: str | None,
    given_secret: str | None,
    email: str,
    password: str,
    name: str | None,
    meta: RequestMeta,
    now: datetime,
) -> Admin:
    """Creates the first admin as owner; the secret is checked before anything is revealed."""
    if configured_secret is None:
        raise AdminBootstrapClosed("Bootstrap signup is disabled; use `nestauth admin create`")
    if given_secret is None or not same_secret(given_secret, configured_secret):
        raise AdminSecretInvalid()
    await _serialize_bootstrap(session)
    if await session.scalar(select(func.count()).select_from(Admin)):
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


async def _serialize_bootstrap(session: AsyncSession) -> None:
    """Two concurrent signups must not both see an empty table (SQLite: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": BOOTSTRAP_LOCK_ID})
