"""What a request needs from the app: settings, its database session, the clock."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from nestauth.config import Settings
from nestauth.models import MfaChallenge, User, UserSession, utcnow
from nestauth.services.admin_sessions import SignedInAdmin
from nestauth.services.audit import AdminActor, RequestMeta
from nestauth.services.secrets import SecretBox

SCOPE_KEY = "nestauth.context"
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass
class Runtime:
    """App-wide state; the engine is made and disposed in the lifespan, never at import."""

    settings: Settings
    roles_by_operation: dict[str, str]
    setup_token_operations: frozenset[str] = frozenset()
    clock: Callable[[], datetime] = utcnow
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    # SQLite only: the sessions of GET requests, whose plain reads use the read engines
    # (threaded for the operations in threaded_read_operations: the lists and searches).
    read_engine: AsyncEngine | None = None
    threaded_read_engine: AsyncEngine | None = None
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    threaded_read_operations: frozenset[str] = frozenset()

    def sessions_for(self, method: str) -> async_sessionmaker[AsyncSession] | None:
        if method in READ_METHODS and self.read_sessions is not None:
            return self.read_sessions
        return self.sessions

    @property
    def secret_box(self) -> SecretBox:
        """Follows the settings' keys (one box per set of keys, cached)."""
        return SecretBox.for_settings(self.settings)


@dataclass
class RequestContext:
    runtime: Runtime
    session: AsyncSession
    scope: MutableMapping[str, Any] = field(repr=False)
    # Set by the security handlers once the credentials are verified:
    admin: SignedInAdmin | None = None
    user: User | None = None
    user_session: UserSession | None = None
    setup_challenge: MfaChallenge | None = None  # a login that must enrol a device first

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def now(self) -> datetime:
        return self.runtime.clock()

    @property
    def admin_actor(self) -> AdminActor:
        """The signed-in admin as the audit trail names them (admin routes only)."""
        assert self.admin is not None
        return self.admin.actor

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope.get("headers") or []:
            if key == wanted:
                return str(value.decode("latin-1"))
        return None

    @property
    def meta(self) -> RequestMeta:
        agent = self.header("user-agent")
        return RequestMeta(
            ip=client_ip(self.scope),
            user_agent=agent[:512] if agent else None,
        )


def client_ip(scope: MutableMapping[str, Any]) -> str | None:
    """The client's address in canonical form, or None when it is not an IP address.

    The scope's client is the peer, or what a trusted proxy's X-Forwarded-For named once
    uvicorn's ProxyHeadersMiddleware has applied NESTAUTH_TRUSTED_PROXIES (`nestauth serve`,
    and the app itself for other servers). Whatever a proxy wrote is still text from outside:
    only a parsed address is stored, without an IPv6 zone (unbounded), so it fits its column.
    """
    client = scope.get("client")
    if not client or not isinstance(client[0], str):
        return None
    address = canonical_ip(client[0])
    return str(address) if address is not None else None


def canonical_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as text, parsed: no IPv6 zone (unbounded), and the IPv4 clients a
    dual-stack socket reports as ::ffff:a.b.c.d as IPv4. None when it is not an address."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def operation_id(scope: MutableMapping[str, Any]) -> str:
    """The operation Connexion routed the request to. Read it from the scope a security
    handler or handler receives: Connexion's router works on a copy of the server's scope."""
    routing = scope.get("extensions", {}).get("connexion_routing", {})
    return str(routing.get("operation_id") or "")


def of_scope(scope: MutableMapping[str, Any]) -> RequestContext:
    return scope[SCOPE_KEY]


def current() -> RequestContext:
    """The context of the request being handled (Connexion keeps it in a context variable)."""
    from connexion import request

    return of_scope(request.scope)
