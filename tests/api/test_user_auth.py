"""/auth/signup, /auth/login, /auth/refresh-token, /auth/logout(-all), /auth/user (§5)."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
import sqlalchemy as sa

from nestauth.models import User, UserSession
from tests.support import PASSWORD, Api, assert_error, bearer, mid_step


class TestSignUp:
    def test_201_returns_tokens_and_the_user(self, api: Api) -> None:
        response = api.client.post(
            "/auth/signup", json={"email": "Alice@Example.com", "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["isRequiresMfa"] is False
        assert body["user"]["email"] == "alice@example.com"
        assert body["user"]["isMfaEnabled"] is False
        assert api.current_user(body["accessToken"]).json()["user"]["id"] == body["user"]["id"]
        assert api.refresh(body["refreshToken"]).status_code == 200

    def test_201_stores_the_password_as_argon2id(self, api: Api) -> None:
        user = api.sign_up()["user"]
        stored = api.get_user(user["id"]).password_hash
        assert stored.startswith("$argon2id$")
        assert PASSWORD not in stored

    def test_201_password_length_bounds_8_and_128(self, api: Api) -> None:
        api.sign_up(password="x" * 8)
        api.sign_up(password="x" * 128)

    def test_400_password_too_short(self, api: Api) -> None:
        response = api.client.post(
            "/auth/signup", json={"email": "a@example.com", "password": "x" * 7}
        )
        assert_error(response, 400, "VALIDATION_FAILED")
        assert api.count(User) == 0

    def test_400_password_too_long(self, api: Api) -> None:
        body = {"email": "a@example.com", "password": "x" * 129}
        assert_error(api.client.post("/auth/signup", json=body), 400, "VALIDATION_FAILED")

    def test_400_malformed_email(self, api: Api) -> None:
        body = {"email": "not-an-email", "password": PASSWORD}
        assert_error(api.client.post("/auth/signup", json=body), 400, "VALIDATION_FAILED")

    def test_400_unknown_field(self, api: Api) -> None:
        body = {"email": "a@example.com", "password": PASSWORD, "isMfaEnabled": True}
        assert_error(api.client.post("/auth/signup", json=body), 400, "VALIDATION_FAILED")

    def test_409_email_taken_whatever_its_case(self, api: Api) -> None:
        api.sign_up("bob@example.com")
        body = {"email": "BOB@example.COM", "password": PASSWORD}
        assert_error(api.client.post("/auth/signup", json=body), 409, "EMAIL_ALREADY_EXISTS")
        assert api.count(User) == 1


class TestLogIn:
    def test_200_without_mfa_returns_tokens_and_the_user(self, api: Api) -> None:
        user = api.sign_up("carol@example.com")["user"]
        body = api.log_in_user("carol@example.com")
        assert body["isRequiresMfa"] is False
        assert body["user"] == {**user, "updatedAt": body["user"]["updatedAt"]}
        assert api.current_user(body["accessToken"]).status_code == 200

    def test_200_nest_auth_shape(self, api: Api) -> None:
        api.sign_up("dave@example.com")
        credentials = {"email": "dave@example.com", "password": PASSWORD}
        response = api.client.post(
            "/auth/login", json={"providerName": "email", "credentials": credentials}
        )
        assert response.status_code == 200, response.text
        assert api.current_user(response.json()["accessToken"]).status_code == 200

    def test_200_email_compared_case_insensitively(self, api: Api) -> None:
        api.sign_up("erin@example.com")
        assert api.log_in_user("ERIN@Example.com")["isRequiresMfa"] is False

    def test_200_with_mfa_returns_an_mfa_token_and_no_access_token(self, api: Api) -> None:
        user = api.mfa_user()
        response = api.client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
        body = response.json()
        assert set(body) == {"isRequiresMfa", "mfaToken", "mfaMethods"}
        assert body["isRequiresMfa"] is True
        assert body["mfaMethods"] == ["totp"]

    def test_200_with_recovery_codes_offers_the_recovery_method(self, api: Api) -> None:
        user = api.mfa_user()
        api.client.post("/auth/mfa/generate-recovery-code", headers=bearer(user.access_token))
        assert api.log_in_user(user.email)["mfaMethods"] == ["totp", "recovery"]

    def test_401_unknown_email_and_wrong_password_look_alike(self, api: Api) -> None:
        api.sign_up("frank@example.com")
        wrong = api.client.post(
            "/auth/login", json={"email": "frank@example.com", "password": "wrong password"}
        )
        unknown = api.client.post(
            "/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        assert_error(wrong, 401, "INVALID_CREDENTIALS")
        assert_error(unknown, 401, "INVALID_CREDENTIALS")
        assert wrong.json() == unknown.json()

    def test_401_deactivated_account(self, api: Api) -> None:
        user = api.sign_up("gina@example.com")["user"]
        api.deactivate_user(user["id"])
        body = {"email": "gina@example.com", "password": PASSWORD}
        assert_error(api.client.post("/auth/login", json=body), 401, "INVALID_CREDENTIALS")

    def test_429_after_repeated_failures(self, api: Api) -> None:
        api.configure(user_login_max_failures=3)
        api.sign_up("hank@example.com")
        bad = {"email": "hank@example.com", "password": "wrong password"}
        for _ in range(3):
            assert_error(api.client.post("/auth/login", json=bad), 401, "INVALID_CREDENTIALS")
        good = {"email": "hank@example.com", "password": PASSWORD}
        response = api.client.post("/auth/login", json=good)
        assert_error(response, 429, "RATE_LIMITED")
        assert int(response.headers["Retry-After"]) >= 1

    def test_429_concurrent_guesses_cannot_exceed_the_limit(self, api: Api) -> None:
        # All ten in flight at once: the per-address hashing cap (tests/api/test_floods.py)
        # would refuse most of them before the database limit is reached.
        api.configure(user_login_max_failures=3, hash_max_in_flight_per_client=10)
        bad = {"email": api.sign_up()["user"]["email"], "password": "wrong password"}
        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(
                pool.map(lambda _: api.client.post("/auth/login", json=bad), range(10))
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * 3 + [429] * 7, statuses

    def test_400_missing_password(self, api: Api) -> None:
        response = api.client.post("/auth/login", json={"email": "a@example.com"})
        assert_error(response, 400, "VALIDATION_FAILED")


class TestRefreshToken:
    def test_200_rotates_the_refresh_token(self, api: Api) -> None:
        signed = api.sign_up()
        response = api.refresh(signed["refreshToken"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"accessToken", "refreshToken"}
        assert body["refreshToken"] != signed["refreshToken"]
        assert api.current_user(body["accessToken"]).status_code == 200
        assert api.refresh(body["refreshToken"]).status_code == 200

    def test_200_refresh_tokens_are_stored_hashed(self, api: Api) -> None:
        token = api.sign_up()["refreshToken"]
        stored = api.scalar(sa.select(UserSession.refresh_token_hash))
        assert token not in stored and token.split(".", 1)[1] not in stored

    def test_401_reuse_of_a_used_refresh_token_revokes_the_session(self, api: Api) -> None:
        first = api.sign_up()["refreshToken"]
        second = api.refresh(first).json()
        assert_error(api.refresh(first), 401, "SESSION_INVALID")
        assert_error(api.refresh(second["refreshToken"]), 401, "SESSION_INVALID")
        assert_error(api.current_user(second["accessToken"]), 401, "SESSION_INVALID")

    def test_401_reuse_of_a_token_two_rotations_old_revokes_the_session(self, api: Api) -> None:
        first = api.sign_up()["refreshToken"]
        second = api.refresh(first).json()["refreshToken"]
        third = api.refresh(second).json()
        assert_error(api.refresh(first), 401, "SESSION_INVALID")
        assert_error(api.refresh(third["refreshToken"]), 401, "SESSION_INVALID")
        assert_error(api.current_user(third["accessToken"]), 401, "SESSION_INVALID")

    def test_401_garbage_token(self, api: Api) -> None:
        assert_error(api.refresh("garbage"), 401, "SESSION_INVALID")
        assert_error(api.refresh(f"{uuid.uuid4()}.secret"), 401, "SESSION_INVALID")

    def test_401_right_session_wrong_secret_leaves_the_session_alive(self, api: Api) -> None:
        signed = api.sign_up()
        session_part = signed["refreshToken"].split(".", 1)[0]
        assert_error(api.refresh(f"{session_part}.forged"), 401, "SESSION_INVALID")
        assert api.refresh(signed["refreshToken"]).status_code == 200

    def test_401_after_logout(self, api: Api) -> None:
        signed = api.sign_up()
        api.client.post("/auth/logout", headers=bearer(signed["accessToken"]))
        assert_error(api.refresh(signed["refreshToken"]), 401, "SESSION_INVALID")

    def test_401_expired_session(self, api: Api) -> None:
        start = api.freeze(mid_step())
        signed = api.sign_up()
        api.freeze(start + timedelta(seconds=api.runtime.settings.refresh_token_seconds))
        assert_error(api.refresh(signed["refreshToken"]), 401, "SESSION_INVALID")

    def test_400_missing_token(self, api: Api) -> None:
        response = api.client.post("/auth/refresh-token", json={})
        assert_error(response, 400, "VALIDATION_FAILED")


class TestLogOut:
    def test_200_revokes_this_session_only(self, api: Api) -> None:
        signed = api.sign_up()
        other = api.log_in_user(signed["user"]["email"])
        response = api.client.post("/auth/logout", headers=bearer(signed["accessToken"]))
        assert response.status_code == 200, response.text
        assert_error(api.current_user(signed["accessToken"]), 401, "SESSION_INVALID")
        assert_error(api.refresh(signed["refreshToken"]), 401, "SESSION_INVALID")
        assert api.current_user(other["accessToken"]).status_code == 200

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.post("/auth/logout"), 401, "NO_AUTH_PROVIDED")

    def test_401_already_logged_out(self, api: Api) -> None:
        token = api.sign_up()["accessToken"]
        api.client.post("/auth/logout", headers=bearer(token))
        assert_error(api.client.post("/auth/logout", headers=bearer(token)), 401, "SESSION_INVALID")


class TestLogOutAll:
    def test_200_revokes_every_session_of_the_user(self, api: Api) -> None:
        signed = api.sign_up()
        other = api.log_in_user(signed["user"]["email"])
        bystander = api.sign_up()
        response = api.client.post("/auth/logout-all", headers=bearer(signed["accessToken"]))
        assert response.status_code == 200, response.text
        assert "2" in response.json()["message"]
        for tokens in (signed, other):
            assert_error(api.current_user(tokens["accessToken"]), 401, "SESSION_INVALID")
            assert_error(api.refresh(tokens["refreshToken"]), 401, "SESSION_INVALID")
        assert api.current_user(bystander["accessToken"]).status_code == 200

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.post("/auth/logout-all"), 401, "NO_AUTH_PROVIDED")


def tampered(token: str, **claims: object) -> str:
    """The same signature over a payload with `claims` changed."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw = json.dumps({**data, **claims}).encode()
    return ".".join([header, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), signature])


class TestGetCurrentUser:
    def test_200_returns_the_signed_in_user(self, api: Api) -> None:
        signed = api.sign_up()
        response = api.current_user(signed["accessToken"])
        assert response.status_code == 200, response.text
        assert response.json() == {"user": signed["user"]}
        assert "password" not in response.text.lower()

    def test_401_no_token(self, api: Api) -> None:
        assert_error(api.client.get("/auth/user"), 401, "NO_AUTH_PROVIDED")

    def test_401_expired_access_token(self, api: Api) -> None:
        start = api.freeze(mid_step())
        token = api.sign_up()["accessToken"]
        lifetime = api.runtime.settings.access_token_seconds
        api.freeze(start + timedelta(seconds=lifetime - 1))
        assert api.current_user(token).status_code == 200
        api.freeze(start + timedelta(seconds=lifetime + 1))
        assert_error(api.current_user(token), 401, "SESSION_INVALID")

    def test_200_token_judged_by_the_server_clock_not_the_wall_clock(self, api: Api) -> None:
        # A replica whose clock runs ahead issues tokens dated after this one's wall clock.
        api.freeze(datetime.now(UTC) + timedelta(minutes=2))
        token = api.sign_up()["accessToken"]
        assert api.current_user(token).status_code == 200

    def test_401_tampered_token(self, api: Api) -> None:
        signed = api.sign_up()
        token = signed["accessToken"]
        assert_error(api.current_user(tampered(token, exp=4102444800)), 401, "SESSION_INVALID")
        other = api.sign_up()["user"]["id"]
        assert_error(api.current_user(tampered(token, sub=other)), 401, "SESSION_INVALID")
        header, payload, signature = token.split(".")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        assert_error(api.current_user(f"{header}.{payload}.{flipped}"), 401, "SESSION_INVALID")

    def test_401_token_signed_with_another_key_or_none(self, api: Api) -> None:
        signed = api.sign_up()
        claims = jwt.decode(signed["accessToken"], options={"verify_signature": False})
        forged = jwt.encode(claims, "another-key-" + "y" * 32, algorithm="HS256")
        assert_error(api.current_user(forged), 401, "SESSION_INVALID")
        unsigned = jwt.encode(claims, None, algorithm="none")
        assert_error(api.current_user(unsigned), 401, "SESSION_INVALID")

    def test_401_session_revoked_by_an_admin(self, api: Api) -> None:
        signed = api.sign_up()
        url = f"/auth/admin/api/users/{signed['user']['id']}/sessions"
        assert api.client.delete(url, headers=api.bearer("admin")).status_code == 200
        assert_error(api.current_user(signed["accessToken"]), 401, "SESSION_INVALID")

    def test_401_deactivated_user(self, api: Api) -> None:
        signed = api.sign_up()
        api.deactivate_user(signed["user"]["id"])
        assert_error(api.current_user(signed["accessToken"]), 401, "SESSION_INVALID")

    def test_401_admin_token(self, api: Api) -> None:
        assert_error(
            api.client.get("/auth/user", headers=api.bearer("owner")), 401, "SESSION_INVALID"
        )

    def test_401_mfa_token_is_not_an_access_token(self, api: Api) -> None:
        mfa_token = api.start_mfa_login(api.mfa_user().email)
        assert_error(api.current_user(mfa_token), 401, "SESSION_INVALID")
