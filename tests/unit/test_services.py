"""Services without HTTP: sealing secrets, tokens, passwords, and the shared rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy import event

from nestauth import db
from nestauth.errors import RateLimited
from nestauth.models import RateLimitBucket
from nestauth.services import passwords, ratelimit, tokens
from nestauth.services.secrets import SecretBox
from tests.support import Api

SERVER_KEY = "unit-test-server-key-" + "s" * 32
ROW = b"totp_devices:6f1c2a52-8d7e-4b7e-9a51-0f3f5d1f2a10"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LIMIT = ratelimit.Limit(scope="unit", max_failures=3, window=timedelta(minutes=15))


class TestSecretBox:
    def test_round_trip(self) -> None:
        box = SecretBox(SERVER_KEY)
        assert box.open(box.seal("JBSWY3DPEHPK3PXP", ROW), ROW) == "JBSWY3DPEHPK3PXP"

    def test_two_seals_of_one_secret_differ(self) -> None:
        box = SecretBox(SERVER_KEY)
        assert box.seal("JBSWY3DPEHPK3PXP", ROW) != box.seal("JBSWY3DPEHPK3PXP", ROW)

    def test_plaintext_not_in_ciphertext(self) -> None:
        assert b"JBSWY3DPEHPK3PXP" not in SecretBox(SERVER_KEY).seal("JBSWY3DPEHPK3PXP", ROW)

    def test_tampered_ciphertext_fails(self) -> None:
        box = SecretBox(SERVER_KEY)
        sealed = bytearray(box.seal("JBSWY3DPEHPK3PXP", ROW))
        sealed[-1] ^= 0x01
        with pytest.raises(InvalidTag):
            box.open(bytes(sealed), ROW)

    def test_wrong_associated_data_fails(self) -> None:
        box = SecretBox(SERVER_KEY)
        with pytest.raises(InvalidTag):
            box.open(box.seal("JBSWY3DPEHPK3PXP", ROW), b"totp_devices:another-row")

    def test_other_server_key_fails(self) -> None:
        sealed = SecretBox(SERVER_KEY).seal("JBSWY3DPEHPK3PXP", ROW)
        with pytest.raises(InvalidTag):
            SecretBox(SERVER_KEY + "-rotated").open(sealed, ROW)

    def test_unknown_format_version_fails(self) -> None:
        sealed = SecretBox(SERVER_KEY).seal("JBSWY3DPEHPK3PXP", ROW)
        with pytest.raises(ValueError, match="unknown secret format"):
            SecretBox(SERVER_KEY).open(b"\x02" + sealed[1:], ROW)


class TestTokens:
    def test_new_tokens_are_long_and_distinct(self) -> None:
        issued = {tokens.new_token() for _ in range(50)}
        assert len(issued) == 50
        assert all(len(token) >= 43 for token in issued)  # 32 bytes, base64url

    def test_digest_is_sha256_hex_and_stable(self) -> None:
        assert tokens.digest("abc") == tokens.digest("abc")
        assert len(tokens.digest("abc")) == 64
        assert tokens.digest("abc") != tokens.digest("abd")
        assert "abc" not in tokens.digest("abc")

    def test_digest_accepts_lone_surrogates(self) -> None:
        assert len(tokens.digest("\ud800")) == 64

    def test_same_digest(self) -> None:
        token = tokens.new_token()
        assert tokens.same_digest(token, tokens.digest(token))
        assert not tokens.same_digest(token + "x", tokens.digest(token))
        assert not tokens.same_digest("", tokens.digest(token))

    def test_same_secret(self) -> None:
        assert tokens.same_secret("bootstrap-secret", "bootstrap-secret")
        assert not tokens.same_secret("bootstrap-secret", "bootstrap-secreT")
        assert not tokens.same_secret("short", "a much longer secret")
        assert not tokens.same_secret("", "bootstrap-secret")


@pytest.fixture
def production_hashing() -> Iterator[None]:
    previous = passwords._profile
    passwords.use_profile("default")
    yield
    passwords.use_profile(previous)


@pytest.mark.usefixtures("production_hashing")
class TestPasswords:
    def test_hash_is_argon2id_and_verifies(self) -> None:
        stored = asyncio.run(passwords.hash_password("correct horse battery"))
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106 low-memory
        assert "correct horse battery" not in stored
        assert asyncio.run(passwords.verify_password(stored, "correct horse battery")) is True
        assert passwords.needs_rehash(stored) is False

    def test_wrong_password_is_false(self) -> None:
        stored = asyncio.run(passwords.hash_password("correct horse battery"))
        assert asyncio.run(passwords.verify_password(stored, "correct horse batterY")) is False

    def test_no_hash_is_false_even_for_the_dummy_password(self) -> None:
        assert asyncio.run(passwords.verify_password(None, "nestauth-dummy-password")) is False
        assert asyncio.run(passwords.verify_password(None, "anything")) is False

    def test_malformed_hash_is_false(self) -> None:
        assert asyncio.run(passwords.verify_password("not-a-hash", "anything")) is False


def allowed(api: Api, now: datetime, subject: str = "admin@example.com") -> None:
    api.db(lambda session: ratelimit.ensure_allowed(session, LIMIT, subject, now))


def fail(api: Api, now: datetime, times: int = 1, subject: str = "admin@example.com") -> None:
    async def record(session) -> None:
        for _ in range(times):
            await ratelimit.record_failure(session, LIMIT, subject, now)

    api.db(record)


def retry_after(api: Api, now: datetime) -> int:
    with pytest.raises(RateLimited) as caught:
        allowed(api, now)
    assert caught.value.headers == {"Retry-After": str(caught.value.details["retryAfter"])}
    return caught.value.details["retryAfter"]


class TestRateLimit:
    def test_allowed_without_failures_and_nothing_counted(self, api: Api) -> None:
        # The check holds the subject's bucket locked for the attempt; it counts nothing.
        allowed(api, T0)
        assert api.count(RateLimitBucket, RateLimitBucket.failures > 0) == 0
        assert api.count(RateLimitBucket, RateLimitBucket.blocked_until.is_not(None)) == 0

    def test_allowed_below_max_failures(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures - 1)
        allowed(api, T0)

    def test_blocked_after_max_failures_for_the_window(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures)
        assert retry_after(api, T0) == LIMIT.window.total_seconds()
        assert retry_after(api, T0 + timedelta(seconds=61)) == 15 * 60 - 61

    def test_failures_in_separate_transactions_count(self, api: Api) -> None:
        for _ in range(LIMIT.max_failures):
            fail(api, T0)
        assert retry_after(api, T0) == 15 * 60

    def test_block_ends_after_the_window(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures)
        allowed(api, T0 + LIMIT.window)

    def test_passed_window_resets_the_count(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures - 1)
        fail(api, T0 + LIMIT.window)
        allowed(api, T0 + LIMIT.window)
        fail(api, T0 + LIMIT.window, times=LIMIT.max_failures - 2)
        allowed(api, T0 + LIMIT.window)

    def test_subjects_are_counted_apart(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures)
        allowed(api, T0, subject="someone-else@example.com")

    def test_key_holds_no_subject(self) -> None:
        key = LIMIT.key("admin@example.com")
        assert key.startswith("unit:")
        assert "admin" not in key
        assert len(key) <= 128

    def test_clear_removes_the_bucket(self, api: Api) -> None:
        fail(api, T0, times=LIMIT.max_failures)
        api.db(lambda session: ratelimit.clear(session, LIMIT, "admin@example.com"))
        assert api.count(RateLimitBucket) == 0
        allowed(api, T0)


@pytest.mark.postgresql_only
class TestBucketDeletedUnderfoot:
    """A success elsewhere clears (deletes) the bucket between this attempt's insert and its
    lock: the attempt inserts it again instead of failing with a 500."""

    @pytest.mark.parametrize("step", ["record_failure", "ensure_allowed"])
    def test_the_row_is_made_again_and_the_attempt_counts(
        self, api: Api, database_url: str, step: str
    ) -> None:
        fail(api, T0)  # the row exists, so the next insert does nothing
        key = LIMIT.key("admin@example.com")
        other = sa.create_engine(db.sync_url(database_url))
        deleted = []

        def clear_elsewhere(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "FOR UPDATE" in statement and "rate_limit_buckets" in statement and not deleted:
                with other.begin() as conn:  # another transaction's success, committed
                    conn.execute(sa.delete(RateLimitBucket).where(RateLimitBucket.key == key))
                deleted.append(True)

        engine = api.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", clear_elsewhere)
        try:
            if step == "record_failure":
                fail(api, T0)
            else:
                allowed(api, T0)
        finally:
            event.remove(engine, "before_cursor_execute", clear_elsewhere)
            other.dispose()
        assert deleted
        expected = 1 if step == "record_failure" else 0
        assert api.scalar(sa.select(RateLimitBucket.failures)) == expected


class TestTestProfile:
    def test_test_profile_is_argon2id_at_the_smallest_cost(self) -> None:
        previous = passwords._profile
        passwords.use_profile("test")
        try:
            stored = asyncio.run(passwords.hash_password("correct horse battery"))
            assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
            assert asyncio.run(passwords.verify_password(stored, "correct horse battery"))
            passwords.use_profile("default")
            assert passwords.needs_rehash(stored)  # upgraded at the next login in production
        finally:
            passwords.use_profile(previous)

    def test_unknown_profile_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown password hash profile"):
            passwords.use_profile("none")
