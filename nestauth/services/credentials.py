"""The password step of a login, shared by admins and users: limited, uniform, upgraded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import Admin, User
from nestauth.services import passwords, ratelimit


async def check_password(
    session: AsyncSession,
    policy: ratelimit.Policy,
    subject: str,
    address: str | None,
    account: Admin | User | None,
    password: str,
    now: datetime,
    *,
    usable: bool = True,
) -> bool:
    """True when the password is right and the account `usable`. An unknown account still
    pays for one verification: the same answer in similar time (ASVS 2.2.x).

    The attempt is counted as a failure and committed before the hash is checked, so no
    transaction (on SQLite: the database's one writer) waits on argon2, and parallel
    guesses can never outrun the limit; a success then clears the count and upgrades an
    old hash. The caller holds a place in the hashing queue (passwords.admission) from
    before its account look-up, so that a refused request costs no database work."""
    await ratelimit.ensure_allowed_from(session, policy, subject, address, now)
    await ratelimit.record_failure_from(session, policy, subject, address, now)
    await session.commit()
    hashed = account.password_hash if account else None
    if not await passwords.verify_password(hashed, password) or not usable:
        return False
    await ratelimit.clear_pair(session, policy, subject, address)
    await ratelimit.withdraw_failure(session, policy, subject, address)
    if account is not None and hashed and passwords.needs_rehash(hashed):
        account.password_hash = await passwords.hash_password(password)
    return True
