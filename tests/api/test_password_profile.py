"""The production hash format through the real path: a cheap test-profile hash is upgraded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from nestauth.models import User
from nestauth.services import passwords
from tests.support import Api


@pytest.fixture
def production_profile() -> Iterator[None]:
    previous = passwords._profile
    yield
    passwords.use_profile(previous)


@pytest.mark.usefixtures("production_profile")
class TestLoginUpgradesTheHash:
    def test_200_login_rehashes_a_test_profile_hash_with_the_production_profile(
        self, api: Api
    ) -> None:
        email = api.sign_up()["user"]["email"]
        stored = api.scalar(sa.select(User.password_hash).where(User.email == email))
        assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")

        passwords.use_profile("default")
        api.log_in_user(email)

        upgraded = api.scalar(sa.select(User.password_hash).where(User.email == email))
        assert upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        api.log_in_user(email)  # and the upgraded hash verifies
