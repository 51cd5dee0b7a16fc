"""GET, PATCH and DELETE /auth/admin/api/users/{id}: contract §4, one user."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import sqlalchemy as sa

from nestauth.models import AuditEvent, RecoveryCode, TotpDevice, User, UserSession, utcnow
from nestauth.services.totp_devices import device_secret
from tests.support import Api, assert_admin_event, assert_error, bearer

URL = "/auth/admin/api/users/{}"
DEVICE_KEYS = {"id", "deviceName", "verified", "lastUsedAt", "createdAt"}
SESSION_KEYS = {"id", "createdAt", "lastUsedAt", "expiresAt", "ip", "userAgent"}
NEW_PASSWORD = "a brand new user password"


def signed_in(api: Api, role: str = "admin", agent: str = "users-test/1.0") -> tuple[dict, dict]:
    """Bearer headers and the admin; the login cookie is dropped so only the bearer counts."""
    login = api.login(api.create_admin(role))
    api.client.cookies.clear()
    return {**bearer(login["token"]), "User-Agent": agent}, login["admin"]


def secrets_of(api: Api, user_id: str) -> list[str]:
    async def read(session) -> list[str]:
        rows = await session.scalars(
            sa.select(TotpDevice).where(TotpDevice.user_id == uuid.UUID(user_id))
        )
        return [device_secret(api.runtime.secret_box, row) for row in rows]

    return api.db(read)


def live_sessions(api: Api, user_id: str) -> int:
    mine = UserSession.user_id == uuid.UUID(user_id)
    return api.count(UserSession, mine, UserSession.revoked_at.is_(None))


def user_email(api: Api, user_id: str) -> str:
    return api.get_user(user_id).email


def patch(api: Api, user_id: str, body: object, headers: dict[str, str]):
    return api.client.patch(URL.format(user_id), json=body, headers=headers)


class TestGetUser:
    def test_200_user_devices_recovery_codes_and_live_sessions(self, api: Api) -> None:
        user = api.create_user(verified_devices=2, unverified_devices=1, recovery_codes=2)
        now = utcnow()
        older = api.add_user_session(user.id, created_at=now - timedelta(hours=2))
        newer = api.add_user_session(user.id, created_at=now - timedelta(hours=1))
        api.add_user_session(user.id, created_at=now, revoked_at=now)
        api.add_user_session(user.id, created_at=now, expires_at=now - timedelta(seconds=1))
        api.add_user_session(api.create_user().id)
        response = api.client.get(URL.format(user.id), headers=signed_in(api)[0])
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"user", "mfa", "sessions", "sessionsTotal"}
        assert body["user"]["id"] == user.id
        assert body["user"]["email"] == user_email(api, user.id)
        assert body["mfa"]["isEnabled"] is True
        assert body["mfa"]["hasRecoveryCodes"] is True
        devices = body["mfa"]["totpDevices"]
        assert all(set(device) == DEVICE_KEYS for device in devices)
        assert sorted(d["id"] for d in devices) == sorted(user.devices)
        assert sorted(d["verified"] for d in devices) == [False, True, True]
        for secret in secrets_of(api, user.id):
            assert secret not in response.text
        assert "secret" not in response.text.lower()
        assert [s["id"] for s in body["sessions"]] == [newer, older]
        assert body["sessionsTotal"] == 2
        assert all(set(session) == SESSION_KEYS for session in body["sessions"])

    def test_200_has_recovery_codes_false_without_codes(self, api: Api) -> None:
        user = api.create_user(verified_devices=0)
        body = api.client.get(URL.format(user.id), headers=signed_in(api)[0]).json()
        assert body["mfa"] == {"isEnabled": False, "totpDevices": [], "hasRecoveryCodes": False}
        assert body["sessions"] == []

    def test_200_has_recovery_codes_false_when_all_used(self, api: Api) -> None:
        user = api.create_user(recovery_codes=2)

        async def use_all(session) -> None:
            await session.execute(sa.update(RecoveryCode).values(used_at=utcnow()))

        api.db(use_all)
        body = api.client.get(URL.format(user.id), headers=signed_in(api)[0]).json()
        assert body["mfa"]["hasRecoveryCodes"] is False

    def test_200_viewer_may_read(self, api: Api) -> None:
        user = api.create_user()
        response = api.client.get(URL.format(user.id), headers=signed_in(api, "viewer")[0])
        assert response.status_code == 200, response.text

    def test_404_unknown_user(self, api: Api) -> None:
        response = api.client.get(URL.format(uuid.uuid4()), headers=signed_in(api)[0])
        assert_error(response, 404, "USER_NOT_FOUND")

    def test_400_id_not_uuid(self, api: Api) -> None:
        response = api.client.get(URL.format("not-a-uuid"), headers=signed_in(api)[0])
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_401_without_auth(self, api: Api) -> None:
        assert_error(api.client.get(URL.format(uuid.uuid4())), 401, "NO_AUTH_PROVIDED")


class TestUpdateUser:
    def test_200_changes_fields(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        changes = {
            "email": "New.Address@Example.com",
            "phone": "+44 20 7946 0000",
            "isVerified": True,
            "metadata": {"plan": "pro"},
        }
        response = patch(api, user.id, changes, signed_in(api)[0])
        assert response.status_code == 200, response.text
        shown = response.json()["user"]
        assert shown["email"] == "new.address@example.com"
        assert (shown["phone"], shown["isVerified"], shown["metadata"]) == (
            "+44 20 7946 0000", True, {"plan": "pro"},
        )  # fmt: skip
        row = api.get_user(user.id)
        assert (row.email, row.phone, row.is_verified) == (
            "new.address@example.com", "+44 20 7946 0000", True,
        )  # fmt: skip
        assert live_sessions(api, user.id) == 2

    def test_200_phone_and_metadata_to_null(self, api: Api) -> None:
        user = api.create_user()
        headers, _ = signed_in(api)
        patch(api, user.id, {"phone": "+15550100", "metadata": {"a": 1}}, headers)
        response = patch(api, user.id, {"phone": None, "metadata": None}, headers)
        assert response.status_code == 200, response.text
        assert (response.json()["user"]["phone"], response.json()["user"]["metadata"]) == (
            None,
            None,
        )

    def test_200_deactivating_revokes_all_sessions(self, api: Api) -> None:
        user, other = api.create_user(sessions=3), api.create_user(sessions=2)
        response = patch(api, user.id, {"isActive": False}, signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json()["user"]["isActive"] is False
        assert live_sessions(api, user.id) == 0
        assert live_sessions(api, other.id) == 2

    def test_200_password_change_revokes_sessions_and_changes_hash(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        headers, _ = signed_in(api)
        assert patch(api, user.id, {"password": NEW_PASSWORD}, headers).status_code == 200
        first_hash = api.get_user(user.id).password_hash
        assert first_hash.startswith("$argon2id$")
        assert live_sessions(api, user.id) == 0
        api.add_user_session(user.id)
        response = patch(api, user.id, {"password": "yet another password"}, headers)
        assert response.status_code == 200, response.text
        assert NEW_PASSWORD not in response.text
        assert api.get_user(user.id).password_hash not in (first_hash, None)
        assert live_sessions(api, user.id) == 0

    def test_200_phone_change_alone_revokes_none(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        response = patch(api, user.id, {"phone": "+15550199", "isActive": True}, signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert live_sessions(api, user.id) == 2

    def test_200_own_email_in_other_case_is_no_conflict(self, api: Api) -> None:
        user = api.create_user()
        email = user_email(api, user.id)
        response = patch(api, user.id, {"email": email.upper()}, signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == email

    def test_409_email_of_another_user(self, api: Api) -> None:
        user, other = api.create_user(), api.create_user()
        before = user_email(api, user.id)
        response = patch(
            api, user.id, {"email": user_email(api, other.id).upper()}, signed_in(api)[0]
        )
        assert_error(response, 409, "EMAIL_ALREADY_EXISTS")
        assert user_email(api, user.id) == before
        assert api.count(AuditEvent, AuditEvent.action == "user.updated") == 0

    def test_400_bad_bodies_change_nothing(self, api: Api) -> None:
        user = api.create_user(sessions=1)
        headers, _ = signed_in(api)
        bad = [{}, {"role": "admin"}, {"isActive": False, "name": "x"}, {"password": "short"}]
        bad += [{"email": "nope"}, {"metadata": {"nested": {"a": 1}}}, {"isActive": "no"}]
        for body in bad:
            assert_error(patch(api, user.id, body, headers), 400, "VALIDATION_FAILED")
        assert api.get_user(user.id).is_active is True
        assert live_sessions(api, user.id) == 1

    def test_404_unknown_user(self, api: Api) -> None:
        response = patch(api, str(uuid.uuid4()), {"isActive": False}, signed_in(api)[0])
        assert_error(response, 404, "USER_NOT_FOUND")

    def test_403_viewer_changes_nothing(self, api: Api) -> None:
        user = api.create_user(sessions=1)
        response = patch(api, user.id, {"isActive": False}, signed_in(api, "viewer")[0])
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert api.get_user(user.id).is_active is True
        assert live_sessions(api, user.id) == 1

    def test_403_viewer_before_400_and_404(self, api: Api) -> None:
        headers, _ = signed_in(api, "viewer")
        missing = str(uuid.uuid4())
        for user_id, body in ((missing, {"isActive": False}), (missing, {}), ("x", {})):
            assert_error(patch(api, user_id, body, headers), 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_200_writes_audit_event_with_field_names_only(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        headers, admin = signed_in(api, agent="audit-test/3.0")
        body = {"password": NEW_PASSWORD, "isActive": False, "phone": "+15550100"}
        assert patch(api, user.id, body, headers).status_code == 200
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.updated"))
        assert_admin_event(
            event, admin["id"], admin["email"], target_type="user", target_id=user.id,
            user_id=user.id, user_agent="audit-test/3.0",
        )  # fmt: skip
        assert event.ip
        assert sorted(event.details["changedFields"]) == ["isActive", "password", "phone"]
        details = json.dumps(event.details)
        assert NEW_PASSWORD not in details
        assert api.get_user(user.id).password_hash not in details

    def test_failure_mid_transaction_changes_nothing(self, api: Api, monkeypatch) -> None:
        from nestauth.services import users

        async def broken_audit(*_args, **_kwargs):
            raise RuntimeError("audit store unavailable")

        monkeypatch.setattr(users, "record_admin_action", broken_audit)
        user = api.create_user(sessions=2)
        response = patch(
            api, user.id, {"isActive": False, "password": NEW_PASSWORD}, signed_in(api)[0]
        )
        assert_error(response, 500, "INTERNAL_ERROR")
        row = api.get_user(user.id)
        assert (row.is_active, row.password_hash) == (True, None)
        assert live_sessions(api, user.id) == 2


class TestDeleteUser:
    def test_200_removes_user_devices_codes_and_sessions(self, api: Api) -> None:
        user = api.create_user(
            verified_devices=2, unverified_devices=1, recovery_codes=3, sessions=2
        )
        other = api.create_user(verified_devices=1, recovery_codes=1, sessions=1)
        response = api.client.delete(URL.format(user.id), headers=signed_in(api)[0])
        assert response.status_code == 200, response.text
        assert response.json() == {"message": "User deleted successfully", "userId": user.id}
        gone, kept = uuid.UUID(user.id), uuid.UUID(other.id)
        assert api.count(User, User.id == gone) == 0
        for model in (TotpDevice, RecoveryCode, UserSession):
            assert api.count(model, model.user_id == gone) == 0, model
            assert api.count(model, model.user_id == kept) == 1, model
        assert api.count(User) == 1

    def test_200_audit_event_outlives_the_user(self, api: Api) -> None:
        user = api.create_user()
        email = user_email(api, user.id)
        headers, admin = signed_in(api, agent="audit-test/4.0")
        assert api.client.delete(URL.format(user.id), headers=headers).status_code == 200
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.deleted"))
        assert_admin_event(
            event, admin["id"], admin["email"], target_type="user", target_id=user.id,
            user_id=user.id, user_agent="audit-test/4.0",
        )  # fmt: skip
        assert event.ip
        assert event.details == {"email": email}

    def test_404_unknown_and_repeated_delete(self, api: Api) -> None:
        user = api.create_user()
        headers, _ = signed_in(api)
        assert_error(
            api.client.delete(URL.format(uuid.uuid4()), headers=headers), 404, "USER_NOT_FOUND"
        )
        assert api.client.delete(URL.format(user.id), headers=headers).status_code == 200
        assert_error(api.client.delete(URL.format(user.id), headers=headers), 404, "USER_NOT_FOUND")
        assert api.count(AuditEvent, AuditEvent.action == "user.deleted") == 1

    def test_403_viewer_deletes_nothing(self, api: Api) -> None:
        user = api.create_user(sessions=1)
        headers, _ = signed_in(api, "viewer")
        response = api.client.delete(URL.format(user.id), headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert api.count(User) == 1
        missing = api.client.delete(URL.format(uuid.uuid4()), headers=headers)
        assert_error(missing, 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_failure_mid_transaction_deletes_nothing(self, api: Api, monkeypatch) -> None:
        from nestauth.services import users

        async def broken_audit(*_args, **_kwargs):
            raise RuntimeError("audit store unavailable")

        monkeypatch.setattr(users, "record_admin_action", broken_audit)
        user = api.create_user(verified_devices=1, recovery_codes=1, sessions=1)
        response = api.client.delete(URL.format(user.id), headers=signed_in(api)[0])
        assert_error(response, 500, "INTERNAL_ERROR")
        for model in (User, TotpDevice, RecoveryCode, UserSession):
            assert api.count(model) == 1, model
