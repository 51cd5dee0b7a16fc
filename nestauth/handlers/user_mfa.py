"""MFA: a user's own authenticator apps, recovery codes, and the MFA step of a login."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.handlers.user_auth import tokens_view
from nestauth.handlers.views import iso
from nestauth.models import TotpDevice, User
from nestauth.services import mfa, step_up, users
from nestauth.services import user_auth as auth


def mfa_device_view(device: TotpDevice) -> dict[str, Any]:
    return {
        "id": str(device.id),
        "deviceName": device.device_name,
        "method": "totp",
        "verified": device.verified,
        "lastUsedAt": iso(device.last_used_at),
        "createdAt": iso(device.created_at),
    }


def _user() -> User:
    user = context.current().user
    assert user is not None  # set by the security handler
    return user


def _signed_in() -> step_up.SignedIn:
    """The user and the session of an access token (not a setup-only token)."""
    ctx = context.current()
    assert ctx.user is not None and ctx.user_session is not None
    return step_up.SignedIn(ctx.user, ctx.user_session, ctx.meta.ip)


async def get_mfa_status() -> dict[str, Any]:
    ctx, user = context.current(), _user()
    devices = await users.list_devices(ctx.session, user.id)
    verified = [d for d in devices if d.verified]
    return {
        "isEnabled": user.is_mfa_enabled,
        "verifiedMethods": ["totp"] if verified else [],
        "totpDevices": [mfa_device_view(d) for d in devices],
        "hasRecoveryCode": await mfa.has_unused_recovery_codes(ctx.session, user.id),
        "required": ctx.settings.mfa_required,
    }


async def list_mfa_devices() -> dict[str, Any]:
    ctx, user = context.current(), _user()
    return {"data": [mfa_device_view(d) for d in await users.list_devices(ctx.session, user.id)]}


async def delete_mfa_device(*, device_id: str, body: Any = None) -> dict[str, Any]:
    ctx = context.current()
    removal = await step_up.remove_own_device(
        ctx.session, ctx.settings, ctx.runtime.secret_box, _signed_in(), uuid.UUID(device_id),
        step_up.Proof.of(body), ctx.meta, ctx.now(),
    )  # fmt: skip
    return {
        "message": "MFA device removed",
        "remainingDevices": removal.remaining_devices,
        "mfaDisabled": removal.mfa_disabled,
    }


async def start_totp_setup(*, body: Any = None) -> dict[str, Any]:
    ctx, user = context.current(), _user()
    # The body is optional; sent without a Content-Type, Connexion hands over raw bytes.
    options = body if isinstance(body, dict) else {}
    enrolment = await mfa.start_enrolment(
        ctx.session, ctx.settings, ctx.runtime.secret_box, user, options.get("deviceName"),
        ctx.now(),
    )  # fmt: skip
    return {
        "deviceId": str(enrolment.device.id),
        "secret": enrolment.secret,
        "otpauthUrl": enrolment.otpauth_url,
        "qrCode": enrolment.qr_code,
    }


async def verify_totp_setup(*, body: dict[str, Any]) -> dict[str, Any]:
    """With a setup-only token this also finishes the login it belongs to."""
    ctx, user = context.current(), _user()
    device = await mfa.finish_enrolment(
        ctx.session, ctx.settings, ctx.runtime.secret_box, user,
        secret=body["secret"], otp=body["otp"], now=ctx.now(), address=ctx.meta.ip,
    )  # fmt: skip
    if ctx.setup_challenge is None:
        return {"message": "TOTP device verified", "deviceId": str(device.id)}
    await mfa.close_challenge(ctx.session, ctx.setup_challenge, ctx.now())
    tokens = await auth.open_session(ctx.session, ctx.settings, user, ctx.meta, ctx.now())
    return {**tokens_view(tokens, "TOTP device verified"), "deviceId": str(device.id)}


async def generate_recovery_codes(*, body: Any = None) -> dict[str, Any]:
    ctx = context.current()
    codes = await step_up.regenerate_recovery_codes(
        ctx.session, ctx.settings, ctx.runtime.secret_box, _signed_in(),
        step_up.Proof.of(body), ctx.now(),
    )  # fmt: skip
    return {"message": "Store these codes safely; they are shown only once", "codes": codes}


async def verify_mfa(*, body: dict[str, Any]) -> dict[str, Any]:
    ctx = context.current()
    challenge, user = await mfa.open_challenge(ctx.session, body["mfaToken"], "login", ctx.now())
    await mfa.check_totp(
        ctx.session, ctx.settings, ctx.runtime.secret_box, user, body["otp"], ctx.now(),
        ctx.meta.ip,
    )  # fmt: skip
    await mfa.close_challenge(ctx.session, challenge, ctx.now())
    tokens = await auth.open_session(ctx.session, ctx.settings, user, ctx.meta, ctx.now())
    return tokens_view(tokens, "MFA verified")


async def verify_mfa_recovery_code(*, body: dict[str, Any]) -> dict[str, Any]:
    ctx = context.current()
    challenge, user = await mfa.open_challenge(ctx.session, body["mfaToken"], "login", ctx.now())
    await mfa.use_recovery_code(
        ctx.session, ctx.settings, user, body["code"], ctx.now(), ctx.meta.ip
    )
    await mfa.close_challenge(ctx.session, challenge, ctx.now())
    tokens = await auth.open_session(ctx.session, ctx.settings, user, ctx.meta, ctx.now())
    return tokens_view(tokens, "Recovery code accepted")
