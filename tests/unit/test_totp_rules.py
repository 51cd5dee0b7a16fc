"""The TOTP rules of contract §5, one test each: RFC 6238, drift, replay, failure limit, secrets.

Time is the server's clock, frozen and moved by the tests (`Api.freeze`), never slept through.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import sqlalchemy as sa

from nestauth.models import RateLimitBucket, TotpDevice
from nestauth.services import totp, totp_devices
from tests.support import PASSWORD, Api, assert_error, bearer, mid_step, totp_at, wrong_otp

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()  # RFC 6238 appendix B, SHA-1
STEP = timedelta(seconds=30)


class TestRfc6238:
    @pytest.mark.parametrize(
        ("unix_time", "code"),
        [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"),
         (1234567890, "005924"), (2000000000, "279037"), (20000000000, "353130")],
    )  # fmt: skip
    def test_appendix_b_sha1_vectors_as_six_digits(self, unix_time: int, code: str) -> None:
        moment = datetime.fromtimestamp(unix_time, UTC)
        assert totp.matching_step(RFC_SECRET, code, moment) == unix_time // 30

    def test_enrolment_declares_sha1_six_digits_thirty_seconds(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        body = api.client.post("/auth/mfa/setup-totp", json={}, headers=bearer(token)).json()
        parsed = pyotp.parse_uri(body["otpauthUrl"])
        assert (parsed.digest().name, parsed.digits, parsed.interval) == ("sha1", 6, 30)
        assert parsed.secret == body["secret"]


class TestDriftWindow:
    @pytest.mark.parametrize("steps", [-1, 0, 1])
    def test_200_one_step_either_side(self, api: Api, steps: int) -> None:
        user, later = api.mfa_user_enrolled_ago(10)
        code = totp_at(user.devices[0].secret, later, steps)
        assert api.verify_mfa(api.start_mfa_login(user.email), code).status_code == 200

    @pytest.mark.parametrize("steps", [-2, 2])
    def test_401_two_steps_away(self, api: Api, steps: int) -> None:
        user, later = api.mfa_user_enrolled_ago(10)
        secret, mfa_token = user.devices[0].secret, api.start_mfa_login(user.email)
        response = api.verify_mfa(mfa_token, totp_at(secret, later, steps))
        assert_error(response, 401, "MFA_CODE_INVALID")
        assert api.verify_mfa(mfa_token, totp_at(secret, later)).status_code == 200

    def test_two_steps_away_matches_no_step(self) -> None:
        now = datetime.fromtimestamp(1234567890, UTC)
        for steps in (-2, 2):
            assert totp.matching_step(RFC_SECRET, totp_at(RFC_SECRET, now, steps), now) is None


class TestReplay:
    def test_401_a_code_is_accepted_once_per_device(self, api: Api) -> None:
        user, later = api.mfa_user_enrolled_ago(10)
        code = totp_at(user.devices[0].secret, later)
        assert api.verify_mfa(api.start_mfa_login(user.email), code).status_code == 200
        response = api.verify_mfa(api.start_mfa_login(user.email), code)
        assert_error(response, 401, "MFA_CODE_INVALID")
        api.freeze(later + STEP)
        next_code = totp_at(user.devices[0].secret, later, 1)
        assert api.verify_mfa(api.start_mfa_login(user.email), next_code).status_code == 200

    def test_401_the_code_that_verified_the_setup_counts_as_used(self, api: Api) -> None:
        start = api.freeze(mid_step())
        user = api.mfa_user()
        mfa_token = api.start_mfa_login(user.email)
        secret = user.devices[0].secret
        assert_error(api.verify_mfa(mfa_token, totp_at(secret, start)), 401, "MFA_CODE_INVALID")
        assert api.verify_mfa(mfa_token, totp_at(secret, start, 1)).status_code == 200

    def test_401_an_earlier_code_after_a_later_one(self, api: Api) -> None:
        user, later = api.mfa_user_enrolled_ago(10)
        secret = user.devices[0].secret
        assert api.verify_mfa(api.start_mfa_login(user.email), totp_at(secret, later, 1)).is_success
        response = api.verify_mfa(api.start_mfa_login(user.email), totp_at(secret, later))
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_200_each_device_has_its_own_used_codes(self, api: Api) -> None:
        user, later = api.mfa_user_enrolled_ago(10, devices=2)
        for device in user.devices:
            code = totp_at(device.secret, later)
            assert api.verify_mfa(api.start_mfa_login(user.email), code).status_code == 200

    def test_concurrent_uses_of_one_code_let_exactly_one_through(self, api: Api) -> None:
        user, later = api.mfa_user_enrolled_ago(10)
        code = totp_at(user.devices[0].secret, later)
        tokens = [api.start_mfa_login(user.email) for _ in range(6)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = sorted(
                r.status_code for r in pool.map(lambda t: api.verify_mfa(t, code), tokens)
            )
        assert statuses == [200] + [401] * 5


class TestFailureLimit:
    def test_429_after_max_failures_even_with_the_right_code(self, api: Api) -> None:
        api.configure(mfa_max_failures=3)
        user, later = api.mfa_user_enrolled_ago(10)
        secret, mfa_token = user.devices[0].secret, api.start_mfa_login(user.email)
        for _ in range(3):
            assert_error(
                api.verify_mfa(mfa_token, wrong_otp(later, secret)), 401, "MFA_CODE_INVALID"
            )
        response = api.verify_mfa(mfa_token, totp_at(secret, later))
        assert_error(response, 429, "RATE_LIMITED")
        retry_after = int(response.headers["Retry-After"])
        assert response.json()["details"] == {"retryAfter": retry_after}
        assert 1 <= retry_after <= api.runtime.settings.mfa_lock_seconds

    def test_counted_per_user_in_the_database_across_logins(self, api: Api) -> None:
        api.configure(mfa_max_failures=3)
        user, later = api.mfa_user_enrolled_ago(10)
        other = api.mfa_user()  # enrolled at `later`: that step's code is used
        secret = user.devices[0].secret
        for _ in range(3):  # a fresh mfaToken each time: the count is the user's
            api.verify_mfa(api.start_mfa_login(user.email), wrong_otp(later, secret))
        assert api.count(RateLimitBucket, RateLimitBucket.key.like("mfa:%")) == 1
        response = api.verify_mfa(api.start_mfa_login(user.email), totp_at(secret, later))
        assert_error(response, 429, "RATE_LIMITED")
        code = totp_at(other.devices[0].secret, later, 1)
        assert api.verify_mfa(api.start_mfa_login(other.email), code).status_code == 200

    def test_429_concurrent_guesses_cannot_exceed_the_limit(self, api: Api) -> None:
        api.configure(mfa_max_failures=3)
        user, later = api.mfa_user_enrolled_ago(10)
        guess = wrong_otp(later, user.devices[0].secret)
        tokens = [api.start_mfa_login(user.email) for _ in range(10)]
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(lambda t: api.verify_mfa(t, guess), tokens))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * 3 + [429] * 7, statuses

    def test_recovery_code_and_setup_failures_count_too(self, api: Api) -> None:
        api.configure(mfa_max_failures=3)
        user, later = api.mfa_user_enrolled_ago(10)
        api.verify_recovery_code(api.start_mfa_login(user.email), "AAAAA-AAAAA")
        pending = api.client.post("/auth/mfa/setup-totp", headers=bearer(user.access_token))
        body = {
            "secret": pending.json()["secret"],
            "otp": wrong_otp(later, pending.json()["secret"]),
        }
        api.client.post("/auth/mfa/verify-totp-setup", json=body, headers=bearer(user.access_token))
        api.verify_mfa(api.start_mfa_login(user.email), wrong_otp(later, user.devices[0].secret))
        response = api.verify_mfa(
            api.start_mfa_login(user.email), totp_at(user.devices[0].secret, later)
        )
        assert_error(response, 429, "RATE_LIMITED")

    def test_200_once_the_lock_time_has_passed(self, api: Api) -> None:
        api.configure(mfa_max_failures=3)
        user, later = api.mfa_user_enrolled_ago(10)
        secret = user.devices[0].secret
        for _ in range(3):
            api.verify_mfa(api.start_mfa_login(user.email), wrong_otp(later, secret))
        unlocked = api.freeze(later + timedelta(seconds=api.runtime.settings.mfa_lock_seconds))
        code = totp_at(secret, unlocked)
        assert api.verify_mfa(api.start_mfa_login(user.email), code).status_code == 200


class TestSecretsAtRest:
    def test_the_column_holds_no_base32_secret_and_opens_with_the_server_key(
        self, api: Api
    ) -> None:
        device = api.mfa_user().devices[0]
        sealed = api.scalar(sa.select(TotpDevice.secret_encrypted))
        assert device.secret.encode() not in sealed
        assert base64.b32decode(device.secret) not in sealed
        row = api.scalar(sa.select(TotpDevice))
        assert totp_devices.device_secret(api.runtime.secret_box, row) == device.secret

    def test_never_returned_after_setup(self, api: Api) -> None:
        user = api.mfa_user()
        secret, headers = user.devices[0].secret, bearer(user.access_token)
        admin = api.bearer("viewer")
        responses = [
            api.client.get("/auth/mfa/status", headers=headers),
            api.client.get("/auth/mfa/devices", headers=headers),
            api.client.get("/auth/user", headers=headers),
            api.client.get(f"/auth/admin/api/users/{user.id}", headers=admin),
            api.client.get(f"/auth/admin/api/users/{user.id}/totp-devices", headers=admin),
            api.client.post("/auth/login", json={"email": user.email, "password": PASSWORD}),
        ]
        assert [r.status_code for r in responses] == [200] * 6
        assert not any(secret in r.text for r in responses)
        assert secret not in str(user.devices[0].verified)
