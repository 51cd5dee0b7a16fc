"""Admin console authentication: bootstrap signup, login, logout, me."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from nestauth import context
from nestauth.handlers.views import admin_view, iso
from nestauth.services import admin_sessions, admins

SESSION_COOKIE = "nest_auth_admin"
CSRF_COOKIE = "nest_auth_csrf"
COOKIE_PATH = "/auth/admin"
SECRET_HEADER = "x-nest-auth-admin-secret"  # noqa: S105 (a header name)


async def bootstrap_admin(*, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    ctx = context.current()  # Connexion validates header parameters but never passes them
    admin = await admins.bootstrap_first_admin(
        ctx.session,
        ctx.settings,
        given_secret=body.get("secretKey") or ctx.header(SECRET_HEADER),
        email=body["email"],
        password=body["password"],
        name=body.get("name"),
        meta=ctx.meta,
        now=ctx.now(),
    )
    return {"admin": admin_view(admin)}, 201


async def log_in_admin(*, body: dict[str, Any]) -> JSONResponse:
    ctx = context.current()
    issued = await admin_sessions.log_in(
        ctx.session,
        ctx.settings,
        email=body["email"],
        password=body["password"],
        meta=ctx.meta,
        now=ctx.now(),
    )
    response = JSONResponse(
        {
            "admin": admin_view(issued.admin),
            "token": issued.token,
            "csrfToken": issued.csrf_token,
            "expiresAt": iso(issued.expires_at),
        }
    )
    max_age = ctx.settings.admin_session_absolute_seconds
    secure = ctx.settings.cookie_secure
    response.set_cookie(
        SESSION_COOKIE, issued.token, max_age=max_age, path=COOKIE_PATH,
        httponly=True, samesite="lax", secure=secure,
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, issued.csrf_token, max_age=max_age, path=COOKIE_PATH,
        httponly=False, samesite="lax", secure=secure,
    )  # fmt: skip
    return response


async def log_out_admin() -> JSONResponse:
    ctx = context.current()
    await admin_sessions.log_out(ctx.session, ctx.admin_actor, ctx.meta, ctx.now())
    response = JSONResponse({"message": "Logged out"})
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path=COOKIE_PATH, secure=ctx.settings.cookie_secure)
    return response


async def get_current_admin() -> dict[str, Any]:
    ctx = context.current()
    return {"admin": admin_view(await admins.get_admin(ctx.session, ctx.admin_actor.admin_id))}
