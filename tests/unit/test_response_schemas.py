"""Response schemas are enforced as written, by the validator Connexion itself runs.

Connexion 3.3 validates with Draft 4: a keyword it does not know, such as OpenAPI 3.1's
`const`, is skipped without a word. The spec is OpenAPI 3.0.3 so that every keyword in it
is one Connexion enforces.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from connexion.exceptions import NonConformingResponseBody
from connexion.spec import OpenAPISpecification

from nestauth.app import HTTP_METHODS, load_spec
from nestauth.patches import validator_map


@pytest.fixture(scope="module")
def spec() -> OpenAPISpecification:
    # Connexion's own loader: its document check, then its reference resolution.
    return OpenAPISpecification(load_spec())


def response(spec: OpenAPISpecification, operation_id: str, status: str) -> tuple[dict, Any]:
    """The response's schema, and a copy of its documented example."""
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS and operation["operationId"] == operation_id:
                media = operation["responses"][status]["content"]["application/json"]
                example = media.get("example", media["schema"].get("example"))
                return media["schema"], copy.deepcopy(example)
    raise LookupError(operation_id)


def check(schema: dict[str, Any], body: Any) -> None:
    """What `validate_responses` does to a body the handler returned (the response
    validator nestauth hands Connexion: its own, with the uuid format checked)."""
    validator_class = validator_map()["response"]["application/json"]
    validator = validator_class({}, schema=schema, encoding="utf-8")
    validator._validate(body)


# The four values that were `const` in the 3.1 spec, and were never checked.
FIXED_VALUES = [
    ("delete_user_totp_device", "200", "message", "TOTP device deleted successfully"),
    ("delete_user", "200", "message", "User deleted successfully"),
    ("delete_admin", "200", "message", "Admin deleted successfully"),
    ("sign_up_user", "201", "isRequiresMfa", False),
]


@pytest.mark.parametrize(("operation_id", "status", "field", "value"), FIXED_VALUES)
def test_a_fixed_value_is_enforced(
    spec: OpenAPISpecification, operation_id: str, status: str, field: str, value: Any
) -> None:
    schema, body = response(spec, operation_id, status)
    assert body[field] == value
    check(schema, body)
    wrong = "Something else" if isinstance(value, str) else not value
    with pytest.raises(NonConformingResponseBody, match=field):
        check(schema, {**body, field: wrong})


class TestNullable:
    """`type: [x, "null"]` became `type: x, nullable: true`: null passes, other types fail."""

    def test_null_passes(self, spec: OpenAPISpecification) -> None:
        schema, body = response(spec, "get_user", "200")
        body["user"].update(phone=None, metadata=None)
        body["mfa"]["totpDevices"][0]["lastUsedAt"] = None
        check(schema, body)

    @pytest.mark.parametrize(("field", "wrong"), [("phone", 5), ("metadata", "plan")])
    def test_another_type_fails(self, spec: OpenAPISpecification, field: str, wrong: Any) -> None:
        schema, body = response(spec, "get_user", "200")
        body["user"][field] = wrong
        with pytest.raises(NonConformingResponseBody, match=field):
            check(schema, body)

    def test_a_null_where_none_is_allowed_fails(self, spec: OpenAPISpecification) -> None:
        schema, body = response(spec, "get_user", "200")
        body["user"]["email"] = None
        with pytest.raises(NonConformingResponseBody, match="email"):
            check(schema, body)
