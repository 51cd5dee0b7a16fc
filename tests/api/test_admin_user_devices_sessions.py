"""A user's TOTP devices and sessions under /auth/admin/api/users/{id}: contract §4."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from nestauth.models import AuditEvent, TotpDevice, UserSession, utcnow
from nestauth.services.totp_devices import device_secret
from tests.support import Api, assert_admin_event, assert_error, bearer

DEVICES = "/auth/admin/api/users/{}/totp-devices"
SESSIONS = "/auth/admin/api/users/{}/sessions"
SESSION = "/auth/admin/api/users/{}/sessions/{}"
DEVICE_KEYS = {"id", "deviceName", "verified", "lastUsedAt", "createdAt"}
SESSION_KEYS = {"id", "createdAt", "lastUsedAt", "expiresAt", "ip", "userAgent"}


def signed_in(api: Api, role: str = "admin", agent: str = "users-test/1.0") -> tuple[dict, dict]:
    """Bearer headers and the admin; the login cookie is dropped so only the bearer counts."""
    login = api.login(api.create_admin(role))
    api.client.cookies.clear()
    return {**bearer(login["token"]), "User-Agent": agent}, login["admin"]


def is_live(api: Api, session_id: str) -> bool:
    row = api.scalar(sa.select(UserSession).where(UserSession.id == uuid.UUID(session_id)))
    return row.revoked_at is None


def live_sessions(api: Api, user_id: str) -> int:
    mine = UserSession.user_id == uuid.UUID(user_id)
    return api.count(UserSession, mine, UserSession.revoked_at.is_(None))


class TestListUserTotpDevices:
    def test_200_devices_oldest_first_without_secrets(self, api: Api) -> None:
        user = api.create_user(verified_devices=2, unverified_devices=1)
        api.create_user(verified_devices=1)
        response = api.client.get(DEVICES.format(user.id), headers=signed_in(api, "viewer")[0])
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"data"}
        devices = response.json()["data"]
        assert all(set(device) == DEVICE_KEYS for device in devices)
        assert sorted(d["id"] for d in devices) == sorted(user.devices)
        assert sorted(d["deviceName"] for d in devices) == ["phone 0", "phone 1", "phone 2"]
        assert "secret" not in response.text.lower()
        rows = api.scalar(sa.select(sa.func.count()).select_from(TotpDevice))
        assert rows == 4

        async def secrets(session) -> list[str]:
            found = await session.scalars(sa.select(TotpDevice))
            return [device_secret(api.runtime.secret_box, row) for row in found]

        for secret in api.db(secrets):
            assert secret not in response.text

    def test_200_no_devices(self, api: Api) -> None:
        user = api.create_user(verified_devices=0)
        response = api.client.get(DEVICES.format(user.id), headers=signed_in(api)[0])
        assert response.json() == {"data": []}

    def test_404_unknown_user(self, api: Api) -> None:
        response = api.client.get(DEVICES.format(uuid.uuid4()), headers=signed_in(api)[0])
        assert_error(response, 404, "USER_NOT_FOUND")

    def test_400_id_not_uuid(self, api: Api) -> None:
        response = api.client.get(DEVICES.format("123"), headers=signed_in(api)[0])
        assert_error(response, 400, "VALIDATION_FAILED")


class TestListUserSessions:
    def test_200_live_sessions_newest_first(self, api: Api) -> None:
        user = api.create_user()
        now = utcnow()
        oldest = api.add_user_session(user.id, created_at=now - timedelta(days=2))
        newest = api.add_user_session(user.id, created_at=now - timedelta(minutes=1))
        middle = api.add_user_session(user.id, created_at=now - timedelta(days=1))
        api.add_user_session(user.id, created_at=now, revoked_at=now)
        api.add_user_session(user.id, created_at=now, expires_at=now - timedelta(seconds=1))
        api.add_user_session(api.create_user().id, created_at=now)
        response = api.client.get(SESSIONS.format(user.id), headers=signed_in(api, "viewer")[0])
        assert response.status_code == 200, response.text
        sessions = response.json()["data"]
        assert [s["id"] for s in sessions] == [newest, middle, oldest]
        assert all(set(session) == SESSION_KEYS for session in sessions)
        assert "refresh" not in response.text.lower()

    def test_404_unknown_user(self, api: Api) -> None:
        response = api.client.get(SESSIONS.format(uuid.uuid4()), headers=signed_in(api)[0])
        assert_error(response, 404, "USER_NOT_FOUND")

    def test_401_without_auth(self, api: Api) -> None:
        assert_error(api.client.get(SESSIONS.format(uuid.uuid4())), 401, "NO_AUTH_PROVIDED")


class TestRevokeUserSessions:
    def test_200_revokes_only_this_users_live_sessions(self, api: Api) -> None:
        user, other = api.create_user(sessions=3), api.create_user(sessions=2)
        now = utcnow()
        api.add_user_session(user.id, revoked_at=now - timedelta(hours=1))
        response = api.client.delete(SESSIONS.format(user.id), headers=signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json()["sessionsRevoked"] == 3
        assert response.json()["userId"] == user.id
        assert live_sessions(api, user.id) == 0
        assert live_sessions(api, other.id) == 2
        earlier = UserSession.revoked_at < now - timedelta(minutes=30)
        assert api.count(UserSession, earlier) == 1  # an ended session keeps its moment

    def test_200_count_is_the_live_sessions_listed(self, api: Api) -> None:
        # "Every live session of the user is revoked": an expired one is not counted again.
        user = api.create_user(sessions=2)
        api.add_user_session(user.id, expires_at=utcnow() - timedelta(days=1))
        headers, _ = signed_in(api)
        listed = api.client.get(SESSIONS.format(user.id), headers=headers).json()["data"]
        response = api.client.delete(SESSIONS.format(user.id), headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["sessionsRevoked"] == len(listed) == 2

    def test_200_nothing_to_revoke(self, api: Api) -> None:
        user = api.create_user()
        response = api.client.delete(SESSIONS.format(user.id), headers=signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json()["sessionsRevoked"] == 0

    def test_200_writes_audit_event(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        headers, admin = signed_in(api, agent="audit-test/5.0")
        assert api.client.delete(SESSIONS.format(user.id), headers=headers).status_code == 200
        event = api.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "user.sessions.revoked")
        )
        assert_admin_event(
            event, admin["id"], admin["email"], target_id=user.id, user_id=user.id,
            user_agent="audit-test/5.0",
        )  # fmt: skip
        assert event.ip
        assert event.details == {"sessionsRevoked": 2}

    def test_404_unknown_user(self, api: Api) -> None:
        response = api.client.delete(SESSIONS.format(uuid.uuid4()), headers=signed_in(api)[0])
        assert_error(response, 404, "USER_NOT_FOUND")
        assert api.count(AuditEvent, AuditEvent.action == "user.sessions.revoked") == 0

    def test_403_viewer_before_404(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        headers, _ = signed_in(api, "viewer")
        response = api.client.delete(SESSIONS.format(user.id), headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert live_sessions(api, user.id) == 2
        response = api.client.delete(SESSIONS.format(uuid.uuid4()), headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_403_cookie_without_csrf_header(self, api: Api) -> None:
        user = api.create_user(sessions=1)
        api.login(api.create_admin("admin"))
        response = api.client.delete(SESSIONS.format(user.id))
        assert_error(response, 403, "CSRF_TOKEN_INVALID")
        assert live_sessions(api, user.id) == 1


class TestRevokeUserSession:
    def test_200_revokes_that_session_only(self, api: Api) -> None:
        user = api.create_user()
        target, kept = api.add_user_session(user.id), api.add_user_session(user.id)
        response = api.client.delete(SESSION.format(user.id, target), headers=signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == user.id
        assert response.json()["sessionId"] == target
        assert not is_live(api, target)
        assert is_live(api, kept)
        listed = api.client.get(SESSIONS.format(user.id), headers=signed_in(api)[0]).json()
        assert [s["id"] for s in listed["data"]] == [kept]

    def test_404_session_of_another_user(self, api: Api) -> None:
        user, other = api.create_user(), api.create_user()
        foreign = api.add_user_session(other.id)
        response = api.client.delete(SESSION.format(user.id, foreign), headers=signed_in(api)[0])
        assert_error(response, 404, "SESSION_NOT_FOUND")
        assert is_live(api, foreign)
        assert api.count(AuditEvent, AuditEvent.action == "user.session.revoked") == 0

    def test_404_already_revoked_or_expired_or_unknown(self, api: Api) -> None:
        user = api.create_user()
        now = utcnow()
        revoked = api.add_user_session(user.id, revoked_at=now)
        expired = api.add_user_session(user.id, expires_at=now - timedelta(seconds=1))
        headers, _ = signed_in(api)
        for session_id in (revoked, expired, str(uuid.uuid4())):
            response = api.client.delete(SESSION.format(user.id, session_id), headers=headers)
            assert_error(response, 404, "SESSION_NOT_FOUND")

    def test_404_repeat_revoke(self, api: Api) -> None:
        user = api.create_user()
        target = api.add_user_session(user.id)
        headers, _ = signed_in(api)
        assert (
            api.client.delete(SESSION.format(user.id, target), headers=headers).status_code == 200
        )
        response = api.client.delete(SESSION.format(user.id, target), headers=headers)
        assert_error(response, 404, "SESSION_NOT_FOUND")
        assert api.count(AuditEvent, AuditEvent.action == "user.session.revoked") == 1

    def test_404_unknown_user(self, api: Api) -> None:
        other = api.create_user()
        session_id = api.add_user_session(other.id)
        response = api.client.delete(
            SESSION.format(uuid.uuid4(), session_id), headers=signed_in(api)[0]
        )
        assert_error(response, 404, "USER_NOT_FOUND")
        assert is_live(api, session_id)

    def test_400_session_id_not_uuid(self, api: Api) -> None:
        user = api.create_user()
        response = api.client.delete(SESSION.format(user.id, "abc"), headers=signed_in(api)[0])
        assert_error(response, 400, "VALIDATION_FAILED")
        assert "'sessionId'" in response.json()["message"]

    def test_403_viewer_before_404(self, api: Api) -> None:
        user = api.create_user()
        target = api.add_user_session(user.id)
        headers, _ = signed_in(api, "viewer")
        response = api.client.delete(SESSION.format(user.id, target), headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert is_live(api, target)
        missing = SESSION.format(uuid.uuid4(), uuid.uuid4())
        assert_error(
            api.client.delete(missing, headers=headers), 403, "MISSING_REQUIRED_PERMISSIONS"
        )

    def test_200_writes_audit_event(self, api: Api) -> None:
        user = api.create_user()
        target = api.add_user_session(user.id)
        headers, admin = signed_in(api, agent="audit-test/6.0")
        assert (
            api.client.delete(SESSION.format(user.id, target), headers=headers).status_code == 200
        )
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.session.revoked"))
        assert_admin_event(
            event, admin["id"], admin["email"], target_type="user_session", target_id=target,
            user_id=user.id, user_agent="audit-test/6.0",
        )  # fmt: skip
        assert event.ip
        assert event.occurred_at is not None
