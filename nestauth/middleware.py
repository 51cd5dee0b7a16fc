"""ASGI middleware: the body-size limit, the per-request transaction and where its reads run."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from nestauth.context import SCOPE_KEY, RequestContext, Runtime, operation_id
from nestauth.db import STATEMENT_TIMEOUTS, THREADED_READS, is_statement_timeout
from nestauth.errors import (
    PayloadTooLarge,
    StatementTimeout,
    ValidationFailed,
    envelope_bytes,
    is_database_unavailable,
)

log = logging.getLogger("nestauth.middleware")


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit, declared or streamed, before anyone buffers them.

    A chunked body (no Content-Length) is read here, up to the limit, and handed on with
    its length declared: Connexion treats a request without Content-Length as bodiless.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            # Servers refuse this before the app; in process it reached Connexion's int().
            await _send_envelope(send, 400, ValidationFailed.code, "Content-Length: not a number")
            return
        # Length first: int() refuses more than 4300 digits.
        if declared is not None and (len(declared) > 18 or int(declared) > self.max_bytes):
            await _send_envelope(send, 413, PayloadTooLarge.code, PayloadTooLarge.message)
            return
        if declared is None and b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            await self._buffer_chunked(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise PayloadTooLarge()
            return message

        return limited_receive

    async def _buffer_chunked(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _send_envelope(send, 413, PayloadTooLarge.code, PayloadTooLarge.message)
                return
        headers = [(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


class TransactionMiddleware:
    """One database session per request: committed when the response is a success,
    rolled back otherwise, before the first byte of the response leaves."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions = self.runtime.sessions_for(scope.get("method", ""))
        if scope["type"] != "http" or sessions is None:
            await self.app(scope, receive, send)
            return
        # One turn of the event loop before the work: requests that arrived together then
        # queue in arrival order. Without it, under load, a connection whose request lands
        # just after the loop polled always missed a whole round (measured: 2 connections
        # of 16 at twice the others' latency).
        await asyncio.sleep(0)
        async with sessions() as session:
            scope[SCOPE_KEY] = RequestContext(self.runtime, session, scope)
            try:
                await self._handle(session, scope, receive, send)
            finally:
                # The context refers to the scope that holds it: without this cut, the
                # request's session and objects would wait for the cycle collector.
                del scope[SCOPE_KEY]

    async def _handle(self, session: Any, scope: Scope, receive: Receive, send: Send) -> None:
        replaced = False

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                failure = await _finish(session, message["status"])
                if failure is not None:
                    replaced = True
                    await _send_envelope(send, *failure)
                    return
            await send(message)

        await self.app(scope, receive, send_after_commit)


class ThreadedReadsMiddleware:
    """After routing (it needs the operation): the reads of a list or search run in worker
    threads (SQLite), so a long one does not hold the event loop. A session bound to one
    engine ignores the mark."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = scope.get(SCOPE_KEY)
        if ctx is not None and operation_id(scope) in self.runtime.threaded_read_operations:
            ctx.session.info[THREADED_READS] = True
        await self.app(scope, receive, send)


async def _finish(session: Any, status: int) -> tuple[int, str, str] | None:
    """Commits a success, rolls back a failure; a failed commit becomes an error response."""
    if status >= 400:
        await _rollback_quietly(session)
        return None
    try:
        await session.commit()
    except Exception as exc:
        await _rollback_quietly(session)
        if is_statement_timeout(exc):
            STATEMENT_TIMEOUTS.record()
            return 503, StatementTimeout.code, StatementTimeout.message
        if is_database_unavailable(exc):
            log.warning("commit failed, database unavailable: %s", type(exc).__name__)
            return 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable"
        log.exception("commit failed")
        return 500, "INTERNAL_ERROR", "Internal server error"
    return None


async def _rollback_quietly(session: Any) -> None:
    """A rollback on a lost connection fails too; the server discards that connection."""
    try:
        await session.rollback()
    except Exception as exc:  # noqa: BLE001
        log.warning("rollback failed: %s", type(exc).__name__)


async def _send_envelope(send: Send, status: int, code: str, message: str) -> None:
    body = envelope_bytes(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Browser hardening headers on every response, error envelopes and redirects included.

    Tokens, TOTP secrets and recovery codes travel in response bodies: nothing is cached.
    A redirect never names a host: Starlette builds absolute ones from the request's Host
    header, which a client chooses.
    """

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = self.runtime.settings.cookie_secure

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _secured(message.get("headers", []), hsts)}
            await send(message)

        await self.app(scope, receive, send_secured)


# JSON needs no sources at all (OWASP REST Security cheat sheet). The HTML we serve (Swagger
# UI) loads its own scripts and styles only; its spec and "try it out" calls go to this origin.
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
HTML_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")
_REPLACED = {*dict(SECURITY_HEADERS), HSTS[0], b"content-security-policy", b"referrer-policy"}


def _secured(headers: Any, hsts: bool) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _REPLACED]
    html = any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in kept)
    secured = [(k, _relative(v) if k.lower() == b"location" else v) for k, v in kept]
    secured += SECURITY_HEADERS
    # Under `no-referrer` a page's form posts carry `Origin: null` (Fetch standard; seen in
    # Chromium), which the CSRF Origin rule refuses: pages keep it for their own origin.
    secured.append((b"referrer-policy", b"same-origin" if html else b"no-referrer"))
    secured.append((b"content-security-policy", HTML_CSP if html else API_CSP))
    if hsts:
        secured.append(HSTS)
    return secured


def _relative(location: bytes) -> bytes:
    """A redirect target that names a scheme or host, reduced to its path, query and fragment.
    Leading slashes and backslashes collapse to one: `//host` and `/\\host` leave the site."""
    parts = urlsplit(location.decode("latin-1"))
    if not (parts.scheme or parts.netloc or parts.path.startswith(("\\", "/\\"))):
        return location
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


class TrustedProxiesMiddleware:
    """X-Forwarded-For and -Proto count only from NESTAUTH_TRUSTED_PROXIES, by uvicorn's own
    rule (its ProxyHeadersMiddleware), for any server: `nestauth serve` has uvicorn apply the
    same list before the app, and a second pass changes nothing."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime
        self._by_proxies: dict[tuple[str, ...], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxies = self.runtime.settings.trusted_proxies  # re-read per request, as all settings
        if not proxies or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if proxies not in self._by_proxies:
            self._by_proxies[proxies] = ProxyHeadersMiddleware(
                self.app,  # type: ignore[arg-type]  # uvicorn's own ASGI type aliases
                trusted_hosts=list(proxies),
            )
        await self._by_proxies[proxies](scope, receive, send)
