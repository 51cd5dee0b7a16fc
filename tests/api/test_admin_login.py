"""POST /auth/admin/login: credentials, cookies, server-side session, rate limit (contract §2)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from nestauth.models import AdminSession, AuditEvent, RateLimitBucket, utcnow
from tests.support import PASSWORD, Api, assert_admin_event, assert_error, bearer, parse_time

URL = "/auth/admin/login"


def login(api: Api, email: str, password: str = PASSWORD, **extra):
    return api.client.post(URL, json={"email": email, "password": password, **extra})


def set_cookies(response) -> dict[str, tuple[str, list[str]]]:
    """Each Set-Cookie header by cookie name: its value and its lower-cased attributes."""
    cookies = {}
    for header in response.headers.get_list("set-cookie"):
        pair, *attributes = header.split(";")
        name, value = pair.strip().split("=", 1)
        cookies[name] = (value, [part.strip().lower() for part in attributes])
    return cookies


def fail(api: Api, email: str, times: int) -> None:
    for _ in range(times):
        assert_error(login(api, email, "wrong password"), 401, "INVALID_CREDENTIALS")


class TestLogInAdmin:
    def test_200_body(self, api: Api) -> None:
        email = api.create_admin("admin")
        response = login(api, email)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"admin", "token", "csrfToken", "expiresAt"}
        assert set(body["admin"]) == {"id", "email", "name", "role", "createdAt"}
        assert (body["admin"]["email"], body["admin"]["role"]) == (email, "admin")
        assert body["token"] and body["csrfToken"] and body["token"] != body["csrfToken"]
        assert "argon2" not in response.text

    def test_200_expires_at_is_the_absolute_limit(self, api: Api) -> None:
        before = utcnow()
        body = login(api, api.create_admin()).json()
        expires_at = parse_time(body["expiresAt"])
        absolute = timedelta(seconds=api.base_settings.admin_session_absolute_seconds)
        assert before + absolute - timedelta(seconds=1) <= expires_at <= utcnow() + absolute
        session = api.admin_session_of(body["token"])
        assert abs(session.expires_at - expires_at) < timedelta(seconds=1)

    def test_200_sets_session_and_csrf_cookies(self, api: Api) -> None:
        response = login(api, api.create_admin())
        body, cookies = response.json(), set_cookies(response)
        (token, session), (csrf_token, csrf) = cookies["nest_auth_admin"], cookies["nest_auth_csrf"]
        assert (token, csrf_token) == (body["token"], body["csrfToken"])
        assert {"httponly", "samesite=lax", "path=/auth/admin"} <= set(session)
        assert {"samesite=lax", "path=/auth/admin"} <= set(csrf)
        assert "httponly" not in csrf
        assert "secure" not in session + csrf  # cookie_secure is off for the plain-http client

    def test_200_cookies_are_secure_when_configured(self, api: Api) -> None:
        api.configure(cookie_secure=True)
        cookies = set_cookies(login(api, api.create_admin()))
        assert "secure" in cookies["nest_auth_admin"][1]
        assert "secure" in cookies["nest_auth_csrf"][1]

    def test_200_session_row_stores_only_digests(self, api: Api) -> None:
        body = login(api, api.create_admin()).json()
        row = api.admin_session_of(body["token"])
        assert row is not None and row.revoked_at is None
        assert body["token"] not in (row.token_hash, row.csrf_token_hash)
        assert body["csrfToken"] not in (row.token_hash, row.csrf_token_hash)
        for raw in (body["token"], body["csrfToken"]):
            stored = (
                AdminSession.token_hash.contains(raw),
                AdminSession.csrf_token_hash.contains(raw),
            )
            assert api.count(AdminSession, sa.or_(*stored)) == 0

    def test_200_each_login_opens_a_new_session(self, api: Api) -> None:
        email = api.create_admin()
        first, second = login(api, email).json(), login(api, email).json()
        assert first["token"] != second["token"]
        assert api.count(AdminSession) == 2

    def test_200_email_is_case_insensitive(self, api: Api) -> None:
        email = api.create_admin("viewer")
        response = login(api, email.upper())
        assert response.status_code == 200, response.text
        assert response.json()["admin"]["email"] == email

    def test_200_token_opens_the_console(self, api: Api) -> None:
        body = login(api, api.create_admin()).json()
        me = api.client.get("/auth/admin/me", headers={"Authorization": f"Bearer {body['token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["admin"] == body["admin"]

    def test_200_audited_as_admin_login_with_ip_and_user_agent(self, api: Api) -> None:
        email = api.create_admin("viewer")
        response = api.client.post(
            URL, json={"email": email, "password": PASSWORD}, headers={"User-Agent": "console/1"}
        )
        body = response.json()
        session = api.admin_session_of(body["token"])
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "admin.login"))
        assert_admin_event(
            event, body["admin"]["id"], email, target_type="admin_session",
            target_id=str(session.id), ip=session.ip, user_agent="console/1",
        )  # fmt: skip
        assert session.ip  # the client's address, as the session row has it
        assert event.details == {"role": "viewer"}
        listed = api.client.get(
            "/auth/admin/api/audit-logs?action=admin.login", headers=bearer(body["token"])
        ).json()["data"]
        assert [e["id"] for e in listed] == [str(event.id)]
        assert body["token"] not in str(event.details) + str(listed)

    def test_401_audited_as_a_failure_not_as_a_login(self, api: Api) -> None:
        assert_error(login(api, api.create_admin(), "wrong password"), 401, "INVALID_CREDENTIALS")
        assert api.count(AuditEvent, AuditEvent.action == "admin.login") == 0
        assert api.count(AuditEvent, AuditEvent.action == "admin.login_failed") == 1

    def test_401_wrong_password_and_unknown_email_look_the_same(self, api: Api) -> None:
        email = api.create_admin()
        wrong_password = login(api, email, "not the password")
        unknown_email = login(api, "nobody@example.com")
        assert_error(wrong_password, 401, "INVALID_CREDENTIALS")
        assert_error(unknown_email, 401, "INVALID_CREDENTIALS")
        assert wrong_password.json() == unknown_email.json()
        assert "set-cookie" not in wrong_password.headers
        assert api.count(AdminSession) == 0

    def test_429_after_max_failures(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        fail(api, email, 3)
        response = login(api, email, "wrong password")
        assert_error(response, 429, "RATE_LIMITED")
        retry_after = response.json()["details"]["retryAfter"]
        assert isinstance(retry_after, int)
        assert 1 <= retry_after <= api.base_settings.admin_login_lock_seconds
        assert response.headers["Retry-After"] == str(retry_after)

    def test_429_blocks_the_right_password_too(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        fail(api, email, 3)
        assert_error(login(api, email), 429, "RATE_LIMITED")
        assert api.count(AdminSession) == 0

    def test_429_for_an_unknown_email_as_well(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        fail(api, "ghost@example.com", 3)
        assert_error(login(api, "ghost@example.com"), 429, "RATE_LIMITED")

    def test_429_counts_emails_case_insensitively(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        for variant in (email, email.upper(), email.title()):
            fail(api, variant, 1)
        assert_error(login(api, email), 429, "RATE_LIMITED")

    def test_block_is_per_email(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        blocked, other = api.create_admin(), api.create_admin()
        fail(api, blocked, 3)
        assert login(api, other).status_code == 200

    def test_200_once_the_block_is_over(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        fail(api, email, 3)
        assert_error(login(api, email), 429, "RATE_LIMITED")
        past = utcnow() - timedelta(seconds=1)

        async def expire_block(session) -> None:
            await session.execute(sa.update(RateLimitBucket).values(blocked_until=past))

        api.db(expire_block)
        assert login(api, email).status_code == 200

    def test_success_clears_the_failure_count(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        fail(api, email, 2)
        assert login(api, email).status_code == 200
        # The (email, address) count; the address's and the email's own counts stay.
        assert api.count(RateLimitBucket, RateLimitBucket.key.like("admin-login:%")) == 0
        fail(api, email, 2)
        assert login(api, email).status_code == 200

    def test_400_missing_password(self, api: Api) -> None:
        response = api.client.post(URL, json={"email": api.create_admin()})
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_400_missing_email(self, api: Api) -> None:
        assert_error(api.client.post(URL, json={"password": PASSWORD}), 400, "VALIDATION_FAILED")

    def test_400_extra_property(self, api: Api) -> None:
        response = login(api, api.create_admin(), role="owner")
        assert_error(response, 400, "VALIDATION_FAILED")
        assert api.count(AdminSession) == 0

    def test_400_bad_email(self, api: Api) -> None:
        assert_error(login(api, "not-an-email"), 400, "VALIDATION_FAILED")
