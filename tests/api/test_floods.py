"""Floods do not starve real users (issue 11, part 4), through the app from several addresses.

Requests are sent on the app's own event loop through httpx's ASGI transport, each with the
client address it names, so one test can be an attacker at 10.0.0.1 and the account's owner
at 10.0.0.2. The hashing queue is held full with `passwords.paused()` (hashes wait in their
threads), never by timing; the clock is frozen and moved, never slept through.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from nestauth.models import RateLimitBucket, User
from nestauth.services import housekeeping, passwords, user_auth
from nestauth.services.passwords import GATE, WORKERS
from tests.support import PASSWORD, Api, assert_error, mid_step, totp_at, wrong_otp

ATTACKER, OWNER = "10.0.0.1", "10.0.0.2"
WRONG = "not the password"


async def post_from(api: Api, address: str, path: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=api.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post(path, json=body)


def post(api: Api, address: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return api.run(post_from, api, address, path, body)


def login(api: Api, address: str, email: str, password: str = PASSWORD) -> httpx.Response:
    return post(api, address, "/auth/login", {"email": email, "password": password})


def admin_login(api: Api, address: str, email: str, password: str = PASSWORD) -> httpx.Response:
    return post(api, address, "/auth/admin/login", {"email": email, "password": password})


def new_email() -> str:
    return f"u-{uuid.uuid4().hex[:8]}@example.com"


async def until_admitted(count: int) -> None:
    """Waits for the requests sent to take their places (a liveness bound, not a timing)."""
    for _ in range(20_000):
        if GATE.admitted >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{GATE.admitted} of {count} requests admitted")


async def while_held(
    api: Api, held: list[tuple[str, str, dict[str, Any]]], probe: tuple[str, str, dict[str, Any]]
) -> tuple[list[httpx.Response], httpx.Response]:
    """Sends `held` while hashing is paused, waits until all are admitted, sends `probe`;
    then lets the hashes run. The held responses and the probe's."""
    with passwords.paused():
        tasks = [asyncio.ensure_future(post_from(api, *request)) for request in held]
        await until_admitted(len(held))
        answer = await post_from(api, *probe)
    return list(await asyncio.gather(*tasks)), answer


def buckets(api: Api) -> int:
    return api.count(RateLimitBucket)


class TestHashingQueue:
    def test_503_at_once_when_full_and_nothing_written(self, api: Api) -> None:
        api.configure(hash_queue_size=1)
        emails = [api.sign_up()["user"]["email"] for _ in range(WORKERS + 1)]
        held = [
            (f"10.0.1.{n}", "/auth/login", {"email": email, "password": WRONG})
            for n, email in enumerate(emails)
        ]
        before = (buckets(api), api.count(User))
        answers, refused = api.run(
            while_held,
            api,
            held,
            (OWNER, "/auth/signup", {"email": new_email(), "password": PASSWORD}),
        )
        assert_error(refused, 503, "HASHING_BUSY")
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["details"] == {"retryAfter": 1}
        assert [a.status_code for a in answers] == [401] * len(held)
        # The refused sign-up made no account and counted nothing; the held logins counted.
        assert api.count(User) == before[1]
        owner_signups = user_auth.signup_limits(api.runtime.settings)[1].key(OWNER)
        assert api.count(RateLimitBucket, RateLimitBucket.key == owner_signups) == 0
        assert buckets(api) > before[0]
        assert GATE.admitted == 0
        assert api.sign_up()["user"]["email"]  # free again

    def test_503_for_a_login_too_then_served_once_a_place_is_free(self, api: Api) -> None:
        api.configure(hash_queue_size=1)
        owner = api.sign_up()["user"]["email"]
        held = [
            (f"10.0.1.{n}", "/auth/login", {"email": new_email(), "password": WRONG})
            for n in range(WORKERS + 1)
        ]
        probe = (OWNER, "/auth/login", {"email": owner, "password": PASSWORD})
        _answers, refused = api.run(while_held, api, held, probe)
        assert_error(refused, 503, "HASHING_BUSY")
        assert login(api, OWNER, owner).status_code == 200  # the 503 counted no failure


class TestPerAddressCap:
    def test_a_flood_from_one_address_cannot_fill_the_queue(self, api: Api) -> None:
        api.configure(hash_max_in_flight_per_client=2)
        owner = api.sign_up()["user"]["email"]
        flood = [(ATTACKER, "/auth/login", {"email": new_email(), "password": WRONG})] * 2
        probe = (ATTACKER, "/auth/login", {"email": new_email(), "password": WRONG})

        async def scenario() -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
            held, refused = await while_held_with_owner(api, flood, probe, owner)
            return held, refused, await post_from(api, OWNER, "/auth/login", owner_body(owner))

        held, refused, owner_answer = api.run(scenario)
        assert_error(refused, 429, "RATE_LIMITED")
        assert refused.headers["Retry-After"] == "1"
        assert "in progress from this address" in refused.json()["message"]
        assert [a.status_code for a in held] == [401, 401, 200]
        assert owner_answer.status_code == 200

    def test_refused_before_validation_and_any_database_work(self, api: Api) -> None:
        """The flood guard answers before Connexion: a malformed body still gets the 429,
        and a refused sign-up writes nothing."""
        api.configure(hash_max_in_flight_per_client=1)
        email = api.sign_up()["user"]["email"]
        held = [(ATTACKER, "/auth/login", {"email": email, "password": WRONG})]
        before = buckets(api)
        for probe in (
            (ATTACKER, "/auth/login", {"email": email}),  # no password: a 400 otherwise
            (ATTACKER, "/auth/signup", owner_body(new_email())),
            (ATTACKER, "/auth/admin/login", owner_body(new_email())),
        ):
            answers, refused = api.run(while_held, api, held, probe)
            assert_error(refused, 429, "RATE_LIMITED")
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["details"] == {"retryAfter": 1}
            assert [a.status_code for a in answers] == [401]
        assert buckets(api) == before + 3  # the held logins' pair, address and account only

    def test_the_cap_counts_only_requests_in_flight(self, api: Api) -> None:
        api.configure(hash_max_in_flight_per_client=1)
        email = api.sign_up()["user"]["email"]
        for _ in range(3):  # one after another: never two in flight
            assert_error(login(api, ATTACKER, email, WRONG), 401, "INVALID_CREDENTIALS")


def owner_body(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD}


async def while_held_with_owner(
    api: Api, flood: list[tuple[str, str, dict[str, Any]]], probe: Any, owner: str
) -> tuple[list[httpx.Response], httpx.Response]:
    """The flood holds its two places; the probe from the same address is refused; the
    owner, from another address, is admitted meanwhile (three places taken)."""
    with passwords.paused():
        tasks = [asyncio.ensure_future(post_from(api, *request)) for request in flood]
        await until_admitted(len(flood))
        refused = await post_from(api, *probe)
        tasks.append(asyncio.ensure_future(post_from(api, OWNER, "/auth/login", owner_body(owner))))
        await until_admitted(len(flood) + 1)
    return list(await asyncio.gather(*tasks)), refused


class TestLoginLockout:
    def test_attacker_is_locked_and_the_owner_still_signs_in(self, api: Api) -> None:
        api.configure(user_login_max_failures=5)
        email = api.sign_up()["user"]["email"]
        for _ in range(5):
            assert_error(login(api, ATTACKER, email, WRONG), 401, "INVALID_CREDENTIALS")
        for _ in range(20):
            assert_error(login(api, ATTACKER, email, WRONG), 429, "RATE_LIMITED")
        assert_error(login(api, ATTACKER, email), 429, "RATE_LIMITED")  # right password too
        assert login(api, OWNER, email).status_code == 200

    def test_successes_do_not_count_against_the_address_or_the_account(self, api: Api) -> None:
        # The password step counts an attempt as failed before the hash; a success must take
        # that back, or an office behind one address would lock itself out by signing in.
        api.configure(ip_max_failures=3, account_slow_after_failures=2)
        email = api.sign_up()["user"]["email"]
        for _ in range(6):
            assert login(api, OWNER, email).status_code == 200
        logins = RateLimitBucket.key.like("user-login%")  # the sign-up's own counts stay
        assert api.count(RateLimitBucket, logins, RateLimitBucket.failures > 0) == 0
        assert api.count(RateLimitBucket, logins, RateLimitBucket.blocked_until.is_not(None)) == 0

    def test_per_address_limit_across_emails(self, api: Api) -> None:
        api.configure(ip_max_failures=4)
        email = api.sign_up()["user"]["email"]
        for _ in range(4):  # credential stuffing: one failure for each of many emails
            assert_error(login(api, ATTACKER, new_email(), WRONG), 401, "INVALID_CREDENTIALS")
        response = login(api, ATTACKER, email)
        assert_error(response, 429, "RATE_LIMITED")
        assert 1 <= int(response.headers["Retry-After"]) <= 900
        assert login(api, OWNER, email).status_code == 200

    def test_a_distributed_attack_on_one_email_is_slowed_never_locked(self, api: Api) -> None:
        api.configure(account_slow_after_failures=3, account_slow_max_seconds=8)
        email = api.sign_up()["user"]["email"]
        now = api.freeze(mid_step())
        for n in (1, 2):  # below the threshold: nobody held back
            assert_error(login(api, f"10.0.2.{n}", email, WRONG), 401, "INVALID_CREDENTIALS")
        # From the third failure on, each holds back its own address: 1, 2, 4, 8, 8 s.
        for n, delay in zip(range(3, 8), (1, 2, 4, 8, 8), strict=True):
            assert_error(login(api, f"10.0.2.{n}", email, WRONG), 401, "INVALID_CREDENTIALS")
            held_back = login(api, f"10.0.2.{n}", email)
            assert_error(held_back, 429, "RATE_LIMITED")
            assert held_back.headers["Retry-After"] == str(delay)
        assert login(api, OWNER, email).status_code == 200  # an address that did not fail
        api.freeze(now + timedelta(seconds=8))
        assert login(api, "10.0.2.7", email).status_code == 200  # a delay, not a lock

    def test_admin_login_lockout_binds_the_attacker_only(self, api: Api) -> None:
        api.configure(admin_login_max_failures=3)
        email = api.create_admin()
        for _ in range(3):
            assert_error(admin_login(api, ATTACKER, email, WRONG), 401, "INVALID_CREDENTIALS")
        assert_error(admin_login(api, ATTACKER, email), 429, "RATE_LIMITED")
        assert admin_login(api, OWNER, email).status_code == 200


class TestMfaLockout:
    def test_mfa_and_recovery_failures_lock_the_attacker_only(self, api: Api) -> None:
        api.configure(mfa_max_failures=3, reauth_window_seconds=3600)  # codes made "later"
        user, later = api.mfa_user_enrolled_ago(10)
        secret = user.devices[0].secret
        codes = api.recovery_codes(user.access_token)

        def mfa_token(address: str) -> str:
            return str(login(api, address, user.email).json()["mfaToken"])

        def verify(address: str, otp: str) -> httpx.Response:
            body = {"mfaToken": mfa_token(address), "otp": otp, "method": "totp"}
            return post(api, address, "/auth/mfa/verify", body)

        def recover(address: str, code: str) -> httpx.Response:
            body = {"mfaToken": mfa_token(address), "code": code}
            return post(api, address, "/auth/mfa/verify-recovery-code", body)

        assert_error(verify(ATTACKER, wrong_otp(later, secret)), 401, "MFA_CODE_INVALID")
        assert_error(recover(ATTACKER, "AAAAA-AAAAA"), 401, "MFA_CODE_INVALID")
        assert_error(verify(ATTACKER, wrong_otp(later, secret)), 401, "MFA_CODE_INVALID")
        assert_error(verify(ATTACKER, totp_at(secret, later)), 429, "RATE_LIMITED")
        assert_error(recover(ATTACKER, codes[0]), 429, "RATE_LIMITED")
        assert verify(OWNER, totp_at(secret, later)).status_code == 200
        assert recover(OWNER, codes[1]).status_code == 200


class TestSignUpLimits:
    def test_per_address(self, api: Api) -> None:
        api.configure(signup_max_per_ip=2)
        for _ in range(2):
            answer = post(api, ATTACKER, "/auth/signup", owner_body(new_email()))
            assert answer.status_code == 201, answer.text
        refused = post(api, ATTACKER, "/auth/signup", owner_body(new_email()))
        assert_error(refused, 429, "RATE_LIMITED")
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
        assert post(api, OWNER, "/auth/signup", owner_body(new_email())).status_code == 201

    def test_per_email_and_address(self, api: Api) -> None:
        api.configure(signup_max_per_email_ip=2)
        email = new_email()
        assert post(api, ATTACKER, "/auth/signup", owner_body(email)).status_code == 201
        assert_error(
            post(api, ATTACKER, "/auth/signup", owner_body(email)), 409, "EMAIL_ALREADY_EXISTS"
        )
        assert_error(post(api, ATTACKER, "/auth/signup", owner_body(email)), 429, "RATE_LIMITED")
        assert_error(
            post(api, OWNER, "/auth/signup", owner_body(email)), 409, "EMAIL_ALREADY_EXISTS"
        )
        assert post(api, ATTACKER, "/auth/signup", owner_body(new_email())).status_code == 201

    def test_the_rate_limit_keys_hold_no_email_or_address(self, api: Api) -> None:
        email = new_email()
        post(api, ATTACKER, "/auth/signup", owner_body(email))
        login(api, ATTACKER, email, WRONG)
        stored = api.db(_keys)
        assert stored
        assert not any(email in key or ATTACKER in key for key in stored)
        assert all(len(key) <= 128 for key in stored)


async def _keys(session: Any) -> list[str]:
    return list((await session.scalars(sa.select(RateLimitBucket.key))).all())


class TestPruning:
    def test_every_new_scope_is_pruned_once_its_window_is_over(self, api: Api) -> None:
        """Per-address, per-account and sign-up counts are housekept like the per-pair ones."""
        now = api.freeze(mid_step())
        email = post(api, ATTACKER, "/auth/signup", owner_body(new_email())).json()["user"]["email"]
        assert_error(login(api, ATTACKER, email, WRONG), 401, "INVALID_CREDENTIALS")
        scopes = {key.split(":")[0] for key in api.db(_keys)}
        assert scopes >= {
            "signup",
            "signup-ip",
            "user-login",
            "user-login-ip",
            "user-login-account",
        }
        later = now + timedelta(hours=2)  # past the sign-up window (1 h) and the lock window
        report = api.run(housekeeping.prune, api.runtime.sessions, api.runtime.settings, later)
        assert report.complete
        assert api.db(_keys) == []
