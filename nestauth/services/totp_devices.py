"""TOTP devices: enrolment records and their removal by an admin (the seed operation)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.errors import SecretKeyMismatch, TotpDeviceNotFound, UserNotFound
from nestauth.models import RecoveryCode, TotpDevice, User, core_table
from nestauth.services import user_sessions, users
from nestauth.services.audit import Actor, RequestMeta, record_action
from nestauth.services.secrets import SecretBox, SecretUnreadable

log = logging.getLogger("nestauth.totp_devices")

# Enrolments started and not verified yet, kept per user; a new one replaces the oldest.
MAX_PENDING = 3
# Built once, and Core (no ORM bookkeeping): the seed operation runs these on every call.
_DEVICES, _USERS, _CODES = (core_table(model) for model in (TotpDevice, User, RecoveryCode))
# The user (locked: concurrent removals of one user's devices queue here) and whether the
# device is theirs, in one statement: the not-found answers need no second one.
_LOCK_USER_FIND_DEVICE = (
    select(_USERS.c.id, _DEVICES.c.id.label("device_id"))
    .select_from(
        _USERS.outerjoin(
            _DEVICES,
            and_(_DEVICES.c.id == bindparam("device_id"), _DEVICES.c.user_id == _USERS.c.id),
        )
    )
    .where(_USERS.c.id == bindparam("uid"))
    .with_for_update(of=_USERS)
)
_DELETE_DEVICE = (
    delete(_DEVICES)
    .where(_DEVICES.c.id == bindparam("device_id"), _DEVICES.c.user_id == bindparam("uid"))
    .returning(_DEVICES.c.device_name, _DEVICES.c.verified)
)
_MFA_OFF = update(_USERS).where(_USERS.c.id == bindparam("uid")).values(is_mfa_enabled=False)
_DELETE_RECOVERY_CODES = delete(_CODES).where(_CODES.c.user_id == bindparam("uid"))
_COUNT_VERIFIED = (
    select(func.count())
    .select_from(_DEVICES)
    .where(_DEVICES.c.user_id == bindparam("uid"), _DEVICES.c.verified.is_(True))
)
_LOCK_USER = select(_USERS.c.id).where(_USERS.c.id == bindparam("uid")).with_for_update()
_DELETE_EXPIRED_PENDING = delete(_DEVICES).where(
    _DEVICES.c.user_id == bindparam("uid"),
    _DEVICES.c.verified.is_(False),
    _DEVICES.c.created_at <= bindparam("cutoff"),
)


@dataclass(frozen=True)
class DeviceRemoval:
    user_id: uuid.UUID
    device_id: uuid.UUID
    remaining_devices: int
    mfa_disabled: bool
    sessions_revoked: int
    device_verified: bool


def secret_binding(device_id: uuid.UUID) -> bytes:
    """Associated data: a sealed secret copied onto another device row will not open."""
    return b"totp_devices:" + device_id.bytes


def seal_device_secret(box: SecretBox, device_id: uuid.UUID, secret: str) -> bytes:
    """The stored form of a device's secret (bulk loaders build rows with it)."""
    return box.seal(secret, secret_binding(device_id))


async def add_device(
    session: AsyncSession,
    box: SecretBox,
    *,
    user_id: uuid.UUID,
    device_name: str,
    secret: str | None = None,
    verified: bool = False,
    created_at: datetime | None = None,
) -> tuple[TotpDevice, str]:
    """Stores a device with its secret sealed; returns the device and the plain secret."""
    secret = secret or pyotp.random_base32()
    device_id = uuid.uuid4()
    device = TotpDevice(
        id=device_id,
        user_id=user_id,
        device_name=device_name,
        secret_encrypted=seal_device_secret(box, device_id, secret),
        verified=verified,
    )
    if created_at is not None:  # the request's clock: a pending device expires by it
        device.created_at = created_at
    session.add(device)
    await session.flush()
    return device, secret


def device_secret(box: SecretBox, device: TotpDevice) -> str:
    try:
        return box.open(device.secret_encrypted, secret_binding(device.id))
    except SecretUnreadable:
        # One line for the operator, no traceback: the cause is configuration, not code.
        log.error(
            "TOTP secret of device %s opens under none of the configured server keys "
            "(NESTAUTH_SECRET_KEY / NESTAUTH_PREVIOUS_SECRET_KEYS)",
            device.id,
        )
        raise SecretKeyMismatch() from None


def is_pending(device: TotpDevice, cutoff: datetime) -> bool:
    """An enrolment started after `cutoff` and not verified yet."""
    return not device.verified and device.created_at > cutoff


async def lock_devices(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Locks the user's row: enrolments of one user then queue, so neither the device cap
    nor the bound on pending rows is decided on a stale count (PostgreSQL; SQLite's
    transactions take turns anyway)."""
    await session.execute(_LOCK_USER, {"uid": user_id})


async def make_room_for_enrolment(
    session: AsyncSession, user_id: uuid.UUID, cutoff: datetime
) -> list[TotpDevice]:
    """Before a new enrolment: expired pending rows go, and the oldest live ones are
    replaced beyond MAX_PENDING - 1, so the rows per user stay bounded and abandoned
    setups can never block a new one. Returns the user's devices left, oldest first."""
    await lock_devices(session, user_id)
    await session.execute(_DELETE_EXPIRED_PENDING, {"uid": user_id, "cutoff": cutoff})
    devices = await users.list_devices(session, user_id)
    pending = [d for d in devices if not d.verified]
    for stale in pending[: max(0, len(pending) - MAX_PENDING + 1)]:
        await session.delete(stale)
        devices.remove(stale)
    return devices


async def remove_user_device(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    device_id: uuid.UUID,
    revoke_sessions: bool,
    mfa_required: bool,
    actor: Actor,
    meta: RequestMeta,
    now: datetime,
) -> DeviceRemoval:
    """Removes one device, applies the last-device rule, revokes sessions, audits; one txn.
    The same rule whether an admin removes it or the user does."""
    # Locking the user serialises concurrent removals of this user's devices, so the
    # "no verified device left" decision below is never made on a stale count.
    keys = {"device_id": device_id, "uid": user_id}
    found = (await session.execute(_LOCK_USER_FIND_DEVICE, keys)).first()
    if found is None:
        raise UserNotFound()
    # Found, but possibly removed by a request that held the lock first: the DELETE decides.
    removed = (await session.execute(_DELETE_DEVICE, keys)).first() if found.device_id else None
    if removed is None:
        raise TotpDeviceNotFound()
    remaining = await _count_verified_devices(session, user_id)
    mfa_disabled = await _apply_last_device_rule(session, user_id, remaining, mfa_required)
    revoked = await user_sessions.revoke_all(session, user_id, now) if revoke_sessions else 0
    await record_action(
        session,
        actor=actor,
        meta=meta,
        action="user.totp_device.removed",
        now=now,
        target_type="totp_device",
        target_id=device_id,
        user_id=user_id,
        details={
            "deviceName": removed.device_name,
            "deviceVerified": removed.verified,
            "remainingDevices": remaining,
            "mfaDisabled": mfa_disabled,
            "sessionsRevoked": revoked,
        },
    )
    return DeviceRemoval(user_id, device_id, remaining, mfa_disabled, revoked, removed.verified)


async def _apply_last_device_rule(
    session: AsyncSession, user_id: uuid.UUID, remaining: int, mfa_required: bool
) -> bool:
    """With no verified device left and no MFA policy, MFA goes off with its recovery codes;
    under a policy the user stays flagged and enrols again at the next login."""
    if remaining or mfa_required:
        return False
    await session.execute(_MFA_OFF, {"uid": user_id})
    await session.execute(_DELETE_RECOVERY_CODES, {"uid": user_id})
    return True


async def _count_verified_devices(session: AsyncSession, user_id: uuid.UUID) -> int:
    return int(await session.scalar(_COUNT_VERIFIED, {"uid": user_id}) or 0)
