"""Security handlers named in the spec: the admin session, by cookie or by bearer token.

Order on a protected route (contract §1): authentication (401), then CSRF and role (403);
Connexion validates the request only after these pass.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from connexion.lifecycle import ConnexionRequest
from connexion.security import NO_VALUE

from nestauth import context
from nestauth.errors import (
    ApiError,
    CsrfOriginRejected,
    CsrfTokenInvalid,
    MfaTokenInvalid,
    MissingPermissions,
    SessionInvalid,
)
from nestauth.services import admin_sessions, mfa, user_auth
from nestauth.services.audit import record_admin_action

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {"viewer": 0, "admin": 1, "owner": 2}
CSRF_HEADER = "x-csrf-token"
DEFAULT_PORTS = {"http": 80, "https": 443}


async def user_from_bearer(token: str, request: ConnexionRequest) -> dict[str, Any]:
    """An access token; on the enrolment operations also a setup-only MFA token, so a user
    whose last device was removed under an MFA policy can enrol again (never a dead end)."""
    ctx = context.of_scope(request.scope)
    try:
        principal = await user_auth.authenticate(
            ctx.session, ctx.settings, access_token=token, now=ctx.now()
        )
    except SessionInvalid:
        if context.operation_id(request.scope) not in ctx.runtime.setup_token_operations:
            raise
        try:
            ctx.setup_challenge, ctx.user = await mfa.open_challenge(
                ctx.session, token, "setup", ctx.now()
            )
        except MfaTokenInvalid:
            raise SessionInvalid("Invalid or expired access token") from None
        return {"sub": str(ctx.user.id), "setup": True}
    ctx.user, ctx.user_session = principal.user, principal.session
    return {"sub": str(principal.user.id), "sid": str(principal.session.id)}


async def admin_from_cookie(api_key: str, request: ConnexionRequest) -> Any:
    """A request that carries a bearer token is judged by it alone: a cookie left in the
    same client neither fails it on CSRF nor leaves a false denial in the audit trail."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return NO_VALUE
    return await _admin_principal(api_key, request, via_cookie=True)


async def admin_from_bearer(token: str, request: ConnexionRequest) -> dict[str, Any]:
    return await _admin_principal(token, request, via_cookie=False)


async def _admin_principal(
    token: str, request: ConnexionRequest, *, via_cookie: bool
) -> dict[str, Any]:
    ctx = context.of_scope(request.scope)
    admin = await admin_sessions.authenticate(ctx.session, ctx.settings, token=token, now=ctx.now())
    try:
        if via_cookie and request.method in UNSAFE_METHODS:
            _check_csrf(request, admin, ctx.settings.csrf_allowed_origins)
        operation = context.operation_id(request.scope)
        _check_role(admin.role, ctx.runtime.roles_by_operation.get(operation))
    except ApiError as denied:
        await _audit_denial(ctx, admin, denied, request)
        raise
    ctx.admin = admin
    return {
        "sub": str(admin.admin_id),
        "email": admin.email,
        "role": admin.role,
        "session_id": str(admin.session_id),
    }


async def _audit_denial(
    ctx: context.RequestContext,
    admin: admin_sessions.SignedInAdmin,
    denied: ApiError,
    request: ConnexionRequest,
) -> None:
    """A refused action is recorded although the request fails, so it is committed here."""
    await record_admin_action(
        ctx.session, actor=admin.actor, meta=ctx.meta, now=ctx.now(),
        action="admin.access_denied",
        details={
            "reason": denied.code,
            "operation": context.operation_id(request.scope),
            "method": request.method,
        },
    )  # fmt: skip
    await ctx.session.commit()


def _check_csrf(
    request: ConnexionRequest,
    admin: admin_sessions.SignedInAdmin,
    allowed_origins: tuple[str, ...],
) -> None:
    """Double submit bound to the session (OWASP CSRF cheat sheet), plus an Origin rule.

    The server's own origin is the scheme and Host the browser used, as Django's
    CsrfViewMiddleware derives it: a page cannot set another site's Host, and a cookie is
    only sent to its own host. Without Origin, the Referer's origin counts. With neither
    (a script, not a browser: browsers send Origin on every unsafe cross-origin request,
    `null` when hiding it), the CSRF token alone decides.
    """
    origin = request.headers.get("origin", request.headers.get("referer"))
    if origin is not None:
        own = f"{request.scope.get('scheme', 'http')}://{request.headers.get('host', '')}"
        allowed = {_origin_of(o) for o in (own, *allowed_origins)} - {None}
        if _origin_of(origin) not in allowed:
            raise CsrfOriginRejected()
    if not admin_sessions.csrf_token_matches(admin, request.headers.get(CSRF_HEADER)):
        raise CsrfTokenInvalid()


def _origin_of(url: str | None) -> str | None:
    """`scheme://host:port` with the default port written out, or None if `url` has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())  # lowercases the scheme; .hostname lowercases the host
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None
    if port is None or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _check_role(role: str, required_role: str | None) -> None:
    """Least privilege: an operation without a declared role is open to owners only."""
    needed = ROLE_RANK[required_role] if required_role else ROLE_RANK["owner"]
    if ROLE_RANK.get(role, -1) < needed:
        raise MissingPermissions()
