"""Two `nestauth serve` processes on one database: no process keeps state another needs."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from tests.support import Api, assert_error, bearer, make_settings, totp_at

MAX_FAILURES = 3


@pytest.fixture(scope="module")
def servers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    from contextlib import ExitStack

    from tests.support import live_nestauth

    env = {
        "NESTAUTH_DATABASE_URL": database_url,
        "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,  # one key for both
        "NESTAUTH_COOKIE_SECURE": "false",
        "NESTAUTH_ADMIN_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
    }
    with ExitStack() as stack:
        urls = [
            stack.enter_context(live_nestauth(tmp_path_factory.mktemp(f"p{n}"), env))
            for n in range(2)
        ]
        clients = [stack.enter_context(httpx.Client(base_url=url, timeout=30)) for url in urls]
        yield clients[0], clients[1]


def admin_token(api: Api, server: httpx.Client) -> str:
    email = api.create_admin("admin")
    response = server.post(
        "/auth/admin/login", json={"email": email, "password": "correct horse battery"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


class TestTwoProcesses:
    def test_admin_logout_on_one_fails_the_token_on_the_other(self, api: Api, servers) -> None:
        one, two = servers
        token = admin_token(api, one)
        assert two.get("/auth/admin/me", headers=bearer(token)).status_code == 200
        assert one.post("/auth/admin/logout", headers=bearer(token)).status_code == 200
        assert_error(two.get("/auth/admin/me", headers=bearer(token)), 401, "SESSION_INVALID")

    def test_device_removed_through_one_fails_mfa_on_the_other(self, api: Api, servers) -> None:
        one, two = servers
        user = api.mfa_user(devices=2)
        removed, kept = user.devices
        response = one.delete(
            f"/auth/admin/api/users/{user.id}/totp-devices/{removed.id}",
            headers=bearer(admin_token(api, one)),
        )
        assert response.status_code == 200, response.text
        now = datetime.now(UTC)
        credentials = {"email": user.email, "password": "correct horse battery"}
        mfa_token = two.post("/auth/login", json=credentials).json()["mfaToken"]
        stale = {"mfaToken": mfa_token, "otp": totp_at(removed.secret, now, 1), "method": "totp"}
        assert_error(two.post("/auth/mfa/verify", json=stale), 401, "MFA_CODE_INVALID")
        fresh = {**stale, "otp": totp_at(kept.secret, now, 1)}
        assert two.post("/auth/mfa/verify", json=fresh).status_code == 200

    def test_failed_login_limit_counts_across_both(self, api: Api, servers) -> None:
        one, two = servers
        email = api.create_admin("viewer")
        wrong = {"email": email, "password": "not the password"}
        for attempt in range(MAX_FAILURES):
            server = (one, two)[attempt % 2]
            assert_error(server.post("/auth/admin/login", json=wrong), 401, "INVALID_CREDENTIALS")
        response = two.post(
            "/auth/admin/login", json={**wrong, "password": "correct horse battery"}
        )
        assert_error(response, 429, "RATE_LIMITED")
        assert int(response.headers["retry-after"]) > 0

    def test_concurrent_deletes_over_both_give_exactly_one_200(self, api: Api, servers) -> None:
        user = api.create_user(verified_devices=2)
        token = admin_token(api, servers[0])
        path = f"/auth/admin/api/users/{user.id}/totp-devices/{user.devices[0]}"
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(
                pool.map(
                    lambda n: servers[n % 2].delete(path, headers=bearer(token)).status_code,
                    range(20),
                )
            )
        assert sorted(statuses) == [200] + [404] * 19
