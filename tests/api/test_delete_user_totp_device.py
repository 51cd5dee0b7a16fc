"""DELETE /auth/admin/api/users/{id}/totp-devices/{deviceId}: every row of contract §3."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from nestauth.models import AuditEvent, RecoveryCode, TotpDevice, UserSession
from tests.support import Api, assert_error

URL = "/auth/admin/api/users/{}/totp-devices/{}"


def delete(api: Api, user_id: str, device_id: str, headers: dict[str, str], query: str = ""):
    return api.client.delete(URL.format(user_id, device_id) + query, headers=headers)


def device_exists(api: Api, device_id: str) -> bool:
    return api.count(TotpDevice, TotpDevice.id == uuid.UUID(device_id)) == 1


class TestDeleteUserTotpDevice:
    def test_200_removes_one_of_two_devices(self, api: Api) -> None:
        user = api.create_user(verified_devices=2, recovery_codes=3)
        response = delete(api, user.id, user.devices[0], api.bearer("admin"))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "message": "TOTP device deleted successfully",
            "userId": user.id,
            "deviceId": user.devices[0],
            "remainingDevices": 1,
            "mfaDisabled": False,
            "sessionsRevoked": 0,
        }
        assert not device_exists(api, user.devices[0])
        assert device_exists(api, user.devices[1])
        assert api.get_user(user.id).is_mfa_enabled is True
        assert api.count(RecoveryCode) == 3

    def test_200_owner_may_remove(self, api: Api) -> None:
        user = api.create_user()
        assert delete(api, user.id, user.devices[0], api.bearer("owner")).status_code == 200

    def test_200_last_device_switches_mfa_off_and_deletes_recovery_codes(self, api: Api) -> None:
        user = api.create_user(verified_devices=1, recovery_codes=4)
        response = delete(api, user.id, user.devices[0], api.bearer())
        assert response.status_code == 200
        assert response.json()["remainingDevices"] == 0
        assert response.json()["mfaDisabled"] is True
        assert api.get_user(user.id).is_mfa_enabled is False
        assert api.count(RecoveryCode) == 0

    def test_200_last_device_under_required_policy_keeps_user_flagged(self, api: Api) -> None:
        api.configure(mfa_required=True)
        user = api.create_user(verified_devices=1, recovery_codes=2)
        response = delete(api, user.id, user.devices[0], api.bearer())
        assert response.status_code == 200
        assert response.json()["mfaDisabled"] is False
        assert response.json()["remainingDevices"] == 0
        assert api.get_user(user.id).is_mfa_enabled is True
        assert api.count(RecoveryCode) == 2

    def test_200_unverified_devices_do_not_count_as_remaining(self, api: Api) -> None:
        user = api.create_user(verified_devices=1, unverified_devices=1)
        response = delete(api, user.id, user.devices[0], api.bearer())
        assert response.json()["remainingDevices"] == 0
        assert response.json()["mfaDisabled"] is True
        assert device_exists(api, user.devices[1])

    def test_200_revoke_sessions_revokes_all_live_sessions(self, api: Api) -> None:
        user = api.create_user(verified_devices=2, sessions=3)
        other = api.create_user(sessions=2)
        response = delete(api, user.id, user.devices[0], api.bearer(), "?revokeSessions=true")
        assert response.status_code == 200
        assert response.json()["sessionsRevoked"] == 3
        live = UserSession.revoked_at.is_(None)
        assert api.count(UserSession, UserSession.user_id == uuid.UUID(user.id), live) == 0
        assert api.count(UserSession, UserSession.user_id == uuid.UUID(other.id), live) == 2

    def test_200_revoke_sessions_false_leaves_sessions(self, api: Api) -> None:
        user = api.create_user(sessions=2)
        response = delete(api, user.id, user.devices[0], api.bearer(), "?revokeSessions=false")
        assert response.json()["sessionsRevoked"] == 0
        assert api.count(UserSession, UserSession.revoked_at.is_(None)) == 2

    def test_200_writes_one_audit_event(self, api: Api) -> None:
        user = api.create_user(verified_devices=1, sessions=1)
        email = api.create_admin("admin")
        token = api.login(email)["token"]
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "audit-test/1.0"}
        delete(api, user.id, user.devices[0], headers, "?revokeSessions=true")
        event = api.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "user.totp_device.removed")
        )
        assert event.actor_type == "admin"
        assert event.actor_email == email
        assert (
            str(event.actor_id)
            == api.client.get(
                "/auth/admin/me", headers={"Authorization": f"Bearer {token}"}
            ).json()["admin"]["id"]
        )
        assert (str(event.user_id), str(event.target_id)) == (user.id, user.devices[0])
        assert event.target_type == "totp_device"
        assert event.user_agent == "audit-test/1.0"
        assert event.ip
        assert event.details == {
            "deviceName": "phone 0",
            "deviceVerified": True,
            "remainingDevices": 0,
            "mfaDisabled": True,
            "sessionsRevoked": 1,
        }

    def test_200_cookie_with_csrf_header(self, api: Api) -> None:
        user = api.create_user()
        login = api.login(api.create_admin("admin"))
        response = api.client.delete(
            URL.format(user.id, user.devices[0]), headers={"X-CSRF-Token": login["csrfToken"]}
        )
        assert response.status_code == 200, response.text

    def test_400_user_id_not_uuid(self, api: Api) -> None:
        response = delete(api, "not-a-uuid", str(uuid.uuid4()), api.bearer())
        assert_error(response, 400, "VALIDATION_FAILED")
        assert "'id'" in response.json()["message"]

    def test_400_device_id_not_uuid(self, api: Api) -> None:
        response = delete(api, str(uuid.uuid4()), "12345", api.bearer())
        assert_error(response, 400, "VALIDATION_FAILED")
        assert "'deviceId'" in response.json()["message"]

    def test_400_id_with_encoded_newline_or_slash(self, api: Api) -> None:
        # Connexion's router cannot match these and used to answer 404 (schemathesis finding).
        headers, device = api.bearer(), str(uuid.uuid4())
        for bad_id in ("%0A", "a%2Fb", "%0Ax"):
            assert_error(delete(api, bad_id, device, headers), 400, "VALIDATION_FAILED")
            assert_error(delete(api, device, bad_id, headers), 400, "VALIDATION_FAILED")

    def test_404_for_a_path_no_operation_has(self, api: Api) -> None:
        response = api.client.delete(f"/auth/admin/api/users/{uuid.uuid4()}/no-such-thing/x")
        assert_error(response, 404, "NOT_FOUND")

    def test_400_revoke_sessions_not_boolean(self, api: Api) -> None:
        user = api.create_user()
        response = delete(api, user.id, user.devices[0], api.bearer(), "?revokeSessions=maybe")
        assert_error(response, 400, "VALIDATION_FAILED")
        assert device_exists(api, user.devices[0])

    def test_400_unknown_query_parameter(self, api: Api) -> None:
        user = api.create_user()
        response = delete(api, user.id, user.devices[0], api.bearer(), "?force=true")
        assert_error(response, 400, "VALIDATION_FAILED")
        assert device_exists(api, user.devices[0])

    def test_401_no_session(self, api: Api) -> None:
        user = api.create_user()
        assert_error(delete(api, user.id, user.devices[0], {}), 401, "NO_AUTH_PROVIDED")
        assert device_exists(api, user.devices[0])

    def test_401_before_400_for_anonymous_bad_ids(self, api: Api) -> None:
        assert_error(delete(api, "x", "y", {}), 401, "NO_AUTH_PROVIDED")

    def test_401_garbage_bearer(self, api: Api) -> None:
        user = api.create_user()
        response = delete(api, user.id, user.devices[0], {"Authorization": "Bearer garbage"})
        assert_error(response, 401, "SESSION_INVALID")

    def test_401_garbage_cookie_is_not_a_csrf_failure(self, api: Api) -> None:
        user = api.create_user()
        api.client.cookies.set("nest_auth_admin", "garbage", path="/auth/admin")
        assert_error(delete(api, user.id, user.devices[0], {}), 401, "SESSION_INVALID")

    def test_401_expired_session(self, api: Api) -> None:
        user = api.create_user()
        headers = api.bearer()
        token = headers["Authorization"].split()[1]
        session = api.admin_session_of(token)
        api.shift_admin_session(token, expires_at=session.created_at)
        assert_error(delete(api, user.id, user.devices[0], headers), 401, "SESSION_EXPIRED")
        assert device_exists(api, user.devices[0])

    def test_401_revoked_session(self, api: Api) -> None:
        user = api.create_user()
        headers = api.bearer()
        assert api.client.post("/auth/admin/logout", headers=headers).status_code == 200
        assert_error(delete(api, user.id, user.devices[0], headers), 401, "SESSION_INVALID")

    def test_403_viewer(self, api: Api) -> None:
        user = api.create_user()
        response = delete(api, user.id, user.devices[0], api.bearer("viewer"))
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert device_exists(api, user.devices[0])

    def test_403_viewer_before_400_and_404(self, api: Api) -> None:
        viewer = api.bearer("viewer")
        assert_error(delete(api, "x", "y", viewer), 403, "MISSING_REQUIRED_PERMISSIONS")
        missing = str(uuid.uuid4())
        assert_error(delete(api, missing, missing, viewer), 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_403_cookie_without_csrf_header(self, api: Api) -> None:
        user = api.create_user()
        api.login(api.create_admin("admin"))
        response = api.client.delete(URL.format(user.id, user.devices[0]))
        assert_error(response, 403, "CSRF_TOKEN_INVALID")
        assert device_exists(api, user.devices[0])

    def test_403_cookie_with_wrong_csrf_header(self, api: Api) -> None:
        user = api.create_user()
        api.login(api.create_admin("admin"))
        other_session = api.login(api.create_admin("admin"))  # the client keeps the last cookie
        api.client.cookies.clear()
        first = api.login(api.create_admin("admin"))
        assert first["csrfToken"] != other_session["csrfToken"]
        response = api.client.delete(
            URL.format(user.id, user.devices[0]),
            headers={"X-CSRF-Token": other_session["csrfToken"]},
        )
        assert_error(response, 403, "CSRF_TOKEN_INVALID")

    def test_403_cookie_from_foreign_origin(self, api: Api) -> None:
        api.configure(csrf_allowed_origins=("https://console.example.com",))
        user = api.create_user()
        login = api.login(api.create_admin("admin"))
        headers = {"X-CSRF-Token": login["csrfToken"], "Origin": "https://evil.example.net"}
        response = api.client.delete(URL.format(user.id, user.devices[0]), headers=headers)
        assert_error(response, 403, "CSRF_ORIGIN_REJECTED")
        headers["Origin"] = "https://console.example.com"
        response = api.client.delete(URL.format(user.id, user.devices[0]), headers=headers)
        assert response.status_code == 200, response.text

    def test_404_unknown_user(self, api: Api) -> None:
        response = delete(api, str(uuid.uuid4()), str(uuid.uuid4()), api.bearer())
        assert_error(response, 404, "USER_NOT_FOUND")

    def test_404_unknown_device(self, api: Api) -> None:
        user = api.create_user()
        response = delete(api, user.id, str(uuid.uuid4()), api.bearer())
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")

    def test_404_device_of_another_user(self, api: Api) -> None:
        owner, other = api.create_user(), api.create_user()
        response = delete(api, other.id, owner.devices[0], api.bearer())
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")
        assert device_exists(api, owner.devices[0])

    def test_404_repeat_delete(self, api: Api) -> None:
        user = api.create_user(verified_devices=2)
        headers = api.bearer()
        assert delete(api, user.id, user.devices[0], headers).status_code == 200
        assert_error(delete(api, user.id, user.devices[0], headers), 404, "TOTP_DEVICE_NOT_FOUND")
        assert api.count(AuditEvent, AuditEvent.action == "user.totp_device.removed") == 1

    def test_failure_mid_transaction_changes_nothing(self, api: Api, monkeypatch) -> None:
        from nestauth.services import totp_devices

        async def broken_audit(*_args, **_kwargs):
            raise RuntimeError("audit store unavailable")

        monkeypatch.setattr(totp_devices, "record_action", broken_audit)
        user = api.create_user(verified_devices=1, recovery_codes=2, sessions=2)
        response = delete(api, user.id, user.devices[0], api.bearer(), "?revokeSessions=true")
        assert_error(response, 500, "INTERNAL_ERROR")
        assert "audit store" not in response.text
        assert device_exists(api, user.devices[0])
        assert api.get_user(user.id).is_mfa_enabled is True
        assert api.count(RecoveryCode) == 2
        assert api.count(UserSession, UserSession.revoked_at.is_(None)) == 2

    def test_concurrent_deletes_of_one_device_give_exactly_one_200(self, api: Api) -> None:
        user = api.create_user(verified_devices=2)
        headers = api.bearer()
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(
                pool.map(lambda _: delete(api, user.id, user.devices[0], headers), range(20))
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [404] * 19, [r.text for r in responses if r.status_code >= 500]
        assert {r.json()["code"] for r in responses if r.status_code == 404} == {
            "TOTP_DEVICE_NOT_FOUND"
        }
        assert api.count(AuditEvent, AuditEvent.action == "user.totp_device.removed") == 1

    def test_concurrent_deletes_of_both_last_devices_switch_mfa_off(self, api: Api) -> None:
        user = api.create_user(verified_devices=2, recovery_codes=1)
        headers = api.bearer()
        with ThreadPoolExecutor(max_workers=2) as pool:
            responses = list(pool.map(lambda d: delete(api, user.id, d, headers), user.devices))
        assert [r.status_code for r in responses] == [200, 200]
        assert sorted(r.json()["remainingDevices"] for r in responses) == [0, 1]
        assert api.get_user(user.id).is_mfa_enabled is False
        assert api.count(RecoveryCode) == 0
