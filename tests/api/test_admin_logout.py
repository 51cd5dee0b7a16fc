"""POST /auth/admin/logout: revokes this one session and clears the cookies (contract §2)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

import sqlalchemy as sa

from nestauth.models import AdminSession, AuditEvent, utcnow
from tests.support import Api, assert_admin_event, assert_error, bearer

URL = "/auth/admin/logout"
ME = "/auth/admin/me"
COOKIES = ("nest_auth_admin", "nest_auth_csrf")


def is_cleared(set_cookie: str) -> bool:
    """A Set-Cookie header that makes the browser drop the cookie at once."""
    attributes = {}
    for part in set_cookie.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value
    if "max-age" in attributes and int(attributes["max-age"]) <= 0:
        return True
    return "expires" in attributes and parsedate_to_datetime(attributes["expires"]) <= utcnow()


def cleared_cookies(response) -> dict[str, str]:
    headers = response.headers.get_list("set-cookie")
    return {h.split("=", 1)[0].strip(): h for h in headers if is_cleared(h)}


def is_revoked(api: Api, token: str) -> bool:
    return api.admin_session_of(token).revoked_at is not None


class TestLogOutAdmin:
    def test_200_bearer_revokes_that_session(self, api: Api) -> None:
        token = api.login(api.create_admin())["token"]
        response = api.client.post(URL, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"message"}
        assert is_revoked(api, token)
        assert_error(api.client.get(ME, headers=bearer(token)), 401, "SESSION_INVALID")

    def test_200_audited_as_admin_logout_with_ip_and_user_agent(self, api: Api) -> None:
        email = api.create_admin("viewer")
        login = api.login(email)
        api.client.cookies.clear()
        headers = {**bearer(login["token"]), "User-Agent": "console/1"}
        assert api.client.post(URL, headers=headers).status_code == 200
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "admin.logout"))
        session = api.admin_session_of(login["token"])
        assert_admin_event(
            event, login["admin"]["id"], email, target_type="admin_session",
            target_id=str(session.id), ip=session.ip, user_agent="console/1",
        )  # fmt: skip
        assert session.ip  # the client's address, as the session row has it

    def test_403_refused_logout_is_not_audited_as_one(self, api: Api) -> None:
        api.login(api.create_admin())
        assert_error(api.client.post(URL), 403, "CSRF_TOKEN_INVALID")
        assert api.count(AuditEvent, AuditEvent.action == "admin.logout") == 0

    def test_200_other_sessions_of_the_admin_survive(self, api: Api) -> None:
        email = api.create_admin()
        first, second = api.login(email)["token"], api.login(email)["token"]
        api.client.cookies.clear()
        assert api.client.post(URL, headers=bearer(first)).status_code == 200
        assert_error(api.client.get(ME, headers=bearer(first)), 401, "SESSION_INVALID")
        me = api.client.get(ME, headers=bearer(second))
        assert me.status_code == 200, me.text
        assert me.json()["admin"]["email"] == email
        assert not is_revoked(api, second)

    def test_200_sessions_of_other_admins_survive(self, api: Api) -> None:
        mine, theirs = (
            api.login(api.create_admin())["token"],
            api.login(api.create_admin())["token"],
        )
        api.client.cookies.clear()
        assert api.client.post(URL, headers=bearer(mine)).status_code == 200
        assert api.client.get(ME, headers=bearer(theirs)).status_code == 200
        assert api.count(AdminSession, AdminSession.revoked_at.is_not(None)) == 1

    def test_200_bearer_needs_no_csrf_header(self, api: Api) -> None:
        token = api.login(api.create_admin())["token"]
        api.client.cookies.clear()
        assert api.client.post(URL, headers=bearer(token)).status_code == 200

    def test_200_cookie_with_csrf_header_revokes_and_clears_cookies(self, api: Api) -> None:
        login = api.login(api.create_admin())
        response = api.client.post(URL, headers={"X-CSRF-Token": login["csrfToken"]})
        assert response.status_code == 200, response.text
        assert set(cleared_cookies(response)) == set(COOKIES)
        for header in cleared_cookies(response).values():
            assert "path=/auth/admin" in header.lower()
        assert is_revoked(api, login["token"])
        assert not any(api.client.cookies.get(name) for name in COOKIES)

    def test_200_bearer_logout_clears_cookies_too(self, api: Api) -> None:
        token = api.login(api.create_admin())["token"]
        api.client.cookies.clear()
        response = api.client.post(URL, headers=bearer(token))
        assert set(cleared_cookies(response)) == set(COOKIES)

    def test_200_viewer_may_log_out(self, api: Api) -> None:
        token = api.login(api.create_admin("viewer"))["token"]
        response = api.client.post(URL, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert is_revoked(api, token)

    def test_403_cookie_without_csrf_header(self, api: Api) -> None:
        login = api.login(api.create_admin())
        assert_error(api.client.post(URL), 403, "CSRF_TOKEN_INVALID")
        assert not is_revoked(api, login["token"])
        assert api.client.get(ME).status_code == 200

    def test_403_cookie_with_wrong_csrf_header(self, api: Api) -> None:
        login = api.login(api.create_admin())
        response = api.client.post(URL, headers={"X-CSRF-Token": login["token"]})
        assert_error(response, 403, "CSRF_TOKEN_INVALID")
        assert not is_revoked(api, login["token"])

    def test_401_no_credentials(self, api: Api) -> None:
        assert_error(api.client.post(URL), 401, "NO_AUTH_PROVIDED")

    def test_401_garbage_bearer(self, api: Api) -> None:
        assert_error(api.client.post(URL, headers=bearer("garbage")), 401, "SESSION_INVALID")

    def test_401_garbage_cookie_is_not_a_csrf_failure(self, api: Api) -> None:
        api.client.cookies.set("nest_auth_admin", "garbage", path="/auth/admin")
        assert_error(api.client.post(URL), 401, "SESSION_INVALID")

    def test_401_second_logout_with_the_same_token(self, api: Api) -> None:
        token = api.login(api.create_admin())["token"]
        assert api.client.post(URL, headers=bearer(token)).status_code == 200
        assert_error(api.client.post(URL, headers=bearer(token)), 401, "SESSION_INVALID")

    def test_401_expired_session(self, api: Api) -> None:
        token = api.login(api.create_admin())["token"]
        api.client.cookies.clear()
        api.shift_admin_session(token, expires_at=utcnow() - timedelta(seconds=1))
        assert_error(api.client.post(URL, headers=bearer(token)), 401, "SESSION_EXPIRED")
