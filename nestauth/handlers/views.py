"""Response bodies built from models: what may leave the server, and nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nestauth.models import Admin


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def admin_view(admin: Admin) -> dict[str, Any]:
    return {
        "id": str(admin.id),
        "email": admin.email,
        "name": admin.name,
        "role": admin.role,
        "createdAt": iso(admin.created_at),
    }
