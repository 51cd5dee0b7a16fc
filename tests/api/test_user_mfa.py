"""/auth/mfa/*: a user's own authenticator apps, recovery codes and the MFA login step (§5)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import sqlalchemy as sa

from nestauth.models import AuditEvent, RecoveryCode, TotpDevice
from tests.support import Api, assert_error, bearer, mid_step, totp_at, wrong_otp


def setup(api: Api, token: str, **body: str):
    return api.client.post("/auth/mfa/setup-totp", json=body, headers=bearer(token))


def verify_setup(api: Api, token: str, secret: str, otp: str):
    return api.client.post(
        "/auth/mfa/verify-totp-setup", json={"secret": secret, "otp": otp}, headers=bearer(token)
    )


class TestStartTotpSetup:
    def test_200_returns_secret_otpauth_url_and_svg_qr_code(self, api: Api) -> None:
        signed = api.sign_up("ivy@example.com")
        response = setup(api, signed["accessToken"], deviceName="Work phone")
        assert response.status_code == 200, response.text
        body = response.json()
        url = urlparse(body["otpauthUrl"])
        assert (url.scheme, url.netloc) == ("otpauth", "totp")
        assert unquote(url.path) == "/nestauth:ivy@example.com"
        query = parse_qs(url.query)
        assert query["secret"] == [body["secret"]] and query["issuer"] == ["nestauth"]
        assert re.fullmatch("[A-Z2-7]{32}", body["secret"])
        assert body["qrCode"].startswith("data:image/svg+xml")
        device = api.scalar(sa.select(TotpDevice))
        assert (str(device.id), device.device_name) == (body["deviceId"], "Work phone")
        assert device.verified is False
        assert api.get_user(signed["user"]["id"]).is_mfa_enabled is False

    def test_200_issuer_is_configurable(self, api: Api) -> None:
        api.configure(totp_issuer="Acme")
        body = setup(api, api.sign_up()["accessToken"]).json()
        assert pyotp.parse_uri(body["otpauthUrl"]).issuer == "Acme"

    def test_200_without_a_body_names_the_device(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        response = api.client.post("/auth/mfa/setup-totp", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert api.scalar(sa.select(TotpDevice.device_name)) == "Authenticator 1"

    def test_400_device_name_too_long(self, api: Api) -> None:
        response = setup(api, api.sign_up()["accessToken"], deviceName="x" * 101)
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.post("/auth/mfa/setup-totp", json={}), 401, "NO_AUTH_PROVIDED")

    def test_401_login_mfa_token_is_not_a_setup_token(self, api: Api) -> None:
        mfa_token = api.start_mfa_login(api.mfa_user().email)
        assert_error(setup(api, mfa_token), 401, "SESSION_INVALID")


class TestVerifyTotpSetup:
    def test_200_verifies_the_device_and_switches_mfa_on(self, api: Api) -> None:
        moment = api.freeze(mid_step())
        signed = api.sign_up()
        started = setup(api, signed["accessToken"]).json()
        response = verify_setup(
            api, signed["accessToken"], started["secret"], totp_at(started["secret"], moment)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "message": "TOTP device verified",
            "deviceId": started["deviceId"],
        }
        assert api.scalar(sa.select(TotpDevice.verified)) is True
        assert api.get_user(signed["user"]["id"]).is_mfa_enabled is True

    def test_401_wrong_code_leaves_the_device_pending(self, api: Api) -> None:
        moment = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        secret = setup(api, token).json()["secret"]
        response = verify_setup(api, token, secret, wrong_otp(moment, secret))
        assert_error(response, 401, "MFA_CODE_INVALID")
        assert api.scalar(sa.select(TotpDevice.verified)) is False

    def test_404_no_pending_setup_with_this_secret(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        setup(api, token)
        other = pyotp.random_base32()
        response = verify_setup(api, token, other, totp_at(other, api.runtime.clock()))
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")

    def test_404_secret_of_an_already_verified_device(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        secret = user.devices[0].secret
        response = verify_setup(api, user.access_token, secret, totp_at(secret, now))
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")

    def test_404_pending_device_of_another_user(self, api: Api) -> None:
        secret = setup(api, api.sign_up()["accessToken"]).json()["secret"]
        token = api.sign_up()["accessToken"]
        response = verify_setup(api, token, secret, totp_at(secret, api.runtime.clock()))
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")

    def test_400_code_not_six_digits(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        secret = setup(api, token).json()["secret"]
        assert_error(verify_setup(api, token, secret, "12345"), 400, "VALIDATION_FAILED")

    def test_200_setup_only_token_finishes_the_login(self, api: Api) -> None:
        api.freeze(mid_step())
        email, token = api.setup_only_login()
        device = api.enrol_device(token, "New phone")
        body = device.verified
        assert body["message"] == "TOTP device verified" and body["deviceId"] == device.id
        assert body["isRequiresMfa"] is False and body["user"]["isMfaEnabled"] is True
        assert api.current_user(body["accessToken"]).status_code == 200
        assert_error(setup(api, token), 401, "SESSION_INVALID")  # single use
        assert api.start_mfa_login(email)


class TestMfaStatus:
    def test_200_without_mfa(self, api: Api) -> None:
        response = api.client.get("/auth/mfa/status", headers=bearer(api.sign_up()["accessToken"]))
        assert response.json() == {"isEnabled": False, "verifiedMethods": [], "totpDevices": [],
                                   "hasRecoveryCode": False, "required": False}  # fmt: skip

    def test_200_with_devices_codes_and_policy(self, api: Api) -> None:
        api.configure(mfa_required=True)
        user = api.mfa_user()
        setup(api, user.access_token, deviceName="pending")
        api.recovery_codes(user.access_token)
        body = api.client.get("/auth/mfa/status", headers=bearer(user.access_token)).json()
        assert body["isEnabled"] is True and body["required"] is True
        assert body["verifiedMethods"] == ["totp"] and body["hasRecoveryCode"] is True
        names = {(d["deviceName"], d["verified"]) for d in body["totpDevices"]}
        assert names == {("phone 0", True), ("pending", False)}

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.get("/auth/mfa/status"), 401, "NO_AUTH_PROVIDED")


class TestListMfaDevices:
    def test_200_lists_the_users_own_devices(self, api: Api) -> None:
        user = api.mfa_user(devices=2)
        api.mfa_user()
        response = api.client.get("/auth/mfa/devices", headers=bearer(user.access_token))
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert {d["id"] for d in data} == {d.id for d in user.devices}
        assert all(d["method"] == "totp" and d["verified"] for d in data)
        assert all(d["lastUsedAt"] for d in data)  # the setup code counts as used

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.get("/auth/mfa/devices"), 401, "NO_AUTH_PROVIDED")


def delete_device(api: Api, token: str, device_id: str):
    return api.client.delete(f"/auth/mfa/devices/{device_id}", headers=bearer(token))


class TestDeleteMfaDevice:
    def test_200_removes_one_of_two_devices(self, api: Api) -> None:
        user = api.mfa_user(devices=2)
        response = delete_device(api, user.access_token, user.devices[0].id)
        assert response.status_code == 200, response.text
        assert response.json() == {"message": "MFA device removed", "remainingDevices": 1,
                                   "mfaDisabled": False}  # fmt: skip
        assert api.get_user(user.id).is_mfa_enabled is True
        event = api.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "user.totp_device.removed")
        )
        assert (event.actor_type, str(event.actor_id)) == ("user", user.id)

    def test_200_last_device_switches_mfa_off_and_deletes_recovery_codes(self, api: Api) -> None:
        user = api.mfa_user()
        api.recovery_codes(user.access_token)
        body = delete_device(api, user.access_token, user.devices[0].id).json()
        assert (body["remainingDevices"], body["mfaDisabled"]) == (0, True)
        assert api.count(RecoveryCode) == 0
        assert api.log_in_user(user.email)["isRequiresMfa"] is False

    def test_200_last_device_under_the_policy_keeps_the_user_flagged(self, api: Api) -> None:
        api.configure(mfa_required=True)
        user = api.mfa_user()
        body = delete_device(api, user.access_token, user.devices[0].id).json()
        assert (body["remainingDevices"], body["mfaDisabled"]) == (0, False)
        assert api.log_in_user(user.email)["isMfaSetupRequired"] is True

    def test_404_device_of_another_user(self, api: Api) -> None:
        owner, other = api.mfa_user(), api.mfa_user()
        response = delete_device(api, other.access_token, owner.devices[0].id)
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")
        assert api.count(TotpDevice, TotpDevice.id == uuid.UUID(owner.devices[0].id)) == 1

    def test_404_unknown_device(self, api: Api) -> None:
        response = delete_device(api, api.sign_up()["accessToken"], str(uuid.uuid4()))
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")

    def test_400_device_id_not_uuid(self, api: Api) -> None:
        response = delete_device(api, api.sign_up()["accessToken"], "not-a-uuid")
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_401_no_token(self, api: Api) -> None:
        response = api.client.delete(f"/auth/mfa/devices/{uuid.uuid4()}")
        assert_error(response, 401, "NO_AUTH_PROVIDED")


class TestGenerateRecoveryCodes:
    def test_200_returns_ten_codes_stored_hashed(self, api: Api) -> None:
        codes = api.recovery_codes(api.mfa_user().access_token)
        assert len(set(codes)) == 10
        assert all(re.fullmatch("[A-Z2-9]{5}-[A-Z2-9]{5}", c) for c in codes)
        stored = " ".join(api.db(lambda s: s.scalars(sa.select(RecoveryCode.code_hash))).all())
        assert not any(c in stored or c.replace("-", "") in stored for c in codes)

    def test_200_replaces_the_previous_codes(self, api: Api) -> None:
        user = api.mfa_user()
        old = api.recovery_codes(user.access_token)
        api.recovery_codes(user.access_token)
        assert api.count(RecoveryCode) == 10
        mfa_token = api.start_mfa_login(user.email)
        assert_error(api.verify_recovery_code(mfa_token, old[0]), 401, "MFA_CODE_INVALID")

    def test_401_no_token(self, api: Api) -> None:
        response = api.client.post("/auth/mfa/generate-recovery-code")
        assert_error(response, 401, "NO_AUTH_PROVIDED")


class TestVerifyMfa:
    def test_200_finishes_the_login(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        code = totp_at(user.devices[0].secret, now)
        response = api.verify_mfa(api.start_mfa_login(user.email), code)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["message"] == "MFA verified" and body["isRequiresMfa"] is False
        assert body["user"]["id"] == user.id
        assert api.current_user(body["accessToken"]).status_code == 200

    def test_401_wrong_code_then_the_right_one_works(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        secret, mfa_token = user.devices[0].secret, api.start_mfa_login(user.email)
        assert_error(api.verify_mfa(mfa_token, wrong_otp(now, secret)), 401, "MFA_CODE_INVALID")
        assert api.verify_mfa(mfa_token, totp_at(secret, now)).status_code == 200

    def test_401_mfa_token_is_single_use(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        secret, mfa_token = user.devices[0].secret, api.start_mfa_login(user.email)
        assert api.verify_mfa(mfa_token, totp_at(secret, now)).status_code == 200
        api.freeze(now + timedelta(seconds=30))
        response = api.verify_mfa(mfa_token, totp_at(secret, now, 1))
        assert_error(response, 401, "MFA_TOKEN_INVALID")

    def test_401_mfa_token_is_short_lived(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        mfa_token = api.start_mfa_login(user.email)
        later = api.freeze(now + timedelta(seconds=api.runtime.settings.mfa_token_seconds + 1))
        response = api.verify_mfa(mfa_token, totp_at(user.devices[0].secret, later))
        assert_error(response, 401, "MFA_TOKEN_INVALID")

    def test_401_unknown_mfa_token(self, api: Api) -> None:
        assert_error(api.verify_mfa("no-such-token", "123456"), 401, "MFA_TOKEN_INVALID")

    def test_401_code_of_a_pending_device(self, api: Api) -> None:
        user, now = api.mfa_user_enrolled_ago(1)
        pending = setup(api, user.access_token).json()["secret"]
        response = api.verify_mfa(api.start_mfa_login(user.email), totp_at(pending, now))
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_400_method_other_than_totp(self, api: Api) -> None:
        body = {"mfaToken": "token", "otp": "123456", "method": "sms"}
        assert_error(api.client.post("/auth/mfa/verify", json=body), 400, "VALIDATION_FAILED")


class TestVerifyRecoveryCode:
    def test_200_finishes_the_login(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        response = api.verify_recovery_code(api.start_mfa_login(user.email), code)
        assert response.status_code == 200, response.text
        assert response.json()["message"] == "Recovery code accepted"
        assert response.json()["user"]["id"] == user.id

    def test_200_code_read_aloud_lower_case_without_dash(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0].replace("-", "").lower()
        assert api.verify_recovery_code(api.start_mfa_login(user.email), code).status_code == 200

    def test_401_each_code_works_once(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        assert api.verify_recovery_code(api.start_mfa_login(user.email), code).status_code == 200
        response = api.verify_recovery_code(api.start_mfa_login(user.email), code)
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_401_code_of_another_user(self, api: Api) -> None:
        user, other = api.mfa_user(), api.mfa_user()
        code = api.recovery_codes(other.access_token)[0]
        response = api.verify_recovery_code(api.start_mfa_login(user.email), code)
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_401_mfa_token_is_single_use(self, api: Api) -> None:
        user = api.mfa_user()
        first, second = api.recovery_codes(user.access_token)[:2]
        mfa_token = api.start_mfa_login(user.email)
        assert api.verify_recovery_code(mfa_token, first).status_code == 200
        assert_error(api.verify_recovery_code(mfa_token, second), 401, "MFA_TOKEN_INVALID")
