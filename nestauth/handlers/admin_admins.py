"""Admin · Admins: owners manage console administrators and their roles."""

from __future__ import annotations

import uuid
from typing import Any

from nestauth import context
from nestauth.handlers.views import admin_view, page_view
from nestauth.services import admins
from nestauth.services.pagination import PageRequest


async def list_admins(
    *, page: int = 1, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    ctx = context.current()
    found = await admins.list_admins(ctx.session, PageRequest(page, limit, cursor))
    return page_view(found, admin_view)


async def create_admin(*, body: dict[str, Any]) -> tuple[dict, int]:
    ctx = context.current()
    admin = await admins.add_admin(
        ctx.session, email=body["email"], password=body["password"], role=body["role"],
        name=body.get("name"), actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    return {"admin": admin_view(admin)}, 201


async def update_admin(*, id_: str, body: dict[str, Any]) -> dict:
    ctx = context.current()
    admin = await admins.update_admin(
        ctx.session, uuid.UUID(id_), body,
        actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    return {"admin": admin_view(admin)}


async def delete_admin(*, id_: str) -> dict[str, Any]:
    ctx = context.current()
    await admins.delete_admin(
        ctx.session, uuid.UUID(id_), actor=ctx.admin_actor, meta=ctx.meta, now=ctx.now()
    )
    return {"message": "Admin deleted successfully", "adminId": id_}
