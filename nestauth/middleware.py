"""ASGI middleware: the body-size limit, the per-request transaction and where its reads run."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nestauth.context import SCOPE_KEY, RequestContext, Runtime, operation_id
from nestauth.db import STATEMENT_TIMEOUTS, THREADED_READS, is_statement_timeout
from nestauth.errors import (
    PayloadTooLarge,
    StatementTimeout,
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
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
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
