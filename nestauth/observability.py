"""Request ids, one JSON access-log line per request, and the per-operation metrics.

Two middlewares share one `RequestRecord` through the ASGI scope. The outer one sees every
answer (errors made by the exception handlers and the transaction middleware included);
the inner one runs after Connexion's router and notes the operation. The router works on
a copy of the server's scope, so the operation can only be read after it: the record is an
object both scopes refer to.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nestauth.context import Runtime, client_ip, operation_id
from nestauth.metrics import METRICS_PATH, Metrics

access_log = logging.getLogger("nestauth.access")
SCOPE_KEY = "nestauth.request"
REQUEST_ID_HEADER = b"x-request-id"
UNROUTED = "unrouted"  # no operation: an unknown path, the docs, a request refused early
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class RequestRecord:
    request_id: str
    operation: str = UNROUTED


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is 1-64 of [A-Za-z0-9._-] (safe in a log line and a
    header), otherwise a new one."""
    for key, value in scope.get("headers") or []:
        if key == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Outermost: names the request, answers `/metrics`, then logs and counts the answer."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime, metrics: Metrics) -> None:
        self.app, self.runtime, self.metrics = app, runtime, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = RequestRecord(request_id_of(scope))
        id_header = (REQUEST_ID_HEADER, record.request_id.encode())
        status = 500  # what the server answers when the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        # Downstream (the 500 handler's log line, say) reads the same id the client gets back.
        headers = [h for h in scope.get("headers") or [] if h[0] != REQUEST_ID_HEADER]
        scope = {**scope, "headers": [*headers, id_header], SCOPE_KEY: record}
        try:
            if scope["path"] == METRICS_PATH:
                record.operation = "metrics"
                await self.metrics.serve(self.runtime, scope, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._log(scope, record, status, time.perf_counter() - started)

    def _log(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        self.metrics.observe(record.operation, scope["method"], status, seconds)
        if not access_log.isEnabledFor(logging.INFO):
            return
        # Never the path's query string, a header value, a cookie or a body: the operation
        # and the id are enough to find a request, and none of them can carry a secret.
        line = {
            "requestId": record.request_id,
            "operationId": record.operation,
            "method": scope["method"],
            "status": status,
            "durationMs": round(seconds * 1000, 3),
            "clientIp": client_ip(scope),  # as the audit trail and the rate limits name it
        }
        access_log.info(json.dumps(line, separators=(",", ":")))


class OperationTagMiddleware:
    """Placed after Connexion's router: notes the spec's operationId on the request record."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = scope.get(SCOPE_KEY)
        resolved = operation_id(scope)
        if record is not None and resolved:
            # Connexion names it `<router controller>.<operationId>`; the label is the spec's.
            record.operation = resolved.rsplit(".", 1)[-1]
        await self.app(scope, receive, send)
