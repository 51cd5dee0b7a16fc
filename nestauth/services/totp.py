"""TOTP codes (RFC 6238 with pyotp: SHA-1, 6 digits, 30 s steps), checked against replay."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp
from sqlalchemy import bindparam, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import TotpDevice, core_table

STEP_SECONDS = 30
DRIFT_STEPS = 1  # RFC 6238 §5.2: allow one step either side for clock drift
# Built once: a statement's construction and cache key cost more than its execution.
_DEVICES = core_table(TotpDevice)  # Core: no ORM bookkeeping on every MFA step
_CLAIM_STEP = (
    update(_DEVICES)
    .where(
        _DEVICES.c.id == bindparam("device_id"),
        or_(_DEVICES.c.last_used_step.is_(None), _DEVICES.c.last_used_step < bindparam("step")),
    )
    .values(last_used_step=bindparam("step"), last_used_at=bindparam("now"))
)


def otpauth_url(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code this is, within the drift window, compared in constant time."""
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found


async def claim_step(session: AsyncSession, device_id: object, step: int, now: datetime) -> bool:
    """Records the step as used unless it, or a later one, was used before: each code is
    accepted once per device (RFC 6238 §5.2), even by two requests at the same moment."""
    result = await session.execute(_CLAIM_STEP, {"device_id": device_id, "step": step, "now": now})
    return bool(result.rowcount)  # type: ignore[attr-defined]
