"""GET /auth/admin/me: the admin behind a live session (contract §2)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from nestauth.models import Admin, AdminSession, utcnow
from tests.support import Api, assert_error, bearer, parse_time

URL = "/auth/admin/me"


def me(api: Api, token: str):
    return api.client.get(URL, headers=bearer(token))


def admin_row(api: Api, email: str) -> Admin:
    return api.scalar(sa.select(Admin).where(Admin.email == email))


def bearer_only_login(api: Api, role: str = "admin") -> str:
    token = api.login(api.create_admin(role))["token"]
    api.client.cookies.clear()
    return token


class TestGetCurrentAdmin:
    def test_200_by_bearer(self, api: Api) -> None:
        email = api.create_admin("admin")
        token = api.login(email)["token"]
        api.client.cookies.clear()
        response = me(api, token)
        assert response.status_code == 200, response.text
        row, admin = admin_row(api, email), response.json()["admin"]
        assert set(response.json()) == {"admin"}
        assert set(admin) == {"id", "email", "name", "role", "createdAt"}
        assert (admin["id"], admin["email"], admin["name"]) == (str(row.id), email, None)
        assert admin["role"] == "admin"
        assert abs(parse_time(admin["createdAt"]) - row.created_at) < timedelta(milliseconds=1)
        assert api.client.get(URL).status_code == 401  # the bearer, not a cookie, did it

    def test_200_by_cookie_without_csrf_header(self, api: Api) -> None:
        email = api.create_admin("owner")
        login = api.login(email)
        response = api.client.get(URL)
        assert response.status_code == 200, response.text
        assert response.json()["admin"] == login["admin"]
        assert response.json()["admin"]["email"] == email

    def test_200_viewer_may_read(self, api: Api) -> None:
        response = me(api, bearer_only_login(api, "viewer"))
        assert response.status_code == 200, response.text
        assert response.json()["admin"]["role"] == "viewer"

    def test_200_response_never_carries_the_password_hash(self, api: Api) -> None:
        email = api.create_admin()
        response = me(api, api.login(email)["token"])
        assert admin_row(api, email).password_hash not in response.text
        assert "argon2" not in response.text

    def test_200_refreshes_last_seen_when_older_than_a_minute(self, api: Api) -> None:
        token = bearer_only_login(api)
        shifted = utcnow() - timedelta(minutes=5)
        api.shift_admin_session(token, last_seen_at=shifted)
        assert me(api, token).status_code == 200
        assert api.admin_session_of(token).last_seen_at > shifted + timedelta(minutes=4)

    def test_200_keeps_a_recent_last_seen(self, api: Api) -> None:
        token = bearer_only_login(api)
        recent = utcnow() - timedelta(seconds=20)
        api.shift_admin_session(token, last_seen_at=recent)
        assert me(api, token).status_code == 200
        assert abs(api.admin_session_of(token).last_seen_at - recent) < timedelta(milliseconds=1)

    def test_200_use_keeps_an_idle_session_alive(self, api: Api) -> None:
        token = bearer_only_login(api)
        idle = timedelta(seconds=api.base_settings.admin_session_idle_seconds)
        api.shift_admin_session(token, last_seen_at=utcnow() - idle + timedelta(minutes=1))
        before = utcnow()
        assert me(api, token).status_code == 200
        assert api.admin_session_of(token).last_seen_at >= before - timedelta(seconds=1)

    def test_401_no_credentials(self, api: Api) -> None:
        assert_error(api.client.get(URL), 401, "NO_AUTH_PROVIDED")

    def test_401_garbage_bearer(self, api: Api) -> None:
        assert_error(me(api, "garbage"), 401, "SESSION_INVALID")

    def test_401_garbage_cookie(self, api: Api) -> None:
        api.client.cookies.set("nest_auth_admin", "garbage", path="/auth/admin")
        assert_error(api.client.get(URL), 401, "SESSION_INVALID")

    def test_401_tampered_token(self, api: Api) -> None:
        token = bearer_only_login(api)
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert_error(me(api, tampered), 401, "SESSION_INVALID")

    def test_401_revoked_session(self, api: Api) -> None:
        token = bearer_only_login(api)
        assert api.client.post("/auth/admin/logout", headers=bearer(token)).status_code == 200
        assert_error(me(api, token), 401, "SESSION_INVALID")

    def test_401_deleted_admin(self, api: Api) -> None:
        email = api.create_admin()
        token = api.login(email)["token"]

        async def delete_admin(session) -> None:
            await session.execute(sa.delete(Admin).where(Admin.email == email))

        api.db(delete_admin)
        assert api.count(AdminSession) == 0
        assert_error(me(api, token), 401, "SESSION_INVALID")
        assert_error(api.client.get(URL), 401, "SESSION_INVALID")

    def test_401_idle_too_long(self, api: Api) -> None:
        token = bearer_only_login(api)
        idle = timedelta(seconds=api.base_settings.admin_session_idle_seconds)
        api.shift_admin_session(token, last_seen_at=utcnow() - idle - timedelta(seconds=1))
        assert_error(me(api, token), 401, "SESSION_EXPIRED")

    def test_401_idle_limit_follows_the_setting(self, api: Api) -> None:
        token = bearer_only_login(api)
        api.shift_admin_session(token, last_seen_at=utcnow() - timedelta(minutes=5))
        api.configure(admin_session_idle_seconds=4 * 60)
        assert_error(me(api, token), 401, "SESSION_EXPIRED")

    def test_401_past_the_absolute_limit(self, api: Api) -> None:
        token = bearer_only_login(api)
        api.shift_admin_session(token, expires_at=utcnow() - timedelta(seconds=1))
        assert_error(me(api, token), 401, "SESSION_EXPIRED")

    def test_401_absolute_limit_holds_for_a_busy_session(self, api: Api) -> None:
        token = bearer_only_login(api)
        now = utcnow()
        api.shift_admin_session(token, last_seen_at=now, expires_at=now - timedelta(seconds=1))
        assert_error(me(api, token), 401, "SESSION_EXPIRED")

    def test_401_expired_session_is_not_refreshed(self, api: Api) -> None:
        token = bearer_only_login(api)
        idle = timedelta(seconds=api.base_settings.admin_session_idle_seconds)
        stale = utcnow() - idle - timedelta(minutes=1)
        api.shift_admin_session(token, last_seen_at=stale)
        assert_error(me(api, token), 401, "SESSION_EXPIRED")
        assert_error(me(api, token), 401, "SESSION_EXPIRED")
        assert abs(api.admin_session_of(token).last_seen_at - stale) < timedelta(milliseconds=1)
