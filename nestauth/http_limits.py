"""The limits `nestauth serve` gives uvicorn, and the two uvicorn lacks (for 0.30 to 0.55).

uvicorn's own options cover the keep-alive timeout (`timeout_keep_alive`, an idle
connection between two requests) and a cap on concurrent connections and requests
(`limit_concurrency`, answered 503). Its httptools protocol has neither a deadline for a
request's header section nor a bound on its size: the keep-alive timer is armed only after
a response, and any byte received cancels it, so a connection that sends half a request
line stays open for good (slowloris), and a header that never ends is buffered whole.
Upstream: Kludex/uvicorn issue #157 (further timeouts and resource limiting, closed) and
the unmerged PRs #1685 (`--timeout-request-start`) and #1684 (header size for httptools).

`GuardedHttpToolsProtocol` adds both, through the parser callbacks uvicorn's class already
has, without copying any of its code. `tests/api/test_http_limits.py` holds the tripwires:
a half-sent header is closed in time, an oversized one answered 431, on a live server.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import ipaddress
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from ipaddress import IPv4Network, IPv6Network
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from nestauth.config import Settings
from nestauth.context import canonical_ip
from nestauth.errors import (
    HeaderFieldsTooLarge,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    ValidationFailed,
    envelope_bytes,
)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_concurrency,
        # Used only should uvicorn be run with h11; the guard bounds httptools alike.
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
    }


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus `nestauth.access` as bare JSON lines on stdout."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["nestauth_json"] = {"format": "%(message)s"}
    config["handlers"]["nestauth_access"] = {
        "class": "logging.StreamHandler",
        "formatter": "nestauth_json",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["nestauth.access"] = {
        "handlers": ["nestauth_access"],
        "level": "INFO",
        "propagate": False,
    }
    return config


@dataclass(frozen=True)
class _Limits:
    header_timeout_seconds: int
    max_header_bytes: int
    max_connections_per_client: int
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]


@functools.lru_cache(maxsize=1)
def _limits() -> _Limits:
    # uvicorn builds protocols itself (in each worker process): the settings come from the
    # environment, as the app's do, read once per process.
    settings = Settings.from_env()
    return _Limits(
        settings.http_header_timeout_seconds,
        settings.http_max_header_bytes,
        settings.http_max_connections_per_client,
        tuple(ipaddress.ip_network(n) for n in settings.trusted_proxies),
    )


def _capped_address(transport: asyncio.BaseTransport) -> str | None:
    """The peer whose connections count toward the per-address cap (not a trusted proxy,
    which speaks for many clients)."""
    peer = transport.get_extra_info("peername")
    if not peer:
        return None
    parsed = canonical_ip(str(peer[0]))
    if parsed is None or any(parsed in network for network in _limits().trusted_proxies):
        return None
    return str(parsed)


class _Refused(Exception):
    """Raised in a parser callback: httptools stops and reports a callback error."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """A request's header section must arrive within the header timeout and the size cap.

    The clock starts when the connection opens, or at the first byte of a later request on
    it, and stops when the headers are complete; trickling bytes does not restart it."""

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int | None = None  # None: not reading a header section
    _request_started = False
    _counted_address: str | None = None
    # Open connections per client address in this worker process (one event loop). One
    # address flooding with connections would otherwise put every other client's request
    # behind all of its own on the loop.
    _open_by_address: ClassVar[Counter[str]] = Counter()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = _capped_address(transport)
        if (
            address is not None
            and self._open_by_address[address] >= _limits().max_connections_per_client
        ):
            self._refuse(429, RateLimited, "Too many connections from this address")
            return
        if address is not None:
            self._open_by_address[address] += 1
            self._counted_address = address
        self._start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        if self._counted_address is not None:
            self._open_by_address[self._counted_address] -= 1
            if self._open_by_address[self._counted_address] <= 0:
                del self._open_by_address[self._counted_address]
            self._counted_address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_bytes is None or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > _limits().max_header_bytes:
            self._refuse(HeaderFieldsTooLarge.status_code, HeaderFieldsTooLarge)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_started = True
        if self._header_bytes is None:
            self._start_header_clock()

    def on_headers_complete(self) -> None:
        self._stop_header_clock()
        self._request_started = False
        # A header section that arrived whole in one read was never counted above.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > _limits().max_header_bytes:
            self._refuse(HeaderFieldsTooLarge.status_code, HeaderFieldsTooLarge)
            raise _Refused()  # stops the parser; uvicorn's 400 that follows is then a no-op
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a malformed request in plain text; ours are envelopes."""
        self._refuse(400, ValidationFailed, "Invalid HTTP request")

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Over `limit_concurrency` uvicorn runs its plain-text 503 app instead of ours.
        chosen: Any = _at_capacity if app is service_unavailable else app
        super()._start_asgi_task(cycle, chosen)

    def _start_header_clock(self) -> None:
        self._header_bytes = 0
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                _limits().header_timeout_seconds, self._header_timeout
            )

    def _stop_header_clock(self) -> None:
        self._header_bytes = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._request_started:  # nothing sent at all: just an idle connection
            self.transport.close()
            return
        self._refuse(RequestTimeout.status_code, RequestTimeout)

    def _refuse(self, status: int, error: type[Any], message: str | None = None) -> None:
        self._stop_header_clock()
        if self.transport.is_closing():
            return
        body = envelope_bytes(status, error.code, message or error.message)
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()


async def _at_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    body = envelope_bytes(503, ServiceUnavailable.code, "Server is at its connection limit")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
