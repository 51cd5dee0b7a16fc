"""SIGTERM: in-flight requests finish, new ones are refused, the process exits in bounded time."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from nestauth.models import TotpDevice
from tests.support import Api, bearer, make_settings
from tests.support import _free_port as free_port
from tests.support import _wait_until_healthy as wait_until_healthy

SHUTDOWN_BOUND = 10


@contextmanager
def holding_user(database_url: str, user_id: str) -> Iterator[None]:
    """Keeps the user's row (SQLite: the whole database) locked, so a removal waits."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    direct = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(direct) as conn:
        conn.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (uuid.UUID(user_id),))
        yield
        conn.rollback()


class TestGracefulStop:
    def test_in_flight_removal_completes_then_the_process_exits(
        self, api: Api, database_url: str, tmp_path: Path
    ) -> None:
        user = api.create_user(verified_devices=2)
        token = api.login(api.create_admin("admin"))["token"]
        port = free_port()
        env = {
            "NESTAUTH_DATABASE_URL": database_url,
            "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,
            "NESTAUTH_VAR_DIR": str(tmp_path),
            "NESTAUTH_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_BOUND),
        }
        command = [sys.executable, "-m", "nestauth.cli", "serve", "--port", str(port)]
        server = subprocess.Popen(command, env={**os.environ, **env})
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, server)
        path = f"{base}/auth/admin/api/users/{user.id}/totp-devices/{user.devices[0]}"
        results: list[httpx.Response] = []
        with holding_user(database_url, user.id):
            worker = threading.Thread(
                target=lambda: results.append(httpx.delete(path, headers=bearer(token), timeout=30))
            )
            worker.start()
            time.sleep(0.5)  # the removal is now waiting on the lock
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            refused = self._refused(base)
        started = time.monotonic()
        worker.join(timeout=30)
        exit_code = server.wait(timeout=SHUTDOWN_BOUND + 5)
        assert refused, "a new connection was accepted after SIGTERM"
        assert results and results[0].status_code == 200, results
        assert api.count(TotpDevice, TotpDevice.id == uuid.UUID(user.devices[0])) == 0
        # uvicorn re-raises the signal once it has drained: the process ends 'by SIGTERM'.
        assert exit_code in (0, -signal.SIGTERM)
        assert time.monotonic() - started < SHUTDOWN_BOUND

    @staticmethod
    def _refused(base: str) -> bool:
        try:
            httpx.get(f"{base}/auth/health", timeout=2)
        except httpx.TransportError:
            return True
        return False
