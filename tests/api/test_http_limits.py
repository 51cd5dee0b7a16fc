"""HTTP limits of `nestauth serve`: a header section must arrive in time and within its size,
connections beyond the cap are told so, malformed requests get the envelope.

These run a live server: they are also the tripwires of `nestauth.http_limits`, which
extends uvicorn's httptools protocol (a uvicorn upgrade that moves its hooks fails here).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tests.support import live_nestauth, make_settings

HEADER_TIMEOUT = 1
MAX_HEADER_BYTES = 4096
BOUND = 15  # how long a test waits for the server to close, far above the 1 s setting


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One live server for the module, on its own SQLite file (no database work here)."""
    workdir = tmp_path_factory.mktemp("http-limits")
    url = f"sqlite:///{workdir / 'limits.db'}"
    env = {
        "NESTAUTH_DATABASE_URL": url,
        "NESTAUTH_SECRET_KEY": make_settings(url).secret_key,
        "NESTAUTH_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "NESTAUTH_HTTP_KEEP_ALIVE_SECONDS": "60",  # so a close is the header clock's doing
        "NESTAUTH_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "NESTAUTH_HTTP_MAX_CONCURRENCY": "3",
    }
    with live_nestauth(workdir, env) as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=BOUND)
    sock.settimeout(BOUND)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after BOUND."""
    received = b""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the connection is still open after {BOUND} s")


def read_response(sock: socket.socket) -> bytes:
    """One whole response on a connection that stays open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(
        line.split(b":")[1] for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def envelope(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


HEALTH = b"GET /auth/health HTTP/1.1\r\nHost: nestauth\r\n\r\n"


class TestHeaderTimeout:
    def test_a_half_sent_request_line_is_answered_408_and_closed(
        self, server: tuple[str, int]
    ) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(b"GET /auth/hea")
            status, body = envelope(read_until_closed(sock))
        assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")

    def test_trickling_header_bytes_does_not_restart_the_clock(
        self, server: tuple[str, int]
    ) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(b"GET /auth/health HTTP/1.1\r\nHost: nestauth\r\nX-Slow: ")
            sock.settimeout(0.25)
            deadline = time.monotonic() + BOUND
            closed = False
            while not closed and time.monotonic() < deadline:
                try:
                    sock.sendall(b"a")
                    closed = sock.recv(65536) == b""
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                else:
                    closed = True  # the 408 arrived; the close follows
        assert closed, f"the connection is still open after {BOUND} s of trickling"

    def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
        self, server: tuple[str, int]
    ) -> None:
        with closing(connect(server)) as sock:
            assert read_until_closed(sock) == b""

    def test_a_half_sent_second_request_on_a_kept_alive_connection_is_closed(
        self, server: tuple[str, int]
    ) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(HEALTH)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /auth/health HTTP/1.1\r\nHost: nes")
            status, body = envelope(read_until_closed(sock))
        assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")

    def test_a_whole_request_is_served_as_before(self, server: tuple[str, int]) -> None:
        host, port = server
        response = httpx.get(f"http://{host}:{port}/auth/health")
        assert response.status_code == 200


class TestHeaderSize:
    def test_headers_over_the_cap_are_answered_431(self, server: tuple[str, int]) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(b"GET /auth/health HTTP/1.1\r\nHost: nestauth\r\n")
            sock.sendall(b"X-Big: " + b"b" * MAX_HEADER_BYTES + b"\r\n\r\n")
            status, body = envelope(read_until_closed(sock))
        assert (status, body["code"]) == (431, "HEADER_FIELDS_TOO_LARGE")

    def test_a_request_line_over_the_cap_is_answered_431(self, server: tuple[str, int]) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(b"GET /auth/health?" + b"q" * MAX_HEADER_BYTES + b" HTTP/1.1\r\n")
            status, body = envelope(read_until_closed(sock))
        assert (status, body["code"]) == (431, "HEADER_FIELDS_TOO_LARGE")

    def test_headers_under_the_cap_pass(self, server: tuple[str, int]) -> None:
        host, port = server
        big = {"X-Big": "b" * (MAX_HEADER_BYTES // 2)}
        assert httpx.get(f"http://{host}:{port}/auth/health", headers=big).status_code == 200


class TestOtherAnswersOfTheHttpLayer:
    def test_a_malformed_request_gets_the_envelope(self, server: tuple[str, int]) -> None:
        with closing(connect(server)) as sock:
            sock.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
            status, body = envelope(read_until_closed(sock))
        assert (status, body["code"]) == (400, "VALIDATION_FAILED")

    def test_requests_beyond_the_connection_cap_get_a_503_envelope(
        self, server: tuple[str, int]
    ) -> None:
        idle = [connect(server) for _ in range(3)]  # the cap is 3 connections
        try:
            with closing(connect(server)) as sock:
                sock.sendall(HEALTH)
                status, body = envelope(read_until_closed(sock))
        finally:
            for sock in idle:
                sock.close()
        assert (status, body["code"]) == (503, "SERVICE_UNAVAILABLE")


def test_the_uvicorn_hooks_the_guard_extends_still_exist() -> None:
    """Names what broke, should a uvicorn upgrade rename them (supported: 0.30 to 0.55)."""
    for name in ("connection_made", "connection_lost", "data_received", "on_message_begin",
                 "on_headers_complete", "send_400_response", "_start_asgi_task"):  # fmt: skip
        assert callable(getattr(HttpToolsProtocol, name, None)), name


CAP = 2


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server allowing CAP connections per client address (the header clock is long, so
    the held connections stay open while the test looks)."""
    workdir = tmp_path_factory.mktemp("address-cap")
    url = f"sqlite:///{workdir / 'cap.db'}"
    env = {
        "NESTAUTH_DATABASE_URL": url,
        "NESTAUTH_SECRET_KEY": make_settings(url).secret_key,
        "NESTAUTH_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(CAP),
        "NESTAUTH_HTTP_HEADER_TIMEOUT_SECONDS": "60",
    }
    with live_nestauth(workdir, env) as base:
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def connect_from(server: tuple[str, int], address: str) -> socket.socket:
    sock = socket.create_connection(server, timeout=BOUND, source_address=(address, 0))
    sock.settimeout(BOUND)
    return sock


class TestConnectionsPerAddress:
    """One address holding many connections cannot put every other client's requests behind
    its own (the login-flood case of the benchmark)."""

    def test_429_beyond_the_cap_while_another_address_is_served(
        self, capped_server: tuple[str, int]
    ) -> None:
        held = [connect_from(capped_server, "127.0.0.1") for _ in range(CAP)]
        try:
            for sock in held:  # accepted and answered: they count toward the cap
                sock.sendall(HEALTH)
                assert envelope(read_response(sock))[0] == 200
            with closing(connect_from(capped_server, "127.0.0.1")) as extra:
                status, body = envelope(read_until_closed(extra))
            assert (status, body["code"]) == (429, "RATE_LIMITED")
            with closing(connect_from(capped_server, "127.0.0.2")) as other:
                other.sendall(HEALTH)
                assert envelope(read_response(other))[0] == 200
        finally:
            for sock in held:
                sock.close()

    def test_closed_connections_free_their_places(self, capped_server: tuple[str, int]) -> None:
        held = [connect_from(capped_server, "127.0.0.1") for _ in range(CAP)]
        for sock in held:
            sock.sendall(HEALTH)
            assert envelope(read_response(sock))[0] == 200
        for sock in held:
            sock.close()
        # Places freed stay free: never refused for good (polled, bounded by BOUND).
        deadline, status = time.monotonic() + BOUND, 429
        while status == 429 and time.monotonic() < deadline:
            with closing(connect_from(capped_server, "127.0.0.1")) as sock:
                sock.sendall(HEALTH)
                status = envelope(read_response(sock))[0]
        assert status == 200
