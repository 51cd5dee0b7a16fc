"""Auth: end-user sign-up, login, tokens, logout."""

from __future__ import annotations

from typing import Any

from nestauth import context
from nestauth.handlers.views import user_view
from nestauth.services import user_auth as auth
from nestauth.services.user_auth import Tokens


def tokens_view(tokens: Tokens, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
        "isRequiresMfa": False,
        "user": user_view(tokens.user),
    }
    if message:
        body["message"] = message
    return body


def _credentials(body: dict[str, Any]) -> dict[str, Any]:
    """Both `{email, password}` and Nest Auth's `{providerName, credentials}` shapes."""
    return body.get("credentials", body)


async def sign_up_user(*, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    ctx = context.current()
    tokens = await auth.sign_up(
        ctx.session, ctx.settings, email=body["email"], password=body["password"],
        meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    return tokens_view(tokens), 201


async def log_in_user(*, body: dict[str, Any]) -> dict[str, Any]:
    ctx = context.current()
    credentials = _credentials(body)
    outcome = await auth.log_in(
        ctx.session, ctx.settings, email=credentials["email"],
        password=credentials["password"], meta=ctx.meta, now=ctx.now(),
    )  # fmt: skip
    if isinstance(outcome, Tokens):
        return tokens_view(outcome)
    pending: dict[str, Any] = {
        "isRequiresMfa": True,
        "mfaToken": outcome.mfa_token,
        "mfaMethods": outcome.methods,
    }
    if outcome.setup_required:
        pending["isMfaSetupRequired"] = True
    return pending


async def refresh_tokens(*, body: dict[str, Any]) -> dict[str, Any]:
    ctx = context.current()
    tokens = await auth.refresh(
        ctx.session, ctx.settings, refresh_token=body["refreshToken"], now=ctx.now()
    )
    return {"accessToken": tokens.access_token, "refreshToken": tokens.refresh_token}


async def log_out_user() -> dict[str, Any]:
    ctx = context.current()
    assert ctx.user_session is not None
    auth.log_out(ctx.user_session, ctx.now())
    return {"message": "Logged out"}


async def log_out_user_everywhere() -> dict[str, Any]:
    ctx = context.current()
    assert ctx.user is not None
    revoked = await auth.log_out_everywhere(ctx.session, ctx.user.id, ctx.now())
    return {"message": f"Logged out of {revoked} session(s)"}


async def get_current_user() -> dict[str, Any]:
    user = context.current().user
    assert user is not None
    return {"user": user_view(user)}
