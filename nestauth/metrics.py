"""Prometheus metrics of one server process, and the `/metrics` endpoint that shows them.

`/metrics` is served outside Connexion's routing, by `observability.RequestLogMiddleware`:
it is for operators, not part of the API contract, speaks the Prometheus text format rather
than JSON, and the contract fuzzer (which runs every operation in the spec) has no business
probing it. It answers 404 NOT_FOUND while NESTAUTH_METRICS_TOKEN is unset, and 401 unless
the request carries `Authorization: Bearer <that token>` (compared in constant time).

Each process counts for itself (no multiprocess mode): with `serve --workers N`, one scrape
shows the worker that happened to accept it. See docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Scope, Send

from nestauth.context import Runtime
from nestauth.errors import envelope_bytes
from nestauth.services import passwords
from nestauth.services.housekeeping import PruneReport

METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """One registry per app: tests build several apps in one process."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "nestauth_http_requests", "HTTP requests by operationId, method and status.",
            ["operation", "method", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "nestauth_http_request_duration_seconds", "Time to answer, by operationId.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "nestauth_rate_limited", "Requests refused with 429 RATE_LIMITED.",
            ["operation"], registry=registry,
        )  # fmt: skip
        self.unavailable = Counter(
            "nestauth_db_unavailable",
            "503 SERVICE_UNAVAILABLE answers: pool wait or statement timeouts, database lost.",
            ["operation"], registry=registry,
        )  # fmt: skip
        self.pruned = Counter(
            "nestauth_pruned_rows", "Rows deleted by the server's housekeeping, by table.",
            ["table"], registry=registry,
        )  # fmt: skip
        Gauge(
            "nestauth_db_pool_checked_out", "Database connections in use by requests.",
            registry=registry,
        ).set_function(lambda: _checked_out(runtime))  # fmt: skip
        Gauge(
            "nestauth_password_hash_queue_depth", "Password hashes waiting for a hashing thread.",
            registry=registry,
        ).set_function(_hash_queue_depth)  # fmt: skip

    def observe(self, operation: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(operation, method, str(status)).inc()
        self.latency.labels(operation).observe(seconds)
        if status == 429:
            self.rate_limited.labels(operation).inc()
        elif status == 503:
            self.unavailable.labels(operation).inc()

    def count_pruned(self, report: PruneReport) -> None:
        for table, deleted in report.counts.items():
            self.pruned.labels(table).inc(deleted)

    async def serve(self, runtime: Runtime, scope: Scope, send: Send) -> int:
        """The `/metrics` answer; returns its status for the access log."""
        expected = runtime.settings.metrics_token
        if expected is None:
            return await _send(send, 404, "NOT_FOUND", "Not found")
        presented = _bearer(scope)
        if presented is None:
            return await _send(send, 401, "NO_AUTH_PROVIDED", "Metrics token required")
        if not _same_secret(presented, expected):
            return await _send(send, 401, "INVALID_CREDENTIALS", "Invalid metrics token")
        if scope["method"] not in ("GET", "HEAD"):
            return await _send(send, 405, "METHOD_NOT_ALLOWED", "Method not allowed")
        body = generate_latest(self.registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await _start(send, 200, headers, body if scope["method"] == "GET" else b"")
        return 200


def _checked_out(runtime: Runtime) -> float:
    engine = runtime.engine
    return float(engine.pool.checkedout()) if engine is not None else 0.0  # type: ignore[attr-defined]


def _hash_queue_depth() -> float:
    # The executor's queue is private; qsize() is a cheap read, and a missing attribute
    # (a future Python) shows as 0 rather than failing the scrape.
    queue: Any = getattr(passwords._HASHING, "_work_queue", None)
    return float(queue.qsize()) if queue is not None else 0.0


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def _same_secret(presented: str, expected: str) -> bool:
    """Digests first: equal lengths, so the compare leaks not even the token's length."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


async def _send(send: Send, status: int, code: str, message: str) -> int:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await _start(send, status, headers, envelope_bytes(status, code, message))
    return status


async def _start(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
