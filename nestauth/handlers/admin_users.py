"""Admin · Users: the admin's view and management of end users."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.services import totp_devices
from nestauth.services.audit import AdminActor


def actor_from(token_info: dict[str, Any]) -> AdminActor:
    return AdminActor(
        admin_id=uuid.UUID(token_info["sub"]),
        email=token_info["email"],
        role=token_info["role"],
        session_id=uuid.UUID(token_info["session_id"]),
    )


async def delete_user_totp_device(
    *, id_: str, device_id: str, token_info: dict[str, Any], revoke_sessions: bool = False
) -> dict[str, Any]:
    ctx = context.current()
    removal = await totp_devices.remove_user_device(
        ctx.session,
        user_id=uuid.UUID(id_),
        device_id=uuid.UUID(device_id),
        revoke_sessions=revoke_sessions,
        mfa_required=ctx.settings.mfa_required,
        actor=actor_from(token_info),
        meta=ctx.meta,
        now=ctx.now(),
    )
    return {
        "message": "TOTP device deleted successfully",
        "userId": str(removal.user_id),
        "deviceId": str(removal.device_id),
        "remainingDevices": removal.remaining_devices,
        "mfaDisabled": removal.mfa_disabled,
        "sessionsRevoked": removal.sessions_revoked,
    }
