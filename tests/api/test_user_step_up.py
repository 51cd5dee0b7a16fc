"""Step-up for a user's own factor changes (issue 12): removing a verified device or minting
recovery codes needs a recent sign-in, or a proof sent with the request."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from nestauth.models import AuditEvent, RecoveryCode, TotpDevice, UserSession
from tests.support import (
    PASSWORD,
    Api,
    MfaUser,
    assert_error,
    bearer,
    mid_step,
    totp_at,
    wrong_otp,
)

CODES = "/auth/mfa/generate-recovery-code"


def remove(api: Api, token: str, device_id: str, **proof: str) -> Any:
    url = f"/auth/mfa/devices/{device_id}"
    if not proof:  # as Nest Auth's SDK sends it: no body at all
        return api.client.delete(url, headers=bearer(token))
    return api.client.request("DELETE", url, json=proof, headers=bearer(token))


def new_codes(api: Api, token: str, **proof: str) -> Any:
    if not proof:
        return api.client.post(CODES, headers=bearer(token))
    return api.client.post(CODES, json=proof, headers=bearer(token))


def signed_in_long_ago(api: Api, devices: int = 1) -> tuple[MfaUser, datetime]:
    """A user who signed up and enrolled, and whose clock now stands one reauthentication
    window later (still within the access token's life): the session is not recent."""
    start = api.freeze(mid_step())
    user = api.mfa_user(devices=devices)
    window = api.base_settings.reauth_window_seconds
    return user, api.freeze(start + timedelta(seconds=window))


def device_count(api: Api, user: MfaUser) -> int:
    return api.count(TotpDevice, TotpDevice.user_id == uuid.UUID(user.id))


class TestRemovingADevice:
    def test_403_an_access_token_alone_cannot_remove_the_last_device(self, api: Api) -> None:
        user, _ = signed_in_long_ago(api)
        response = remove(api, user.access_token, user.devices[0].id)
        assert_error(response, 403, "REAUTHENTICATION_REQUIRED")
        assert device_count(api, user) == 1 and api.get_user(user.id).is_mfa_enabled is True
        assert api.count(AuditEvent, AuditEvent.action == "user.totp_device.removed") == 0

    def test_403_a_refreshed_token_is_not_a_sign_in(self, api: Api) -> None:
        user, _ = signed_in_long_ago(api)
        refreshed = api.refresh(user.refresh_token)
        assert refreshed.status_code == 200, refreshed.text
        response = remove(api, refreshed.json()["accessToken"], user.devices[0].id)
        assert_error(response, 403, "REAUTHENTICATION_REQUIRED")

    def test_200_with_a_current_code_which_renews_the_window(self, api: Api) -> None:
        user, now = signed_in_long_ago(api, devices=2)
        first, second = user.devices
        response = remove(api, user.access_token, first.id, otp=totp_at(second.secret, now))
        assert response.status_code == 200, response.text
        assert remove(api, user.access_token, second.id).status_code == 200
        assert device_count(api, user) == 0

    def test_401_wrong_code_removes_nothing(self, api: Api) -> None:
        user, now = signed_in_long_ago(api)
        device = user.devices[0]
        response = remove(api, user.access_token, device.id, otp=wrong_otp(now, device.secret))
        assert_error(response, 401, "MFA_CODE_INVALID")
        assert device_count(api, user) == 1

    def test_401_the_code_already_used_to_enrol_is_not_a_proof(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user()
        device = user.devices[0]
        api.configure(reauth_window_seconds=1)
        api.freeze(start + timedelta(seconds=1))  # same TOTP step: the enrolment code
        response = remove(api, user.access_token, device.id, otp=totp_at(device.secret, start))
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_403_the_password_is_no_proof_while_a_device_is_verified(self, api: Api) -> None:
        user, _ = signed_in_long_ago(api)
        response = remove(api, user.access_token, user.devices[0].id, password=PASSWORD)
        assert_error(response, 403, "REAUTHENTICATION_REQUIRED")
        assert device_count(api, user) == 1

    def test_200_signing_in_again_makes_the_session_recent(self, api: Api) -> None:
        user, now = signed_in_long_ago(api)
        mfa_token = api.start_mfa_login(user.email)
        signed = api.verify_mfa(mfa_token, totp_at(user.devices[0].secret, now))
        assert signed.status_code == 200, signed.text
        response = remove(api, signed.json()["accessToken"], user.devices[0].id)
        assert response.status_code == 200, response.text
        assert response.json()["mfaDisabled"] is True

    def test_200_a_pending_enrolment_is_removed_without_a_step_up(self, api: Api) -> None:
        user, _ = signed_in_long_ago(api)
        pending = api.client.post("/auth/mfa/setup-totp", headers=bearer(user.access_token))
        response = remove(api, user.access_token, pending.json()["deviceId"])
        assert response.status_code == 200, response.text
        assert response.json() == {"message": "MFA device removed", "remainingDevices": 1,
                                   "mfaDisabled": False}  # fmt: skip

    def test_404_another_users_device_before_any_step_up(self, api: Api) -> None:
        user, _ = signed_in_long_ago(api)
        other = api.mfa_user()
        assert_error(remove(api, user.access_token, other.devices[0].id), 404,
                     "TOTP_DEVICE_NOT_FOUND")  # fmt: skip

    def test_400_two_proofs_or_an_unknown_field(self, api: Api) -> None:
        user, now = signed_in_long_ago(api)
        device = user.devices[0]
        otp = totp_at(device.secret, now)
        for proof in ({"otp": otp, "password": PASSWORD}, {"code": otp}, {"otp": "12345"}):
            response = remove(api, user.access_token, device.id, **proof)
            assert_error(response, 400, "VALIDATION_FAILED")
        assert device_count(api, user) == 1


class TestRegeneratingRecoveryCodes:
    def test_403_stale_session_keeps_the_old_codes(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user()
        old = api.recovery_codes(user.access_token)
        api.freeze(start + timedelta(seconds=api.base_settings.reauth_window_seconds))
        assert_error(new_codes(api, user.access_token), 403, "REAUTHENTICATION_REQUIRED")
        mfa_token = api.start_mfa_login(user.email)
        assert api.verify_recovery_code(mfa_token, old[0]).status_code == 200

    def test_200_with_a_current_code(self, api: Api) -> None:
        user, now = signed_in_long_ago(api)
        response = new_codes(api, user.access_token, otp=totp_at(user.devices[0].secret, now))
        assert response.status_code == 200, response.text
        assert len(response.json()["codes"]) == 10

    def test_password_proves_a_user_without_mfa(self, api: Api) -> None:
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        api.freeze(start + timedelta(seconds=api.base_settings.reauth_window_seconds))
        assert_error(new_codes(api, token, password="not it"), 401, "INVALID_CREDENTIALS")
        assert api.count(RecoveryCode) == 0
        assert new_codes(api, token, password=PASSWORD).status_code == 200

    def test_window_is_configurable_and_ends_at_its_length(self, api: Api) -> None:
        api.configure(reauth_window_seconds=60)
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        api.freeze(start + timedelta(seconds=59))
        assert new_codes(api, token).status_code == 200
        api.freeze(start + timedelta(seconds=60))
        assert_error(new_codes(api, token), 403, "REAUTHENTICATION_REQUIRED")


class TestClientsThatSignInAndActAtOnce:
    def test_200_login_with_mfa_then_both_changes_with_no_body(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(steps=40, devices=1)  # 20 minutes later
        signed = api.verify_mfa(
            api.start_mfa_login(user.email), totp_at(user.devices[0].secret, now)
        )
        token = signed.json()["accessToken"]
        assert new_codes(api, token).status_code == 200
        assert remove(api, token, user.devices[0].id).status_code == 200

    def test_sign_in_moment_is_stored_and_a_refresh_keeps_it(self, api: Api) -> None:
        start = api.freeze(mid_step())
        signed = api.sign_up()
        api.freeze(start + timedelta(minutes=3))
        assert api.refresh(signed["refreshToken"]).status_code == 200
        row = api.scalar(sa.select(UserSession))
        assert (row.authenticated_at, row.last_used_at) == (start, start + timedelta(minutes=3))
