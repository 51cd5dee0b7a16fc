"""Step-up: a user changing their own factors must have signed in recently, or prove it now.

A stolen access token (or a refresh token, which keeps a session alive without signing in)
must not be enough to turn MFA off or to mint recovery codes (ASVS 3.7.1). The proof is
optional in the body because Nest Auth's SDK sends none: a client that signs in and acts at
once keeps working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.config import Settings
from nestauth.errors import ReauthenticationRequired
from nestauth.models import TotpDevice, User, UserSession, core_table
from nestauth.services import mfa, totp_devices, user_auth
from nestauth.services.audit import Actor, RequestMeta
from nestauth.services.secrets import SecretBox

_DEVICES = core_table(TotpDevice)
_VERIFIED_DEVICE = select(_DEVICES.c.id).where(
    _DEVICES.c.user_id == bindparam("uid"), _DEVICES.c.verified.is_(True)
)
_ANY_VERIFIED_DEVICE = _VERIFIED_DEVICE.limit(1)
_THIS_VERIFIED_DEVICE = _VERIFIED_DEVICE.where(_DEVICES.c.id == bindparam("device_id"))


@dataclass(frozen=True)
class Proof:
    """What the request may carry instead of a recent sign-in."""

    otp: str | None = None
    password: str | None = None

    @classmethod
    def of(cls, body: object) -> Proof:
        # Sent without a Content-Type, an optional body reaches the handler as bytes.
        fields = body if isinstance(body, dict) else {}
        return cls(fields.get("otp"), fields.get("password"))


@dataclass(frozen=True)
class SignedIn:
    user: User
    session: UserSession
    address: str | None = None  # the client's, for the failure limits of a proof


async def ensure_recent_sign_in(
    db: AsyncSession,
    settings: Settings,
    box: SecretBox,
    signed_in: SignedIn,
    proof: Proof,
    now: datetime,
) -> None:
    """A sign-in (password, and MFA if on) within the window, or a proof with the request:
    a current TOTP code; the password only for a user without a verified device, since a
    password thief holding a stolen token must not be able to remove the second factor.
    A proof renews the window (one step-up covers the next few changes)."""
    user = signed_in.user
    if proof.otp is not None:
        await mfa.check_totp(db, settings, box, user, proof.otp, now, signed_in.address)
    elif proof.password is not None:
        if await db.scalar(_ANY_VERIFIED_DEVICE, {"uid": user.id}) is not None:
            raise ReauthenticationRequired()
        await user_auth.check_password(
            db, settings, email=user.email, password=proof.password,
            address=signed_in.address, now=now,
        )  # fmt: skip
    elif _recent(settings, signed_in.session, now):
        return
    else:
        raise ReauthenticationRequired()
    signed_in.session.authenticated_at = now


def _recent(settings: Settings, user_session: UserSession, now: datetime) -> bool:
    return now - user_session.authenticated_at < timedelta(seconds=settings.reauth_window_seconds)


async def remove_own_device(
    db: AsyncSession,
    settings: Settings,
    box: SecretBox,
    signed_in: SignedIn,
    device_id: uuid.UUID,
    proof: Proof,
    meta: RequestMeta,
    now: datetime,
) -> totp_devices.DeviceRemoval:
    """Removing a verified device is a factor change; a pending one (an enrolment never
    finished, the first one included) is not, and needs no step-up."""
    user = signed_in.user
    keys = {"uid": user.id, "device_id": device_id}
    factor = await db.scalar(_THIS_VERIFIED_DEVICE, keys) is not None
    if factor:
        await ensure_recent_sign_in(db, settings, box, signed_in, proof, now)
    removal = await totp_devices.remove_user_device(
        db, user_id=user.id, device_id=device_id, revoke_sessions=False,
        mfa_required=settings.mfa_required, actor=Actor("user", user.id, user.email),
        meta=meta, now=now,
    )  # fmt: skip
    if removal.device_verified and not factor:  # verified meanwhile: the change is undone
        raise ReauthenticationRequired()
    return removal


async def regenerate_recovery_codes(
    db: AsyncSession,
    settings: Settings,
    box: SecretBox,
    signed_in: SignedIn,
    proof: Proof,
    now: datetime,
) -> list[str]:
    await ensure_recent_sign_in(db, settings, box, signed_in, proof, now)
    return await mfa.new_recovery_codes(db, settings, signed_in.user, now)
