"""Property-based tests (hypothesis) of the TOTP verifier and of the error mapping."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pyotp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.services import totp, totp_devices, users
from tests.support import Api

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
codes = st.text(alphabet="0123456789", min_size=6, max_size=6)
# Any JSON document Python can write: NaN, Infinity and integers of any size included.
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=30,
)  # fmt: skip
with_fixture = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def step_of(moment: datetime) -> int:
    return int(moment.timestamp()) // totp.STEP_SECONDS


class TestTotpVerifier:
    @given(moment=moments, code=codes)
    def test_any_code_is_accepted_only_within_one_step_of_drift(self, moment, code) -> None:
        step = totp.matching_step(SECRET, code, moment)
        if step is not None:
            assert abs(step - step_of(moment)) <= totp.DRIFT_STEPS
            assert pyotp.TOTP(SECRET).at(step * totp.STEP_SECONDS) == code

    @given(moment=moments, offset=st.integers(min_value=-5, max_value=5))
    def test_the_code_of_a_step_is_accepted_iff_within_drift(self, moment, offset) -> None:
        code = pyotp.TOTP(SECRET).at(moment + timedelta(seconds=offset * totp.STEP_SECONDS))
        accepted = totp.matching_step(SECRET, code, moment) is not None
        # A code of a far step may collide with a near one by chance (1 in 10^6 per step).
        collides = any(
            pyotp.TOTP(SECRET).at(moment + timedelta(seconds=k * totp.STEP_SECONDS)) == code
            for k in range(-totp.DRIFT_STEPS, totp.DRIFT_STEPS + 1)
        )
        assert accepted == (abs(offset) <= totp.DRIFT_STEPS or collides)

    @with_fixture
    @given(moment=moments, attempts=st.integers(min_value=2, max_value=4))
    def test_a_code_is_accepted_at_most_once_per_device(self, api: Api, moment, attempts) -> None:
        box = api.runtime.secret_box

        async def claim_repeatedly(session: AsyncSession) -> list[bool]:
            user = await users.create_user(session, email=f"p-{uuid.uuid4().hex[:8]}@example.com")
            device, secret = await totp_devices.add_device(
                session, box, user_id=user.id, device_name="p", verified=True
            )
            step = totp.matching_step(secret, pyotp.TOTP(secret).at(moment), moment)
            assert step is not None
            return [
                await totp.claim_step(session, device.id, step, moment) for _ in range(attempts)
            ]

        assert api.db(claim_repeatedly) == [True] + [False] * (attempts - 1)

    @with_fixture
    @given(moment=moments)
    def test_a_removed_device_accepts_no_code(self, api: Api, moment) -> None:
        box = api.runtime.secret_box

        async def claim_after_removal(session: AsyncSession) -> bool:
            user = await users.create_user(session, email=f"r-{uuid.uuid4().hex[:8]}@example.com")
            device, secret = await totp_devices.add_device(
                session, box, user_id=user.id, device_name="r", verified=True
            )
            await session.delete(device)
            await session.flush()
            step = totp.matching_step(secret, pyotp.TOTP(secret).at(moment), moment)
            assert step is not None
            return await totp.claim_step(session, device.id, step, moment)

        assert api.db(claim_after_removal) is False


def assert_client_error_envelope(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) >= {"statusCode", "error", "message", "code"}
    assert body["statusCode"] == response.status_code


class TestErrorMapping:
    @with_fixture
    @given(body=st.binary(max_size=300))
    def test_any_body_is_a_4xx_envelope(self, api: Api, body: bytes) -> None:
        for path in ("/auth/admin/login", "/auth/signup", "/auth/mfa/verify"):
            response = api.client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert_client_error_envelope(response)

    @with_fixture
    @given(segment=st.binary(min_size=1, max_size=40))
    def test_any_path_is_a_4xx_envelope(self, api: Api, segment: bytes) -> None:
        from urllib.parse import quote

        segment_text = quote(segment, safe="")
        # "." and ".." are dot segments: the client resolves them before sending (RFC 3986
        # §5.2.4), so "/users/." is the list of users, a 200 by design.
        assume(segment_text not in (".", ".."))
        path = "/auth/admin/api/users/" + segment_text
        response = api.client.get(path, headers=api.bearer("viewer"))
        assert_client_error_envelope(response)

    @with_fixture
    @given(query=st.binary(max_size=60))
    def test_any_query_is_not_a_server_error(self, api: Api, query: bytes) -> None:
        from urllib.parse import quote

        response = api.client.get("/auth/health?" + quote(query, safe="=&"))
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_client_error_envelope(response)

    @with_fixture
    @given(document=json_documents)
    def test_any_json_document_is_a_4xx_envelope(self, api: Api, document: object) -> None:
        raw = json.dumps(document).encode()
        for path in ("/auth/admin/login", "/auth/signup", "/auth/refresh-token"):
            response = api.client.post(
                path, content=raw, headers={"content-type": "application/json"}
            )
            assert_client_error_envelope(response)

    @with_fixture
    @given(depth=st.integers(min_value=1, max_value=30_000))
    def test_any_nesting_depth_is_a_4xx_envelope(self, api: Api, depth: int) -> None:
        raw = b"[" * depth + b"]" * depth
        response = api.client.post(
            "/auth/mfa/verify", content=raw, headers={"content-type": "application/json"}
        )
        assert_client_error_envelope(response)

    @with_fixture
    @given(token=st.text(min_size=16, max_size=300))
    def test_a_refused_refresh_token_never_comes_back(self, api: Api, token: str) -> None:
        response = api.client.post("/auth/refresh-token", json={"refreshToken": token})
        assert response.status_code in (400, 401), response.text
        assert token not in response.json()["message"]
