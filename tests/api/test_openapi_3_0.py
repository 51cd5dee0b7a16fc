"""What the move from OpenAPI 3.1 to 3.0.3 rewrote in request schemas still holds.

The user metadata's value types became an `anyOf` (3.0 has no type lists) with the string
limits beside it, the nullable phone and metadata of an update became `oneOf` a null-only
branch, and the NUL check on metadata keys left the spec (3.0 has no propertyNames): the
body validator still refuses NUL anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from nestauth.models import User
from tests.support import Api, assert_error

URL = "/auth/admin/api/users"


def create(api: Api, metadata: Any) -> Any:
    body = {"email": "meta@example.com", "metadata": metadata}
    return api.client.post(URL, json=body, headers=api.bearer())


def users_stored(api: Api) -> int:
    return api.count(User, User.email == "meta@example.com")


@pytest.mark.parametrize(
    "metadata",
    [
        {"a\u0000b": "x"},  # NUL in a key
        {"note": "x" * 1001},  # a string value over maxLength
        {"note": "a\u0000b"},
        {"tags": ["a"]},
        {"nested": {"a": 1}},
    ],
)
def test_400_bad_metadata_stores_nothing(api: Api, metadata: Any) -> None:
    assert_error(create(api, metadata), 400, "VALIDATION_FAILED")
    assert users_stored(api) == 0


def test_201_every_scalar_metadata_value(api: Api) -> None:
    metadata = {"s": "x" * 1000, "n": 1.5, "i": 3, "b": False, "z": None}
    response = create(api, metadata)
    assert response.status_code == 201, response.text
    stored = api.scalar(sa.select(User.metadata_).where(User.email == "meta@example.com"))
    assert stored == metadata


class TestUpdate:
    @pytest.mark.parametrize("body", [{"phone": "not a phone"}, {"phone": 5}, {"metadata": 5}])
    def test_400_neither_null_nor_the_schema(self, api: Api, body: dict[str, Any]) -> None:
        user = api.create_user()
        response = api.client.patch(f"{URL}/{user.id}", json=body, headers=api.bearer())
        assert_error(response, 400, "VALIDATION_FAILED")
        assert api.get_user(user.id).phone is None
