"""A lost database gives 503 envelopes in bounded time, never a hang, a 500 or a half-written
change, and service resumes by itself when the database is back."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from nestauth.models import TotpDevice
from tests.proxy import TcpProxy
from tests.support import Api, assert_error, bearer, live_nestauth, make_settings

pytestmark = pytest.mark.postgresql_only
BOUND_SECONDS = 10  # connect timeout 2 s, pool timeout 2 s, plus the request itself


@pytest.fixture(scope="module")
def proxied(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TcpProxy, httpx.Client]]:
    url = make_url(database_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    env = {
        "NESTAUTH_DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False),
        "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,
        "NESTAUTH_COOKIE_SECURE": "false",
        "NESTAUTH_DB_CONNECT_TIMEOUT_SECONDS": "2",
        "NESTAUTH_DB_POOL_TIMEOUT_SECONDS": "2",
    }
    with (
        live_nestauth(tmp_path_factory.mktemp("faults"), env) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        yield proxy, client
    proxy.cut()


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def wait_until_healthy(client: httpx.Client) -> float:
    started = time.monotonic()
    while client.get("/auth/health").status_code != 200:
        assert time.monotonic() - started < BOUND_SECONDS * 3, "service did not resume"
        time.sleep(0.2)
    return time.monotonic() - started


class TestDatabaseFaults:
    def test_cut_while_idle_gives_503_and_resumes_without_restart(self, api: Api, proxied) -> None:
        proxy, client = proxied
        token = api.login(api.create_admin("admin"))["token"]
        assert client.get("/auth/admin/me", headers=bearer(token)).status_code == 200
        proxy.cut()
        try:
            response, to_503 = timed(lambda: client.get("/auth/admin/me", headers=bearer(token)))
            assert_error(response, 503, "SERVICE_UNAVAILABLE")
            health, health_503 = timed(lambda: client.get("/auth/health"))
            assert_error(health, 503, "SERVICE_UNAVAILABLE")
            assert max(to_503, health_503) < BOUND_SECONDS
        finally:
            proxy.restore()
        recovered = wait_until_healthy(client)
        print(f"\nidle cut: 503 in {to_503:.3f} s (health {health_503:.3f} s)")
        print(f"idle cut: recovered in {recovered:.3f} s")
        assert client.get("/auth/admin/me", headers=bearer(token)).status_code == 200

    def test_cut_mid_removal_changes_nothing(self, api: Api, proxied, database_url: str) -> None:
        proxy, client = proxied
        user = api.create_user(verified_devices=2)
        token = api.login(api.create_admin("admin"))["token"]
        path = f"/auth/admin/api/users/{user.id}/totp-devices/{user.devices[0]}"
        direct = make_url(database_url).set(drivername="postgresql")
        with psycopg.connect(direct.render_as_string(hide_password=False)) as blocker:
            # Hold the user's row so the removal is in flight when the link is cut.
            blocker.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (uuid.UUID(user.id),))
            results: list[tuple[httpx.Response, float]] = []
            worker = threading.Thread(
                target=lambda: results.append(
                    timed(lambda: client.delete(path, headers=bearer(token)))
                )
            )
            worker.start()
            time.sleep(0.5)
            proxy.cut()
            worker.join(timeout=BOUND_SECONDS * 2)
            blocker.rollback()
        proxy.restore()
        response, elapsed = results[0]
        assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert elapsed < BOUND_SECONDS + 1
        recovered = wait_until_healthy(client)
        print(
            f"\nin-flight cut: 503 after {elapsed:.3f} s in flight, recovered in {recovered:.3f} s"
        )
        assert api.count(TotpDevice, TotpDevice.id == uuid.UUID(user.devices[0])) == 1
