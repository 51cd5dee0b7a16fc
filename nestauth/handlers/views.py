"""Response bodies built from models: what may leave the server, and nothing more.

No view carries a password hash, a TOTP secret or a recovery code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from nestauth.models import Admin, AuditEvent, TotpDevice, User, UserSession
from nestauth.services.pagination import Page

T = TypeVar("T")


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def admin_view(admin: Admin) -> dict[str, Any]:
    return {
        "id": str(admin.id),
        "email": admin.email,
        "name": admin.name,
        "role": admin.role,
        "createdAt": iso(admin.created_at),
    }


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "phone": user.phone,
        "isActive": user.is_active,
        "isVerified": user.is_verified,
        "isMfaEnabled": user.is_mfa_enabled,
        "metadata": user.metadata_,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


def device_view(device: TotpDevice) -> dict[str, Any]:
    return {
        "id": str(device.id),
        "deviceName": device.device_name,
        "verified": device.verified,
        "lastUsedAt": iso(device.last_used_at),
        "createdAt": iso(device.created_at),
    }


def session_view(session: UserSession) -> dict[str, Any]:
    return {
        "id": str(session.id),
        "createdAt": iso(session.created_at),
        "lastUsedAt": iso(session.last_used_at),
        "expiresAt": iso(session.expires_at),
        "ip": session.ip,
        "userAgent": session.user_agent,
    }


def audit_view(event: AuditEvent) -> dict[str, Any]:
    def text(value: object) -> str | None:
        return str(value) if value is not None else None

    return {
        "id": str(event.id),
        "occurredAt": iso(event.occurred_at),
        "action": event.action,
        "actorType": event.actor_type,
        "actorId": text(event.actor_id),
        "actorEmail": event.actor_email,
        "targetType": event.target_type,
        "targetId": text(event.target_id),
        "userId": text(event.user_id),
        "ip": event.ip,
        "userAgent": event.user_agent,
        "details": event.details or {},
    }


def page_view(page: Page[T], item_view: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": [item_view(item) for item in page.items],
        "meta": {
            "page": page.page,
            "limit": page.limit,
            "total": page.total,
            "totalPages": page.total_pages,
            "totalExact": page.total_exact,
            "nextCursor": page.next_cursor,
        },
    }
