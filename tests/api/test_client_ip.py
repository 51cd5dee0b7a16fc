"""The client's IP address: X-Forwarded-For counts only from trusted proxies, and what is
stored is a parsed address or nothing, never a 500 and never a lost audit event."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from nestauth.models import AuditEvent, UserSession
from tests.support import Api, assert_error, live_nestauth, make_settings

PEER = "127.0.0.1"  # the test client's address (tests/conftest.py)
CLIENT = "203.0.113.9"


def failed_login(client: httpx.Client, forwarded_for: str) -> httpx.Response:
    """A failed admin login: its audit event is committed although the request fails."""
    return client.post(
        "/auth/admin/login",
        json={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong password"},
        headers={"X-Forwarded-For": forwarded_for},
    )


def failed_login_ips(api: Api) -> list[str | None]:
    statement = sa.select(AuditEvent.ip).where(AuditEvent.action == "admin.login_failed")
    return api.db(lambda session: _all(session, statement))


async def _all(session, statement) -> list[str | None]:
    return list((await session.scalars(statement)).all())


class TestNoProxyTrustedByDefault:
    def test_forwarded_for_is_ignored(self, api: Api) -> None:
        assert api.runtime.settings.trusted_proxies == ()
        assert_error(failed_login(api.client, CLIENT), 401, "INVALID_CREDENTIALS")
        assert failed_login_ips(api) == [PEER]

    def test_an_overlong_forwarded_for_is_ignored(self, api: Api) -> None:
        assert_error(failed_login(api.client, "A" * 200), 401, "INVALID_CREDENTIALS")
        assert failed_login_ips(api) == [PEER]


class TestTrustedProxy:
    @pytest.mark.parametrize(
        ("trusted", "forwarded_for", "stored"),
        [
            ((PEER,), CLIENT, CLIENT),
            ((f"{PEER}/32", "10.0.0.0/8"), f"{CLIENT}, 10.1.2.3", CLIENT),
            # The client may send its own header: the proxy appends, the rightmost untrusted
            # entry is the one the proxy saw.
            ((PEER,), f"6.6.6.6, {CLIENT}", CLIENT),
            ((PEER,), f"::ffff:{CLIENT}", CLIENT),
            ((PEER,), "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            ((PEER,), "fe80::1%" + "e" * 100, "fe80::1"),
        ],
    )
    def test_the_forwarded_client_is_stored(
        self, api: Api, trusted: tuple[str, ...], forwarded_for: str, stored: str
    ) -> None:
        api.configure(trusted_proxies=trusted)
        assert_error(failed_login(api.client, forwarded_for), 401, "INVALID_CREDENTIALS")
        assert failed_login_ips(api) == [stored]

    @pytest.mark.parametrize(
        "forwarded_for",
        ["A" * 200, "1.2.3.4" * 20, "not-an-address", "999.1.1.1", "<script>", "unknown"],
    )
    def test_what_is_no_address_is_not_stored_and_the_event_is_kept(
        self, api: Api, forwarded_for: str
    ) -> None:
        api.configure(trusted_proxies=(PEER,))
        assert_error(failed_login(api.client, forwarded_for), 401, "INVALID_CREDENTIALS")
        assert failed_login_ips(api) == [None]

    def test_a_user_session_opened_through_the_proxy(self, api: Api) -> None:
        api.configure(trusted_proxies=(PEER,))
        email = f"user-{uuid.uuid4().hex[:8]}@example.com"
        for forwarded_for, stored in [(CLIENT, CLIENT), ("x" * 200, None)]:
            response = api.client.post(
                "/auth/signup" if stored else "/auth/login",
                json={"email": email, "password": "correct horse battery"},
                headers={"X-Forwarded-For": forwarded_for},
            )
            assert response.status_code in {200, 201}, response.text
        ips = api.db(lambda session: _all(session, sa.select(UserSession.ip)))
        assert sorted(ips, key=str) == sorted([CLIENT, None], key=str)


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[Callable[..., httpx.Client]]:
    """Starts `nestauth serve` on the test database with extra environment variables."""
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(**env: str) -> httpx.Client:
            base_env = {
                "NESTAUTH_DATABASE_URL": database_url,
                "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,
                "NESTAUTH_COOKIE_SECURE": "false",
            }
            workdir = tmp_path / uuid.uuid4().hex[:8]
            workdir.mkdir()
            url = stack.enter_context(live_nestauth(workdir, {**base_env, **env}))
            return stack.enter_context(httpx.Client(base_url=url, timeout=30))

        yield start


@pytest.mark.live
class TestNestauthServe:
    def test_uvicorn_trusts_no_proxy_by_default(self, api: Api, serve) -> None:
        # Uvicorn's own default trusts 127.0.0.1, and it reads FORWARDED_ALLOW_IPS.
        client = serve(FORWARDED_ALLOW_IPS="*")
        assert_error(failed_login(client, CLIENT), 401, "INVALID_CREDENTIALS")
        assert_error(failed_login(client, "A" * 200), 401, "INVALID_CREDENTIALS")
        assert failed_login_ips(api) == [PEER, PEER]

    def test_uvicorn_applies_the_trusted_proxies(self, api: Api, serve) -> None:
        client = serve(NESTAUTH_TRUSTED_PROXIES=f"{PEER}, 10.0.0.0/8")
        assert_error(failed_login(client, f"6.6.6.6, {CLIENT}, 10.9.9.9"), 401,
                     "INVALID_CREDENTIALS")  # fmt: skip
        # Over the 64 characters of the ip column: a 500 on PostgreSQL, the event lost.
        assert_error(failed_login(client, "A" * 200), 401, "INVALID_CREDENTIALS")
        assert sorted(failed_login_ips(api), key=str) == sorted([CLIENT, None], key=str)
