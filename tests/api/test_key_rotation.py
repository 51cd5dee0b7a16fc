"""Key rotation (docs/deploy.md, Keys): sealed and signed under the current server key,
opened and verified under it or a previous one, TOTP secrets resealed by `keys reseal`."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import RecoveryCode, TotpDevice
from nestauth.services import keys, reseal, totp_devices
from nestauth.services.secrets import SecretBox
from tests.support import Api, assert_error, bearer, make_settings, totp_at

OLD_KEY = make_settings("sqlite://").secret_key  # the key the test app starts with
NEW_KEY = "rotated-server-key-0123456789-abcdefghij"
UNRELATED_KEY = "unrelated-server-key-9876543210-zyxwvuts"


def rotate(api: Api, current: str, *previous: str) -> None:
    api.configure(secret_key=current, previous_secret_keys=previous)


def mfa_login(api: Api, email: str, secret: str, steps: int) -> object:
    return api.verify_mfa(api.start_mfa_login(email), totp_at(secret, api.runtime.clock(), steps))


class TestAccessTokens:
    def test_a_token_signed_before_the_rotation_stays_valid(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        rotate(api, NEW_KEY, OLD_KEY)
        assert api.current_user(token).status_code == 200

    def test_once_the_previous_key_is_dropped_it_fails(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        rotate(api, NEW_KEY)
        assert_error(api.current_user(token), 401, "SESSION_INVALID")

    def test_new_tokens_are_signed_with_the_new_key(self, api: Api) -> None:
        rotate(api, NEW_KEY, OLD_KEY)
        token = api.sign_up()["accessToken"]
        rotate(api, NEW_KEY)
        assert api.current_user(token).status_code == 200
        rotate(api, OLD_KEY)
        assert_error(api.current_user(token), 401, "SESSION_INVALID")


class TestTotpSecrets:
    def test_mfa_login_under_the_previous_key(self, api: Api) -> None:
        user, _now = api.mfa_user_enrolled_ago(steps=0)
        rotate(api, NEW_KEY, OLD_KEY)
        response = mfa_login(api, user.email, user.devices[0].secret, steps=1)
        assert response.status_code == 200, response.text

    def test_new_devices_are_sealed_under_the_new_key(self, api: Api) -> None:
        rotate(api, NEW_KEY, OLD_KEY)
        user, _now = api.mfa_user_enrolled_ago(steps=0)
        rotate(api, NEW_KEY)
        response = mfa_login(api, user.email, user.devices[0].secret, steps=1)
        assert response.status_code == 200, response.text

    def test_no_key_opens_it_is_a_500_of_its_own_logged_in_one_line(
        self, api: Api, caplog: pytest.LogCaptureFixture
    ) -> None:
        user, _now = api.mfa_user_enrolled_ago(steps=0)
        rotate(api, NEW_KEY)
        with caplog.at_level(logging.INFO):
            response = mfa_login(api, user.email, user.devices[0].secret, steps=1)
        assert_error(response, 500, "SECRET_KEY_MISMATCH")
        assert "Traceback" not in response.text and "InvalidTag" not in response.text
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert user.devices[0].id in errors[0].getMessage()
        assert errors[0].exc_info is None
        assert user.devices[0].secret not in caplog.text

    def test_one_unreadable_device_fails_the_step_before_any_code_is_compared(
        self, api: Api
    ) -> None:
        """Otherwise codes of the readable device could be guessed, each wrong guess ending
        in an uncounted 500 at the unreadable one instead of a counted failure."""
        user, _now = api.mfa_user_enrolled_ago(steps=0, devices=2)
        readable, unreadable = user.devices
        api.db(seal_devices_under(UNRELATED_KEY, unreadable.id))
        response = mfa_login(api, user.email, readable.secret, steps=1)
        assert_error(response, 500, "SECRET_KEY_MISMATCH")

    def test_a_pending_setup_that_no_key_opens_is_the_same_500(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        setup = api.client.post("/auth/mfa/setup-totp", json={}, headers=bearer(token))
        secret = setup.json()["secret"]
        api.db(seal_devices_under(UNRELATED_KEY))
        body = {"secret": secret, "otp": totp_at(secret, api.runtime.clock())}
        response = api.client.post("/auth/mfa/verify-totp-setup", json=body, headers=bearer(token))
        assert_error(response, 500, "SECRET_KEY_MISMATCH")


def seal_devices_under(key: str, *only: str):  # type: ignore[no-untyped-def]
    """Seals every device's secret (or those of the ids given) under `key`, opened with the
    test app's own key."""

    async def seal(session: AsyncSession) -> None:
        old, other = SecretBox(OLD_KEY), SecretBox(key)
        query = sa.select(TotpDevice)
        if only:
            query = query.where(TotpDevice.id.in_([uuid.UUID(d) for d in only]))
        for device in (await session.scalars(query)).all():
            binding = totp_devices.secret_binding(device.id)
            opened = old.open(device.secret_encrypted, binding)
            device.secret_encrypted = other.seal(opened, binding)

    return seal


def legacy_recovery_digest(server_key: str, code: str) -> str:
    """How releases before keys.derive_key stored a recovery code."""
    key = hashlib.sha256(b"nestauth recovery v1" + server_key.encode()).digest()
    return hmac.new(key, code.replace("-", "").encode(), hashlib.sha256).hexdigest()


class TestRecoveryCodes:
    def test_a_code_made_before_the_rotation_still_works(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        rotate(api, NEW_KEY, OLD_KEY)
        assert api.verify_recovery_code(api.start_mfa_login(user.email), code).status_code == 200

    def test_once_the_previous_key_is_dropped_it_no_longer_matches(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        rotate(api, NEW_KEY)
        response = api.verify_recovery_code(api.start_mfa_login(user.email), code)
        assert_error(response, 401, "MFA_CODE_INVALID")

    def test_new_codes_are_keyed_by_the_new_key(self, api: Api) -> None:
        rotate(api, NEW_KEY, OLD_KEY)
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        rotate(api, NEW_KEY)
        assert api.verify_recovery_code(api.start_mfa_login(user.email), code).status_code == 200

    def test_a_code_stored_by_an_earlier_release_still_works(self, api: Api) -> None:
        user = api.mfa_user()
        code = "ABCDE-FGHJK"
        row = RecoveryCode(
            user_id=uuid.UUID(user.id), code_hash=legacy_recovery_digest(OLD_KEY, code)
        )
        api.db(lambda session: _add(session, row))
        assert api.verify_recovery_code(api.start_mfa_login(user.email), code).status_code == 200

    def test_the_stored_digest_is_hmac_under_the_derived_key(self, api: Api) -> None:
        user = api.mfa_user()
        code = api.recovery_codes(user.access_token)[0]
        key = keys.derive_key(OLD_KEY, keys.RECOVERY_CODE)
        expected = hmac.new(key, code.replace("-", "").encode(), hashlib.sha256).hexdigest()
        assert api.count(RecoveryCode, RecoveryCode.code_hash == expected) == 1


async def _add(session: AsyncSession, row: object) -> None:
    session.add(row)


class TestResealService:
    def reseal(self, api: Api, batch_size: int = reseal.BATCH_SIZE) -> reseal.ResealReport:
        return api.run(
            reseal.reseal_totp_secrets, api.runtime.sessions, api.runtime.secret_box, batch_size
        )

    def test_reseals_every_secret_then_nothing(self, api: Api) -> None:
        user, _now = api.mfa_user_enrolled_ago(steps=0, devices=2)
        rotate(api, NEW_KEY, OLD_KEY)
        first = self.reseal(api)
        assert (first.checked, first.resealed, first.unreadable) == (2, 2, [])
        again = self.reseal(api)
        assert (again.checked, again.resealed, again.unreadable) == (2, 0, [])
        rotate(api, NEW_KEY)
        response = mfa_login(api, user.email, user.devices[1].secret, steps=1)
        assert response.status_code == 200, response.text

    def test_works_in_batches(self, api: Api) -> None:
        api.create_user(verified_devices=5)
        rotate(api, NEW_KEY, OLD_KEY)
        report = self.reseal(api, batch_size=2)
        assert (report.checked, report.resealed) == (5, 5)
        assert self.reseal(api, batch_size=2).resealed == 0

    def test_reports_secrets_no_key_opens_and_leaves_them(self, api: Api) -> None:
        fixture = api.create_user(verified_devices=1)
        api.db(seal_devices_under(UNRELATED_KEY))
        before = api.scalar(sa.select(TotpDevice.secret_encrypted))
        report = self.reseal(api)
        assert [str(d) for d in report.unreadable] == fixture.devices
        assert api.scalar(sa.select(TotpDevice.secret_encrypted)) == before

    def test_a_row_in_no_known_format_is_reported_and_the_rest_resealed(self, api: Api) -> None:
        foreign = api.create_user(verified_devices=1).devices[0]
        api.create_user(verified_devices=1)
        api.db(lambda session: session.execute(
            sa.update(TotpDevice).where(TotpDevice.id == uuid.UUID(foreign))
            .values(secret_encrypted=b"\x09not-sealed-by-nestauth")
        ))  # fmt: skip
        rotate(api, NEW_KEY, OLD_KEY)
        report = self.reseal(api)
        assert ([str(d) for d in report.unreadable], report.resealed) == ([foreign], 1)


class TestOneKeyDerivation:
    """derive_key gives the keys the earlier per-module HKDF calls gave: material stored
    before it (sealed TOTP secrets, signed tokens) still opens and verifies."""

    @staticmethod
    def earlier_hkdf(label: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label)
        return hkdf.derive(OLD_KEY.encode())

    def test_totp_secrets_sealed_by_the_earlier_box_open(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        binding, nonce = b"totp_devices:row", b"\x00" * 12
        aead = AESGCM(self.earlier_hkdf(b"nestauth totp secret v1"))
        sealed = b"\x01" + nonce + aead.encrypt(nonce, b"JBSWY3DPEHPK3PXP", binding)
        assert SecretBox(NEW_KEY, previous=(OLD_KEY,)).open(sealed, binding) == "JBSWY3DPEHPK3PXP"

    def test_the_access_token_key_is_unchanged(self) -> None:
        assert keys.derive_key(OLD_KEY, keys.ACCESS_TOKEN) == self.earlier_hkdf(
            b"nestauth access v1"
        )

    def test_each_purpose_gets_its_own_key(self) -> None:
        purposes = (keys.TOTP_SECRET, keys.ACCESS_TOKEN, keys.RECOVERY_CODE)
        assert len({keys.derive_key(OLD_KEY, p) for p in purposes}) == 3
