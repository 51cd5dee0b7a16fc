"""End-user accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import EmailAlreadyExists
from nestauth.models import User
from nestauth.services import passwords
from nestauth.services.emails import normalize_email


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str | None = None,
    is_active: bool = True,
    is_verified: bool = False,
    metadata: dict[str, Any] | None = None,
) -> User:
    user = User(
        email=normalize_email(email),
        password_hash=await passwords.hash_password(password) if password else None,
        is_active=is_active,
        is_verified=is_verified,
        metadata_=metadata,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise EmailAlreadyExists() from None
    return user
