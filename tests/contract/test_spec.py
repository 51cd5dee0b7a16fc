"""The spec is the contract: it validates, the app serves it, and it documents every error."""

from __future__ import annotations

import re

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from nestauth.app import HTTP_METHODS, load_spec
from tests.support import Api

ERROR_SCHEMA = "#/components/schemas/ApiErrorResponseDto"
VERBS = (
    "get", "list", "create", "update", "delete", "revoke", "bootstrap", "log_in", "log_out",
    "sign_up", "refresh", "start", "verify", "generate",
)  # fmt: skip


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = spec["components"][section][name]
    return node


class TestSpecFile:
    def test_validates_as_openapi_3_0(self) -> None:
        # 3.0, the version Connexion 3.3 validates with (Draft 4): in a 3.1 document it
        # would silently skip keywords it does not know, such as `const`.
        spec = load_spec()
        assert spec["openapi"] == "3.0.3"
        validate(spec)

    def test_operation_ids_are_verb_first_snake_case(self) -> None:
        for path, method, operation in operations(load_spec()):
            operation_id = operation["operationId"]
            assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", operation_id), (path, method)
            assert operation_id.startswith(VERBS), (path, method, operation_id)

    def test_every_response_has_a_schema_and_errors_use_the_envelope(self) -> None:
        spec = load_spec()
        for path, method, operation in operations(spec):
            for status, response in operation["responses"].items():
                content = resolve(spec, response)["content"]["application/json"]
                assert "schema" in content, (path, method, status)
                if int(status) >= 400:
                    assert content["schema"] == {"$ref": ERROR_SCHEMA}, (path, method, status)

    def test_protected_operations_document_401_and_403(self) -> None:
        spec = load_spec()
        for path, method, operation in operations(spec):
            if operation.get("security") == []:
                continue
            assert {"400", "401"} <= set(operation["responses"]), (path, method)
            role = operation.get("x-nestauth-min-role")
            if role and (role != "viewer" or method != "get"):  # admin writes: CSRF and roles
                assert "403" in operation["responses"], (path, method)

    def test_seed_operation_keeps_the_seed_page_words(self) -> None:
        spec = load_spec()
        operation = spec["paths"]["/auth/admin/api/users/{id}/totp-devices/{deviceId}"]["delete"]
        assert operation["summary"] == "Remove a user's TOTP device"
        descriptions = {
            status: resolve(spec, response)["description"]
            for status, response in operation["responses"].items()
        }
        assert descriptions["400"] == "Validation failed (bad input)."
        assert descriptions["401"] == "Admin session missing or invalid."
        assert descriptions["403"] == "Authenticated but not permitted."
        assert descriptions["404"] == "User or TOTP device not found."

    def test_error_codes_raised_by_the_server_are_in_the_spec_enum(self) -> None:
        from nestauth import errors

        documented = set(
            load_spec()["components"]["schemas"]["ApiErrorResponseDto"]["properties"]["code"][
                "enum"
            ]
        )
        raised = {
            cls.code for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.ApiError)
        } | set(errors.FRAMEWORK_CODES.values())  # fmt: skip
        assert raised <= documented


def code_statuses() -> dict[str, int]:
    from nestauth import errors

    statuses = {code: status for status, code in errors.FRAMEWORK_CODES.items()}
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.ApiError):
            statuses[cls.code] = cls.status_code
    return statuses


def with_components(spec: dict, schema: dict) -> dict:
    """A schema that can resolve the spec's `#/components/...` references."""
    return {**schema, "components": spec["components"]}


class TestSpecQuality:
    def test_every_operation_has_a_summary_and_a_description(self) -> None:
        for path, method, operation in operations(load_spec()):
            assert operation.get("summary") and operation.get("description"), (path, method)

    def test_request_bodies_are_closed_and_have_examples(self) -> None:
        spec = load_spec()
        for path, method, operation in operations(spec):
            if "requestBody" not in operation:
                continue
            media = operation["requestBody"]["content"]["application/json"]
            schema = resolve(spec, media["schema"])
            for branch in schema.get("oneOf", [schema]):
                assert resolve(spec, branch).get("additionalProperties") is False, (path, method)
            assert "example" in media or "example" in schema, (path, method)

    def test_success_responses_have_examples_that_match_their_schemas(self) -> None:
        spec = load_spec()
        for path, method, operation in operations(spec):
            for status, response in operation["responses"].items():
                media = resolve(spec, response)["content"]["application/json"]
                example = media.get("example", resolve(spec, media["schema"]).get("example"))
                if status.startswith("2"):
                    assert example is not None, (path, method, status)
                if example is not None:
                    OAS30Validator(with_components(spec, media["schema"])).validate(example)

    def test_descriptions_name_a_code_for_every_documented_error_status(self) -> None:
        statuses = code_statuses()
        for path, method, operation in operations(load_spec()):
            named = set(re.findall(r"`(?!NESTAUTH_)([A-Z][A-Z_]+)`", operation["description"]))
            assert named <= set(statuses), (path, method, named - set(statuses))
            named_statuses = {statuses[code] for code in named}
            for status in operation["responses"]:
                if status in {"400", "401", "403", "404", "409", "429"}:
                    assert int(status) in named_statuses, (path, method, status)


class TestServedSpec:
    def test_openapi_json_validates(self, api: Api) -> None:
        response = api.client.get("/openapi.json")
        assert response.status_code == 200
        served = response.json()
        validate(served)
        assert set(served["paths"]) == set(load_spec()["paths"])

    @pytest.mark.parametrize("path", ["/auth/docs/"])
    def test_swagger_ui_is_served_from_the_spec(self, api: Api, path: str) -> None:
        response = api.client.get(path)
        assert response.status_code == 200
        assert "swagger" in response.text.lower()
