"""TOTP enrolment bounds (issue 12): pending setups expire, never count to the cap of 10
verified devices, and are bounded per user, so abandoned setups never lock a user out."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import TotpDevice
from nestauth.services import totp_devices
from nestauth.services.totp_devices import MAX_PENDING
from tests.support import Api, assert_error, bearer, mid_step, totp_at


def setup(api: Api, token: str, **body: str):
    return api.client.post("/auth/mfa/setup-totp", json=body, headers=bearer(token))


def verify_setup(api: Api, token: str, secret: str, otp: str):
    return api.client.post(
        "/auth/mfa/verify-totp-setup", json={"secret": secret, "otp": otp}, headers=bearer(token)
    )


def add_verified_devices(api: Api, user_id: str, count: int) -> None:
    async def add(session: AsyncSession) -> None:
        for index in range(count):
            await totp_devices.add_device(
                session, api.runtime.secret_box, user_id=uuid.UUID(user_id),
                device_name=f"phone {index}", verified=True,
            )  # fmt: skip

    api.db(add)


class TestStartingASetup:
    def test_409_device_limit_counts_verified_devices(self, api: Api) -> None:
        signed = api.sign_up()
        add_verified_devices(api, signed["user"]["id"], 10)
        assert_error(setup(api, signed["accessToken"]), 409, "DEVICE_LIMIT_REACHED")
        assert api.count(TotpDevice, TotpDevice.verified.is_(False)) == 0

    def test_200_abandoned_setups_never_count_to_the_cap(self, api: Api) -> None:
        signed = api.sign_up()
        add_verified_devices(api, signed["user"]["id"], 9)
        for _ in range(12):
            assert setup(api, signed["accessToken"]).status_code == 200
        assert api.enrol_device(signed["accessToken"]).verified["deviceId"]

    def test_200_ten_abandoned_setups_do_not_lock_out_a_setup_only_login(self, api: Api) -> None:
        api.freeze(mid_step())
        email, token = api.setup_only_login()
        for _ in range(10):
            assert setup(api, token).status_code == 200
        body = api.enrol_device(token, "At last").verified
        assert body["isRequiresMfa"] is False and api.current_user(body["accessToken"])
        assert api.start_mfa_login(email)

    def test_200_pending_setups_per_user_are_bounded_newest_kept(self, api: Api) -> None:
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        secrets = []
        for second in range(10):
            api.freeze(start + timedelta(seconds=second))
            secrets.append(setup(api, token).json()["secret"])
        assert api.count(TotpDevice) == MAX_PENDING
        for replaced in secrets[:-MAX_PENDING]:
            response = verify_setup(api, token, replaced, totp_at(replaced, start))
            assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")
        for kept in secrets[-MAX_PENDING:]:
            assert verify_setup(api, token, kept, totp_at(kept, start)).status_code == 200

    def test_200_expired_setups_are_removed_when_a_new_one_starts(self, api: Api) -> None:
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        setup(api, token, deviceName="old")
        setup(api, token, deviceName="old too")
        api.freeze(start + timedelta(seconds=api.base_settings.totp_setup_seconds))
        assert setup(api, token, deviceName="new").status_code == 200
        assert api.db(lambda s: s.scalars(sa.select(TotpDevice.device_name))).all() == ["new"]


class TestVerifyingASetup:
    def test_404_setup_expired(self, api: Api) -> None:
        api.configure(totp_setup_seconds=120)
        start = api.freeze(mid_step())
        signed = api.sign_up()
        secret = setup(api, signed["accessToken"]).json()["secret"]
        late = api.freeze(start + timedelta(seconds=120))
        response = verify_setup(api, signed["accessToken"], secret, totp_at(secret, late))
        assert_error(response, 404, "TOTP_DEVICE_NOT_FOUND")
        assert api.scalar(sa.select(TotpDevice.verified)) is False
        assert api.get_user(signed["user"]["id"]).is_mfa_enabled is False

    def test_200_setup_verified_just_before_it_expires(self, api: Api) -> None:
        api.configure(totp_setup_seconds=120)
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        secret = setup(api, token).json()["secret"]
        last = api.freeze(start + timedelta(seconds=119))
        assert verify_setup(api, token, secret, totp_at(secret, last)).status_code == 200

    def test_409_verifying_beyond_the_device_cap(self, api: Api) -> None:
        moment = api.freeze(mid_step())
        signed = api.sign_up()
        add_verified_devices(api, signed["user"]["id"], 9)
        first, second = (setup(api, signed["accessToken"]).json()["secret"] for _ in range(2))
        ok = verify_setup(api, signed["accessToken"], first, totp_at(first, moment))
        assert ok.status_code == 200, ok.text
        response = verify_setup(api, signed["accessToken"], second, totp_at(second, moment))
        assert_error(response, 409, "DEVICE_LIMIT_REACHED")
        assert api.count(TotpDevice, TotpDevice.verified.is_(True)) == 10
