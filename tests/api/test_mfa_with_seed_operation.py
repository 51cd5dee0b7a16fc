"""The seed operation (an admin removes a user's TOTP device) as the user's next login sees it.

Users enrol through the API, an admin removes a device through
DELETE /auth/admin/api/users/{id}/totp-devices/{deviceId}, and the very next MFA attempt,
login or request follows (issue part 5, contract §3 and §5).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support import Api, assert_error, bearer, mid_step, totp_at

URL = "/auth/admin/api/users/{}/totp-devices/{}"
STEP = timedelta(seconds=30)


def admin_removes(api: Api, user_id: str, device_id: str, query: str = "") -> dict[str, Any]:
    response = api.client.delete(URL.format(user_id, device_id) + query, headers=api.bearer())
    assert response.status_code == 200, response.text
    return response.json()


class TestRemovedDeviceAtTheNextLogin:
    def test_removed_devices_code_fails_while_the_other_device_works(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user(devices=2)
        removed, kept = user.devices
        assert admin_removes(api, user.id, removed.id)["remainingDevices"] == 1
        api.freeze(start + STEP)
        mfa_token = api.start_mfa_login(user.email)
        response = api.verify_mfa(mfa_token, totp_at(removed.secret, start, 1))
        assert_error(response, 401, "MFA_CODE_INVALID")
        response = api.verify_mfa(mfa_token, totp_at(kept.secret, start, 1))
        assert response.status_code == 200, response.text
        devices = api.client.get("/auth/mfa/devices", headers=bearer(user.access_token)).json()
        assert [d["id"] for d in devices["data"]] == [kept.id]

    def test_removal_applies_to_a_login_already_past_the_password(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user(devices=2)
        removed, kept = user.devices
        api.freeze(start + STEP)
        mfa_token = api.start_mfa_login(user.email)
        admin_removes(api, user.id, removed.id)
        response = api.verify_mfa(mfa_token, totp_at(removed.secret, start, 1))
        assert_error(response, 401, "MFA_CODE_INVALID")
        assert api.verify_mfa(mfa_token, totp_at(kept.secret, start, 1)).status_code == 200


class TestLastDeviceRemoved:
    def test_without_policy_the_next_login_returns_tokens(self, api: Api) -> None:
        user = api.mfa_user()
        api.recovery_codes(user.access_token)
        body = admin_removes(api, user.id, user.devices[0].id)
        assert (body["remainingDevices"], body["mfaDisabled"]) == (0, True)
        login = api.log_in_user(user.email)
        assert login["isRequiresMfa"] is False and login["user"]["isMfaEnabled"] is False
        assert api.current_user(login["accessToken"]).status_code == 200
        status = api.client.get("/auth/mfa/status", headers=bearer(login["accessToken"])).json()
        assert (status["isEnabled"], status["hasRecoveryCode"]) == (False, False)

    def test_with_policy_enrolling_a_new_device_finishes_the_login(self, api: Api) -> None:
        api.configure(mfa_required=True)
        start = api.freeze(mid_step())
        user = api.mfa_user()
        assert admin_removes(api, user.id, user.devices[0].id)["mfaDisabled"] is False
        login = api.log_in_user(user.email)
        assert login == {"isRequiresMfa": True, "mfaToken": login["mfaToken"],
                         "mfaMethods": [], "isMfaSetupRequired": True}  # fmt: skip
        assert_error(api.current_user(login["mfaToken"]), 401, "SESSION_INVALID")
        api.freeze(start + STEP)
        replacement = api.enrol_device(login["mfaToken"], "replacement")
        assert api.current_user(replacement.verified["accessToken"]).status_code == 200
        api.freeze(start + 2 * STEP)
        mfa_token = api.start_mfa_login(user.email)  # an ordinary MFA login again
        response = api.verify_mfa(mfa_token, totp_at(replacement.secret, start, 2))
        assert response.status_code == 200, response.text

    def test_with_policy_the_removed_devices_code_finishes_nothing(self, api: Api) -> None:
        api.configure(mfa_required=True)
        start = api.freeze(mid_step())
        user = api.mfa_user()
        admin_removes(api, user.id, user.devices[0].id)
        api.freeze(start + STEP)
        setup_token = api.log_in_user(user.email)["mfaToken"]
        code = totp_at(user.devices[0].secret, start, 1)
        assert_error(api.verify_mfa(setup_token, code), 401, "MFA_TOKEN_INVALID")
        # The setup-only token is still good for enrolment.
        response = api.client.post("/auth/mfa/setup-totp", headers=bearer(setup_token))
        assert response.status_code == 200, response.text

    def test_setup_only_token_does_nothing_but_enrol(self, api: Api) -> None:
        api.configure(mfa_required=True)
        user = api.mfa_user()
        admin_removes(api, user.id, user.devices[0].id)
        headers = bearer(api.log_in_user(user.email)["mfaToken"])
        for path in ("/auth/user", "/auth/mfa/status", "/auth/mfa/devices"):
            assert_error(api.client.get(path, headers=headers), 401, "SESSION_INVALID")
        for path in ("/auth/logout", "/auth/logout-all", "/auth/mfa/generate-recovery-code"):
            assert_error(api.client.post(path, headers=headers), 401, "SESSION_INVALID")
        response = api.client.delete(f"/auth/mfa/devices/{user.devices[0].id}", headers=headers)
        assert_error(response, 401, "SESSION_INVALID")

    def test_setup_only_token_is_short_lived(self, api: Api) -> None:
        api.configure(mfa_required=True)
        start = api.freeze(mid_step())
        user = api.mfa_user()
        admin_removes(api, user.id, user.devices[0].id)
        headers = bearer(api.log_in_user(user.email)["mfaToken"])
        api.freeze(start + timedelta(seconds=api.runtime.settings.mfa_token_seconds + 1))
        response = api.client.post("/auth/mfa/setup-totp", headers=headers)
        assert_error(response, 401, "SESSION_INVALID")


class TestRevokeSessions:
    def test_true_makes_access_and_refresh_tokens_fail_at_once(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user(devices=2)
        api.freeze(start + STEP)
        mfa_token = api.start_mfa_login(user.email)
        later = api.verify_mfa(mfa_token, totp_at(user.devices[1].secret, start, 1)).json()
        body = admin_removes(api, user.id, user.devices[0].id, "?revokeSessions=true")
        assert body["sessionsRevoked"] == 2
        for tokens in ((user.access_token, user.refresh_token),
                       (later["accessToken"], later["refreshToken"])):  # fmt: skip
            assert_error(api.current_user(tokens[0]), 401, "SESSION_INVALID")
            assert_error(api.refresh(tokens[1]), 401, "SESSION_INVALID")
        api.freeze(start + 2 * STEP)  # the user signs in again with the device left
        mfa_token = api.start_mfa_login(user.email)
        assert api.verify_mfa(mfa_token, totp_at(user.devices[1].secret, start, 2)).is_success

    def test_false_leaves_the_users_tokens_working(self, api: Api) -> None:
        user = api.mfa_user(devices=2)
        assert admin_removes(api, user.id, user.devices[0].id)["sessionsRevoked"] == 0
        assert api.current_user(user.access_token).status_code == 200
        assert api.refresh(user.refresh_token).status_code == 200


class TestAdminAndUserTokensAreApart:
    def test_401_admin_token_on_get_user(self, api: Api) -> None:
        response = api.client.get("/auth/user", headers=api.bearer("owner"))
        assert_error(response, 401, "SESSION_INVALID")

    def test_401_user_access_token_on_admin_me(self, api: Api) -> None:
        response = api.client.get("/auth/admin/me", headers=bearer(api.sign_up()["accessToken"]))
        assert_error(response, 401, "SESSION_INVALID")

    def test_401_user_access_token_on_the_seed_operation(self, api: Api) -> None:
        user = api.mfa_user(devices=2)
        url = URL.format(user.id, user.devices[0].id)
        response = api.client.delete(url, headers=bearer(user.access_token))
        assert_error(response, 401, "SESSION_INVALID")
        devices = api.client.get("/auth/mfa/devices", headers=bearer(user.access_token))
        assert len(devices.json()["data"]) == 2
