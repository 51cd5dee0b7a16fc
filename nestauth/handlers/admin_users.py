"""Admin · Users: finding users, changing them, removing their devices."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.handlers.views import device_view, page_view, session_view, user_view
from nestauth.services import totp_devices, users
from nestauth.services.pagination import PageRequest


async def list_users(
    *,
    page: int = 1,
    limit: int = 20,
    cursor: str | None = None,
    search: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    ctx = context.current()
    request = PageRequest(page, limit, cursor)
    found = await users.list_users(ctx.session, request, search=search, status=status)
    return page_view(found, user_view)


async def create_user(*, body: dict[str, Any]) -> tuple[dict, int]:
    ctx = context.current()
    user = await users.add_user(
        ctx.session, body, actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now()
    )
    return {"user": user_view(user)}, 201


async def get_user(*, id_: str) -> dict[str, Any]:
    ctx = context.current()
    detail = await users.get_user_detail(ctx.session, uuid.UUID(id_), ctx.now())
    return {
        "user": user_view(detail.user),
        "mfa": {
            "isEnabled": detail.user.is_mfa_enabled,
            "totpDevices": [device_view(d) for d in detail.devices],
            "hasRecoveryCodes": detail.has_recovery_codes,
        },
        "sessions": [session_view(s) for s in detail.sessions],
        "sessionsTotal": detail.sessions_total,
    }


async def update_user(*, id_: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = context.current()
    user = await users.update_user(
        ctx.session, uuid.UUID(id_), body,
        actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    return {"user": user_view(user)}


async def delete_user(*, id_: str) -> dict[str, Any]:
    ctx = context.current()
    await users.delete_user(
        ctx.session, uuid.UUID(id_), actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now()
    )
    return {"message": "User deleted successfully", "userId": id_}


async def list_user_totp_devices(*, id_: str) -> dict[str, Any]:
    ctx = context.current()
    user = await users.get_user(ctx.session, uuid.UUID(id_))
    return {"data": [device_view(d) for d in await users.list_devices(ctx.session, user.id)]}


async def delete_user_totp_device(
    *, id_: str, device_id: str, revoke_sessions: bool = False
) -> dict[str, Any]:
    ctx = context.current()
    removal = await totp_devices.remove_user_device(
        ctx.session,
        user_id=uuid.UUID(id_),
        device_id=uuid.UUID(device_id),
        revoke_sessions=revoke_sessions,
        mfa_required=ctx.settings.mfa_required,
        actor=ctx.admin_actor.actor,
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
